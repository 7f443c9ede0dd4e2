"""Calibrated shards: the HDF5 files between calibration and the dataset, read and written here.

``shard_<n>.h5`` layout::

    images      (n_ok, size, size) float32, level 1.5 in DN/s, one frame per chunk
    frames/     one row per input file, `FRAME_COLUMNS`: rejected frames stay with their reason
    attrs       the calibration steps, size, wavelength, plausibility thresholds (the same in every
                shard of a dataset: `shard_attrs`)

`calibrate.calibrate_files` writes them; the constants, the split and the dataset read them
through this module only, one frame at a time.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from .io import InputError

#: The frames table of a shard, one row per input file.
FRAME_COLUMNS = ["file", "date_obs", "exptime", "quality", "status", "reason", "degradation_factor",
                 "crota2", "cdelt1", "rsun_obs", "disk_x0", "disk_y0", "disk_radius", "register_path"]
#: The columns of the calibrated frames the dataset carries on (`frame_table`).
META_COLUMNS = ["file", "date_obs", "exptime", "quality", "degradation_factor", "crota2", "cdelt1",
                "rsun_obs", "disk_x0", "disk_y0", "disk_radius"]


def read_shard(path: str | Path, images: bool = True) -> tuple[np.ndarray | None, dict]:
    """Read a calibrated shard written by `calibrate_files`: (images, frames table as dict of arrays).

    With ``images=False`` only the table is read (streaming readers take frames one by one).
    """
    try:
        with h5py.File(path, "r") as f:
            stack = f["images"][()] if images else None
            frames = {k: _decode(f["frames"][k][()]) for k in f["frames"]}
    except (OSError, KeyError) as e:
        raise InputError(f"{path}: not a readable calibrated shard ({e})") from None
    return stack, frames


def iter_shard_frames(path: str | Path):
    """Yield (image (size, size) float32, row dict) for each calibrated frame of a shard, one at a time."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise InputError(f"{path}: not a readable calibrated shard ({e})") from None
    with f:
        try:
            frames = {k: _decode(f["frames"][k][()]) for k in f["frames"]}
            dset = f["images"]
        except KeyError as e:
            raise InputError(f"{path}: not a calibrated shard ({e})") from None
        ok = np.flatnonzero(frames["status"] == "ok")
        if len(ok) != len(dset):
            raise InputError(f"{path}: {len(dset)} images but {len(ok)} frames marked ok")
        for i, row in enumerate(ok):
            yield dset[i], {k: v[row] for k, v in frames.items()}


def _decode(a):
    return np.array([x.decode() if isinstance(x, bytes) else x for x in a]) if a.dtype.kind in "OS" else a


def frame_table(shard_paths: list[str | Path]) -> dict[str, np.ndarray]:
    """The calibrated (status ok) frames of all shards, sorted by DATE-OBS: one row per frame,
    with ``shard`` (index into ``shard_paths``) and ``index`` (position in that shard's images).
    Only the tables are read. File names must be unique across shards."""
    cols: dict[str, list] = {}
    for s, path in enumerate(shard_paths):
        _, frames = read_shard(path, images=False)
        ok = np.flatnonzero(frames["status"] == "ok")
        for k in META_COLUMNS:
            if k not in frames:
                raise InputError(f"{path}: frames table lacks column {k!r} (written by an older calibrate?)")
            cols.setdefault(k, []).extend(np.asarray(frames[k])[ok].tolist())
        cols.setdefault("shard", []).extend([s] * len(ok))
        cols.setdefault("index", []).extend(range(len(ok)))
    table = {k: np.asarray(v) for k, v in cols.items()}
    if not cols or len(table["file"]) == 0:
        raise InputError("no frames passed calibration; the dataset would be empty")
    names, counts = np.unique(table["file"], return_counts=True)
    if (counts > 1).any():
        raise InputError(f"frame file names repeat across shards: {list(names[counts > 1][:3])}")
    order = np.argsort(table["date_obs"], kind="stable")  # ISO strings sort in time order
    return {k: v[order] for k, v in table.items()}


def iter_images(shard_paths: list[str | Path], table: dict, rows=None):
    """Yield the calibrated image (H, W) float32 of each row of ``table`` (or of ``rows``), one at a time."""
    handles: dict[int, h5py.File] = {}
    try:
        for r in range(len(table["file"])) if rows is None else rows:
            s = int(table["shard"][r])
            if s not in handles:
                try:
                    handles[s] = h5py.File(shard_paths[s], "r")
                except OSError as e:
                    raise InputError(f"{shard_paths[s]}: not a readable calibrated shard ({e})") from None
            i = int(table["index"][r])
            try:
                image = handles[s]["images"][i]
            except OSError as e:  # a corrupt chunk: h5py names neither file nor frame
                raise InputError(corrupt_frame(shard_paths[s], "images", i, e, "re-run its calibrate job")) from None
            yield image
    finally:
        for f in handles.values():
            f.close()


def corrupt_frame(path, key: str, i, e: Exception, remedy: str) -> str:
    """The message for an HDF5 read that failed (h5py's names neither the file nor the frame)."""
    return (f"{path}: frame {i} of {key!r} is unreadable ({e}): the file is corrupt (a damaged "
            f"compressed chunk?); delete it and {remedy}")


def shard_attrs(shard_paths) -> dict:
    """Calibration attributes, which must be the same in every shard (one calibration per dataset)."""
    attrs = None
    for p in shard_paths:
        with h5py.File(p, "r") as f:
            a = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
        a = {k: (str(v) if isinstance(v, bytes) else v) for k, v in a.items()}
        if attrs is None:
            attrs = a
        elif a != attrs:
            diff = sorted(k for k in set(a) | set(attrs) if a.get(k) != attrs.get(k))
            raise InputError(f"{p}: calibrated with other settings than {shard_paths[0]} ({', '.join(diff)})")
    return attrs
