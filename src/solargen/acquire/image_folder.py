"""Ingest a folder of already normalised PNG frames, e.g. the study authors' released set.

The published training data (Hugging Face ``slampai/solar-sdo``: 38,676 frames of 193 Å,
``image_folder_1024x1024_normalized_log_transform_193A_40K_with_lev1.5_corrections``) are 8-bit
grey PNGs of a log-transformed, normalised intensity. They are already what our ``dataset``
step produces, so this source skips calibration and normalisation and writes ``dataset.h5``
(same layout and attributes as `solargen.dataset.build_dataset`) and the study's PNG folder
directly from them. Training on this source trains on exactly the paper's pixels.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np

from ..io import InputError, atomic_dir, atomic_path, to_uint8, versions, write_table

__all__ = ["list_images", "read_image", "build_dataset_from_images"]

_SUFFIXES = {".png", ".jpg", ".jpeg"}


def _natural_key(path: Path):
    # out_2.png before out_10.png; dates in names sort as text, which is time order.
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", path.name)]


def list_images(folder: str | Path) -> list[Path]:
    """The image files of ``folder`` (recursively), in natural name order."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: image folder not found")
    paths = sorted((p for p in folder.rglob("*") if p.suffix.lower() in _SUFFIXES and p.is_file()), key=_natural_key)
    if not paths:
        raise InputError(f"{folder}: no PNG/JPEG images")
    return paths


def read_image(path: Path, size: int) -> np.ndarray:
    """One grey frame as float32 in [0, 1], block-averaged to (size, size).

    8-bit images are divided by 255, 16-bit ones by 65535; RGB images (equal channels in the
    published set) are converted to grey. Non-square images, or sizes that ``size`` does not
    divide, are an `InputError`.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                a = np.asarray(im, dtype=np.float64) / 65535.0
            else:
                a = np.asarray(im.convert("L"), dtype=np.float64) / 255.0
    except Exception as e:
        raise InputError(f"{path}: unreadable image ({type(e).__name__}: {e})") from None
    n = a.shape[0]
    if a.shape != (n, n) or n % size:
        raise InputError(f"{path}: image of shape {a.shape}; expected square with a side that {size} divides")
    f = n // size
    return a.reshape(size, f, size, f).mean(axis=(1, 3)).astype(np.float32)


def build_dataset_from_images(folder: str | Path, out: str | Path, size: int, png_dir: str | Path | None = None,
                              source: str = "image_folder") -> int:
    """Write ``dataset.h5`` (N, size, size) in [0, 1] and the PNG folder from an image folder."""
    from PIL import Image
    from tqdm import tqdm

    paths = list_images(folder)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f, \
            (atomic_dir(png_dir) if png_dir else _null()) as pngs:
        dset = f.create_dataset("images", shape=(len(paths), size, size), dtype="f4", chunks=(1, size, size))
        for i, p in enumerate(tqdm(paths, desc="image folder", unit="frame")):
            y = read_image(p, size)
            dset[i] = y
            if pngs is not None:
                Image.fromarray(to_uint8(y)).save(pngs / f"out_{i}.png")
        write_table(f.create_group("frames"), {"file": [p.name for p in paths], "date_obs": [""] * len(paths),
                                               "exptime": [float("nan")] * len(paths), "quality": [0] * len(paths)})
        f.attrs["constants"] = json.dumps({"transform": "given", "folder": str(folder),
                                           "note": "frames were normalised by their publisher"})
        f.attrs["versions"] = json.dumps(versions())
        f.attrs["source"] = source
        f.attrs["range"] = "[0, 1], as published (8-bit PNG / 255)"
        f.attrs["calibration_level"] = "as published"
    return len(paths)


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False
