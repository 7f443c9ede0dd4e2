"""Verified, atomic, resumable downloads of FITS files over plain HTTP (JSOC exports, synoptic files).

Every file is streamed to a hidden temporary name beside its final path, verified, and only then
renamed onto the final path (`os.replace`, atomic on POSIX), so a process killed mid-file never
leaves a truncated file under a final name. Verification:

1. the byte count equals ``Content-Length``;
2. astropy opens the FITS file and, where the HDU carries ``CHECKSUM``/``DATASUM`` (JSOC files
   do), the checksums match; without checksums the image data are decompressed instead;
3. the header matches the manifest row (``T_REC``, ``WAVELNTH``, ``FSN``).

A file already on disk is kept only if it passes the same checks, or if its bytes hash to the
sha256 recorded (``<name>.sha256``) when it last passed them; anything else is fetched again. Transient failures (HTTP 5xx
and 429, timeouts, connection resets, short bodies, files that fail verification) are retried
with exponential back-off; 404 means the server has no such file. JSOC asked for no more than one
or two connections at a time, so downloads run on at most ``connections`` threads.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import time
import urllib.error
import urllib.request
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..io import atomic_path, sha256_of
from .records import parse_time

log = logging.getLogger(__name__)

__all__ = ["DownloadError", "NotFound", "VerifyError", "with_retries", "fetch", "verify_fits", "sha256_of",
           "check_on_disk", "ensure_file"]

USER_AGENT = "solargen (SDO/AIA study reproduction; https://github.com/) python-urllib"
_BLOCK = 1 << 20


class DownloadError(RuntimeError):
    """A file could not be fetched intact after all retries."""


class NotFound(DownloadError):
    """The server answered 404: there is no such file."""


class VerifyError(RuntimeError):
    """A file on disk is truncated, corrupt, or not the record the manifest expects."""


class ShortBody(OSError):
    """Fewer bytes arrived than Content-Length announced (a dropped connection)."""


#: Exceptions worth another try: the server or the network, not the request.
TRANSIENT = (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout, http.client.HTTPException,
             ShortBody, VerifyError)


def _is_transient(e: BaseException) -> bool:
    if isinstance(e, urllib.error.HTTPError):
        return e.code >= 500 or e.code in (408, 429)
    return isinstance(e, TRANSIENT)


#: Retry policy of every JSOC/HTTP request (the config's ``jsoc.retries``/``backoff_s`` defaults
#: are the same numbers, in the schema): attempts after the first, and the first back-off in s.
RETRIES, BACKOFF_S = 6, 2.0


def with_retries(fn, what: str, *, retries: int = RETRIES, backoff_s: float = BACKOFF_S, max_backoff_s: float = 300.0):
    """Call ``fn()``; on a transient failure wait ``backoff_s · 2^k`` (capped) and try again.

    Raises `NotFound` on HTTP 404 and the last error (as `DownloadError`) once ``retries`` retries
    are used up; non-transient errors propagate at once.
    """
    for attempt in range(retries + 1):
        try:
            return fn()
        except urllib.error.HTTPError as e:
            if e.code == 404:
                raise NotFound(f"{what}: HTTP 404 (no such file on the server)") from None
            if not _is_transient(e):
                raise DownloadError(f"{what}: HTTP {e.code} {e.reason}") from None
            err = e
        except Exception as e:
            if not _is_transient(e):
                raise
            err = e
        if attempt == retries:
            break
        wait = min(backoff_s * 2**attempt, max_backoff_s)
        log.warning("%s: %s: %s; retry %d/%d in %.1f s", what, type(err).__name__, err, attempt + 1, retries, wait)
        time.sleep(wait)
    raise DownloadError(f"{what}: failed after {retries + 1} attempts ({type(err).__name__}: {err})")


def _stream(url: str, dest: Path, timeout_s: float) -> tuple[int, str]:
    """Stream ``url`` into ``dest``; return (bytes, sha256). Raises `ShortBody` on a short body."""
    req = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    h = hashlib.sha256()
    n = 0
    with urllib.request.urlopen(req, timeout=timeout_s) as r, open(dest, "wb") as f:
        length = r.headers.get("Content-Length")
        try:
            for block in iter(lambda: r.read(_BLOCK), b""):
                f.write(block)
                h.update(block)
                n += len(block)
        except http.client.IncompleteRead as e:
            raise ShortBody(f"connection closed after {n + len(e.partial)} of {length} bytes") from None
        f.flush()
        os.fsync(f.fileno())
    if length is not None and n != int(length):
        raise ShortBody(f"received {n} of {length} bytes")
    if n == 0:
        raise ShortBody("empty response")
    return n, h.hexdigest()


def verify_fits(path: str | os.PathLike, expect: dict | None = None) -> dict:
    """Check that ``path`` is an intact FITS image of the expected record; return its header.

    ``expect`` may hold ``t_rec`` (compared as times), ``wavelnth`` and ``fsn``; absent or NA
    values are not compared. Raises `VerifyError` saying what is wrong.
    """
    from astropy.io import fits
    from astropy.utils.exceptions import AstropyUserWarning

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # astropy reports checksum mismatches and truncation as warnings: here they are errors.
            warnings.simplefilter("error", AstropyUserWarning)
            warnings.simplefilter("error", fits.verify.VerifyWarning)
            with fits.open(path, checksum=True, memmap=False) as hdul:
                hdu = next((h for h in hdul if h.header.get("NAXIS", 0) == 2 or isinstance(h, fits.CompImageHDU)), None)
                if hdu is None:
                    raise VerifyError(f"{path}: no image HDU")
                header = hdu.header.copy()
                if "CHECKSUM" not in hdu.header and "DATASUM" not in hdu.header:
                    data = hdu.data  # no checksum: at least the data must decode completely
                    if data is None or data.shape != (header["NAXIS2"], header["NAXIS1"]):
                        raise VerifyError(f"{path}: image data missing or of the wrong shape")
    except VerifyError:
        raise
    except Exception as e:
        raise VerifyError(f"{path}: not an intact FITS file ({type(e).__name__}: {e})") from None
    for key, cast in (("wavelnth", int), ("fsn", int)):
        want = (expect or {}).get(key)
        if not _given(want):
            continue
        got = header.get(key.upper())
        if got is None or cast(got) != cast(want):
            raise VerifyError(f"{path}: header {key.upper()}={got}, manifest says {want}")
    want = (expect or {}).get("t_rec")
    if _given(want):
        got = header.get("T_REC")
        if got is None or abs((parse_time(got) - parse_time(want)).total_seconds()) > 0.5:
            raise VerifyError(f"{path}: header T_REC={got}, manifest says {want}")
    return dict(header)


def _given(value) -> bool:
    import pandas as pd

    return value is not None and not (pd.api.types.is_scalar(value) and pd.isna(value))


def fetch(url: str, dest: str | os.PathLike, *, expect: dict | None = None, timeout_s: float = 60.0,
          retries: int = RETRIES, backoff_s: float = BACKOFF_S) -> tuple[int, str]:
    """Download ``url`` to ``dest`` (verified, atomic, with retries); return (bytes, sha256)."""
    dest = Path(dest)

    def once():
        with atomic_path(dest, suffix=".part") as tmp:
            n, digest = _stream(url, tmp, timeout_s)
            verify_fits(tmp, expect)
        return n, digest

    return with_retries(once, f"{url} → {dest}", retries=retries, backoff_s=backoff_s)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def check_on_disk(path: str | os.PathLike, expect: dict | None = None, sha256: str | None = None) -> tuple[int, str]:
    """(bytes, sha256) of a stored file that is intact, else `VerifyError` (or `FileNotFoundError`).

    A full FITS verification (checksums, header) costs ~0.5 s for a 4096² frame, so when it passes
    the file's sha256 is written beside it (``<name>.sha256``); later checks only hash the file
    (~0.03 s) and compare: identical bytes are the bytes that were verified. Any difference (or no
    sidecar) means a full verification again.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(path)
    digest = sha256_of(path)
    side = _sidecar(path)
    if not (side.exists() and side.read_text().strip() == digest):
        verify_fits(path, expect)
        _write_sidecar(path, digest)
    if sha256 and digest != sha256:
        raise VerifyError(f"{path}: sha256 {digest} differs from the recorded {sha256}")
    return path.stat().st_size, digest


