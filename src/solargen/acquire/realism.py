"""How real is a synthetic AIA 193 Å frame? Image statistics shared by the realism benchmark and tests.

The only real 193 Å frame available offline is the Helioviewer JPEG 2000 that ships with sunpy
(2013-06-24, 410² bytes reduced from a 4096² level-1.5 frame). To compare like with like, a
synthetic 4096² frame is forward-modelled the same way (`helioviewer_forward`: DN/s → Helioviewer's
log byte scaling → box resize to 410² → inverted back to DN/s) and then every statistic
(`frame_statistics`) is computed identically on both. Method and reference numbers:
``shared/reference/synthetic_realism.md`` (issue #27).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "REAL_JP2_NAME",
    "TARGETS",
    "Disc",
    "frame_statistics",
    "helioviewer_bytes",
    "helioviewer_forward",
    "helioviewer_invert",
    "limb_fit",
    "load_helioviewer_jp2",
    "radial_profile",
    "reduced_disc",
    "spectrum_slope",
]

#: sunpy's packaged Helioviewer AIA 193 Å test file.
REAL_JP2_NAME = "2013_06_24__17_31_30_84__SDO_AIA_AIA_193.jp2"
#: Helioviewer's AIA 193 scaling (jp2gen): DN/s clipped to [20, 2500], log10, byte-scaled.
HV_MIN, HV_MAX = 20.0, 2500.0
#: Side of the reduced Helioviewer test image.
HV_SIZE = 410

#: Issue #27 targets: name -> (low, high). Spectral slopes are ±0.25 around the real values.
TARGETS = {
    "std_log10": (0.25, 0.40),
    "p25": (0.55, 0.75),
    "p75": (1.4, 1.9),
    "p95": (3.0, 5.5),
    "p99": (6.0, 12.0),
    "bright3_pct": (5.0, 12.0),
    "mean_median_disc": (1.4, 2.0),
    "mean_median_frame": (1.5, 2.1),
    "dark05_pct": (5.0, 15.0),
    "dark035_pct": (3.0, 8.0),
    "p1": (0.12, 0.30),
    "limb_centre_err_px": (0.0, 1.0),
    "limb_peak": (3.0, 5.0),
    "limb_peak_r": (1.005, 1.02),
    "profile_095": (1.35, 1.8),
    "efold_102_110": (0.045, 0.070),
    "efold_diff": (0.005, 0.03),
    "profile_120": (0.2, 0.35),
    "slope_120_24": (-3.30, -2.80),
    "slope_24_6_native": (-3.60, -3.10),
}


@dataclass(frozen=True)
class Disc:
    """Where the Sun is in an image: 0-based centre (column x, row y) and photospheric radius (px),
    and the plate scale (arcsec/px)."""

    x: float
    y: float
    r: float
    scale: float


# --------------------------------------------------------------------------------------------
# Helioviewer byte scaling and the real file


def helioviewer_bytes(rate: np.ndarray) -> np.ndarray:
    """DN/s → Helioviewer AIA 193 bytes (IDL ``BYTSCL(ALOG10(clip(I, 20, 2500)))``)."""
    lo, hi = math.log10(HV_MIN), math.log10(HV_MAX)
    x = np.log10(np.clip(np.asarray(rate, np.float64), HV_MIN, HV_MAX))
    return np.clip(np.floor(256.0 * (x - lo) / (hi - lo)), 0, 255).astype(np.uint8)


def helioviewer_invert(values: np.ndarray) -> np.ndarray:
    """Bytes (possibly averaged) → DN/s: I = 20 · 125^((v + 0.5)/256), the bin centre in log I."""
    return HV_MIN * (HV_MAX / HV_MIN) ** ((np.asarray(values, np.float64) + 0.5) / 256.0)


def helioviewer_forward(rate: np.ndarray, size: int = HV_SIZE) -> np.ndarray:
    """Forward-model a DN/s frame like the Helioviewer test file: bytes, box resize, invert.

    Rows keep their order (FITS row 0 stays row 0).
    """
    from PIL import Image

    img = Image.fromarray(helioviewer_bytes(rate), mode="L").resize((size, size), Image.Resampling.BOX)
    return helioviewer_invert(np.asarray(img))


def load_helioviewer_jp2(path=None) -> tuple[np.ndarray, Disc, dict]:
    """The real frame: DN/s (410², FITS row order), its disc and the original FITS header values.

    ``path`` defaults to the file packaged with sunpy.
    """
    from PIL import Image

    if path is None:
        import sunpy.data.test

        path = Path(sunpy.data.test.__file__).parent / REAL_JP2_NAME
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"real AIA 193 JPEG 2000 not found: {path}")
    with Image.open(path) as im:
        data = np.asarray(im.convert("L"))[::-1]  # JPEG rows run top-down, FITS rows bottom-up
    raw = path.read_bytes()
    start = raw.find(b"<fits>")
    if start < 0:
        raise ValueError(f"{path}: no <fits> XML box (not a Helioviewer JPEG 2000?)")
    xml = raw[start:raw.find(b"</fits>", start)].decode("utf-8", errors="replace")
    meta = {}
    for key in ("NAXIS1", "CRPIX1", "CRPIX2", "CDELT1", "R_SUN", "RSUN_OBS", "EXPTIME", "DATAMEDN",
                "DATAMEAN", "DATAMAX", "LVL_NUM"):
        m = re.search(rf"<{key}>([^<]*)</{key}>", xml)
        if m is None:
            raise ValueError(f"{path}: FITS key {key} missing from the XML box")
        meta[key] = float(m.group(1))
    n = data.shape[0]
    f = n / meta["NAXIS1"]
    disc = Disc(x=(meta["CRPIX1"] - 0.5) * f - 0.5, y=(meta["CRPIX2"] - 0.5) * f - 0.5, r=meta["R_SUN"] * f,
                scale=meta["CDELT1"] / f)
    return helioviewer_invert(data), disc, meta


def reduced_disc(header, native_size: int, size: int = HV_SIZE) -> Disc:
    """The disc of a ``native_size``² frame with this FITS header after a box resize to ``size``²."""
    f = size / native_size
    return Disc(x=(header["CRPIX1"] - 0.5) * f - 0.5, y=(header["CRPIX2"] - 0.5) * f - 0.5,
                r=header["RSUN_OBS"] / header["CDELT1"] * f, scale=header["CDELT1"] / f)


# --------------------------------------------------------------------------------------------
# Statistics


def _rho(shape, disc: Disc) -> np.ndarray:
    yy, xx = np.indices(shape, dtype=np.float64)
    return np.hypot(xx - disc.x, yy - disc.y) / disc.r


def radial_profile(image: np.ndarray, disc: Disc, step: float = 0.005, r_max: float = 1.3):
    """Azimuthal median in rings of width ``step`` R☉: (ring centres, medians)."""
    rho = _rho(image.shape, disc)
    edges = np.arange(0.0, r_max + step, step)
    idx = np.digitize(rho.ravel(), edges) - 1
    values = image.ravel()
    order = np.argsort(idx, kind="stable")
    idx, values = idx[order], values[order]
    bounds = np.searchsorted(idx, np.arange(len(edges)))
    centres, medians = [], []
    for i in range(len(edges) - 1):
        ring = values[bounds[i]:bounds[i + 1]]
        if ring.size:
            centres.append(edges[i] + step / 2)
            medians.append(np.median(ring))
    return np.array(centres), np.array(medians)


def limb_fit(image: np.ndarray, disc: Disc, n_rays: int = 720) -> tuple[float, float, float]:
    """Limb circle (x, y, radius in px): steepest outward intensity drop along ``n_rays`` rays from
    the nominal centre between 0.9 and 1.2 R☉ (image smoothed by 1 px against byte noise), then a
    least-squares circle, starting from the rays within 0.03 R☉ of the median radius (active
    regions and hole edges give outliers) and clipped at 3 robust (MAD) sigma."""
    from scipy import ndimage

    image = ndimage.gaussian_filter(np.asarray(image, np.float64), 1.0)
    theta = np.linspace(0.0, 2 * np.pi, n_rays, endpoint=False)[:, None]
    radii = np.arange(0.9, 1.2, 0.002)[None, :] * disc.r
    xs, ys = disc.x + radii * np.cos(theta), disc.y + radii * np.sin(theta)
    prof = ndimage.map_coordinates(np.asarray(image, np.float64), [ys, xs], order=1)
    k = np.gradient(prof, axis=1).argmin(axis=1)
    px, py = xs[np.arange(n_rays), k], ys[np.arange(n_rays), k]
    dist = np.hypot(px - disc.x, py - disc.y)
    keep = np.abs(dist - np.median(dist)) < 0.03 * disc.r
    for _ in range(5):
        a = np.column_stack([2 * px[keep], 2 * py[keep], np.ones(keep.sum())])
        (cx, cy, c), *_ = np.linalg.lstsq(a, px[keep] ** 2 + py[keep] ** 2, rcond=None)
        r = math.sqrt(c + cx**2 + cy**2)
        resid = np.hypot(px - cx, py - cy) - r
        mad = 1.4826 * np.median(np.abs(resid[keep] - np.median(resid[keep])))
        new = np.abs(resid) < 3 * max(mad, 0.1)  # a robust sigma: limb loops make a long tail
        if (new == keep).all():
            break
        keep = new
    return float(cx), float(cy), float(r)


def spectrum_slope(image: np.ndarray, disc: Disc, band_arcsec: tuple[float, float]) -> float:
    """Log-log slope of the azimuthally averaged power spectrum of ln I over the wavelengths
    ``band_arcsec`` (long, short) in the central square |x|, |y| < 0.6 R☉ (mean removed, 2-D Hann)."""
    half = int(0.6 * disc.r)
    cx, cy = int(round(disc.x)), int(round(disc.y))
    sq = np.log(np.clip(image[cy - half:cy + half, cx - half:cx + half], 1e-3, None))
    sq = sq - sq.mean()
    n = sq.shape[0]
    w = np.hanning(n)
    power = np.abs(np.fft.fft2(sq * w[:, None] * w[None, :])) ** 2
    f = np.fft.fftfreq(n)
    k = np.hypot(f[:, None], f[None, :]) * n  # cycles per square
    kbin = np.rint(k).astype(int).ravel()
    mean = np.bincount(kbin, power.ravel()) / np.maximum(np.bincount(kbin), 1)
    freq = np.arange(mean.size) / (n * disc.scale)  # cycles per arcsec
    lo, hi = 1.0 / band_arcsec[0], 1.0 / band_arcsec[1]
    sel = (freq >= lo) & (freq <= hi) & (mean > 0)
    if sel.sum() < 3:
        raise ValueError(f"band {band_arcsec} arcsec has fewer than 3 frequencies at this resolution")
    return float(np.polyfit(np.log(freq[sel]), np.log(mean[sel]), 1)[0])


def _efold(r: np.ndarray, prof: np.ndarray, lo: float, hi: float) -> float:
    sel = (r >= lo) & (r <= hi) & (prof > 0)
    slope = np.polyfit(r[sel], np.log(prof[sel]), 1)[0]
    return float(-1.0 / slope)


def frame_statistics(image: np.ndarray, disc: Disc) -> dict:
    """Every statistic of issue #27 for one image in DN/s (names as `TARGETS`, plus context).

    Percentiles and areas are on the disc (r < 0.95 R☉) relative to its median; the profile and
    limb numbers are in photospheric R☉ from ``disc``; the limb-centre error is in pixels.
    """
    image = np.asarray(image, np.float64)
    rho = _rho(image.shape, disc)
    on = image[rho < 0.95]
    med = float(np.median(on))
    p = np.percentile(on, [1, 5, 25, 75, 95, 99]) / med
    r, prof = radial_profile(image, disc)
    near = (r > 0.95) & (r < 1.1)
    i_peak = np.argmax(np.where(near, prof, -np.inf))
    lx, ly, lr = limb_fit(image, disc)
    e1, e2 = _efold(r, prof, 1.02, 1.10), _efold(r, prof, 1.10, 1.20)
    return {
        "disc_median": med,
        "std_log10": float(np.std(np.log10(np.clip(on, 1e-3, None)))),
        "p1": p[0], "p5": p[1], "p25": p[2], "p75": p[3], "p95": p[4], "p99": p[5],
        "bright3_pct": 100.0 * float(np.mean(on > 3 * med)),
        "bright5_pct": 100.0 * float(np.mean(on > 5 * med)),
        "mean_median_disc": float(on.mean() / med),
        "mean_median_frame": float(image.mean() / np.median(image)),
        "dark05_pct": 100.0 * float(np.mean(on < 0.5 * med)),
        "dark035_pct": 100.0 * float(np.mean(on < 0.35 * med)),
        "limb_radius": lr / disc.r,
        "limb_centre_err_px": float(math.hypot(lx - disc.x, ly - disc.y)),
        "limb_peak": float(prof[i_peak] / med),
        "limb_peak_r": float(r[i_peak]),
        "profile_095": float(np.interp(0.95, r, prof) / med),
        "profile_120": float(np.interp(1.20, r, prof) / med),
        "efold_102_110": e1,
        "efold_110_120": e2,
        "efold_diff": e2 - e1,
        "slope_120_24": spectrum_slope(image, disc, (120.0, 24.0)),
        "frame_max": float(image.max()),
    }
