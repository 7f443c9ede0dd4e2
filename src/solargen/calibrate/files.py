"""Level-1 files → one calibrated shard: the step the workflow runs (``python -m solargen calibrate``).

Reads, validates and calibrates frame by frame, writing through `solargen.shards.write_shard`
(the shard format's one owner), and records the steps (`steps_attrs`) with the shard.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..io import sha256_of
from ..shards import FRAME_COLUMNS, write_shard
from .corrections import wheel_correction_table
from .frame import calibrate_frame
from .level1 import check_stored, exposure_time, frame_status, read_level1
from .options import Options, Plausibility

__all__ = ["steps_attrs", "calibrate_files"]

log = logging.getLogger(__name__)


def steps_attrs(opts: Options) -> dict:
    """The calibration steps as a shard's attributes.

    Parameters
    ----------
    opts : the calibration's options.

    Returns
    -------
    dict
        What was applied (level, units, registration method, binning, exposure, degradation, radius
        rescaling) and with which table (its file name and sha256).
    """
    attrs = {"level": "1.5" if opts.register else "1 (binned)",
             "units": "DN/s" if opts.exposure else "DN",
             "register": ({"fused": "fused: spline prefilter (FIR) + exact f×f spline-sample mean per block (one resampling)",
                           "reference": "aiapy.calibrate.register (scipy, order 3) + block mean"}[opts.method]
                          if opts.register else "off"),
             "method": opts.method if opts.register else "off",
             "binning": "block mean",
             "exposure_normalised": opts.exposure,
             "degradation_corrected": opts.degradation,
             "rsun_rescaled_arcsec": float(opts.rsun_arcsec) if opts.rsun_arcsec else 0.0}
    if opts.pointing_table:
        attrs["pointing"] = f"table {Path(opts.pointing_table).name}"
        attrs["pointing_table_sha256"] = sha256_of(opts.pointing_table)
    else:
        attrs["pointing"] = "level-1 header"
    if opts.degradation:
        table = Path(opts.degradation_table) if opts.degradation_table else wheel_correction_table()
        attrs["degradation_table"] = table.name
        attrs["degradation_table_sha256"] = sha256_of(table)
    return attrs


def calibrate_files(paths: list[str | Path], out: str | Path, size: int, *, wavelength: int = 193,
                    register: bool = True, exposure: bool = True, opts: Options | None = None,
                    plausibility: Plausibility | None = Plausibility(),
                    expect: dict[str, dict] | None = None) -> dict:
    """Calibrate level-1 FITS files into one HDF5 shard at ``out``, frame by frame.

    The shard holds ``images`` (n_ok, size, size) float32 (written one frame at a time, so memory
    does not grow with the shard) and a ``frames`` group with one row per input file (columns
    `FRAME_COLUMNS`) — rejected frames are kept in the table with their reason, never silently
    dropped (QUALITY, IMG_TYPE, EXPTIME, NaNs and the `Plausibility` check; see `frame_status`).
    ``expect`` (from a done-manifest, keyed by the file's resolved path) holds what each stored
    file must be: ``t_rec``, ``fsn`` and, where recorded, ``sha256`` (`check_stored`).

    Parameters
    ----------
    paths : level-1 FITS files (calibrated in sorted order).
    out : the shard's path (written atomically: `solargen.shards.write_shard`).
    size : the images' side.
    wavelength : the channel (Å) every file must hold.
    register, exposure : the steps, when ``opts`` is None.
    opts : the calibration's options (`~solargen.calibrate.options.Options`).
    plausibility : the physical check's thresholds; None: off (recorded as such).
    expect : the done-manifest's records by resolved path; None: files are not checked against one.

    Returns
    -------
    dict
        ``n_ok`` and ``n_rejected`` frames.
    """
    import cv2
    from tqdm import tqdm

    cv2.setNumThreads(1)  # one frame per process: Snakemake runs one job per core
    opts = opts or Options(register=register, exposure=exposure)
    attrs = steps_attrs(opts)
    with write_shard(out, size) as shard:
        for path in tqdm(sorted(map(Path, paths)), desc="calibrate", unit="frame"):
            smap = read_level1(path, wavelength=wavelength)
            if expect is not None:
                check_stored(path, smap.meta, expect.get(str(path.resolve())))
            status, reason = frame_status(smap, plausibility=plausibility)
            info = dict.fromkeys(FRAME_COLUMNS[6:-1], float("nan")) | {"register_path": ""}
            image = None
            if status == "ok":
                image, info = calibrate_frame(smap, size, opts)
            else:
                log.warning("%s: rejected (%s)", path, reason)
            exptime = exposure_time(smap.meta)
            shard.add({**info, "file": path.name, "date_obs": str(smap.meta.get("date-obs", "")),
                       "exptime": float("nan") if exptime is None else exptime,
                       "quality": int(smap.meta.get("quality", 0)), "status": status, "reason": reason}, image)
        shard.attrs.update(attrs, wavelength=wavelength)
        if plausibility is not None:
            shard.attrs.update(plausibility_min_disk_to_background=plausibility.min_disk_to_background,
                               plausibility_max_outside_range_fraction=plausibility.max_outside_range_fraction,
                               plausibility_detector_low_dn=plausibility.detector_range_dn[0],
                               plausibility_detector_high_dn=plausibility.detector_range_dn[1])
        else:
            shard.attrs["plausibility"] = "off"
    return {"n_ok": shard.n_ok, "n_rejected": len(shard.rows) - shard.n_ok}
