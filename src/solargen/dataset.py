"""The training set: normalised frames in one HDF5 file, plus the study's PNG image folder.

``dataset.h5`` layout::

    images      (N, H, W) uint8 | float16 | float32 (``attrs["quantisation"]``) of y ∈ [0, 1],
                one frame per chunk, compressed (gzip or lzf), in time order
    images_<wl> optional (N, H, W), the same for each extra channel (e.g. ``images_171``): frame i
                is the <wl> Å frame nearest in time to frame i of ``images`` (within
                ``attrs["channel_tolerance_s"]``), normalised with that channel's own constants
                (``attrs["channels"]``); frames lacking a channel are left out of every dataset
                (``attrs["dropped_frames"]``: file, date_obs, reason)
    frames/     the metadata table, N rows: file, date_obs, exptime, quality, degradation_factor,
                crota2, cdelt1, rsun_obs, disk_x0, disk_y0, disk_radius (output pixels),
                block, split (0 train, 1 test, 2 guard — see `solargen.split`);
                file_<wl>, date_obs_<wl> per extra channel
    attrs       constants (JSON), split (JSON), calibration_* steps, versions, source, quantisation

The file is written frame by frame (memory does not grow with N; see benchmarks/dataset_rss.py).
The PNG folder (``out_{i}.png``, 8-bit grey) is the study's own storage format and what the
metrics read as the real set.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import h5py
import numpy as np

from .io import InputError, atomic_dir, atomic_path, short_digest, to_uint8, versions, write_table
from .normalise import dequantise, normalise, quantise
from .shards import META_COLUMNS, corrupt_frame, frame_table, iter_images, shard_attrs
from .split import parse_dates, split_indices

log = logging.getLogger(__name__)

#: What to do about a damaged dataset file.
REBUILD = "re-run the dataset rule to rebuild it"


# --------------------------------------------------------------------------------------------
# Extra channels (e.g. 171 Å and 211 Å beside 193 Å), aligned by time


def align_channel(dates, channel_dates, tolerance_s: float) -> tuple[np.ndarray, np.ndarray]:
    """For each frame time in ``dates`` the index of the nearest frame in ``channel_dates`` (ISO
    strings, any order), or -1 when none lies within ``tolerance_s``. Returns (index (n,) int64,
    |offset| in s (n,) float64, inf where the channel has no frame at all)."""
    t = parse_dates(dates).astype(np.int64)
    n = len(t)
    if len(channel_dates) == 0:
        return np.full(n, -1, np.int64), np.full(n, np.inf)
    c = parse_dates(channel_dates).astype(np.int64)
    order = np.argsort(c, kind="stable")
    cs = c[order]
    right = np.clip(np.searchsorted(cs, t), 0, len(cs) - 1)
    left = np.clip(right - 1, 0, len(cs) - 1)
    pick = np.where(np.abs(cs[left] - t) <= np.abs(cs[right] - t), left, right)
    offset = np.abs(cs[pick] - t).astype(np.float64)
    return np.where(offset <= tolerance_s, order[pick], -1).astype(np.int64), offset


def align_channels(table: dict, channel_tables: dict[int, dict], tolerance_s: float
                   ) -> tuple[np.ndarray, dict[int, np.ndarray], list[dict]]:
    """Match the frames of ``table`` (`frame_table` of the target channel) with each extra channel's.

    Returns (keep (n,) bool: frames that have every channel, per channel the matched row of its
    table for each kept frame, the dropped frames as {file, date_obs, reason} rows).
    """
    n = len(table["file"])
    keep = np.ones(n, bool)
    reasons: list[list[str]] = [[] for _ in range(n)]
    rows = {}
    for wl, ct in channel_tables.items():
        idx, offset = align_channel(table["date_obs"], ct["date_obs"] if ct else [], tolerance_s)
        for i in np.flatnonzero(idx < 0):
            near = f" (nearest {offset[i]:.0f} s away)" if np.isfinite(offset[i]) else ""
            reasons[i].append(f"no {wl} Å frame within ±{tolerance_s:g} s{near}")
        keep &= idx >= 0
        rows[wl] = idx
    dropped = [{"file": str(table["file"][i]), "date_obs": str(table["date_obs"][i]), "reason": "; ".join(reasons[i])}
               for i in np.flatnonzero(~keep)]
    return keep, {wl: r[keep] for wl, r in rows.items()}, dropped


def channel_frame_table(shard_paths: list[str | Path]) -> dict | None:
    """`frame_table` of an extra channel's shards, or None when no frame of it passed calibration
    (then every target frame lacks it and is dropped, with that reason)."""
    try:
        return frame_table(shard_paths)
    except InputError as e:
        if "no frames passed calibration" not in str(e):
            raise
        return None


# --------------------------------------------------------------------------------------------
# Writing


def build_dataset(shard_paths: list[str | Path], constants: dict, out: str | Path,
                  png_dir: str | Path | None = None, source: str = "", split: dict | None = None,
                  quantisation: str = "float32", compression: str = "gzip",
                  channels: dict[int, tuple[list[str | Path], dict]] | None = None,
                  tolerance_s: float = 120.0) -> int:
    """Normalise calibrated shards into ``out`` (and ``png_dir``), streaming; return the number of frames.

    ``split`` is the record written by the ``split`` command (per-file codes); None puts every
    frame in the training split. ``channels`` maps an extra wavelength (Å) to (its calibrated
    shards, its constants): each becomes ``images_<wl>``, aligned frame by frame with ``images``
    (see `align_channels`); frames without every channel within ``tolerance_s`` are dropped,
    logged and listed in ``attrs["dropped_frames"]``. The PNG folder holds the target channel only.
    """
    from PIL import Image
    from tqdm import tqdm

    shard_paths = [Path(p) for p in shard_paths]
    table = frame_table(shard_paths)
    attrs = shard_attrs(shard_paths)
    size = int(attrs["size"])
    channels = {int(wl): ([Path(p) for p in ps], c) for wl, (ps, c) in (channels or {}).items()}
    ch_tables = {wl: channel_frame_table(ps) for wl, (ps, _) in channels.items()}
    dropped: list[dict] = []
    ch_rows: dict[int, np.ndarray] = {}
    if channels:
        keep, ch_rows, dropped = align_channels(table, ch_tables, tolerance_s)
        for d in dropped:
            log.warning("%s (%s): dropped, %s", d["file"], d["date_obs"], d["reason"])
        if not keep.any():
            raise InputError(f"no frame has every channel ({', '.join(map(str, channels))} Å) within "
                             f"±{tolerance_s:g} s; the dataset would be empty")
        table = {k: v[keep] for k, v in table.items()}
        for wl, rows in ch_rows.items():
            ch_attrs = shard_attrs(channels[wl][0])
            if int(ch_attrs["size"]) != size:
                raise InputError(f"{channels[wl][0][0]}: {wl} Å calibrated at {ch_attrs['size']} px, "
                                 f"the target channel at {size}")
            table[f"file_{wl}"] = ch_tables[wl]["file"][rows]
            table[f"date_obs_{wl}"] = ch_tables[wl]["date_obs"][rows]
    n = len(table["file"])
    codes, blocks = np.zeros(n, np.int8), np.full(n, -1, np.int64)
    if split is not None:
        by_file = {f: (c, b) for f, c, b in zip(split["frames"]["file"], split["frames"]["split"],
                                                split["frames"]["block"])}
        missing = [f for f in table["file"] if f not in by_file]
        if missing:
            raise InputError(f"split record has no entry for {len(missing)} frame(s), e.g. {missing[0]}; "
                             "rebuild it from the same shards")
        codes = np.array([by_file[f][0] for f in table["file"]], np.int8)
        blocks = np.array([by_file[f][1] for f in table["file"]], np.int64)
    comp = {"gzip": {"compression": "gzip", "compression_opts": 4}, "lzf": {"compression": "lzf"},
            "none": {}}[compression]
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f, \
            (atomic_dir(png_dir) if png_dir else contextlib.nullcontext()) as pngs:
        dset = f.create_dataset("images", shape=(n, size, size), dtype=quantisation, chunks=(1, size, size),
                                shuffle=bool(comp), **comp)
        for i, image in enumerate(tqdm(iter_images(shard_paths, table), total=n, desc="dataset", unit="frame")):
            if image.shape != (size, size):
                raise InputError(f"{shard_paths[int(table['shard'][i])]}: frame of shape {image.shape}, "
                                 f"expected {(size, size)}")
            y = normalise(image, constants)
            dset[i] = quantise(y, quantisation)
            if pngs is not None:
                Image.fromarray(to_uint8(y)).save(pngs / f"out_{i}.png")
        for wl, (paths, c) in channels.items():
            # The same streaming writer, over the channel's own shards and with its own constants.
            d = f.create_dataset(f"images_{wl}", shape=(n, size, size), dtype=quantisation, chunks=(1, size, size),
                                 shuffle=bool(comp), **comp)
            for i, image in enumerate(tqdm(iter_images(paths, ch_tables[wl], ch_rows[wl].tolist()), total=n, desc=f"dataset {wl} Å",
                                           unit="frame")):
                d[i] = quantise(normalise(image, c), quantisation)
        extra_cols = {k: table[k].tolist() for wl in channels for k in (f"file_{wl}", f"date_obs_{wl}")}
        write_table(f.create_group("frames"), {**{k: table[k].tolist() for k in META_COLUMNS},
                                               "block": blocks.tolist(), "split": codes.tolist(), **extra_cols})
        if channels:
            f.attrs["channels"] = json.dumps({str(wl): {"constants": c, **{
                f"calibration_{k}": v for k, v in shard_attrs(paths).items()}} for wl, (paths, c) in channels.items()})
            f.attrs["channel_tolerance_s"] = float(tolerance_s)
            f.attrs["dropped_frames"] = json.dumps(dropped)
        f.attrs.update({f"calibration_{k}": v for k, v in attrs.items()})
        f.attrs["constants"] = json.dumps(constants)
        f.attrs["split"] = json.dumps({k: v for k, v in (split or {"method": "none"}).items() if k != "frames"})
        f.attrs["versions"] = json.dumps(versions())
        f.attrs["source"] = source
        f.attrs["quantisation"] = quantisation
        f.attrs["compression"] = compression
        f.attrs["range"] = "[0, 1], log-normalised" + (" (stored as round(255·y))" if quantisation == "uint8" else "")
    return n


# --------------------------------------------------------------------------------------------
# Reading


def read_attrs(path: str | Path) -> dict:
    """Attributes of a dataset file, with ``constants``, ``split`` and ``versions`` decoded."""
    with open_dataset(path) as f:
        attrs = dict(f.attrs)
    for k in ("constants", "versions", "split", "channels", "dropped_frames"):
        if k in attrs:
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


def read_images(f: h5py.File, indices) -> np.ndarray:
    """Frames ``indices`` (increasing) of an open dataset as float32 in [0, 1], whatever the storage dtype."""
    indices = np.asarray(indices)
    try:
        return dequantise(f["images"][indices])
    except OSError as e:
        raise InputError(corrupt_frame(f.filename, "images", indices.tolist(), e, REBUILD)) from None


def dataset_identity(path: str | Path) -> dict[str, str]:
    """What a training depends on in a dataset file, for its training fingerprint
    (`solargen.train.training_fingerprint`): ``data.shape`` and ``data.quantisation``, and short
    sha256s of its normalisation constants (every channel's: ``data.constants``), calibration
    settings (``data.calibration``) and frame list (``data.frames``: file names and times of
    every channel; the pixels themselves where a file has no frame table). Library versions are
    left out: a rebuild under a newer sunpy is the same data by this account."""
    with open_dataset(path) as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}

        def decoded(k):
            v = attrs.get(k)
            try:
                return json.loads(v) if isinstance(v, str) else v
            except ValueError:
                return v

        keys = sorted(k for k in f if k == "images" or k.startswith("images_"))
        out = {"data.shape": " ".join(f"{k}:{'x'.join(map(str, f[k].shape))}" for k in keys),
               "data.quantisation": str(attrs.get("quantisation", f["images"].dtype)),
               "data.constants": short_digest(decoded("constants"), decoded("channels")),
               "data.calibration": short_digest(sorted((k, str(v)) for k, v in attrs.items()
                                                       if k.startswith("calibration_")))}
        if "frames" in f and "file" in f["frames"]:
            cols = sorted(k for k in f["frames"] if k == "file" or k.startswith(("date_obs", "file_")))
            out["data.frames"] = short_digest({k: [x.decode() if isinstance(x, bytes) else str(x)
                                                   for x in f["frames"][k][()]] for k in cols})
        else:  # a bare file (tests, hand-made sets): its content is its identity
            import hashlib

            h = hashlib.sha256()
            for k in keys:
                for i in range(len(f[k])):
                    try:
                        h.update(np.ascontiguousarray(f[k][i]).tobytes())
                    except OSError as e:
                        raise InputError(corrupt_frame(path, k, i, e, REBUILD)) from None
            out["data.frames"] = h.hexdigest()[:16]
    return out


def dataset_split(f: h5py.File, test_fraction: float | None = None) -> dict[str, np.ndarray]:
    """Indices of ``all``, ``train`` and ``test`` frames of an open dataset (`split.split_indices`).

    Parameters
    ----------
    f : an open dataset file (`open_dataset`).
    test_fraction : the config's data.test_fraction, used (and then required) only when the
        dataset has no recorded time-block split (``frames/split``).

    Returns
    -------
    dict of str to ndarray
        ``all``, ``train`` and ``test`` frame indices.
    """
    n = len(f["images"])
    codes = f["frames"]["split"][()] if "frames" in f and "split" in f["frames"] else None
    try:
        return split_indices(n, codes=codes, test_fraction=test_fraction)
    except InputError as e:
        raise InputError(f"{f.filename}: {e}") from None


def channel_key(wavelength: int) -> str:
    """The HDF5 dataset of an extra channel."""
    return f"images_{int(wavelength)}"


class H5Images:
    """Frames of ``dataset.h5`` as (1, size, size) tensors in [-1, 1] (the models' range).

    A map-style dataset (``len`` and indexing: what `torch.utils.data.DataLoader` needs), not a
    subclass of torch's, so the many jobs that read ``dataset.h5`` without a model import no torch.

    With ``channels`` (extra wavelengths in Å, e.g. [171, 211]) each item is (1 + k, size, size):
    the target frame, then the aligned frames of those channels (``images_<wl>``), in that order.
    A channel the file lacks is an `InputError` naming what it has.

    ``size`` below the stored resolution is reached by block averaging, so one dataset serves
    runs at several resolutions. Frames are read lazily (one handle per worker process), or, with
    ``in_memory`` (True, or a budget in GiB that the selected frames at ``size`` must fit in),
    once at construction, frame by frame, already block-averaged.
    ``east_west_flip`` asks the training loader to mirror half of the frames left–right, chosen
    by a hash of (seed, step, index) (`solargen.loader.flips`; items here are never flipped). An
    augmentation only: it mirrors the Sun, whose rotation and active-region tilts are not
    mirror-symmetric; default off.
    """

    def __init__(self, path: str | Path, size: int | None = None, in_memory: bool | float = False,
                 indices: np.ndarray | None = None, east_west_flip: bool = False, channels=()):
        self.path = str(path)
        self.keys = ["images"] + [channel_key(wl) for wl in channels or ()]
        with open_dataset(path) as f:
            n, h, _ = f["images"].shape
            have = sorted(k for k in f if k.startswith("images_"))
            for k in self.keys[1:]:
                if k not in f or f[k].shape != f["images"].shape:
                    raise InputError(f"{path}: no {k} aligned with images (extra channels here: "
                                     f"{', '.join(have) or 'none'}); build the dataset with "
                                     f"data.extra_wavelengths: [{', '.join(k[7:] for k in self.keys[1:])}]")
            self.indices = np.arange(n) if indices is None else np.asarray(indices)
            self.n = len(self.indices)
            self.size = size or h
            # 8-bit frames are finite by construction: the per-item check is for float storage.
            self.check_finite = any(f[k].dtype.kind == "f" for k in self.keys)
            if h % self.size:
                raise ValueError(f"dataset resolution {h} is not a multiple of {self.size}")
            self._f = f
            nbytes = self.n * len(self.keys) * self.size ** 2 * 4
            fits = in_memory is True or (in_memory and nbytes <= float(in_memory) * 2 ** 30)
            # (N, 1 + k, size, size) float32 in [0, 1]: only the selected frames, at the run's size.
            self.data = np.empty((self.n, len(self.keys), self.size, self.size), np.float32) if fits else None
            for j, i in enumerate(self.indices if fits else ()):
                self.data[j] = self._read(int(i))
            log.info("%s: %d frames at %d², %s", path, self.n, self.size,
                     f"in memory ({nbytes / 2**20:.0f} MiB)" if fits else "read lazily")
        self.flip = east_west_flip
        self._f = None

    def _read(self, i: int) -> np.ndarray:
        """Frame ``i`` (all of ``keys``) as float32 (1 + k, size, size) in [0, 1]."""
        frames = []
        for k in self.keys:
            try:
                frames.append(dequantise(self._f[k][i]))
            except OSError as e:  # a corrupt chunk: h5py names neither file nor frame
                raise InputError(corrupt_frame(self.path, k, i, e, REBUILD)) from None
        img = np.stack(frames).astype(np.float32, copy=False)
        f = img.shape[-1] // self.size
        return img if f == 1 else img.reshape(len(img), self.size, f, self.size, f).mean(axis=(2, 4))

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.data is not None:
            img = self.data[i]
        else:
            if self._f is None:
                self._f = h5py.File(self.path, "r")
            img = self._read(int(self.indices[i]))
        import torch

        x = torch.from_numpy(np.ascontiguousarray(img))
        if self.check_finite and not torch.isfinite(x).all():
            raise InputError(f"{self.path}: frame {int(self.indices[i])} has non-finite values")
        return x * 2 - 1


def training_rows(table: dict, split: dict, *, reference: dict | None = None, tolerance_s: float) -> list[int]:
    """Rows of a frame ``table`` in the training split of a split record (`split_record`).

    For an extra channel, ``reference`` is the target channel's frame table, which the record
    splits: the channel's training frames are those matched (`align_channel`, within
    ``tolerance_s``) to a training frame of the target, i.e. exactly the ones that enter the
    dataset's training split."""
    codes = dict(zip(*(split["frames"][k] for k in ("file", "split"))))
    if reference is None:
        return [r for r, f in enumerate(table["file"]) if codes.get(f) == 0]
    match, _ = align_channel(reference["date_obs"], table["date_obs"], tolerance_s)
    return sorted({int(m) for m, f in zip(match, reference["file"]) if m >= 0 and codes.get(f) == 0})


def held_out_targets(dataset: str | Path, test_fraction: float | None, size: int, image_indices,
                     channels=()) -> "torch.Tensor":
    """Test-split frames (len(image_indices), 1 + len(channels), size, size) in [-1, 1] for
    conditional runs, image i on test frame i (cycling): the target, then the extra ``channels``
    (Å) a translation model reads. A ValueError when the split has no test frames."""
    with open_dataset(dataset) as f:
        test = dataset_split(f, test_fraction)["test"]
    if len(test) == 0:
        raise ValueError("data.test_fraction is 0: a conditional family has no held-out frames")
    import torch

    data = H5Images(dataset, size=size, indices=test, channels=channels)
    return torch.stack([data[i % len(test)] for i in image_indices])
