"""Synthetic SDO/AIA 193 Å level-1 frames: the embedded data source of the workflow.

The frames stand in for JSOC ``aia.lev1_euv_12s`` files: int16 images in DN with a level-1 header
that `sunpy.map.Map` recognises as an `~sunpy.map.sources.AIAMap` and that
`aiapy.calibrate.register` accepts (full disc, WCS keywords, ``RSUN_OBS``, ``LVL_NUM`` = 1).
Like real level-1 data, the Sun is slightly off-centre, slightly rolled (``CROTA2``) and imaged at
a plate scale a little above 0.6″, so registration has real work to do.

The picture is a cheap, seeded model of the 193 Å corona (all lengths in solar radii, so a small
frame looks like a binned large one):

* an optically thin, hydrostatic corona (scale height growing as r²) integrated along the line
  of sight, which gives limb brightening on the disc and the measured off-limb fall-off;
* activity that follows the frame's date through solar cycle 24 (`solar_activity`: maximum
  2014, minima 2008/2019): more active regions near maximum, at latitudes drifting equatorwards
  (Spörer), each with an extended diffuse halo, footpoint plage, a core and loops of many sizes;
* coronal holes: polar caps that are large at minimum and small at maximum, and low-latitude
  holes, with irregular boundaries softened along the line of sight towards the limb;
* a log-normal multiplicative texture whose power-law spectrum steepens below ~24";
* photon and read noise, 14-bit clipping.

Its statistics are matched to a real AIA 193 Å frame (issue #27; `solargen.acquire.realism`,
``benchmarks/realism.py``).

Other channels (``wavelength`` 171, 211, ...) see the same Sun — the same seed gives the same
geometry, features and texture — through a channel response (`CHANNEL_RESPONSE`): the 193-like
emission e (quiet Sun ≈ 1) becomes rate · e^gamma, so contrasts differ monotonically by channel
(171 Å: flatter, brighter; 211 Å: steeper, fainter), and the off-limb scale height follows the
channel's formation temperature (`CHANNEL_TEMPERATURE_MK`), with its own photon-noise draw. A crude
stand-in for the channels' temperature responses, enough for a channel-translation task to be
learnable but not an identity.

Geometry, features and ephemeris are drawn from the seed independently of ``native_size``, and the
texture shares its large-scale Fourier modes between sizes, so the same seed at 256² and 4096²
gives the same Sun. Intensities are DN per native (≈0.6″) pixel, as in JSOC's binned synoptic
product, and the noise is that of the block mean.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.fft
import scipy.special
from astropy.io import fits

__all__ = [
    "FrameGeometry",
    "feature_position",
    "frame_seed",
    "solar_activity",
    "solar_ephemeris",
    "synthetic_frame",
    "synthetic_series",
    "write_synthetic_frame",
    "write_synthetic_series",
]

#: Full-resolution AIA detector size (pixels) and its nominal level-1 plate scale (arcsec/pixel).
NATIVE_SIZE = 4096
NATIVE_SCALE = 0.6
#: Solar radius and astronomical unit as AIA headers use them (RSUN_REF, DSUN_REF), in metres.
RSUN_REF = 696_000_000.0
AU = 149_597_870_691.0
#: 14-bit ADC ceiling.
DATA_MAX = 16383
#: Camera (telescope) number of each AIA channel (as `aiapy.util.telescope_number`): 193 Å is AIA_2.
TELESCOPE = {94: 4, 131: 1, 171: 3, 193: 2, 211: 2, 304: 4, 335: 1, 1600: 3, 1700: 3, 4500: 3}
#: Read noise (DN) per camera, Boerner et al. (2012) Table 6 (as in aiapy's uncertainty code).
READ_NOISE_DN = {1: 1.18, 2: 1.20, 3: 1.15, 4: 1.14}
#: Extra channels: (count-rate factor, contrast exponent) applied to the 193-like emission
#: (quiet-Sun 171 Å is brighter and lower-contrast, 211 Å fainter and higher-contrast than 193 Å).
CHANNEL_RESPONSE = {171: (1.6, 0.7), 211: (0.45, 1.25)}
#: Formation temperature (MK) of each channel's dominant line (Fe IX, Fe XII, Fe XIV): the
#: hydrostatic scale height of the off-limb corona scales with it (cooler 171 Å falls off faster).
CHANNEL_TEMPERATURE_MK = {171: 0.8, 193: 1.5, 211: 2.0}
#: 193 Å: DN per detected photon (aiapy's V3 error table), so photon-noise variance = signal × this.
DN_PER_PHOTON = 0.962
#: Nominal instrument roll of the 193 Å telescope (deg), as in real headers' INST_ROT.
INST_ROT_193 = 0.057789

# The texture's large-scale modes come from a fixed 256² Fourier box, shared by all sizes.
_TEXTURE_BASE = 256
_TEXTURE_K0 = 5.0  # cycles per field of view where the power law flattens (~0.5 R_sun)
#: Light scattered by the telescope's PSF wings, in units of the quiet-Sun disc centre: it fills
#: coronal holes and the outer corona (real 193 Å holes stay above ~10 DN/s at full resolution).
_SCATTER = 0.03
_LIMB_TAPER = 0.05  # R_sun: fall-off above the limb of surface-projected (Gaussian) features
_TEXTURE_K1, _TEXTURE_BEND = 100.0, 0.6  # the spectrum steepens by this much above k1 (~24")
# Radial-profile lookup table over rho^2 (rho in R_sun): at most 2^17 entries (a 4096² limb is
# resolved to 1/50 pixel), fewer for small frames.
_TABLE_SIZE = 1 << 17


@dataclass(frozen=True)
class FrameGeometry:
    """Pointing and ephemeris of one frame.

    Attributes
    ----------
    size : int
        Image side (pixels).
    cdelt : float
        Plate scale (arcsec/pixel), the same on both axes.
    crpix1, crpix2 : float
        Disc centre in FITS 1-based pixel coordinates (column, row).
    crota2 : float
        Roll of the image (deg): solar north is rotated by this from the +row axis.
    sat_rot : float
        Spacecraft part of the roll (deg); ``crota2 = INST_ROT + sat_rot``.
    dsun_obs : float
        Observer–Sun distance (m).
    rsun_obs : float
        Angular radius of the Sun (arcsec).
    b0, l0 : float
        Heliographic latitude and Carrington longitude of the observer (deg).
    car_rot : int
        Carrington rotation number.
    """

    size: int
    cdelt: float
    crpix1: float
    crpix2: float
    crota2: float
    sat_rot: float
    dsun_obs: float
    rsun_obs: float
    b0: float
    l0: float
    car_rot: int

    @property
    def rsun_pix(self) -> float:
        """Solar radius in pixels (``RSUN_OBS / CDELT``)."""
        return self.rsun_obs / self.cdelt

    @property
    def center(self) -> tuple[float, float]:
        """Disc centre in 0-based numpy coordinates (column x, row y)."""
        return self.crpix1 - 1.0, self.crpix2 - 1.0


# --------------------------------------------------------------------------------------------
# Time and ephemeris


def _parse_date(date_obs: str) -> np.datetime64:
    """Parse an ISO date (optional trailing 'Z') to datetime64[us]; UTC, leap seconds ignored."""
    text = str(date_obs).strip()
    if text.endswith("Z"):
        text = text[:-1]
    try:
        return np.datetime64(text, "us")
    except ValueError:
        raise ValueError(f"cannot parse date {date_obs!r}: expected ISO 'YYYY-MM-DDTHH:MM:SS[.sss]'") from None


def _isot(t: np.datetime64, unit: str = "ms") -> str:
    return str(np.datetime_as_string(t, unit=unit))


def _julian_date(t: np.datetime64) -> float:
    # JD of the Unix epoch is 2440587.5; UTC is close enough to TT for a 0.01° ephemeris.
    return 2440587.5 + (t - np.datetime64("1970-01-01T00:00:00", "us")) / np.timedelta64(86400_000_000, "us")


def solar_ephemeris(date_obs: str) -> tuple[float, float, float, int]:
    """Earth–Sun distance and solar orientation angles at ``date_obs``.

    Low-precision formulae (Astronomical Almanac solar position; Meeus, *Astronomical
    Algorithms*, ch. 29 for the rotation angles); accurate to ~0.01° and ~1e-4 AU, plenty for
    synthetic headers and free of any ephemeris download.

    Parameters
    ----------
    date_obs : str
        ISO UTC time.

    Returns
    -------
    dsun : float
        Earth–Sun distance (m).
    b0 : float
        Heliographic latitude of the disc centre (deg).
    l0 : float
        Carrington longitude of the disc centre (deg, [0, 360)).
    car_rot : int
        Carrington rotation number.
    """
    jd = _julian_date(_parse_date(date_obs))
    n = jd - 2451545.0
    g = math.radians((357.528 + 0.9856003 * n) % 360.0)
    lam = math.radians((280.460 + 0.9856474 * n) % 360.0 + 1.915 * math.sin(g) + 0.020 * math.sin(2 * g))
    r_au = 1.00014 - 0.01671 * math.cos(g) - 0.00014 * math.cos(2 * g)
    incl = math.radians(7.25)
    node = math.radians(73.6667 + 1.3958333 * (jd - 2396758.0) / 36525.0)
    theta = ((jd - 2398220.0) * 360.0 / 25.38) % 360.0
    b0 = math.degrees(math.asin(math.sin(lam - node) * math.sin(incl)))
    eta = math.degrees(math.atan2(-math.sin(lam - node) * math.cos(incl), -math.cos(lam - node)))
    l0 = (eta - theta) % 360.0
    car_rot = int(math.floor((jd - 2398140.2270) / 27.2752316))
    return r_au * AU, b0, l0, car_rot


def _sdo_distance(date_obs: str, dsun_earth: float) -> float:
    # SDO is in a geosynchronous orbit at ~102° W: nearest the Sun at local noon (~18:48 UT).
    t = _parse_date(date_obs)
    hours = (t - t.astype("datetime64[D]")) / np.timedelta64(3600_000_000, "us")
    return dsun_earth - 42_164_000.0 * math.cos(2 * math.pi * (hours - 18.8) / 24.0)


def _draw_geometry(rng: np.random.Generator, date_obs: str, size: int) -> FrameGeometry:
    # Everything here is drawn in native (4096²) units, so it does not depend on ``size``.
    cdelt_native = rng.uniform(0.5995, 0.6055)  # real level-1 CDELT is ~0.600-0.610"
    # Disc centre 12-32 native pixels off the image centre on each axis (real level 1: up to ~8), so
    # that even a 256² frame is off by 1-2 pixels and registration has visible work to do.
    offset = rng.choice([-1.0, 1.0], size=2) * rng.uniform(12.0, 32.0, size=2)
    crota2 = rng.uniform(-0.1, 0.1)
    dsun_earth, b0, l0, car_rot = solar_ephemeris(date_obs)
    dsun = _sdo_distance(date_obs, dsun_earth)
    factor = NATIVE_SIZE / size
    centre = (size + 1) / 2.0  # FITS 1-based image centre
    return FrameGeometry(
        size=size,
        cdelt=cdelt_native * factor,
        crpix1=centre + offset[0] / factor,
        crpix2=centre + offset[1] / factor,
        crota2=crota2,
        sat_rot=crota2 - INST_ROT_193,
        dsun_obs=dsun,
        rsun_obs=math.degrees(math.asin(RSUN_REF / dsun)) * 3600.0,
        b0=b0,
        l0=l0,
        car_rot=car_rot,
    )


# --------------------------------------------------------------------------------------------
# Solar features (drawn independently of the image size)


@dataclass(frozen=True)
class ActiveRegion:
    """An active region on the solar surface.

    ``lon``/``lat`` are heliographic Stonyhurst (deg); ``size`` is the bipole half-separation
    (R_sun); ``tilt`` is the bipole axis angle from solar west (deg); ``brightness`` is the peak
    loop intensity in units of the quiet-Sun disc centre; ``seed`` drives its loops; ``age`` in
    [0, 1] moves emission from the compact core and loops into a wider, fainter halo and plage,
    as flux disperses.
    """

    lon: float
    lat: float
    size: float
    tilt: float
    brightness: float
    seed: int
    age: float = 0.3


@dataclass(frozen=True)
class CoronalHole:
    """A coronal hole: centre (deg, Stonyhurst), angular radius ``size`` (rad), residual
    brightness factor ``depth``, boundary harmonics ``(m, amplitude, phase)``, and squeeze
    ``aspect`` (<= 1) across the direction at ``angle`` (rad) from west."""

    lon: float
    lat: float
    size: float
    depth: float
    harmonics: tuple[tuple[int, float, float], ...]
    aspect: float
    angle: float


@dataclass(frozen=True)
class Corona:
    """Global parameters: emission scale height H at the base (R_sun; hydrostatic, so it grows as
    r²), thin-layer fraction, texture spectral index and contrast, quiet-Sun disc-centre rate
    (DN/s per native pixel)."""

    scale_height: float
    thin_fraction: float
    beta: float
    sigma: float
    qs_rate: float


#: Solar cycle 24 (the reference for all dates: cycles repeat every 11 years): minimum 2008.96,
#: maximum 2014.3, next minimum 2019.96.
_CYCLE_START, _CYCLE_RISE, _CYCLE_LENGTH = 2008.96, 5.34, 11.0


def _decimal_year(date_obs: str) -> float:
    t = _parse_date(date_obs)
    return 1970.0 + (t - np.datetime64("1970-01-01T00:00:00", "us")) / np.timedelta64(31_556_952_000_000, "us")


def solar_activity(date_obs: str) -> tuple[float, float]:
    """Activity level in [0, 1] (0 at minimum, 1 at maximum) and cycle phase in [0, 1) at ``date_obs``.

    A smooth cycle-24 shape (rise 5.3 yr, decay 5.7 yr) repeated every 11 years: enough to give
    more, larger active regions and smaller polar holes near 2014 than near 2008 or 2019.
    """
    phase = ((_decimal_year(date_obs) - _CYCLE_START) % _CYCLE_LENGTH) / _CYCLE_LENGTH
    rise = _CYCLE_RISE / _CYCLE_LENGTH
    if phase < rise:
        level = math.sin(0.5 * math.pi * phase / rise) ** 2
    else:
        level = math.cos(0.5 * math.pi * (phase - rise) / (1.0 - rise)) ** 2
    return level, phase


def _draw_features(rng: np.random.Generator, date_obs: str):
    activity, phase = solar_activity(date_obs)
    corona = Corona(
        scale_height=rng.uniform(0.046, 0.054),  # 1.4-1.8 MK for the n²-weighted emission
        thin_fraction=rng.uniform(0.28, 0.38),
        beta=rng.uniform(2.9, 3.1),
        sigma=rng.uniform(0.30, 0.38),
        qs_rate=rng.uniform(65.0, 105.0),
    )
    regions = []
    # Spörer's law: emergence latitude drifts from ~28° at cycle start to ~8° at its end.
    lat_mean = 28.0 - 20.0 * phase
    for _ in range(int(rng.poisson(1.5 + 7.0 * activity))):
        hemisphere = rng.choice([-1.0, 1.0])
        lat = hemisphere * float(np.clip(rng.normal(lat_mean, 6.0), 3.0, 45.0))
        # Joy's law: the leading polarity sits closer to the equator, tilt ~ lat/2.
        tilt = -0.5 * lat + rng.normal(0.0, 10.0)
        size = 0.035 * 10.0 ** rng.uniform(0.0, 0.55)  # 0.035-0.12 R_sun half-separation
        regions.append(ActiveRegion(lon=rng.uniform(-80.0, 80.0), lat=lat, size=size, tilt=tilt,
                                    brightness=rng.uniform(6.0, 16.0), seed=int(rng.integers(2**31)),
                                    age=rng.uniform(0.0, 1.0)))
    holes = []
    # Polar holes: large at minimum (boundary ~55-60° latitude), small or gone at maximum.
    for pole in (-1.0, 1.0):
        if rng.random() < 0.35 + 0.6 * (1.0 - activity):
            lat = pole * rng.uniform(78.0, 90.0)
            size = (0.18 + 0.42 * (1.0 - activity)) * rng.uniform(0.8, 1.15)
            holes.append(_draw_hole(rng, lat, rng.uniform(-60.0, 60.0), size))
    # Low-latitude holes, at all phases (most common in the declining phase). With the polar caps
    # they cover on average 2.6 % (2014), 3.5 % (2012), 4.8 % (2016) and 14 % (2019) of the surface
    # (observed, AIA/EUVI 2010-2013: 5-10 %; EIT 1996-2010: 5-17 %, Lowder et al. 2014).
    decline = max(0.0, math.sin(math.pi * (phase - 0.35) / 0.65)) if phase > 0.35 else 0.0
    for _ in range(int(rng.poisson(1.3 + 1.0 * decline))):
        holes.append(_draw_hole(rng, rng.uniform(-40.0, 40.0), rng.uniform(-70.0, 70.0), rng.uniform(0.12, 0.35)))
    n_points = int(rng.integers(20, 60))
    points = np.column_stack([rng.uniform(-90.0, 90.0, n_points),
                              np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n_points))),  # uniform on the sphere
                              rng.uniform(0.003, 0.007, n_points), rng.uniform(0.8, 2.5, n_points)])
    return corona, regions, holes, points


def _draw_hole(rng: np.random.Generator, lat: float, lon: float, size: float) -> CoronalHole:
    harmonics = tuple((m, rng.uniform(0.0, 0.25) / (m - 1) ** 0.6, rng.uniform(0, 2 * np.pi)) for m in range(2, 7))
    return CoronalHole(lon=lon, lat=lat, size=size, depth=rng.uniform(0.1, 0.25), harmonics=harmonics,
                       aspect=rng.uniform(0.6, 1.0), angle=rng.uniform(0, np.pi))


# --------------------------------------------------------------------------------------------
# Projection helpers. "Disc-plane" coordinates (X, Y) are helioprojective angles in units of
# RSUN_OBS with solar north up: the limb is at X² + Y² = 1.


def _surface_frame(lon: float, lat: float, b0: float):
    """Unit vectors (heliocentric-Cartesian, z towards the observer) of a surface point and its
    local west and north directions."""
    lo, la, b = np.radians([lon, lat, b0])
    normal = np.array([np.cos(la) * np.sin(lo),
                       np.sin(la) * np.cos(b) - np.cos(la) * np.cos(lo) * np.sin(b),
                       np.sin(la) * np.sin(b) + np.cos(la) * np.cos(lo) * np.cos(b)])
    west = np.array([np.cos(lo), np.sin(lo) * np.sin(b), -np.sin(lo) * np.cos(b)])
    north = _cross(normal, west)
    return normal, west, north


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross costs ~0.15 ms per call on 3-vectors; thousands of loops call this.
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _inv2(m: np.ndarray) -> np.ndarray | None:
    """Inverse of a 2x2 matrix, or None if it is (nearly) singular relative to its entries."""
    det = m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0]
    if abs(det) < 1e-12 * max(np.abs(m).max() ** 2, 1e-300):
        return None
    return np.array([[m[1, 1], -m[0, 1]], [-m[1, 0], m[0, 0]]]) / det


def _project(point: np.ndarray, geom: FrameGeometry) -> np.ndarray:
    """Disc-plane position of a heliocentric point (in R_sun), with the exact perspective."""
    x, y, z = point * RSUN_REF
    zeta = geom.dsun_obs - z
    tx = math.atan2(x, zeta)
    ty = math.asin(y / math.sqrt(x * x + y * y + zeta * zeta))
    return np.degrees([tx, ty]) * 3600.0 / geom.rsun_obs


def feature_position(lon: float, lat: float, geom: FrameGeometry) -> tuple[float, float]:
    """0-based pixel position (x=column, y=row) of a surface point at Stonyhurst ``lon``, ``lat``."""
    normal, _, _ = _surface_frame(lon, lat, geom.b0)
    return _disc_to_pixel(_project(normal, geom), geom)


def _disc_to_pixel(xy, geom: FrameGeometry) -> tuple[float, float]:
    # Inverse of the WCS: world = CDELT * PC(crota2) @ (pixel - crpix).
    c, s = math.cos(math.radians(geom.crota2)), math.sin(math.radians(geom.crota2))
    k = geom.rsun_pix
    cx, cy = geom.center
    return cx + k * (c * xy[0] + s * xy[1]), cy + k * (-s * xy[0] + c * xy[1])


def _pixel_box(geom: FrameGeometry, centre, half_width: float, half_height: float):
    """Pixel index bounds (i0, i1, j0, j1), clipped to the image, of a disc-plane box, or None."""
    corners = [_disc_to_pixel((centre[0] + sx * half_width, centre[1] + sy * half_height), geom)
               for sx in (-1, 1) for sy in (-1, 1)]
    xs, ys = zip(*corners)
    n = geom.size
    i0, i1 = max(int(math.floor(min(xs))), 0), min(int(math.ceil(max(xs))) + 1, n)
    j0, j1 = max(int(math.floor(min(ys))), 0), min(int(math.ceil(max(ys))) + 1, n)
    if i0 >= i1 or j0 >= j1:
        return None
    return i0, i1, j0, j1


def _disc_coords(geom: FrameGeometry, cols: np.ndarray, rows: np.ndarray):
    """Disc-plane coordinates (x, y), solar north up, of the pixel grid ``rows`` × ``cols``."""
    c, s = math.cos(math.radians(geom.crota2)), math.sin(math.radians(geom.crota2))
    cx, cy = geom.center
    scale = 1.0 / geom.rsun_pix
    dp1 = (cols.astype(np.float32) - np.float32(cx)) * np.float32(scale)
    dp2 = (rows.astype(np.float32) - np.float32(cy)) * np.float32(scale)
    x = np.float32(c) * dp1[None, :] - np.float32(s) * dp2[:, None]
    y = np.float32(s) * dp1[None, :] + np.float32(c) * dp2[:, None]
    return x, y


def _window(geom: FrameGeometry, centre, half_width: float, half_height: float | None = None, step: int = 1):
    """Pixel slices covering a disc-plane box, and the disc-plane coordinates of their pixels.

    With ``step`` > 1 the coordinates are those of every ``step``-th pixel (from the first one,
    covering the last one), for smooth quantities evaluated coarsely and then `_upsample`-d.
    """
    half_height = half_width if half_height is None else half_height
    box = _pixel_box(geom, centre, half_width, half_height)
    if box is None:
        return None
    i0, i1, j0, j1 = box
    x, y = _disc_coords(geom, np.arange(i0, i1 + step - 1, step), np.arange(j0, j1 + step - 1, step))
    return (slice(j0, j1), slice(i0, i1)), x, y


class _SmoothLayer:
    """Additive emission that is smooth on many pixels (AR halos and plage), accumulated on the grid
    of every ``step``-th pixel and interpolated to the image once: at 4096² this costs one bilinear
    pass instead of one per halo."""

    def __init__(self, geom: FrameGeometry):
        self.geom = geom
        self.step = max(1, geom.size // 512)
        self.grid = np.zeros(((geom.size - 1) // self.step + 2,) * 2, np.float32)

    def window(self, centre, half_width: float, half_height: float):
        box = _pixel_box(self.geom, centre, half_width, half_height)
        if box is None:
            return None
        i0, i1, j0, j1 = box
        st = self.step
        ci0, cj0 = i0 // st, j0 // st
        ci1, cj1 = -(-(i1 - 1) // st) + 1, -(-(j1 - 1) // st) + 1  # covers pixel i1 - 1
        x, y = _disc_coords(self.geom, np.arange(ci0, ci1) * st, np.arange(cj0, cj1) * st)
        return (slice(cj0, cj1), slice(ci0, ci1)), x, y

    def add_to(self, image: np.ndarray) -> None:
        if self.grid.any():
            image += _upsample(self.grid, image.shape, self.step)


def _upsample(coarse: np.ndarray, shape: tuple[int, int], step: int) -> np.ndarray:
    """Bilinear interpolation of a `_window(..., step)` grid back to every pixel of the window.

    Done as two sparse products W_rows @ coarse @ W_colsᵀ (two weights per output pixel): far
    cheaper than gathering rows of a 4096² array.
    """
    if step == 1:
        return coarse
    rows = _interp_matrix(shape[0], coarse.shape[0], step)
    cols = _interp_matrix(shape[1], coarse.shape[1], step)
    # Columns first on the small grid, rows last, so the full-size result comes out C-ordered.
    return rows @ np.ascontiguousarray((cols @ coarse.T).T)


def _interp_matrix(length: int, coarse_length: int, step: int):
    """Sparse (length × coarse_length) linear-interpolation weights from every ``step``-th sample."""
    import scipy.sparse

    t = np.arange(length, dtype=np.float64) / step
    i = t.astype(np.intp)
    f = (t - i).astype(np.float32)
    j = np.minimum(i + 1, coarse_length - 1)
    out = np.arange(length)
    return scipy.sparse.csr_matrix((np.concatenate([1.0 - f, f]), (np.concatenate([out, out]), np.concatenate([i, j]))),
                                   shape=(length, coarse_length))


# --------------------------------------------------------------------------------------------
# Rendering


def _radial_table(corona: Corona, rho2_max: float, edge: float) -> tuple[np.ndarray, float]:
    """Limb-brightened radial profile I(rho) tabulated on a uniform grid in rho², centre = 1.

    Hydrostatic emissivity ∝ exp(-(1 - 1/r)/H) (gravity falls as 1/r², so the local scale height
    grows as H r²) integrated along the line of sight. On the disc only the front half is seen and
    the layer is thin: I ∝ sqrt(pi H/2) erfcx(mu/sqrt(2H)) (→ H/mu, the optically thin 1/mu law,
    regularised at the limb). Off the limb both halves, by Laplace's method about the tangent
    point: 2 sqrt(pi rho³ H/2) exp(-(1 - 1/rho)/H), continuous with the disc form at rho = 1. A thin
    layer without LOS enhancement (transition region and moss) sets the centre-to-limb contrast,
    and a faint extended component keeps the outer corona above zero (scattered light is added
    later, after the coronal holes: see `_SCATTER`).
    ``edge`` is the limb blur (PSF and pixel size, in R_sun).
    """
    h = corona.scale_height
    size = _table_size(rho2_max, edge)
    rho2 = np.linspace(0.0, rho2_max, size)
    rho = np.sqrt(rho2)
    mu = np.sqrt(np.clip(1.0 - rho2, 0.0, None))
    above = np.maximum(rho - 1.0, 0.0)
    rho_out = np.maximum(rho, 1.0)
    half_chord = np.sqrt(np.pi * rho_out**3 * h / 2.0) * np.exp(-(1.0 - 1.0 / rho_out) / h)
    front = np.where(rho < 1.0, np.sqrt(np.pi * h / 2.0) * scipy.special.erfcx(mu / np.sqrt(2.0 * h)), half_chord)
    occulted = 0.5 * scipy.special.erfc((rho - 1.0) / (edge * np.sqrt(2.0)))  # 1 on the disc, 0 off
    los = front + (1.0 - occulted) * half_chord
    los /= np.sqrt(np.pi * h / 2.0) * scipy.special.erfcx(1.0 / np.sqrt(2.0 * h))  # centre → 1
    extended = 0.08 * np.exp(-above / 0.3) * (1.0 - 0.5 * occulted)
    f = corona.thin_fraction
    profile = f * occulted + (1.0 - f) * los + extended
    profile /= profile[0]
    return profile.astype(np.float32), (size - 1) / rho2_max


def _table_size(rho2_max: float, edge: float) -> int:
    # Steps in rho near the limb (rho2_max / size / 2) of at most edge / 25.
    return int(min(max(math.ceil(12.5 * rho2_max / edge), 4096), _TABLE_SIZE))


def _texture(size: int, corona: Corona, rng_low: np.random.Generator, rng_high: np.random.Generator) -> np.ndarray:
    """Log-normal multiplicative texture exp(sigma g - sigma²/2), g a Gaussian random field with
    power spectrum ∝ (k² + k0²)^(-beta/2), k in cycles per field of view.

    The modes |k| < 128 come from ``rng_low`` in a fixed 256² layout for every ``size``, so a small
    frame is a band-limited version of a large one; the variance is normalised over a fixed band,
    so binning a large frame gives (nearly) the small one.
    """
    b = _TEXTURE_BASE
    half = size // 2
    base = rng_low.standard_normal((b, b // 2 + 1, 2), dtype=np.float32).view(np.complex64)[..., 0]
    if size <= b:
        coef = np.concatenate([base[:half, :half + 1], base[b - half:, :half + 1]])
    else:
        coef = rng_high.standard_normal((size, half + 1, 2), dtype=np.float32).view(np.complex64)[..., 0]
        coef[:b // 2, :b // 2 + 1] = base[:b // 2]
        coef[size - b // 2:, :b // 2 + 1] = base[b // 2:]
    # The amplitude depends on ky² only: compute the rows ky = 0 ... size/2 and mirror them.
    ky = np.arange(half + 1, dtype=np.float32)
    kx = np.arange(half + 1, dtype=np.float32)
    k2 = ky[:, None] ** 2 + kx[None, :] ** 2
    amp = k2 + np.float32(_TEXTURE_K0**2)
    np.power(amp, np.float32(-corona.beta / 4.0), out=amp)
    # Steeper below ~24" (k ~ 100 cycles per field of view): the fine structure of the corona is
    # smoother than the power law of its large-scale pattern (real 193 Å: -3.05 at 120-24", -3.35 at 24-6").
    k2 *= np.float32(1.0 / _TEXTURE_K1**2)
    k2 += np.float32(1.0)
    np.power(k2, np.float32(-_TEXTURE_BEND / 4.0), out=k2)
    amp *= k2
    del k2
    amp[0, 0] = 0.0
    coef[:half + 1] *= amp  # ky = 0 ... size/2
    coef[half + 1:] *= amp[half - 1:0:-1]  # ky = -(size/2 - 1) ... -1
    field = scipy.fft.irfft2(coef, s=(size, size), norm="forward")
    # E[g²] = 2 Σ amp² over the full plane; fixed reference band |k| <= 256 (the tail adds ~1 %).
    kr = np.fft.fftfreq(512, 1.0 / 512)
    variance = 2.0 * np.sum(((kr[:, None] ** 2 + kr[None, :] ** 2) + _TEXTURE_K0**2) ** (-corona.beta / 2.0)
                            ) - 2.0 * _TEXTURE_K0 ** (-corona.beta)
    field *= np.float32(corona.sigma / math.sqrt(variance))
    field -= np.float32(corona.sigma**2 / 2.0)
    return np.exp(field, out=field)


def _paint_coronal_hole(image: np.ndarray, hole: CoronalHole, geom: FrameGeometry, pixel: float) -> None:
    # The hole is a region on the sphere: pixels are mapped back to the visible hemisphere and
    # tested against a wobbly boundary in great-circle distance from the hole's centre. Pixels
    # above the limb use the limb point below them, faded with height.
    normal, west, north = _surface_frame(hole.lon, hole.lat, geom.b0)
    ca, sa = math.cos(hole.angle), math.sin(hole.angle)
    e1, e2 = ca * west + sa * north, -sa * west + ca * north
    # Window: the projected outline at the largest possible radius, plus (near the limb) the
    # corona above it out to the frame's corners (the open field of a hole is radial).
    reach = min(hole.size * (1.0 + sum(a for _, a, _ in hole.harmonics)) + 0.02, math.pi / 2)
    bearing = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)[:, None]
    outline = math.cos(reach) * normal + math.sin(reach) * (np.cos(bearing) * e1 + np.sin(bearing) * e2)
    points = [outline[:, :2], normal[None, :2]]
    limb = outline[outline[:, 2] < 0.2, :2]
    if len(limb):
        points.append(2.0 * limb / np.linalg.norm(limb, axis=1, keepdims=True))
    points = np.concatenate(points)
    lo, hi = points.min(axis=0) - 0.03, points.max(axis=0) + 0.03
    # The darkening is smooth on >= 16 pixels at 4096² (0.01 R_sun edges), so evaluate it on a
    # grid of every `step`-th pixel and interpolate: 16x fewer transcendental evaluations at 4K.
    step = max(1, geom.size // 1024)
    win = _window(geom, (lo + hi) / 2.0, *((hi - lo) / 2.0), step=step)
    if win is None:
        return
    sl, x, y = win
    rho2 = x * x + y * y
    rho = np.sqrt(rho2)
    inv = np.float32(1.0) / np.maximum(rho, np.float32(1.0))
    px, py = x * inv, y * inv
    pz = np.sqrt(np.maximum(np.float32(1.0) - rho2, np.float32(0.0)))
    along = px * np.float32(normal[0]) + py * np.float32(normal[1]) + pz * np.float32(normal[2])
    u = px * np.float32(e1[0]) + py * np.float32(e1[1]) + pz * np.float32(e1[2])
    v = px * np.float32(e2[0]) + py * np.float32(e2[1]) + pz * np.float32(e2[2])
    tangent = np.sqrt(u * u + v * v) + np.float32(1e-12)
    delta = np.arctan2(tangent, along)  # great-circle distance from the hole centre (rad)
    u *= delta / tangent
    v *= delta / tangent
    v /= np.float32(hole.aspect)
    r = np.sqrt(u * u + v * v) + np.float32(1e-12)
    # Boundary 1 + sum a_m cos(m phi + p_m), with cos/sin(m phi) from powers of (u + iv)/r
    # (much cheaper than arctan2 and cosines on millions of pixels).
    c1, s1 = u / r, v / r
    cm, sm = c1, s1
    boundary = np.ones_like(r)
    terms = {m: (a, p) for m, a, p in hole.harmonics}
    for m in range(1, max(terms) + 1):
        if m > 1:
            cm, sm = cm * c1 - sm * s1, sm * c1 + cm * s1
        if m in terms:
            a, p = terms[m]
            boundary += np.float32(a * math.cos(p)) * cm - np.float32(a * math.sin(p)) * sm
    r /= np.float32(hole.size)
    # Sharp boundaries (~0.012 R_sun), but never sharper than a pixel (foreshortened at the limb);
    # above the limb the edges blur with height, as the open field fans out.
    mu = np.maximum(pz, np.float32(0.1))
    height = np.maximum(rho - np.float32(1.0), np.float32(0.0))
    # The dimming is of coronal emission from heights ~H: seen obliquely its edge is smeared along
    # the line of sight by ~H tan(theta) on the surface, so holes soften towards the limb rather
    # than ending in a dark band sharper than the limb itself.
    smear = np.float32(0.5 * _LIMB_TAPER) * np.sqrt(np.float32(1.0) - mu * mu) / mu
    edge = np.sqrt(np.float32(0.012**2) + (np.float32(0.3 * pixel) / mu) ** 2 + smear**2
                   + (np.float32(0.5) * height) ** 2)
    edge /= np.float32(hole.size)
    inside = 0.5 * scipy.special.erfc((r - boundary) / (edge * np.float32(math.sqrt(2.0))))
    # Above the limb the hole continues radially and fades over 0.4 R_sun: slower than the corona's
    # own fall-off, so brightness still decreases outwards and the limb stays the brightest ring,
    # yet without a hard edge at rho = 1.
    fade = np.exp(-height / np.float32(0.4))
    dimming = np.float32(1.0) - np.float32(1.0 - hole.depth) * inside * fade
    window = image[sl]
    window *= _upsample(dimming, window.shape, step)


def _paint_gaussian(image: np.ndarray, geom: FrameGeometry, centre, basis: np.ndarray, sigma: tuple[float, float],
                    amp: float, psf: float, smooth: _SmoothLayer | None = None) -> None:
    """Add an elliptical Gaussian: ``sigma`` (R_sun) along the two surface directions whose
    disc-plane projections are the columns of ``basis``. The pixel blur ``psf`` widens it at
    constant flux, so small frames look binned rather than aliased. Gaussians at least 4 grid
    steps wide go to the ``smooth`` layer, if given."""
    # Bounding box at 3.5 sigma of the projected covariance B diag(sigma²) Bᵀ (exp(-6) is invisible).
    cov = basis @ np.diag(np.square(sigma)) @ basis.T
    minv = _inv2(basis)
    if minv is None:
        return
    # Pixel blur acts in the disc plane; approximating it along the surface axes is good enough.
    sa = math.hypot(sigma[0], psf / max(np.linalg.norm(basis[:, 0]), 0.2))
    sb = math.hypot(sigma[1], psf / max(np.linalg.norm(basis[:, 1]), 0.2))
    narrowest = min(sa * max(np.linalg.norm(basis[:, 0]), 0.2), sb * max(np.linalg.norm(basis[:, 1]), 0.2))
    half = (3.5 * (math.sqrt(cov[0, 0]) + psf), 3.5 * (math.sqrt(cov[1, 1]) + psf))
    coarse = smooth is not None and smooth.step > 1 and narrowest * geom.rsun_pix >= 4.0 * smooth.step
    win = smooth.window(centre, *half) if coarse else _window(geom, centre, *half)
    if win is None:
        return
    sl, x, y = win
    dx, dy = x - np.float32(centre[0]), y - np.float32(centre[1])
    a = np.float32(minv[0, 0]) * dx + np.float32(minv[0, 1]) * dy
    b = np.float32(minv[1, 0]) * dx + np.float32(minv[1, 1]) * dy
    gain = amp * sigma[0] * sigma[1] / (sa * sb)
    blob = np.float32(gain) * np.exp(-0.5 * ((a / np.float32(sa)) ** 2 + (b / np.float32(sb)) ** 2))
    # A surface pattern projected past the limb stands for emission at height: it fades above the
    # limb like the low corona (scale ~0.05 R_sun), so diffuse halos do not move the EUV limb.
    above = np.sqrt(x * x + y * y)
    above -= np.float32(1.0)
    np.maximum(above, np.float32(0.0), out=above)
    blob *= np.exp(above * np.float32(-1.0 / _LIMB_TAPER))
    (smooth.grid if coarse else image)[sl] += blob


def _paint_active_region(image: np.ndarray, region: ActiveRegion, geom: FrameGeometry, pixel: float,
                         smooth: _SmoothLayer | None = None) -> None:
    rng = np.random.default_rng(region.seed)
    normal, west, north = _surface_frame(region.lon, region.lat, geom.b0)
    # Orthographic shapes, anchored at the exact perspective position of the AR centre.
    centre = _project(normal, geom)
    shift = centre - normal[:2]
    axis_angle = math.radians(region.tilt)
    axis = math.cos(axis_angle) * west + math.sin(axis_angle) * north  # bipole axis
    across = _cross(normal, axis)  # along the polarity inversion line
    basis = np.array([[axis[0], across[0]], [axis[1], across[1]]])
    s = region.size
    psf = 0.3 * pixel  # a pixel's own blur (box of width 1 ≈ Gaussian sigma 0.29)
    b = region.brightness

    age = region.age
    # Diffuse halo: the AR's large warm loops, lumpy and spreading as the region ages. Then the two
    # plage ("moss") patches at the footpoints and a compact core, both fading with age.
    # The halo is an optically thin layer: seen obliquely its column, hence brightness, grows as 1/mu.
    oblique = 1.0 / max(float(normal[2]), 0.4)
    for _ in range(3):
        at = (normal + rng.normal(0.0, 0.7 * s) * axis + rng.normal(0.0, 0.5 * s) * across)[:2] + shift
        spread = (1.2 + 1.0 * age) * s * rng.uniform(0.8, 1.2, size=2)
        _paint_gaussian(image, geom, at, basis, tuple(spread), 0.12 * b * (1.0 - 0.3 * age) * oblique, psf, smooth)
    for sign in (-1.0, 1.0):
        at = (normal + sign * 0.7 * s * axis + rng.normal(0.0, 0.15 * s) * across)[:2] + shift
        patch = (0.55 + 0.4 * age) * s
        _paint_gaussian(image, geom, at, basis, (patch, 1.3 * patch), rng.uniform(0.35, 0.55) * b * (1.0 - 0.5 * age),
                        psf, smooth)
    _paint_gaussian(image, geom, centre, basis, (0.3 * s, 0.6 * s), rng.uniform(0.2, 0.45) * b * (1.0 - 0.7 * age),
                    psf, smooth)

    # Loops: an arcade of semi-ellipses c + A cos t + B sin t (t in [0, pi]) across the polarity
    # inversion line, sharing a direction and lean so that they nest like real AR loop systems.
    # Sizes are spread over a decade (log-uniform): short bright core loops to long faint ones
    # reaching into the halo; older regions have fewer.
    lean_ar = rng.choice([-1.0, 1.0]) * rng.uniform(15.0, 50.0)
    n_loops = int(round((8 + 22 * min(s / 0.08, 1.5)) * (1.0 - 0.5 * age)))
    for _ in range(n_loops):
        relative = 10.0 ** rng.uniform(-0.55, 0.45)
        half = s * relative
        angle = rng.normal(0.0, 0.15)
        direction = math.cos(angle) * axis + math.sin(angle) * across
        side = _cross(normal, direction)
        mid = (normal + rng.normal(0.0, 0.1 * s) * axis + rng.normal(0.0, 0.45 * s) * across)[:2] + shift
        height = half * rng.uniform(0.7, 1.1)
        lean = math.radians(lean_ar + rng.normal(0.0, 8.0))
        vec_a = (half * direction)[:2]
        vec_b = (height * (math.cos(lean) * normal + math.sin(lean) * side))[:2]
        mat = np.array([[vec_a[0], vec_b[0]], [vec_a[1], vec_b[1]]])
        if abs(mat[0, 0] * mat[1, 1] - mat[0, 1] * mat[1, 0]) < 1e-2 * half * height:
            continue  # seen edge-on: a straight line, skip rather than divide by ~0
        minv = _inv2(mat)
        width = rng.uniform(0.0010, 0.0022) * relative**0.3  # loop Gaussian sigma ~1-3" (R_sun units)
        spread = math.hypot(width, psf)
        # Short core loops are the brightest; conserve line flux when the pixel is wider than the loop.
        gain = b * rng.uniform(0.3, 1.0) * 0.7 * relative**-0.7 * (1.0 - 0.5 * age) * width / spread
        pad = 4.0 * spread
        win = _window(geom, mid, math.hypot(vec_a[0], vec_b[0]) + pad, math.hypot(vec_a[1], vec_b[1]) + pad)
        if win is None:
            continue
        sl, x, y = win
        dx, dy = x - np.float32(mid[0]), y - np.float32(mid[1])
        q1 = np.float32(minv[0, 0]) * dx + np.float32(minv[0, 1]) * dy
        q2 = np.float32(minv[1, 0]) * dx + np.float32(minv[1, 1]) * dy
        g1 = np.float32(minv[0, 0]) * q1 + np.float32(minv[1, 0]) * q2
        g2 = np.float32(minv[0, 1]) * q1 + np.float32(minv[1, 1]) * q2
        qq = q1 * q1 + q2 * q2
        # Distance to the ellipse |q| = 1 to first order: |F| / |grad F| with F = |q|² - 1.
        d2 = (qq - 1.0) ** 2 / (4.0 * (g1 * g1 + g2 * g2) + np.float32(1e-12))
        sin_t = q2 / np.sqrt(qq + np.float32(1e-12))
        footfade = np.clip((sin_t + np.float32(0.1)) / np.float32(0.5), 0.0, 1.0)  # legs fade into the moss
        image[sl] += np.float32(gain) * np.exp(-d2 / np.float32(2.0 * spread**2)) * footfade


def _paint_bright_points(image: np.ndarray, points: np.ndarray, geom: FrameGeometry, pixel: float) -> None:
    # Coronal bright points: small (~5-10") blobs of 1-3x the quiet Sun all over the disc.
    for lon, lat, size, amp in points:
        normal, west, north = _surface_frame(lon, lat, geom.b0)
        if normal[2] < 0.05:
            continue  # behind or on the limb
        centre = _project(normal, geom)
        basis = np.array([[west[0], north[0]], [west[1], north[1]]])
        _paint_gaussian(image, geom, centre, basis, (size, size), amp, 0.3 * pixel)


def _render(geom: FrameGeometry, corona: Corona, regions, holes, points, seeds, exptime: float,
            wavelength: int = 193) -> np.ndarray:
    """Render DN (int16, shape (size, size)) for a geometry and feature set."""
    n = geom.size
    pixel = 1.0 / geom.rsun_pix  # R_sun per pixel
    cx, cy = geom.center
    x = (np.arange(n, dtype=np.float32) - np.float32(cx)) * np.float32(pixel)
    y = (np.arange(n, dtype=np.float32) - np.float32(cy)) * np.float32(pixel)
    rho2 = y[:, None] ** 2 + x[None, :] ** 2
    rho2_max = float(max(x[0] ** 2, x[-1] ** 2) + max(y[0] ** 2, y[-1] ** 2)) * 1.0001 + 1e-6
    # Limb blur: AIA PSF core (~0.6" sigma) and the pixel footprint.
    edge = math.hypot(0.0006, 0.3 * pixel)
    if wavelength in CHANNEL_TEMPERATURE_MK:
        ratio = CHANNEL_TEMPERATURE_MK[wavelength] / CHANNEL_TEMPERATURE_MK[193]
        corona = dataclasses.replace(corona, scale_height=corona.scale_height * ratio)
    table, scale = _radial_table(corona, rho2_max, edge)
    rho2 *= np.float32(scale)
    image = table[rho2.astype(np.int32)]
    del rho2

    for hole in holes:
        _paint_coronal_hole(image, hole, geom, pixel)
    _paint_bright_points(image, points, geom, pixel)
    smooth = _SmoothLayer(geom)
    for region in regions:
        _paint_active_region(image, region, geom, pixel, smooth)
    smooth.add_to(image)

    rng_low, rng_high, rng_noise = (np.random.default_rng(s) for s in seeds)
    image *= _texture(n, corona, rng_low, rng_high)
    image += np.float32(_SCATTER)
    if wavelength in CHANNEL_RESPONSE:  # 193 Å (and unlisted channels) pass unchanged
        rate, gamma = CHANNEL_RESPONSE[wavelength]
        np.maximum(image, 0.0, out=image)
        np.power(image, np.float32(gamma), out=image)
        image *= np.float32(rate)
    image *= np.float32(corona.qs_rate * exptime)  # DN per native pixel

    # Photon noise (Gaussian approximation, var = signal × DN/photon) and read noise, for the mean
    # of the (4096/size)² native pixels each of our pixels stands for.
    read = READ_NOISE_DN.get(TELESCOPE.get(wavelength, 2), 1.2)
    std = np.maximum(image, 0.0) * np.float32(DN_PER_PHOTON)
    std += np.float32(read**2)
    np.sqrt(std, out=std)
    std *= np.float32(n / NATIVE_SIZE)
    std *= rng_noise.standard_normal((n, n), dtype=np.float32)
    image += std
    del std
    np.rint(image, out=image)
    np.clip(image, 0, DATA_MAX, out=image)
    return image.astype(np.int16)


# --------------------------------------------------------------------------------------------
# Header


def _statistics(data: np.ndarray) -> dict:
    # A histogram of the 14-bit values gives min/max/median/mean/rms cheaply (np.median sorts).
    counts = np.bincount(data.ravel().astype(np.intp, copy=False), minlength=DATA_MAX + 1)
    values = np.arange(counts.size, dtype=np.float64)
    total = counts.sum()
    nonzero = np.flatnonzero(counts)
    mean = float((counts * values).sum() / total)
    rms = float(np.sqrt((counts * (values - mean) ** 2).sum() / total))
    median = int(np.searchsorted(np.cumsum(counts), (total + 1) // 2))
    return dict(DATAMIN=int(nonzero[0]), DATAMAX=int(nonzero[-1]), DATAMEDN=median, DATAMEAN=round(mean, 3),
                DATARMS=round(rms, 3), NSATPIX=int(counts[DATA_MAX]))


def _header(geom: FrameGeometry, data: np.ndarray, date_obs: str, exptime: float, quality: int,
            wavelength: int, fsn: int) -> fits.Header:
    t = _parse_date(date_obs)
    # DATE-OBS is the shutter opening; T_OBS the exposure midpoint; T_REC its whole-second slot.
    t_obs = t + np.timedelta64(int(round(exptime * 5e5)), "us")
    t_rec = (t_obs + np.timedelta64(500, "ms")).astype("datetime64[s]")
    telescope = TELESCOPE.get(int(wavelength), 2)
    c, s = math.cos(math.radians(geom.crota2)), math.sin(math.radians(geom.crota2))
    wave_str = f"{wavelength}_THIN" if wavelength < 1000 else f"{wavelength}"
    n = geom.size
    h = fits.Header()
    cards = [
        ("ORIGIN", "solargen synthetic", "not SDO/JSOC: a synthetic level-1 frame"),
        ("TELESCOP", "SDO/AIA", None),
        ("INSTRUME", f"AIA_{telescope}", "AIA telescope number (193 and 211 A: AIA_2)"),
        ("DETECTOR", "AIA", None),
        ("CAMERA", telescope, None),
        ("DATE-OBS", _isot(t), "[UTC] start of exposure"),
        ("T_OBS", _isot(t_obs) + "Z", "[UTC] exposure midpoint"),
        ("T_REC", _isot(t_rec, "s") + "Z", "record time slot"),
        ("IMG_TYPE", "LIGHT", None),
        ("EXPTIME", float(exptime), "[s] exposure duration (nominal)"),
        ("EXPSDEV", 0.0, "[s] exposure time standard deviation"),
        ("INT_TIME", round(float(exptime) + 0.273438, 6), "[s] CCD integration duration"),
        ("AECTYPE", 0, "automatic exposure control type"),
        ("AECMODE", "ON", None),
        ("AISTATE", "CLOSED", None),
        ("ACS_MODE", "SCIENCE", None),
        ("WAVELNTH", int(wavelength), "[angstrom] wavelength"),
        ("WAVEUNIT", "angstrom", None),
        ("WAVE_STR", wave_str, None),
        ("FSN", int(fsn), "filtergram sequence number"),
        ("FID", 0, None),
        ("LVL_NUM", 1.0, "processing level"),
        ("QUALLEV0", 0, None),
        ("QUALITY", int(quality), "level-1 quality bits (0 = good)"),
        ("TOTVALS", n * n, None),
        ("DATAVALS", n * n, None),
        ("MISSVALS", 0, None),
        ("PERCENTD", 100.0, None),
    ]
    cards += [(k, v, None) for k, v in _statistics(data).items()]
    cards += [
        ("BUNIT", "DN", None),
        ("PIXLUNIT", "DN", None),
        ("DN_GAIN", 17.7, "[e-/DN]"),
        ("CTYPE1", "HPLN-TAN", None),
        ("CUNIT1", "arcsec", None),
        ("CRVAL1", 0.0, None),
        ("CDELT1", geom.cdelt, "[arcsec/pixel]"),
        ("CRPIX1", geom.crpix1, "disc centre, 1-based"),
        ("CTYPE2", "HPLT-TAN", None),
        ("CUNIT2", "arcsec", None),
        ("CRVAL2", 0.0, None),
        ("CDELT2", geom.cdelt, "[arcsec/pixel]"),
        ("CRPIX2", geom.crpix2, "disc centre, 1-based"),
        ("CROTA2", geom.crota2, "[deg] INST_ROT + SAT_ROT"),
        # PCi_j take precedence over CROTA2 in sunpy and wcslib; keep them equal.
        ("PC1_1", c, None),
        ("PC1_2", -s, None),
        ("PC2_1", s, None),
        ("PC2_2", c, None),
        ("R_SUN", geom.rsun_pix, "[pixel] RSUN_OBS / CDELT1"),
        ("INST_ROT", INST_ROT_193, "[deg]"),
        ("SAT_ROT", geom.sat_rot, "[deg]"),
        ("IMSCL_MP", geom.cdelt, "[arcsec/pixel]"),
        ("X0_MP", geom.crpix1 - 1.0, "[pixel] disc centre, 0-based"),
        ("Y0_MP", geom.crpix2 - 1.0, "[pixel] disc centre, 0-based"),
        ("DSUN_REF", AU, "[m]"),
        ("DSUN_OBS", geom.dsun_obs, "[m]"),
        ("RSUN_REF", RSUN_REF, "[m]"),
        ("RSUN_OBS", geom.rsun_obs, "[arcsec] asin(RSUN_REF / DSUN_OBS)"),
        ("HGLN_OBS", 0.0, "[deg]"),
        ("HGLT_OBS", geom.b0, "[deg] B0"),
        ("CRLN_OBS", geom.l0, "[deg] L0"),
        ("CRLT_OBS", geom.b0, "[deg]"),
        ("CAR_ROT", geom.car_rot, None),
    ]
    for key, value, comment in cards:
        h[key] = (value, comment) if comment else value
    h["COMMENT"] = "Synthetic AIA-like level-1 frame made by solargen.acquire.synthetic; not real SDO data."
    h["HISTORY"] = "solargen synthetic: LOS corona + cycle-dependent active regions and coronal holes + texture + noise"
    return h


# --------------------------------------------------------------------------------------------
# Public API


def frame_seed(seed: int, index: int) -> int:
    """Seed of frame ``index`` of a series seeded by ``seed`` (independent of sharding)."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def synthetic_frame(seed: int, date_obs: str, native_size: int = 4096, exptime: float = 2.0,
                    quality: int = 0, wavelength: int = 193) -> tuple[np.ndarray, fits.Header]:
    """Generate one synthetic AIA level-1 frame.

    Parameters
    ----------
    seed : int
        Non-negative seed; the same seed gives the same frame.
    date_obs : str
        ISO UTC start of the exposure, ``'YYYY-MM-DDTHH:MM:SS[.sss]'``. Sets the solar distance
        (``RSUN_OBS`` ≈ 944–976″), B0 and Carrington longitude.
    native_size : int
        Image side N (pixels), even, ≥ 16. The field of view is always that of the 4096² detector
        (plate scale ≈ 0.6″ × 4096/N); choose N dividing 4096 so that `aiapy.calibrate.register`
        keeps the resolution.
    exptime : float
        Exposure time (s); DN scale linearly with it.
    quality : int
        Value of the QUALITY keyword (the image itself is always good).
    wavelength : int
        Value of WAVELNTH (Å); 193-like, through `CHANNEL_RESPONSE` for the channels listed there
        (the same Sun as the same seed at 193 Å, with its own noise draw).

    Returns
    -------
    data : numpy.ndarray
        int16 image, shape (N, N), values in [0, 16383] DN per native pixel; row 0 is the bottom
        (FITS order).
    header : astropy.io.fits.Header
        Level-1 header: the disc centre is at (CRPIX1 - 1, CRPIX2 - 1) in 0-based (x, y).
    """
    native_size = int(native_size)
    if native_size < 16 or native_size % 2:
        raise ValueError(f"native_size must be an even number >= 16, got {native_size}")
    if not exptime > 0:
        raise ValueError(f"exptime must be positive, got {exptime}")
    ss_geom, ss_low, ss_high, ss_noise = np.random.SeedSequence(int(seed)).spawn(4)
    if int(wavelength) in CHANNEL_RESPONSE:  # another exposure: same Sun, independent photon noise
        ss_noise = np.random.SeedSequence([int(seed), int(wavelength)])
    rng = np.random.default_rng(ss_geom)
    geom = _draw_geometry(rng, date_obs, native_size)
    corona, regions, holes, points = _draw_features(rng, date_obs)
    fsn = int(rng.integers(10_000_000, 400_000_000))
    data = _render(geom, corona, regions, holes, points, (ss_low, ss_high, ss_noise), float(exptime), int(wavelength))
    return data, _header(geom, data, date_obs, float(exptime), int(quality), int(wavelength), fsn)


