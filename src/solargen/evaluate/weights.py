"""Fetching a feature network's weights file once, where there is internet (a login node).

Written to a temporary name, checked against the configured sha256, then renamed: an
interrupted or corrupted download never leaves a file that looks like weights.
"""

from __future__ import annotations

import logging
import urllib.request
from pathlib import Path

from ..io import atomic_path, sha256_of

log = logging.getLogger(__name__)


def fetch(url: str, dest: str | Path, sha256: str | None = None, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` unless a file that verifies is already there."""
    from tqdm import tqdm

    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_of(dest) == sha256):
        log.info("%s is already here", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        with urllib.request.urlopen(url, timeout=timeout) as r, open(tmp, "wb") as f:
            total = int(r.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=dest.name) as bar:
                while block := r.read(1 << 20):
                    f.write(block)
                    bar.update(len(block))
        if total is not None and Path(tmp).stat().st_size != total:
            raise OSError(f"{url}: got {Path(tmp).stat().st_size} of {total} bytes")
        if sha256 is not None and (got := sha256_of(tmp)) != sha256:
            raise OSError(f"{url}: sha256 {got} does not match the configured {sha256}")
    log.info("fetched %s → %s", url, dest)
    return dest
