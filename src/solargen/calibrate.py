"""Level-1 → level-1.5 calibration of AIA frames, binned to the study's resolution.

Steps per frame, each switchable and recorded in the shard's (and the dataset's) attributes:

1. read and validate the level-1 FITS (wavelength, QUALITY, EXPTIME, NaNs, readable data, a
   physical plausibility check: `Plausibility`; from a done-manifest, each file is checked to be
   the manifest's record: `check_stored`);
2. pointing: from a pointing-table file (``aiapy.calibrate.update_pointing``; the file's sha256 is
   recorded) or, with no table configured, the level-1 header's own pointing keywords;
3. registration to level 1.5 — solar north up, 0.6″/px, the reference pixel (disk centre) at the
   image centre — and binning to ``size`` × ``size``, by one of two methods:

   * ``reference``: ``aiapy.calibrate.register`` (scipy, cubic spline) on float32 data (int16
     input would come back rounded), then a block mean;
   * ``fused`` (the default, the hot loop): ONE resampling from the level-1 grid straight to the
     target grid, with the reference's own kernel: the spline coefficients by a symmetric FIR
     on the level-1 grid (`spline_prefilter`, compiled, band by band), then at each target pixel
     the exact mean of its f × f cubic-spline samples as one 8 × 8 kernel (at f = 4) whose
     weights depend on the block centre's phase (`block_kernels`, compiled in
     `solargen.resample`), through the full affine (rotation by CROTA2, scale to 0.6″·f/px,
     reference pixel to the centre; the rotation read as sunpy reads it, PCi_j before CDi_j
     before CROTA2). sunpy's clip of every sample to the input's range is reproduced at both
     ends (exactly, where the spline could cross it). Frames rolled beyond
     `MAX_FUSED_ROLL_DEG`, or whose clip would need the exact path on more than
     `FUSED_MAX_EXACT_SHARE` of the pixels, take the reference path instead (recorded per
     frame). On the disk it agrees with the reference to ≤ 0.1 % max relative
     error on ordinary, dark and rolled frames (benchmarks/calibrate.py);

4. optional fixed solar-radius rescaling (as SDOML: every frame's disk gets the same size);
5. degradation correction (``aiapy.calibrate.degradation`` with a correction-table file; the
   aiapy wheel ships the V8 table, used when no other file is configured);
6. exposure normalisation to DN/s.

Pixel conventions (documented behaviour): non-finite level-1 pixels are treated as missing and set
to 0 (frames with more than `MAX_NONFINITE_FRACTION` of them are rejected); pixels rotated in from
outside the detector are 0 (dark sky); negative values (dark-subtracted noise) are kept — the log
normalisation clips them to its lower constant.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from .io import InputError, atomic_path, sha256_of, write_table
from .shards import FRAME_COLUMNS

log = logging.getLogger(__name__)

#: Frames with more non-finite pixels than this fraction are rejected rather than filled.
MAX_NONFINITE_FRACTION = 0.01
#: Level-1.5 plate scale (arcsec/pixel) at full resolution.
LEVEL15_SCALE = 0.6
#: On-disk radius (in R_sun) inside which the fused and reference paths are compared; the limb
#: and off-disk corona are excluded (steep gradients there make any two kernels differ most).
ON_DISK = 0.95


@dataclass(frozen=True)
class Options:
    """What the calibration does; all of it is recorded with the output.

    method : ``"fused"`` or ``"reference"`` (see the module docstring); ignored if not ``register``.
    register : registration to level 1.5 (off: a plain block mean of the level-1 grid).
    exposure : divide by EXPTIME (DN → DN/s).
    degradation : divide by the degradation factor of ``degradation_table`` (None: the aiapy
        wheel's V8 table).
    pointing_table : an astropy-readable table (e.g. ECSV from ``get_pointing_table``) with
        T_START, T_STOP, A_<wl>_X0/Y0/IMSCALE/INSTROT; None: the level-1 header's pointing.
    rsun_arcsec : rescale every frame so the solar radius is this many arcsec at 0.6″/px (SDOML
        uses 976″); None: no rescaling.
    """

    method: str = "fused"
    register: bool = True
    exposure: bool = True
    degradation: bool = False
    degradation_table: str | None = None
    pointing_table: str | None = None
    rsun_arcsec: float | None = None

    def __post_init__(self):
        if self.method not in ("fused", "reference"):
            raise ValueError(f"calibration method must be 'fused' or 'reference', got {self.method!r}")
        if self.rsun_arcsec is not None and not self.rsun_arcsec > 0:
            raise ValueError(f"rsun_arcsec must be positive, got {self.rsun_arcsec}")


# --------------------------------------------------------------------------------------------
# Reading


def read_level1(path: str | Path, wavelength: int = 193):
    """Read one level-1 AIA FITS file (plain or tile-compressed) as an `~sunpy.map.sources.AIAMap`.

    Raises `~solargen.io.InputError` naming the file if it is unreadable, truncated, fails its
    CHECKSUM/DATASUM, is not an AIA map, or is of another wavelength than ``wavelength`` (Å).
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


# --------------------------------------------------------------------------------------------
# Calibration tables


def wheel_correction_table() -> Path:
    """The degradation-correction table (V8) that ships in the aiapy wheel: usable offline."""
    import aiapy

    path = Path(aiapy.__file__).parent / "tests" / "data" / "aia_V8_20171210_050627_response_table.txt"
    if not path.exists():
        raise InputError(f"{path}: aiapy's bundled correction table is missing; configure degradation_table")
    return path


@functools.lru_cache(maxsize=4)
def _correction_table(path: str):
    from aiapy.calibrate.util import get_correction_table

    try:
        return get_correction_table(path)
    except Exception as e:
        raise InputError(f"{path}: not a readable degradation-correction table ({e})") from None


@functools.lru_cache(maxsize=4)
def _pointing_table(path: str):
    from astropy.table import QTable

    try:
        return QTable.read(path)
    except Exception as e:
        raise InputError(f"{path}: not a readable pointing table ({e})") from None


def degradation_factor(wavelength_aa: float, date, table_path: str | Path) -> float:
    """aiapy's degradation factor (≤ 1 after launch) for a channel at ``date`` from a table file."""
    import astropy.units as u
    from aiapy.calibrate import degradation
    from astropy.time import Time

    table = _correction_table(str(table_path))
    return float(degradation(wavelength_aa * u.angstrom, Time(date), correction_table=table)[0])


def apply_pointing(smap, table_path: str | Path):
    """The map with CRPIX/CDELT/CROTA2 from the pointing table (``aiapy.calibrate.update_pointing``).

    aiapy 0.10.2 accepts only 4096² maps; the table is defined on that grid. For a binned frame
    (N < 4096, e.g. in tests) the update is computed on a 4096² stand-in carrying the header (no
    pixel data is copied) and carried over to the N² grid.
    """
    import sunpy.map
    from aiapy.calibrate import update_pointing

    table = _pointing_table(str(table_path))
    n = smap.data.shape[1]
    full = 4096
    meta = dict(smap.meta)
    for k in ("pc1_1", "pc1_2", "pc2_1", "pc2_2"):  # update_pointing pops these and derives from CROTA2
        meta.setdefault(k, 0.0)
    f = full / n
    meta.update(naxis1=full, naxis2=full, cdelt1=meta["cdelt1"] / f, cdelt2=meta["cdelt2"] / f,
                crpix1=(meta["crpix1"] - 0.5) * f + 0.5, crpix2=(meta["crpix2"] - 0.5) * f + 0.5)
    stand_in = sunpy.map.Map(np.broadcast_to(np.float32(0), (full, full)), meta)
    try:
        new = update_pointing(stand_in, pointing_table=table).meta
    except (IndexError, KeyError) as e:
        raise InputError(f"{table_path}: no usable pointing for {smap.date.isot} ({e})") from None
    out = dict(smap.meta)
    for k in ("pc1_1", "pc1_2", "pc2_1", "pc2_2"):
        out.pop(k, None)
    out.update(crpix1=(new["crpix1"] - 0.5) / f + 0.5, crpix2=(new["crpix2"] - 0.5) / f + 0.5,
               cdelt1=new["cdelt1"] * f, cdelt2=new["cdelt2"] * f, crota2=new["crota2"],
               x0_mp=new["x0_mp"], y0_mp=new["y0_mp"])
    return sunpy.map.Map(smap.data, out)


# --------------------------------------------------------------------------------------------
# Geometry


def target_scale(meta, shape: tuple[int, int]) -> float:
    """Full-resolution level-1.5 plate scale (arcsec/px), as ``aiapy.calibrate.register`` picks it:
    0.6″, or for an already-binned frame the nearest multiple of 0.6″ to its CDELT."""
    if shape == (4096, 4096):
        return LEVEL15_SCALE
    return max(round(float(meta["cdelt1"]) / LEVEL15_SCALE), 1) * LEVEL15_SCALE


def header_rotation_matrix(meta) -> np.ndarray:
    """The level-1 header's PC matrix exactly as sunpy 7's ``GenericMap.rotation_matrix`` reads
    it, which ``register`` rotates by: PCi_j when any of them is in the header (missing ones
    default to the identity's), else CDi_j divided row-wise by CDELTi, else CROTA2 with the
    scale ratio CDELT2/CDELT1 (0° when absent). A header whose PCi_j disagree with CROTA2 is
    thus registered by PCi_j, as sunpy does."""
    m = {str(k).lower(): v for k, v in meta.items()}
    pc = ("pc1_1", "pc1_2", "pc2_1", "pc2_2")
    cd = ("cd1_1", "cd1_2", "cd2_1", "cd2_2")
    if any(k in m for k in pc):
        return np.array([[float(m.get("pc1_1", 1)), float(m.get("pc1_2", 0))],
                         [float(m.get("pc2_1", 0)), float(m.get("pc2_2", 1))]])
    cdelt1 = float(m.get("cdelt1", 1.0))
    cdelt = np.array([cdelt1, float(m.get("cdelt2", cdelt1))])
    if any(k in m for k in cd):
        return np.array([[float(m.get(k, 0)) for k in cd[:2]], [float(m.get(k, 0)) for k in cd[2:]]]) / cdelt[:, None]
    lam, p = cdelt[1] / cdelt[0], math.radians(float(m.get("crota2", 0)))
    return np.array([[math.cos(p), -lam * math.sin(p)], [math.sin(p) / lam, math.cos(p)]])


#: Largest roll (deg) the fused path takes; frames rolled further go through the reference path
#: (``register``), per frame, recorded in the frame table's ``register_path``. The fused kernel
#: takes each block's sample lattice along the level-1 axes; rolled, the reference's f × f samples
#: lie on a rotated lattice, and the fused path's error grows ~0.13 % per degree (max on the disk,
#: synthetic 1024² frame at AIA 193's plate scale: 0.010 % at 0°, 0.033 % at 0.25°, 0.069 % at
#: 0.5°, 0.13 % at 1°; 4096² frames, benchmarks/calibrate.py: 0.021 % unrolled, 0.055 % at 0.25°).
#: At 0.25° it stays within ~half the 0.1 % bound. Nominal AIA 193 rolls are INST_ROT ≈ 0.058° plus
#: SAT_ROT ~1e-4°; only SDO's roll manoeuvres (calibration rolls through 360°, a few hours twice a
#: year) and off-nominal pointing exceed it.
MAX_FUSED_ROLL_DEG = 0.25


def lattice_roll_deg(meta) -> float:
    """How far (deg) the level-1.5 sample lattice is turned against the level-1 axes: the larger
    angle of the two columns of the header's PC matrix (rotation, or skew) to their axes."""
    a = np.linalg.inv(header_rotation_matrix(meta))
    return math.degrees(max(abs(math.atan2(a[1, 0], a[0, 0])), abs(math.atan2(a[0, 1], a[1, 1]))))


def level15_affine(meta, shape: tuple[int, int], size: int, rsun_arcsec: float | None = None) -> np.ndarray:
    """2×3 matrix M taking a target pixel (x, y) of the (size, size) level-1.5 image to the level-1
    pixel (x, y) at the centre of the block it averages (0-based: ``src = M @ [x, y, 1]``).

    Level 1.5 on the full N² grid puts the reference pixel at ((N-1)/2, (N-1)/2) (what
    ``register`` does) with world = s·(p' - c); level 1 has world = CDELT·PC·(p - CRPIX), PC as
    sunpy reads it (`header_rotation_matrix`: PCi_j before CDi_j before CROTA2).
    A target pixel q covers the full-grid block f·q … f·q + f - 1, centred at f·q + (f-1)/2.
    With ``rsun_arcsec`` the scale s is multiplied by RSUN_OBS/rsun_arcsec, so the disk has
    radius rsun_arcsec/0.6 full-grid pixels in every frame.
    """
    n = shape[1]
    if shape[0] != n or n % size:
        raise InputError(f"cannot register an image of shape {shape} to {size}×{size} (need a square multiple)")
    f = n // size
    s_out = target_scale(meta, shape)
    if rsun_arcsec is not None:
        s_out *= float(meta["rsun_obs"]) / rsun_arcsec
    a = np.linalg.inv(header_rotation_matrix(meta)) * (s_out / float(meta["cdelt1"]))
    c_in = np.array([float(meta["crpix1"]) - 1.0, float(meta["crpix2"]) - 1.0])
    c_out = (n - 1) / 2.0
    offset = c_in + a @ np.full(2, (f - 1) / 2.0 - c_out)
    return np.hstack([a * f, offset[:, None]])


#: Pole of the cubic B-spline's interpolation prefilter (Unser 1999); the reference path
#: interpolates with scipy's order-3 spline, which is this prefilter + cubic B-spline evaluation.
_SPLINE_POLE = math.sqrt(3.0) - 2.0
#: Half-width of the fused path's spline prefilter (2·6+1 taps): the exact prefilter's weights
#: decay as |pole|^k; fitted at 6 (`spline_prefilter`) it leaves 0.013 % max relative error on
#: the disk (synthetic 1024² frame at 0.6001″), 0.010 % at 8 or more; each step of 1 costs
#: ~7 ms per 4096² frame.
FUSED_HALF_WIDTH = 6
#: sup Σ|weights| of 2-D cubic-spline interpolation (the 1-D Lebesgue constant 1.549, squared):
#: an interpolated pixel exceeds its neighbourhood's max by at most (L − 1)/2 of the range.
_SPLINE_OVERSHOOT = (1.549038**2 - 1) / 2


#: sup over positions of Σ|h_k|, where the cubic spline minus the linear interpolant of the same
#: samples is Σ h_k·Δ²d_k (1-D; computed from `_cardinal_cubic`, 0.2165 at the cell centre).
_SPLINE_VS_BILINEAR = 0.2166
#: Pixels (from a sample) over which `_SPLINE_VS_BILINEAR`'s second differences are taken.
_CURVATURE_REACH = 8


def _bspline3(t: np.ndarray) -> np.ndarray:
    """Centred cubic B-spline β³(t)."""
    t = np.abs(t)
    return np.where(t < 1, 2 / 3 - t * t + t ** 3 / 2, np.where(t < 2, (2 - t) ** 3 / 6, 0.0))


def _cardinal_cubic(t: np.ndarray) -> np.ndarray:
    """The cardinal cubic spline C(t) = Σ_k p_k β³(t − k), p_k = −6z/(1 − z²)·z^|k| (z the pole):
    the kernel scipy's order-3 interpolation applies to the samples. Only 4 terms are non-zero."""
    z = _SPLINE_POLE
    k0 = np.floor(t)
    out = np.zeros_like(t)
    for dk in (-1.0, 0.0, 1.0, 2.0):
        k = k0 + dk
        out += -6 * z / (1 - z * z) * z ** np.abs(k) * _bspline3(t - k)
    return out


@functools.lru_cache(maxsize=4)
def spline_prefilter(half: int | None = None) -> np.ndarray:
    """Taps p_0 … p_half of the fused path's spline prefilter, a symmetric FIR on the level-1
    grid: Σ_k p_k β³(t − k) fitted (least squares, gain held at 1) to the cardinal cubic spline
    C(t) (`_cardinal_cubic`), the kernel scipy's order-3 interpolation applies to the samples.
    The exact prefilter's taps decay as |z|^k (z the pole); plainly truncated at ``half`` = 6
    (`FUSED_HALF_WIDTH`) they left 0.035 % max relative error on the disk (synthetic 1024²
    frame, 0.6001″), fitted 0.013 % (0.010 % at half = 8, 10 and 14: the float32 floor)."""
    half = FUSED_HALF_WIDTH if half is None else half
    reach = half + 6
    t = np.linspace(-reach, reach, 64 * reach + 1)
    basis = np.stack([_bspline3(t)] + [_bspline3(t - j) + _bspline3(t + j) for j in range(1, half + 1)], 1)
    # Least squares with the gain fixed at 1 (p_0 + 2Σp_j): a smooth image sees the gain error.
    ones = np.concatenate([[1.0], np.full(half, 2.0)])
    normal = basis.T @ basis
    w = np.linalg.solve(normal, basis.T @ _cardinal_cubic(t))
    v = np.linalg.solve(normal, ones)
    return w + (1.0 - ones @ w) / (ones @ v) * v


#: Phases per level-1 pixel of the fused path's kernel tables; linear interpolation between
#: them leaves ≤ (1/P)²/8 · max|K''| ≈ 2e-7 per weight.
FUSED_PHASES = 1024


@functools.lru_cache(maxsize=16)
def block_kernels(f: int, step_x: float, step_y: float, phases: int = FUSED_PHASES):
    """The fused path's kernels as tables of tap weights by phase (`solargen.resample.block_means`).

    Along one axis the reference averages f cubic-spline samples spaced ``step`` level-1 pixels
    apart around a block centre x: Σ_n c_n B(x − n), c the spline coefficients, with
    B(t) = (1/f) Σ_o β³(t + o·step), o = −(f−1)/2 … (f−1)/2 — piecewise cubic with support
    |t| < 2 + (f−1)/2·step, so 2h taps (h = ⌈2 + (f−1)/2·step⌉, 8 at f = 4 for steps up to 4/3;
    n = ⌊x⌋ − h + 1 … ⌊x⌋ + h) for any plate scale, exactly. (The previous fused path fitted
    this kernel by B-splines on the integer grid, exact only at step 1; at the generator's
    0.603–0.6055″ it left up to 0.12 % on 4096² frames.) Returns (tx, ty):
    t[k, v] = B(k/P + h − 1 − v), the weight of tap v at phase k/P of x; P = ``phases``.
    """
    t = np.arange(phases + 1) / phases
    offsets = np.arange(f) - (f - 1) / 2.0

    def kernel(d, step):
        return np.mean([_bspline3(d + o * step) for o in offsets], axis=0)

    def taps(step):
        return math.ceil(2 + (f - 1) / 2.0 * step)

    tx = kernel(t[:, None] + taps(step_x) - 1 - np.arange(2 * taps(step_x))[None, :], step_x)
    ty = kernel(t[:, None] + taps(step_y) - 1 - np.arange(2 * taps(step_y))[None, :], step_y)
    return tx.astype(np.float32), ty.astype(np.float32)


def fused_level15(data: np.ndarray, meta, size: int, rsun_arcsec: float | None = None,
                  max_exact: float = 1.0) -> np.ndarray:
    """Level-1 image (N, N) → registered, binned level-1.5 image (size, size) float32, resampled once.

    The reference's block mean of f × f cubic-spline samples, computed at the target pixels
    only: the spline coefficients by a symmetric FIR on the level-1 grid (`spline_prefilter`,
    `solargen.resample.spline_fir_rows`), then at each target pixel's block centre (see
    `level15_affine`) the exact mean of its f × f samples, one 2h × 2h kernel (8 × 8 at f = 4) per block whose weights depend on the
    centre's phase (`block_kernels`, `solargen.resample.block_means`) — exact for any plate
    scale. The sample lattice is taken along the level-1 axes: under a roll θ the reference's
    lattice is turned by θ, an error ∝ θ (over the symmetric block the terms in the first to
    third derivatives cancel; 0.033 % max at 0.25° against 0.010 % at 0° on a synthetic 1024²
    frame; see `MAX_FUSED_ROLL_DEG`). CPU time per 4096² int16 frame on one shared core (load
    ~9 on 2 cores): the filter ~42 ms, the 1M 8 × 8 evaluations ~43 ms (the former fitted 13-tap
    filter + 5 × 5 B-spline evaluation: ~16 ms), block extrema 8 ms, the clip ~45 ms (second
    differences 23, the rest of its screen 8, the exact recomputation of 3.3 % of the pixels
    14); ~140 ms in all (~175 ms before the clip's compiled screen and vectorised tile
    prefilter, interleaved in separate processes under the same load).
    Pixels mapped from outside the detector are 0. Like the reference, values are kept within the
    input's range (and 0) where the spline could overshoot it, at the top and at the bottom
    (`_clip_to_input_range`; ~+20 ms for the second differences its bottom screen needs). Raises
    `ExactShareExceeded` when that needs the exact path on more than ``max_exact`` of the
    target pixels. The roll is not checked here (`calibrate_frame` does: `MAX_FUSED_ROLL_DEG`).
    """
    from solargen.resample import block_extrema, block_means, spline_fir_rows

    m = level15_affine(meta, data.shape, size, rsun_arcsec)
    f = data.shape[1] // size
    # The FIR converts int16/uint16 row by row; converting 16M pixels first costs ~15 ms.
    src = data if data.dtype in (np.float32, np.int16, np.uint16) else np.asarray(data, np.float32)
    # Level-1 pixels per full-resolution level-1.5 pixel along each lattice axis.
    steps = np.hypot(m[0, :2], m[1, :2]) / f
    tx, ty = block_kernels(f, round(float(steps[0]), 9), round(float(steps[1]), 9))
    p = spline_prefilter()
    pre = np.concatenate([p[:0:-1], p]).astype(np.float32)
    out = np.empty((size, size), np.float32)
    # Per-block max/min of the input (for the clip's screening), band by band with the filter.
    top, bottom = np.empty((size, size), np.float32), np.empty((size, size), np.float32)
    done = 0  # block rows of top/bottom filled
    # Filter and evaluate band by band of target rows, so each band's coefficients (float32,
    # ~f·FUSED_BAND level-1 rows) are still in cache when evaluated instead of a 64 MiB round
    # trip through memory.
    n = data.shape[0]
    half = p.size - 1
    for q0, q1, lo, hi in _bands(m, size, n, ty.shape[1] // 2):
        a, b = max(lo - half, 0), min(hi + half, n)  # + the prefilter's reach: exact rows lo … hi
        coeffs = np.empty((hi - lo, data.shape[1]), np.float32)  # = sepFilter2D(pre, pre) rows lo … hi
        spline_fir_rows(src, lo, hi, pre[half:], coeffs)
        if b // f > done:
            block_extrema(src[done * f:b // f * f], f, top[done:b // f], bottom[done:b // f])
            done = b // f
        block_means(coeffs, lo, n, m, q0, tx, ty, steps, f, out[q0:q1])
    if done < size:
        block_extrema(src[done * f:], f, top[done:], bottom[done:])
    disk = None
    try:  # the disk in level-1 pixels (0-based), for the clip at the minimum
        cdelt = float(meta["cdelt1"])
        disk = (float(meta["crpix1"]) - 1 - float(meta.get("crval1", 0.0)) / cdelt,
                float(meta["crpix2"]) - 1 - float(meta.get("crval2", 0.0)) / cdelt, float(meta["rsun_obs"]) / cdelt)
    except (KeyError, TypeError, ValueError):
        pass
    _clip_to_input_range(out, src, m, top, bottom, disk, max_exact)
    return out


#: Target rows per band of the fused path (see `fused_level15`).
FUSED_BAND = 128


def _bands(m: np.ndarray, size: int, n: int, reach: int) -> list[tuple[int, int, int, int]]:
    """(target rows q0 … q1, level-1 rows lo … hi) of each band of FUSED_BAND target rows: the
    level-1 rows its blocks' y kernels (``reach`` taps either side of a block centre) read, and
    the mirrored rows of blocks at the image's top and bottom edges. Under a large rotation a
    band reaches most of the frame; then one band, the whole frame, is cheaper."""
    bands = []
    for q0 in range(0, size, FUSED_BAND):
        q1 = min(q0 + FUSED_BAND, size)
        rows = [m[1, 0] * x + m[1, 1] * y + m[1, 2] for x in (0, size - 1) for y in (q0, q1 - 1)]
        lo, hi = math.floor(min(rows)) - reach - 1, math.ceil(max(rows)) + reach + 2
        # mirrored at the edges: rows −k are rows k, rows n − 1 + k are n − 1 − k
        lo, hi = (0 if lo < reach + 2 else min(lo, n)), (n if hi > n - reach - 2 else max(hi, 0))
        bands.append((q0, q1, min(lo, hi), hi))
    if sum(hi - lo for *_, lo, hi in bands) > 1.5 * n:
        return [(0, size, 0, n)]
    return bands


class ExactShareExceeded(Exception):
    """`fused_level15`'s clip emulation would recompute more than ``max_exact`` of the target
    pixels exactly (slower than the reference path)."""


#: Share of target pixels above which a frame's clip emulation is slower than ``register``
#: itself (~20 µs per exact pixel against ~2 s per frame): `calibrate_frame` then takes the
#: reference path for the frame ("reference (clip fallback)"). Ordinary frames need < 1 %;
#: only frames whose disk sits at the frame's minimum (e.g. dark-subtracted to 0) come near.
FUSED_MAX_EXACT_SHARE = 0.05


def _clip_to_input_range(out: np.ndarray, src: np.ndarray, m: np.ndarray, top: np.ndarray,
                         bottom: np.ndarray, disk: tuple[float, float, float] | None = None,
                         max_exact: float = 1.0) -> None:
    """Redo exactly, in place, the blocks where the reference clips (sunpy's ``clip=True``).

    ``register`` (``missing=0``) clips every full-resolution interpolated pixel to
    [min(input min, 0), max(input max, 0)] (sunpy's rule with the missing value taken into the
    range), which changes block means where the spline overshoots: next to saturated pixels at
    the top, next to the darkest pixels (a coronal hole at the frame's minimum, dark sky) at the
    bottom. Blocks whose neighbourhood could cross either bound (`_SPLINE_OVERSHOOT` of the
    neighbourhood's range) are recomputed from their f² exact spline samples, clipped, then
    averaged. The maximum is screened everywhere; the minimum within 1.05 R_sun of ``disk``
    ((x0, y0, radius) in level-1 pixels; None: everywhere): off the disk the darkest pixels are
    dark-sky noise around 0 DN, where nearly every block would need the exact path and a
    relative error means nothing. ``top``/``bottom``: max/min of ``src`` over each f × f block.
    """
    import cv2

    from solargen.resample import exact_clipped_tiles, mark_neighbourhoods

    size, n = out.shape[0], src.shape[0]
    f = n // size
    data_lo, data_hi = float(bottom.min()), float(top.max())
    lo, hi = min(data_lo, 0.0), max(data_hi, 0.0)
    # A block's samples reach f/2 from its centre, and each depends on pixels FUSED_HALF_WIDTH + 2 away.
    r = -(-(FUSED_HALF_WIDTH + 2 + f // 2) // f) + 1
    k = _SPLINE_OVERSHOOT
    reach = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
    risky = []
    # Top: a risky block needs a neighbourhood max above (hi + k·lo)/(1 + k), i.e. a block above
    # it within r: the test runs only on the window around those (usually a few).
    above = top > (data_hi + k * data_lo) / (1 + k)
    if above.any() and data_hi > data_lo:  # a flat frame has nothing to overshoot
        by, bx = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
        y0, x0 = max(by[0] - 2 * r, 0), max(bx[0] - 2 * r, 0)
        win = np.s_[y0:by[-1] + 2 * r + 1, x0:bx[-1] + 2 * r + 1]
        near_top, near_bottom = cv2.dilate(top[win], reach), cv2.erode(bottom[win], reach)
        ry, rx = np.nonzero(near_top + k * (near_top - near_bottom) > hi)
        risky.append((ry + y0, rx + x0))
    # Bottom, on the disk's window. The range bound above is far too loose here (textured disk
    # pixels a few times above a minimum of 0 would all be risky): instead, a cubic spline lies
    # within _SPLINE_VS_BILINEAR·(1.549·|Δxx| + |Δyy|) (max second differences around it) of
    # the bilinear interpolant, which is ≥ the least of the 4 pixels around the sample.
    if data_hi > data_lo:
        from solargen.resample import block_curvature, low_blocks

        y0 = x0 = 0
        y1 = x1 = size
        if disk is not None:
            cx, cy, rad = (v / f for v in disk)
            y0, y1 = max(int(cy - 1.05 * rad) - 1, 0), min(int(cy + 1.05 * rad) + 2, size)
            x0, x1 = max(int(cx - 1.05 * rad) - 1, 0), min(int(cx + 1.05 * rad) + 2, size)
        if y0 < y1 and x0 < x1:
            rd = -(-_CURVATURE_REACH // f) + 1  # blocks whose second differences reach a sample
            cy0, cy1, cx0, cx1 = max(y0 - rd, 0), min(y1 + rd, size), 0, size  # whole rows (fast)
            dxx, dyy = np.empty((cy1 - cy0, size), np.float32), np.empty((cy1 - cy0, size), np.float32)
            block_curvature(src[cy0 * f:cy1 * f], f, dxx, dyy)  # a row slice stays C-contiguous
            wide = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * rd + 1, 2 * rd + 1))
            near = cv2.erode(bottom[cy0:cy1, cx0:cx1], cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
            tail = 1e-4 * (hi - lo)  # the weights beyond _CURVATURE_REACH (|pole|^8 ≈ 4e-5)
            # near − K·(1.549·max|Δxx| + max|Δyy|) − tail < lo, within 1.05 R_sun: one compiled pass
            ry, rx = np.empty((y1 - y0) * (x1 - x0), np.int64), np.empty((y1 - y0) * (x1 - x0), np.int64)
            count = low_blocks(near, cv2.dilate(dxx, wide), cv2.dilate(dyy, wide), cy0, y0, y1, x0, x1,
                               np.float32(1.549038), np.float32(_SPLINE_VS_BILINEAR), np.float32(tail), np.float32(lo),
                               *((cx, cy, (1.05 * rad) ** 2) if disk is not None else (0.0, 0.0, -1.0)), f, ry, rx)
            ry, rx = ry[:count], rx[:count]
            risky.append((ry, rx))
    if not risky:
        return
    ry, rx = np.concatenate([a for a, _ in risky]), np.concatenate([b for _, b in risky])
    if ry.size == 0:
        return
    # The target pixels whose block centre (m @ [x, y, 1]) falls in a risky level-1 block: map the
    # few risky blocks back (a block is about one target pixel) and take the 3 × 3 around each.
    centres = np.stack([rx, ry]) * f + (f - 1) / 2.0 - m[:, 2:]
    qx, qy = np.rint(np.linalg.solve(m[:, :2], centres)).astype(np.int64)
    mark = np.zeros(size * size, bool)  # the distinct pixels, sorted (np.unique sorts: ~10× slower)
    mark_neighbourhoods(qy, qx, size, mark)
    redo = np.flatnonzero(mark)
    if redo.size > max_exact * out.size:
        raise ExactShareExceeded(f"the clip needs the exact path on {redo.size / out.size:.1%} of the target pixels")
    if redo.size == 0:  # every risky block maps outside the target grid
        return
    a = m[:, :2] / f  # one full-res level-1.5 pixel in level-1 pixels
    o = np.arange(f) - (f - 1) / 2.0
    fine = np.stack(np.meshgrid(o, o, indexing="ij"), -1).reshape(-1, 2)  # (f², (dy, dx))
    dy = a[1, 0] * fine[:, 1] + a[1, 1] * fine[:, 0]
    dx = a[0, 0] * fine[:, 1] + a[0, 1] * fine[:, 0]
    # In tiles of 16 × 16 target pixels: one local spline prefilter per tile (compiled).
    y, x = np.divmod(redo, size)
    tile = (y // 16) * size + x // 16
    order = np.argsort(tile, kind="stable")
    y, x, tile = y[order], x[order], tile[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(tile)) + 1, [tile.size]])
    exact_clipped_tiles(src, m, f, y, x, starts, dy, dx, FUSED_HALF_WIDTH + 4, lo, hi, out)


def reference_level15(smap, size: int, rsun_arcsec: float | None = None) -> np.ndarray:
    """``aiapy.calibrate.register`` (scipy, order 3, float32) then block mean to (size, size).

    With ``rsun_arcsec``, the registered image is rescaled about its centre (scipy cubic spline)
    before binning, as SDOML does after its own registration.
    """
    import sunpy.map
    from aiapy.calibrate import register

    data = np.asarray(smap.data, dtype=np.float32)
    smap = sunpy.map.Map(data, smap.meta)
    # missing=0: pixels rotated in from outside the detector are dark sky, not the map minimum.
    out = register(smap, missing=0.0)
    image = np.asarray(out.data, dtype=np.float32)
    if rsun_arcsec is not None:
        import scipy.ndimage

        k = float(smap.meta["rsun_obs"]) / rsun_arcsec  # output step in input pixels
        c = (np.array(image.shape) - 1) / 2.0
        image = scipy.ndimage.affine_transform(image, np.diag([k, k]), offset=c - k * c, order=3,
                                               mode="constant", cval=0.0).astype(np.float32)
    n = data.shape[0]
    return bin_image(_fit_square(image, n - n % size), size)


def bin_image(image: np.ndarray, size: int) -> np.ndarray:
    """Block-mean ``image`` (N, N) down to (size, size); N must be a multiple of ``size``."""
    n = image.shape[0]
    if image.shape != (n, n) or n % size:
        raise ValueError(f"cannot bin an image of shape {image.shape} to {size}×{size}")
    f = n // size
    return image.reshape(size, f, size, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def _fit_square(image: np.ndarray, n: int) -> np.ndarray:
    # register() may return one pixel less or more than the input; pad/crop symmetrically.
    out = np.zeros((n, n), dtype=image.dtype)
    h, w = min(n, image.shape[0]), min(n, image.shape[1])
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    oy, ox = (n - h) // 2, (n - w) // 2
    out[oy:oy + h, ox:ox + w] = image[y0:y0 + h, x0:x0 + w]
    return out


# --------------------------------------------------------------------------------------------
# One frame


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
            try:
                image = fused_level15(data, meta, size, opts.rsun_arcsec, max_exact=FUSED_MAX_EXACT_SHARE)
            except ExactShareExceeded as e:
                log.info("%s: %s; reference path instead", meta.get("t_rec", meta.get("date-obs", "frame")), e)
                path = "reference (clip fallback)"
        if path != "fused":
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


@dataclass(frozen=True)
class Plausibility:
    """Thresholds of the physical plausibility check of a level-1 frame (config:
    ``data.calibration.plausibility``). It catches what the header and checksums cannot: data
    bytes that are garbage (no CHECKSUM to catch them), all-negative or blank frames. Both tests
    are physical, with wide margins, so that no good frame and no flare frame fails them:

    min_disk_to_background : the median level-1 DN inside 0.9 R_sun over the median beyond
        1.25 R_sun (floored at the read noise, `BACKGROUND_FLOOR_DN`). The EUV disk is ~10–100×
        the far corona at 193 Å; a flare's scattered light raises the background by a few % of the
        disk at most. Garbage bytes or a blank frame give ~1, an all-negative frame ≤ 0.
    max_outside_range_fraction : the largest fraction of pixels outside ``detector_range_dn``.
    detector_range_dn : (low, high) DN a level-1 pixel can hold: the 14-bit ADC's 0 … 16383 DN
        less the dark (read noise ~1.2 DN, so a few DN below 0), times the flat field (within
        ±25 %). Uniform garbage int16 puts ~2/3 of its pixels outside, garbage float32 ~1/2.
    """

    min_disk_to_background: float = 2.0
    max_outside_range_fraction: float = 0.01
    detector_range_dn: tuple[float, float] = (-100.0, 20480.0)

    def __post_init__(self):
        lo, hi = self.detector_range_dn
        if not (self.min_disk_to_background > 0 and 0 <= self.max_outside_range_fraction < 1 and lo < hi):
            raise ValueError(f"implausible plausibility thresholds {self}")


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


def frame_status(smap, plausibility: Plausibility | None = Plausibility()) -> tuple[str, str]:
    """Return ("ok", "") or ("rejected", reason) for a level-1 map: QUALITY, image type, EXPTIME
    (present, finite, positive), NaNs, then the physical plausibility check (None: skipped)."""
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
    """
    import pandas as pd

    from .acquire.records import parse_time

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


def steps_attrs(opts: Options) -> dict:
    """The calibration steps as HDF5 attributes: what was applied, with which table (and its sha256)."""
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
    file must be: ``t_rec``, ``fsn`` and, where recorded, ``sha256`` (`check_stored`). Returns counts.
    """
    import cv2
    from tqdm import tqdm

    cv2.setNumThreads(1)  # one frame per process: Snakemake runs one job per core
    opts = opts or Options(register=register, exposure=exposure)
    attrs = steps_attrs(opts)
    rows: list[tuple] = []
    n_ok = 0
    with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
        dset = f.create_dataset("images", shape=(0, size, size), maxshape=(None, size, size), dtype="f4",
                                chunks=(1, size, size))
        for path in tqdm(sorted(map(Path, paths)), desc="calibrate", unit="frame"):
            smap = read_level1(path, wavelength)
            if expect is not None:
                check_stored(path, smap.meta, expect.get(str(path.resolve())))
            status, reason = frame_status(smap, plausibility)
            info = dict.fromkeys(FRAME_COLUMNS[6:-1], float("nan")) | {"register_path": ""}
            if status == "ok":
                image, info = calibrate_frame(smap, size, opts)
                dset.resize(n_ok + 1, axis=0)
                dset[n_ok] = image
                n_ok += 1
            else:
                log.warning("%s: rejected (%s)", path, reason)
            exptime = exposure_time(smap.meta)
            rows.append((path.name, str(smap.meta.get("date-obs", "")), float("nan") if exptime is None else exptime,
                         int(smap.meta.get("quality", 0)), status, reason,
                         *(info[k] for k in FRAME_COLUMNS[6:])))
        write_table(f.create_group("frames"), {k: [r[i] for r in rows] for i, k in enumerate(FRAME_COLUMNS)})
        paths_taken = [r[-1] for r in rows if r[4] == "ok"]
        # On the table, not the file: the file's attributes must agree across shards (dataset).
        f["frames"].attrs["register_paths"] = json.dumps({p: paths_taken.count(p) for p in sorted(set(paths_taken))})
        f.attrs.update(attrs, size=size, wavelength=wavelength)
        if plausibility is not None:
            f.attrs.update(plausibility_min_disk_to_background=plausibility.min_disk_to_background,
                           plausibility_max_outside_range_fraction=plausibility.max_outside_range_fraction,
                           plausibility_detector_low_dn=plausibility.detector_range_dn[0],
                           plausibility_detector_high_dn=plausibility.detector_range_dn[1])
        else:
            f.attrs["plausibility"] = "off"
    return {"n_ok": n_ok, "n_rejected": len(rows) - n_ok}


def options_dict(opts: Options) -> dict:
    """``Options`` as a plain dict (for JSON)."""
    return asdict(opts)