def write_synthetic_frame(path, seed, date_obs, native_size=4096, exptime=2.0, quality=0, wavelength=193) -> None:
    """Write one synthetic frame (see `synthetic_frame`) as an uncompressed int16 FITS file.

    The file is written to a temporary name in the same directory and moved onto ``path`` with
    `os.replace`, so an interrupted run never leaves a partial file under the final name.
    """
    from ..io import atomic_path

    data, header = synthetic_frame(seed, date_obs, native_size=native_size, exptime=exptime,
                                   quality=quality, wavelength=wavelength)
    with atomic_path(path, suffix=".fits") as tmp:
        fits.PrimaryHDU(data=data, header=header).writeto(tmp, overwrite=True)


def synthetic_series(start: str, cadence_s: float, n_frames: int) -> list[str]:
    """DATE-OBS strings of a regular series: ``start + i * cadence_s`` for i < ``n_frames``.

    Civil UTC time without leap seconds, so slots stay on round times for years. Format
    ``'YYYY-MM-DDTHH:MM:SS.sss'``.
    """
    return _series(start, cadence_s, 0, n_frames)


def _series(start: str, cadence_s: float, first: int, n: int) -> list[str]:
    if n < 0 or first < 0:
        raise ValueError("the number of frames and the first index must be >= 0")
    step = np.timedelta64(int(round(float(cadence_s) * 1e6)), "us")
    if step <= np.timedelta64(0, "us"):
        raise ValueError(f"cadence_s must be positive, got {cadence_s}")
    times = _parse_date(start) + step * np.arange(first, first + n)
    return [str(s) for s in np.datetime_as_string(times, unit="ms")]