def _write_sidecar(path: Path, digest: str) -> None:
    with atomic_path(_sidecar(path), suffix=".tmp") as tmp:
        tmp.write_text(digest + "\n")


def ensure_file(url: str, dest: str | os.PathLike, *, expect: dict | None = None, sha256: str | None = None,
                **kw) -> tuple[int, str, bool]:
    """Make ``dest`` an intact copy of ``url``: keep it if it verifies, else (re)download it.

    Returns (bytes, sha256, downloaded?).
    """
    dest = Path(dest)
    if dest.exists():
        try:
            n, digest = check_on_disk(dest, expect, sha256)
            return n, digest, False
        except VerifyError as e:
            log.warning("%s; fetching it again", e)
    n, digest = fetch(url, dest, expect=expect, **kw)
    _write_sidecar(dest, digest)
    return n, digest, True


def download_all(jobs: list[dict], *, connections: int = 1, desc: str = "download", **kw) -> list[dict]:
    """Run `ensure_file` for each job ``{url, dest, expect, sha256}`` on ``connections`` threads.

    Returns one result per job, in order: ``{bytes, sha256, downloaded}`` or ``{error, missing}``.
    A failed file does not stop the others.
    """
    from tqdm import tqdm

    def one(job):
        try:
            n, digest, new = ensure_file(job["url"], job["dest"], expect=job.get("expect"), sha256=job.get("sha256"), **kw)
            return {"bytes": n, "sha256": digest, "downloaded": new}
        except NotFound as e:
            return {"error": str(e), "missing": True}
        except (DownloadError, VerifyError, OSError) as e:
            log.error("%s", e)
            return {"error": str(e), "missing": False}

    connections = max(1, min(int(connections), 2))  # JSOC's request: one or two connections
    with ThreadPoolExecutor(connections) as pool:
        return list(tqdm(pool.map(one, jobs), total=len(jobs), desc=desc, unit="file"))
