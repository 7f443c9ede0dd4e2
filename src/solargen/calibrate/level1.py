"""Level-1 frames in: reading and validating a level-1 FITS file and its header.

Step 1 of the calibration: the file is read (checksums verified), checked to be an AIA frame of the
study's wavelength, to be the done-manifest's record (`check_stored`), and screened (QUALITY,
IMG_TYPE, EXPTIME, non-finite pixels, the physical `~solargen.calibrate.options.Plausibility`
check: `frame_status`). Rejected frames keep their reason (`reject_kind` groups the reasons).
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from ..io import InputError, sha256_of
from .options import Plausibility

__all__ = ["MAX_NONFINITE_FRACTION", "BACKGROUND_FLOOR_DN", "read_level1", "exposure_time",
           "plausibility_reason", "frame_status", "check_stored", "reject_kind"]


#: Frames with more non-finite pixels than this fraction are rejected rather than filled.
MAX_NONFINITE_FRACTION = 0.01


def read_level1(path: str | Path, *, wavelength: int = 193):
    """Read one level-1 AIA FITS file (plain or tile-compressed) as an `~sunpy.map.sources.AIAMap`.

    Parameters
    ----------
    path : the FITS file.
    wavelength : the channel (Å) the file must hold.

    Returns
    -------
    sunpy.map.sources.AIAMap
        The frame, its data as stored (int16 or float32).

    Raises
    ------
    solargen.io.InputError
        Naming the file, if it is unreadable, truncated, fails its CHECKSUM/DATASUM, is not an AIA
        map, or is of another wavelength than ``wavelength``.
    """
    import astropy.io.fits as fits
    import sunpy.map
    from sunpy.map.sources import AIAMap

    path = Path(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            # checksum=True: files that carry CHECKSUM/DATASUM (JSOC's do) are verified on read.
            with fits.open(path, memmap=False, checksum=True) as hdul:
                hdu = next((h for h in hdul if h.data is not None and h.header.get("NAXIS", 0) == 2), None)
                if hdu is None:
                    raise InputError(f"{path}: no 2-D image in the FITS file")
                header = hdu.header.copy()
                data = np.asarray(hdu.data)
                expected = (header["NAXIS2"], header["NAXIS1"])
                if data.shape != expected:
                    raise InputError(f"{path}: data shape {data.shape} does not match header {expected}")
        # astropy only warns (and zero-fills) on truncated data; we want that to be an error.
        # Other warnings (e.g. the stray BLANK on float data of real JSOC files) are harmless.
        truncated = [w for w in caught if "truncat" in str(w.message).lower()]
        if truncated:
            raise InputError(f"{path}: truncated FITS file ({truncated[0].message})")
        corrupt = [w for w in caught if "verification failed" in str(w.message).lower()]
        if corrupt:
            raise InputError(f"{path}: corrupt FITS file, {corrupt[0].message}")
    except InputError:
        raise
    except Exception as e:  # astropy raises OSError/ValueError/TypeError on corrupt or truncated files
        if "decompression" in str(e).lower():  # a damaged tile stream fails before DATASUM is checked
            raise InputError(f"{path}: corrupt FITS file ({type(e).__name__}: {e})") from None
        raise InputError(f"{path}: cannot read FITS file ({type(e).__name__}: {e})") from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)  # stray BLANK on float data
        if data.dtype.kind == "f":
            header.remove("BLANK", ignore_missing=True)
        smap = sunpy.map.Map(data, header)
    if not isinstance(smap, AIAMap):
        raise InputError(f"{path}: not an AIA level-1 frame (INSTRUME={header.get('INSTRUME')!r})")
    got = int(round(smap.wavelength.to_value("angstrom")))
    if got != wavelength:
        raise InputError(f"{path}: wavelength {got} Å, but the study uses {wavelength} Å")
    return smap


#: A background median below the read noise (~1.2 DN, AIA) is indistinguishable from 0: the
#: disk-to-background ratio divides by at least this.
BACKGROUND_FLOOR_DN = 1.0


def exposure_time(meta) -> float | None:
    """EXPTIME (s) of a level-1 header, or None when it is missing or not a number."""
    try:
        value = float(meta["exptime"])
    except (KeyError, TypeError, ValueError):
        return None
    return value


def plausibility_reason(data: np.ndarray, meta, check: Plausibility) -> str:
    """Why a level-1 frame is physically implausible, or ``""`` (see `Plausibility`)."""
    n_y, n_x = data.shape
    # ≤ 1024² pixels are plenty for medians and fractions (and cost ~10 ms at 4096²).
    step = max(1, max(n_y, n_x) // 1024)
    sub = np.asarray(data[::step, ::step], np.float32)
    lo, hi = check.detector_range_dn
    with np.errstate(invalid="ignore"):
        outside = float(np.mean(~((sub >= lo) & (sub <= hi))))  # NaN counts as outside
    if outside > check.max_outside_range_fraction:
        return (f"implausible: {outside:.1%} of pixels outside the detector range [{lo:g}, {hi:g}] DN "
                f"(> {check.max_outside_range_fraction:g})")
    try:
        cdelt, rsun = float(meta["cdelt1"]), float(meta["rsun_obs"])
        x0 = float(meta["crpix1"]) - 1 - float(meta.get("crval1", 0.0)) / cdelt
        y0 = float(meta["crpix2"]) - 1 - float(meta.get("crval2", 0.0)) / cdelt
    except (KeyError, TypeError, ValueError) as e:
        return f"implausible: header lacks the disk geometry ({e})"
    if not (cdelt > 0 and rsun > 0):
        return f"implausible: CDELT1={cdelt}, RSUN_OBS={rsun}"
    yy, xx = np.ogrid[:n_y:step, :n_x:step]
    r = np.hypot(xx - x0, yy - y0) * (cdelt / rsun)  # in R_sun
    disk, far = sub[r < 0.9], sub[r > 1.25]
    if disk.size == 0:
        return "implausible: the header puts the disk outside the frame"
    d = float(np.nanmedian(disk))
    b = float(np.nanmedian(far)) if far.size else 0.0
    ratio = d / max(b, BACKGROUND_FLOOR_DN)
    if not ratio >= check.min_disk_to_background:
        return (f"implausible: disk/background {ratio:.3g} < {check.min_disk_to_background:g} "
                f"(median {d:.4g} DN inside 0.9 R_sun, {b:.4g} DN beyond 1.25 R_sun)")
    return ""


def frame_status(smap, *, plausibility: Plausibility | None = Plausibility()) -> tuple[str, str]:
    """Whether a level-1 frame is calibrated or rejected, and why.

    Parameters
    ----------
    smap : the level-1 map (`read_level1`).
    plausibility : thresholds of the physical check; None skips it.

    Returns
    -------
    tuple of str
        ``("ok", "")`` or ``("rejected", reason)``; tested in order: QUALITY, image type, EXPTIME
        (present, finite, positive), non-finite pixels, then the plausibility check.
    """
    meta = smap.meta
    quality = int(meta.get("quality", 0))
    if quality != 0:
        return "rejected", f"QUALITY=0x{quality:08x}"
    img_type = str(meta.get("img_type", "LIGHT")).strip().upper()
    if img_type != "LIGHT":
        return "rejected", f"IMG_TYPE={img_type}"
    exptime = exposure_time(meta)
    if exptime is None:
        return "rejected", "EXPTIME missing or not a number"
    if not (math.isfinite(exptime) and exptime > 0):
        return "rejected", f"EXPTIME={exptime:g} s (not a positive exposure)"
    data = np.asarray(smap.data)
    if data.dtype.kind == "f":
        nonfinite = float(np.mean(~np.isfinite(data)))
        if nonfinite > MAX_NONFINITE_FRACTION:
            return "rejected", f"{nonfinite:.1%} non-finite pixels"
    if plausibility is not None:
        reason = plausibility_reason(data, meta, plausibility)
        if reason:
            return "rejected", reason
    return "ok", ""


def check_stored(path: Path, meta, record: dict | None) -> None:
    """A stored level-1 file is the done-manifest's record, else `InputError` naming the file.

    ``record``: ``t_rec``, ``fsn`` and ``sha256`` of the manifest row (``sha256`` may be missing,
    then only the header is compared). The header's T_REC (as a time, to 0.5 s) and FSN are
    compared first (free: the header is already read), then the file's sha256 (~30 ms per
    4096² RICE file). A store whose file was replaced by another valid frame must not be
    calibrated as if it were the manifest's record.

    Parameters
    ----------
    path : the stored file.
    meta : its header (already read: `read_level1`).
    record : the manifest's row for the file; None (not in the manifest) is an error.

    Raises
    ------
    solargen.io.InputError
        Naming the file and the field that differs, with the remedy.
    """
    import pandas as pd

    from ..acquire.records import parse_time

    remedy = "the store no longer holds the manifest's frame; re-run the chunk's download job (snakemake -R jsoc_download)"
    if record is None:
        raise InputError(f"{path}: not a verified file of the done-manifest")

    def given(v):
        return v is not None and not (pd.api.types.is_scalar(v) and pd.isna(v)) and str(v) != ""

    if given(record.get("fsn")):
        got = meta.get("fsn")
        if got is None or int(got) != int(record["fsn"]):
            raise InputError(f"{path}: header FSN={got}, the manifest says {int(record['fsn'])}: {remedy}")
    if given(record.get("t_rec")):
        got = meta.get("t_rec")
        try:
            off = abs((parse_time(got) - parse_time(record["t_rec"])).total_seconds())
        except (TypeError, ValueError):
            off = math.inf
        if not off <= 0.5:
            raise InputError(f"{path}: header T_REC={got}, the manifest says {record['t_rec']}: {remedy}")
    if given(record.get("sha256")):
        digest = sha256_of(path)
        if digest != str(record["sha256"]):
            raise InputError(f"{path}: sha256 {digest} differs from the manifest's {record['sha256']}: {remedy}")


def reject_kind(reason: str) -> str:
    """The filter a rejection reason comes from (``QUALITY``, ``IMG_TYPE``, ``EXPTIME``,
    ``non-finite``, ``implausible``), for counts in the dataset QA."""
    if reason.startswith("implausible"):
        return "implausible"
    if "non-finite" in reason:
        return "non-finite"
    return reason.split("=")[0].split(" ")[0]
