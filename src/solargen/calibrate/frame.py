"""One level-1 frame → one level-1.5 image: the calibration steps in order.

Pointing (`solargen.calibrate.corrections.apply_pointing`), registration and binning by the fused
path or the reference path (chosen per frame, recorded as ``register_path``), the optional fixed
solar-radius rescaling, the degradation correction and the exposure normalisation to DN/s.
"""

from __future__ import annotations

import math

import numpy as np

from ..io import InputError
from .corrections import apply_pointing, degradation_factor, wheel_correction_table
from .fused import MAX_FUSED_ROLL_DEG, fused_level15
from .geometry import bin_image, lattice_roll_deg, target_scale
from .level1 import exposure_time
from .options import Options
from .reference import reference_level15

__all__ = ["calibrate_frame", "calibrate_map"]


def calibrate_frame(smap, size: int, opts: Options = Options()) -> tuple[np.ndarray, dict]:
    """Calibrate one level-1 map to a (size, size) float32 image and its per-frame metadata.

    Returns the image (DN/s with ``exposure``, else DN) and a dict with what went into it:
    EXPTIME, the degradation factor (1.0 when off), CROTA2 and CDELT1 after the pointing update,
    RSUN_OBS, the output disk centre (``disk_x0``, ``disk_y0``, 0-based) and radius (pixels), and
    ``register_path``: ``fused``, ``reference``, ``reference (roll fallback)`` (the fused method
    asked for, but the frame is rolled beyond `MAX_FUSED_ROLL_DEG`) or ``none``.
    """
    import sunpy.map

    data = np.asarray(smap.data)
    if data.dtype.kind == "f":
        bad = ~np.isfinite(data)
        if bad.any():
            data = np.where(bad, 0.0, data)
    data = data if data.dtype in (np.float32, np.int16) else data.astype(np.float32)
    if opts.pointing_table:
        smap = apply_pointing(sunpy.map.Map(data, smap.meta), opts.pointing_table)
    meta = smap.meta
    n = data.shape[1]
    path = "none"
    if opts.register:
        path = opts.method
        if path == "fused" and lattice_roll_deg(meta) > MAX_FUSED_ROLL_DEG:
            path = "reference (roll fallback)"  # beyond the fused path's bound: see MAX_FUSED_ROLL_DEG
        if path == "fused":
            image = fused_level15(data, meta, size, opts.rsun_arcsec)
        else:
            image = reference_level15(sunpy.map.Map(data, meta), size, opts.rsun_arcsec)
        scale = target_scale(meta, data.shape) * (n // size)  # arcsec per output pixel
        if opts.rsun_arcsec is not None:
            scale *= float(meta["rsun_obs"]) / opts.rsun_arcsec
        # The reference pixel is at the centre; the Sun's centre (world 0, 0) sits CRVAL from it.
        x0 = (size - 1) / 2.0 - float(meta.get("crval1", 0.0)) / scale
        y0 = (size - 1) / 2.0 - float(meta.get("crval2", 0.0)) / scale
        radius = float(meta["rsun_obs"]) / scale
    else:
        if n % size or data.shape[0] != n:
            raise InputError(f"cannot bin an image of shape {data.shape} to {size}×{size}")
        image = bin_image(np.asarray(data, np.float32), size)
        f = n // size
        scale = float(meta["cdelt1"]) * f
        x0 = (float(meta["crpix1"]) - 1 - (f - 1) / 2.0) / f - float(meta.get("crval1", 0.0)) / scale
        y0 = (float(meta["crpix2"]) - 1 - (f - 1) / 2.0) / f - float(meta.get("crval2", 0.0)) / scale
        radius = float(meta["rsun_obs"]) / scale
    exptime = exposure_time(meta)
    if opts.exposure and not (exptime is not None and math.isfinite(exptime) and exptime > 0):
        raise InputError(f"{meta.get('t_rec', meta.get('date-obs', 'frame'))}: EXPTIME={exptime}, cannot normalise to DN/s")
    exptime = float("nan") if exptime is None else exptime
    factor = 1.0
    if opts.degradation:
        factor = degradation_factor(smap.wavelength.to_value("angstrom"), smap.date,
                                    opts.degradation_table or wheel_correction_table())
    divisor = factor * (exptime if opts.exposure else 1.0)
    if divisor != 1.0:
        image = image / np.float32(divisor)
    info = {"exptime": exptime, "degradation_factor": factor, "crota2": float(meta.get("crota2", 0.0)),
            "cdelt1": float(meta["cdelt1"]), "rsun_obs": float(meta["rsun_obs"]),
            "disk_x0": float(x0), "disk_y0": float(y0), "disk_radius": float(radius),
            "register_path": path}
    return np.asarray(image, np.float32), info


def calibrate_map(smap, size: int, *, register: bool = True, exposure: bool = True,
                  opts: Options | None = None) -> np.ndarray:
    """Calibrate one level-1 map to a (size, size) float32 image in DN/s (or DN if not ``exposure``)."""
    opts = opts or Options(register=register, exposure=exposure)
    return calibrate_frame(smap, size, opts)[0]
