"""Level-1 → level-1.5 calibration of AIA frames, then binning to the study's resolution.

Steps per frame (each recorded in the output's attributes):

1. read and validate the level-1 FITS (wavelength, QUALITY, NaNs, readable data);
2. pointing: taken from the level-1 header (no pointing table is applied yet);
3. ``aiapy.calibrate.register``: rotate to solar north, rescale to 0.6″/px (or the nearest
   multiple of it for already-rebinned frames) and centre the disk — on float32 data, since
   int16 input would come back rounded;
4. exposure normalisation to DN/s;
5. block-mean binning to ``size`` × ``size`` (the study trains at 1024² from 4096² frames).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import h5py
import numpy as np

from .io import InputError, atomic_path, write_table

log = logging.getLogger(__name__)

#: Frames with more non-finite pixels than this fraction are rejected rather than filled.
MAX_NONFINITE_FRACTION = 0.01


def read_level1(path: str | Path, wavelength: int = 193):
    """Read one level-1 AIA FITS file as an `~sunpy.map.sources.AIAMap`.

    Raises `~solargen.io.InputError` naming the file if it is unreadable, truncated, not an AIA
    map, or of another wavelength than ``wavelength`` (Å).
    """
    import astropy.io.fits as fits
    import sunpy.map
    from sunpy.map.sources import AIAMap

    path = Path(path)
    try:
        with warnings.catch_warnings():
            # astropy warns (and zero-fills) on truncated data; we want that to be an error.
            warnings.simplefilter("error", fits.verify.VerifyWarning)
            with fits.open(path, memmap=False) as hdul:
                hdu = next((h for h in hdul if h.data is not None and h.header.get("NAXIS", 0) == 2), None)
                if hdu is None:
                    raise InputError(f"{path}: no 2-D image in the FITS file")
                header = hdu.header.copy()
                data = np.asarray(hdu.data)
                expected = (header["NAXIS2"], header["NAXIS1"])
                if data.shape != expected:
                    raise InputError(f"{path}: data shape {data.shape} does not match header {expected}")
    except InputError:
        raise
    except Exception as e:  # astropy raises OSError/ValueError/TypeError on corrupt or truncated files
        raise InputError(f"{path}: cannot read FITS file ({type(e).__name__}: {e})") from None
    smap = sunpy.map.Map(data, header)
    if not isinstance(smap, AIAMap):
        raise InputError(f"{path}: not an AIA level-1 frame (INSTRUME={header.get('INSTRUME')!r})")
    got = int(round(smap.wavelength.to_value("angstrom")))
    if got != wavelength:
        raise InputError(f"{path}: wavelength {got} Å, but the study uses {wavelength} Å")
    return smap


def bin_image(image: np.ndarray, size: int) -> np.ndarray:
    """Block-mean ``image`` (N, N) down to (size, size); N must be a multiple of ``size``."""
    n = image.shape[0]
    if image.shape != (n, n) or n % size:
        raise ValueError(f"cannot bin an image of shape {image.shape} to {size}×{size}")
    f = n // size
    return image.reshape(size, f, size, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def calibrate_map(smap, size: int, *, register: bool = True, exposure: bool = True) -> np.ndarray:
    """Calibrate one level-1 map to a (size, size) float32 image in DN/s (or DN if not ``exposure``)."""
    import sunpy.map
    from aiapy.calibrate import register as aiapy_register

    data = np.asarray(smap.data, dtype=np.float32)
    bad = ~np.isfinite(data)
    if bad.any():
        data = np.where(bad, 0.0, data).astype(np.float32)
    smap = sunpy.map.Map(data, smap.meta)
    if register:
        # missing=0: pixels rotated in from outside the detector are dark sky, not the map minimum.
        smap = aiapy_register(smap, missing=0.0)
    image = np.asarray(smap.data, dtype=np.float32)
    if exposure:
        image = image / np.float32(smap.exposure_time.to_value("s"))
    # register() may return one pixel less or more than the input; pad/crop symmetrically.
    n = max(image.shape)
    target = n - (n % size) if n % size else n
    image = _fit_square(image, target)
    return bin_image(image, size)


def _fit_square(image: np.ndarray, n: int) -> np.ndarray:
    out = np.zeros((n, n), dtype=image.dtype)
    h, w = min(n, image.shape[0]), min(n, image.shape[1])
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    oy, ox = (n - h) // 2, (n - w) // 2
    out[oy:oy + h, ox:ox + w] = image[y0:y0 + h, x0:x0 + w]
    return out


def frame_status(smap) -> tuple[str, str]:
    """Return ("ok", "") or ("rejected", reason) for a level-1 map (QUALITY, image type, NaNs)."""
    quality = int(smap.meta.get("quality", 0))
    if quality != 0:
        return "rejected", f"QUALITY=0x{quality:08x}"
    img_type = str(smap.meta.get("img_type", "LIGHT")).strip().upper()
    if img_type != "LIGHT":
        return "rejected", f"IMG_TYPE={img_type}"
    nonfinite = float(np.mean(~np.isfinite(np.asarray(smap.data, dtype=np.float32))))
    if nonfinite > MAX_NONFINITE_FRACTION:
        return "rejected", f"{nonfinite:.1%} non-finite pixels"
    return "ok", ""


def calibrate_files(paths: list[str | Path], out: str | Path, size: int, *, wavelength: int = 193,
                    register: bool = True, exposure: bool = True) -> dict:
    """Calibrate level-1 FITS files into one HDF5 shard at ``out``.

    The shard holds ``images`` (n_ok, size, size) float32 and a ``frames`` group with one row per
    input file (``file``, ``date_obs``, ``exptime``, ``quality``, ``status``, ``reason``) — rejected
    frames are kept in the table with their reason, never silently dropped. Returns counts.
    """
    from tqdm import tqdm

    rows, images = [], []
    for path in tqdm(sorted(map(Path, paths)), desc="calibrate", unit="frame"):
        smap = read_level1(path, wavelength)
        status, reason = frame_status(smap)
        if status == "ok":
            images.append(calibrate_map(smap, size, register=register, exposure=exposure))
        else:
            log.warning("%s: rejected (%s)", path, reason)
        rows.append((path.name, str(smap.meta.get("date-obs", "")), float(smap.exposure_time.to_value("s")),
                     int(smap.meta.get("quality", 0)), status, reason))
    stack = np.stack(images) if images else np.zeros((0, size, size), np.float32)
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("images", data=stack, chunks=(1, size, size) if len(stack) else None)
        names = ["file", "date_obs", "exptime", "quality", "status", "reason"]
        write_table(f.create_group("frames"), {k: [r[i] for r in rows] for i, k in enumerate(names)})
        f.attrs.update(level="1.5", units="DN/s" if exposure else "DN", size=size, wavelength=wavelength,
                       register="aiapy.calibrate.register" if register else "off",
                       pointing="level-1 header", exposure_normalised=exposure,
                       degradation_corrected=False, binning="block mean")
    return {"n_ok": len(images), "n_rejected": len(rows) - len(images)}


def read_shard(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a calibrated shard written by `calibrate_files`: (images, frames table as dict of arrays)."""
    try:
        with h5py.File(path, "r") as f:
            images = f["images"][()]
            frames = {k: _decode(f["frames"][k][()]) for k in f["frames"]}
    except (OSError, KeyError) as e:
        raise InputError(f"{path}: not a readable calibrated shard ({e})") from None
    return images, frames


def _decode(a):
    return np.array([x.decode() if isinstance(x, bytes) else x for x in a]) if a.dtype.kind in "OS" else a
