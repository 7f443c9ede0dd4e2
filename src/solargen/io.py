"""Atomic file writes and careful reads: an interrupted job never leaves a file that looks complete."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's content, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class InputError(RuntimeError):
    """A bad input file (corrupt, truncated, wrong content); the message names the file."""


def short_digest(*parts) -> str:
    """16 hex digits of the sha256 of ``parts`` as canonical JSON (sorted keys): an identity for
    small records (a dataset's constants, a frame list) that fits in a log line."""
    blob = json.dumps(parts, sort_keys=True, default=_json_default, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_npz(path: str | os.PathLike, required=()) -> dict:
    """Every array of an ``.npz`` file, read at once; a missing, truncated or corrupt file, or one
    lacking a ``required`` key, is an `InputError` naming the file and what to redo."""
    import zipfile
    import zlib

    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"{path}: truncated or corrupt .npz file ({type(e).__name__}: {e}); "
                         "delete it and re-run the rule that writes it") from None
    missing = [k for k in required if k not in out]
    if missing:
        raise InputError(f"{path}: lacks {', '.join(missing)} (written by another command or an older version?); "
                         "delete it and re-run the rule that writes it")
    return out


def read_yaml(path: str | os.PathLike):
    """A YAML file's content; a syntax error is an `InputError` naming the file, line and column."""
    import yaml

    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark, ctx = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        what = getattr(e, "problem", None) or str(e)
        if getattr(e, "context", None):
            at = f" that starts at line {ctx.line + 1}, column {ctx.column + 1}" if ctx and ctx != mark else ""
            what += f" ({e.context}{at})"
        raise InputError(f"{path}{where}: YAML syntax error: {what}") from None


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None):
    """Yield a temporary path beside ``path``; move it onto ``path`` only if the block succeeds.

    The temp file lives in the same directory so the final ``os.replace`` is atomic on POSIX.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or path.suffix or ".tmp",
                               dir=path.parent)
    os.close(fd)
    # mkstemp creates 0600; give the final file the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """Yield a temporary directory beside ``path``; rename it onto ``path`` if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike):
    """Read a JSON file, naming the file if it is missing or corrupt."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None


def write_table(group, columns: dict[str, list]) -> None:
    """Write a table into an HDF5 group, one dataset per column (strings as variable-length UTF-8)."""
    import h5py
    import numpy as np

    for k, col in columns.items():
        is_str = bool(col) and isinstance(col[0], str)
        group.create_dataset(k, data=np.array(col, dtype=h5py.string_dtype() if is_str else None))


def _json_default(o):
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")


def image_files(folder: str | Path) -> list[str]:
    """Sorted PNG files of an image folder; an empty or missing folder is an `InputError`."""
    files = sorted(str(p) for p in Path(folder).glob("*.png"))
    if not files:
        raise InputError(f"{folder}: no PNG images")
    return files


def to_uint8(y):
    """[0, 1] float image → 8-bit grey, round(255·y), as the study's PNG folders and uint8 datasets hold it."""
    import numpy as np

    return np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)


def versions() -> dict:
    """Versions of the libraries that shape the data, recorded with every dataset."""
    import aiapy
    import astropy
    import cv2
    import h5py
    import numpy as np
    import sunpy

    from . import __version__

    return {"solargen": __version__, "sunpy": sunpy.__version__, "aiapy": aiapy.__version__,
            "astropy": astropy.__version__, "numpy": np.__version__, "h5py": h5py.__version__,
            "opencv": cv2.__version__}