def write_synthetic_series(outdir, n_frames, start, cadence_s, seed, native_size=4096, exptime=2.0,
                           first_index=0, *, wavelength: int = 193, bad_fraction: float = 0.0) -> list[Path]:
    """Write frames ``aia_lev1_<wavelength>a_<index:06d>.fits`` for ``index = first_index ... +
    n_frames - 1`` (what the workflow's acquisition of a synthetic shard runs).

    Frame ``index`` is observed at ``start + index * cadence_s`` with seed
    ``frame_seed(seed, index)`` in every channel (one Sun, seen at several wavelengths), so any
    shard of a series is reproducible on its own. A fraction ``bad_fraction`` of the frames carries
    a random QUALITY flag (a realistic archive has flagged frames; calibration must reject them),
    drawn per channel, so a slot can lack one extra channel while 193 Å's stream stays as it was.

    Returns
    -------
    list of pathlib.Path
        The written files, in index order.
    """
    from tqdm import tqdm

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    dates = _series(start, cadence_s, int(first_index), int(n_frames))
    paths = []
    for i, date in enumerate(tqdm(dates, desc=f"synthesize {wavelength} Å", unit="frame")):
        index = int(first_index) + i
        rng = np.random.default_rng([int(seed), index, 1] + ([int(wavelength)] if wavelength != 193 else []))
        quality = int(1 << int(rng.integers(0, 31))) if rng.random() < bad_fraction else 0
        path = outdir / f"aia_lev1_{wavelength}a_{index:06d}.fits"
        write_synthetic_frame(path, frame_seed(seed, index), date, native_size=native_size, exptime=exptime,
                              quality=quality, wavelength=wavelength)
        paths.append(path)
    return paths
