"""Calibrated shards: the HDF5 files between calibration and the dataset, read and written here.

``shard_<n>.h5`` layout::

    images      (n_ok, size, size) float32, level 1.5 in DN/s, one frame per chunk
    frames/     one row per input file, `FRAME_COLUMNS`: rejected frames stay with their reason
    attrs       the calibration steps, size, wavelength, plausibility thresholds (the same in every
                shard of a dataset: `shard_attrs`)

`solargen.calibrate.files.calibrate_files` writes them (`write_shard`); the constants, the split
and the dataset read them through this module only, one frame at a time.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import h5py
import numpy as np

from .io import InputError, atomic_path, write_table

#: The frames table of a shard, one row per input file.
FRAME_COLUMNS = ["file", "date_obs", "exptime", "quality", "status", "reason", "degradation_factor",
                 "crota2", "cdelt1", "rsun_obs", "disk_x0", "disk_y0", "disk_radius", "register_path"]
#: The columns of the calibrated frames the dataset carries on (`frame_table`).
META_COLUMNS = ["file", "date_obs", "exptime", "quality", "degradation_factor", "crota2", "cdelt1",
                "rsun_obs", "disk_x0", "disk_y0", "disk_radius"]


class ShardWriter:
    """A shard being written (`write_shard`): one `add` per input file, in the order read.

    Images go to disk as they come (one chunk per frame), so memory does not grow with the shard;
    the frames table, its count of registration paths and the file's attributes are written
    when the block ends without an error.
    """

    def __init__(self, f: h5py.File, size: int):
        self._f, self.size = f, size
        self._images = f.create_dataset("images", shape=(0, size, size), maxshape=(None, size, size), dtype="f4",
                                        chunks=(1, size, size))
        self.rows: list[tuple] = []
        self.n_ok = 0
        #: The file's attributes (the calibration's steps and thresholds), written at the end.
        self.attrs: dict = {}

    def add(self, row: dict, image: np.ndarray | None = None) -> None:
        """Record one input file: ``row`` holds every column of `FRAME_COLUMNS`; ``image``
        (size, size) is given exactly when ``row["status"]`` is ``"ok"``."""
        if (image is None) == (row["status"] == "ok"):
            raise ValueError(f"{row['file']}: an image goes with status 'ok' only (status {row['status']!r})")
        if image is not None:
            self._images.resize(self.n_ok + 1, axis=0)
            self._images[self.n_ok] = image
            self.n_ok += 1
        self.rows.append(tuple(row[k] for k in FRAME_COLUMNS))

    def _finish(self) -> None:
        f, rows = self._f, self.rows
        write_table(f.create_group("frames"), {k: [r[i] for r in rows] for i, k in enumerate(FRAME_COLUMNS)})
        paths_taken = [r[-1] for r in rows if r[4] == "ok"]
        # On the table, not the file: the file's attributes must agree across shards (`shard_attrs`).
        f["frames"].attrs["register_paths"] = json.dumps({p: paths_taken.count(p) for p in sorted(set(paths_taken))})
        f.attrs.update(self.attrs, size=self.size)


@contextlib.contextmanager
def write_shard(out: str | Path, size: int):
    """Write a calibrated shard at ``out`` atomically: yields a `ShardWriter`; the file appears
    whole when the block ends without an error, and not at all otherwise.

    Parameters
    ----------
    out : the shard's path.
    size : the images' side (pixels).
    """
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        shard = ShardWriter(f, size)
        yield shard
        shard._finish()


def read_shard(path: str | Path, images: bool = True) -> tuple[np.ndarray | None, dict]:
    """Read a calibrated shard written by `solargen.calibrate.files.calibrate_files`: (images, frames table as dict of arrays).

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
