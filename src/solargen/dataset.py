"""The training set: normalised frames in one HDF5 file, plus the study's PNG image folder.

``dataset.h5`` layout::

    images      (N, H, W) float32 in [0, 1], chunked one frame per chunk
    frames/     one column per metadata field (file, date_obs, exptime, quality), N rows
    attrs       constants (JSON), calibration steps, package versions, source

The PNG folder (``out_{i}.png``, 8-bit grey) is the study's own storage format and what the
metrics read as the real set.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import h5py
import numpy as np
import torch

from .calibrate import read_shard
from .io import InputError, atomic_dir, atomic_path, write_table
from .normalise import normalise


def versions() -> dict:
    """Versions of the libraries that shape the data, recorded with every dataset."""
    import aiapy
    import astropy
    import sunpy

    from . import __version__

    return {"solargen": __version__, "sunpy": sunpy.__version__, "aiapy": aiapy.__version__,
            "astropy": astropy.__version__, "numpy": np.__version__, "h5py": h5py.__version__}


def build_dataset(shard_paths: list[str | Path], constants: dict, out: str | Path,
                  png_dir: str | Path | None = None, source: str = "") -> int:
    """Normalise calibrated shards into ``out`` (and ``png_dir``); return the number of frames."""
    from PIL import Image
    from tqdm import tqdm

    shard_paths = [Path(p) for p in shard_paths]
    with h5py.File(shard_paths[0], "r") as f:
        size = int(f.attrs["size"])
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    n_total = 0
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f, \
            (atomic_dir(png_dir) if png_dir else contextlib.nullcontext()) as pngs:
        dset = f.create_dataset("images", shape=(0, size, size), maxshape=(None, size, size),
                                dtype="f4", chunks=(1, size, size))
        columns: dict[str, list] = {}
        for shard in tqdm(shard_paths, desc="dataset", unit="shard"):
            images, frames = read_shard(shard)
            if images.shape[1:] != (size, size):
                raise InputError(f"{shard}: frames of shape {images.shape[1:]}, expected {(size, size)}")
            ok = frames["status"] == "ok"
            y = np.stack([normalise(im, constants) for im in images]) if len(images) else images
            dset.resize(n_total + len(y), axis=0)
            dset[n_total:] = y
            for k in ("file", "date_obs", "exptime", "quality"):
                columns.setdefault(k, []).extend(np.asarray(frames[k])[ok].tolist())
            if pngs is not None:
                for i, im in enumerate(y):
                    Image.fromarray(to_uint8(im)).save(pngs / f"out_{n_total + i}.png")
            n_total += len(y)
        if n_total == 0:
            raise InputError("no frames passed calibration; the dataset would be empty")
        write_table(f.create_group("frames"), columns)
        f.attrs.update({f"calibration_{k}": v for k, v in attrs.items()})
        f.attrs["constants"] = json.dumps(constants)
        f.attrs["versions"] = json.dumps(versions())
        f.attrs["source"] = source
        f.attrs["range"] = "[0, 1], log-normalised"
    return n_total


def to_uint8(y: np.ndarray) -> np.ndarray:
    """[0, 1] float image → 8-bit grey, as the study's PNGs."""
    return np.round(np.clip(y, 0, 1) * 255).astype(np.uint8)


def read_attrs(path: str | Path) -> dict:
    """Attributes of a dataset file, with ``constants`` and ``versions`` decoded."""
    with open_dataset(path) as f:
        attrs = dict(f.attrs)
    for k in ("constants", "versions"):
        attrs[k] = json.loads(attrs[k])
    return attrs


def open_dataset(path: str | Path) -> h5py.File:
    """Open ``dataset.h5`` read-only; a missing, truncated or foreign file is an `InputError`."""
    try:
        f = h5py.File(path, "r")
    except (OSError, FileNotFoundError) as e:
        raise InputError(f"{path}: cannot open HDF5 dataset ({e})") from None
    if "images" not in f or f["images"].ndim != 3:
        f.close()
        raise InputError(f"{path}: no (N, H, W) 'images' dataset")
    return f


def split_indices(n: int, test_fraction: float) -> dict[str, np.ndarray]:
    """Chronological split: the last ``test_fraction`` of the frames (frames are stored in time
    order) are the test split, so neighbouring frames never straddle train and test."""
    n_test = int(np.ceil(n * test_fraction)) if test_fraction > 0 else 0
    if n_test >= n:
        raise ValueError(f"test_fraction {test_fraction} leaves no training frames out of {n}")
    return {"all": np.arange(n), "train": np.arange(n - n_test), "test": np.arange(n - n_test, n)}


class H5Images(torch.utils.data.Dataset):
    """Frames of ``dataset.h5`` as (1, size, size) tensors in [-1, 1] (the models' range).

    ``size`` below the stored resolution is reached by block averaging, so one dataset serves
    runs at several resolutions. Frames are read lazily (one handle per worker process).
    """

    def __init__(self, path: str | Path, size: int | None = None, in_memory: bool = False,
                 indices: np.ndarray | None = None):
        self.path = str(path)
        with open_dataset(path) as f:
            n, h, _ = f["images"].shape
            self.indices = np.arange(n) if indices is None else np.asarray(indices)
            self.n = len(self.indices)
            self.data = f["images"][()] if in_memory else None
        self.size = size or h
        if h % self.size:
            raise ValueError(f"dataset resolution {h} is not a multiple of {self.size}")
        self._f = None

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        i = int(self.indices[i])
        if self.data is not None:
            img = self.data[i]
        else:
            if self._f is None:
                self._f = h5py.File(self.path, "r")
            img = self._f["images"][i]
        x = torch.from_numpy(np.ascontiguousarray(img))[None]
        if x.shape[-1] != self.size:
            x = torch.nn.functional.avg_pool2d(x[None], x.shape[-1] // self.size)[0]
        if not torch.isfinite(x).all():
            raise InputError(f"{self.path}: frame {i} has non-finite values")
        return x * 2 - 1
