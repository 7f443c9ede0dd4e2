"""Log-normalisation with *global* constants, as the study's ``normalized_log_transform``.

AIA intensities span four decades and their histogram is very skewed, so the study trains on
log intensities. The clip range is one pair of constants for the whole training set (not per
image), so relative brightness between frames survives:

    y = (log(clip(I, lo, hi)) - log(lo)) / (log(hi) - log(lo))        ∈ [0, 1]

The constants come from a streaming reduce over the training split: a fixed-bin histogram of
log10(I) (`LogHistogram`, ``bins_per_decade`` bins per decade over 1e-3 … 1e6 DN/s) is accumulated
frame by frame — memory does not depend on the number of frames — and the percentiles are read
from its cumulative sum, interpolated inside the bin (resolution 10^(1/bins_per_decade): 0.23 %
in intensity at the default 1000 bins per decade). The exact minimum and maximum are tracked too,
so the 0th/100th percentiles are exact.

Pixel conventions: non-positive and non-finite pixels are counted but not binned (the log of
them is undefined); `normalise` maps them to 0 (the lower clip), +inf to 1.

Storage quantisation (`quantise` / `dequantise`): ``float32`` (as is), ``float16`` (relative step
≤ 2^-11 in [0, 1]), or ``uint8`` (round(255·y), the study's 8-bit images).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

from .io import InputError, to_uint8

#: log10 range of the histogram (DN/s); values outside land in under/overflow counters.
LOG10_MIN, LOG10_MAX = -3.0, 6.0
QUANTISATIONS = ("float32", "float16", "uint8")


class LogHistogram:
    """Streaming histogram of log10 of the positive, finite pixels of many images."""

    def __init__(self, bins_per_decade: int = 1000):
        self.bins_per_decade = int(bins_per_decade)
        self.n_bins = int(round((LOG10_MAX - LOG10_MIN) * self.bins_per_decade))
        self.counts = np.zeros(self.n_bins, np.int64)
        self.underflow = self.overflow = self.nonpositive = self.nonfinite = 0
        self.n_frames = 0
        self.min, self.max = np.inf, -np.inf

    def add(self, image: np.ndarray) -> None:
        """Accumulate one image (any shape)."""
        x = np.asarray(image, np.float64).reshape(-1)
        finite = np.isfinite(x)
        self.nonfinite += int(x.size - finite.sum())
        x = x[finite]
        pos = x > 0
        self.nonpositive += int(x.size - pos.sum())
        x = x[pos]
        self.n_frames += 1
        if not x.size:
            return
        self.min, self.max = min(self.min, float(x.min())), max(self.max, float(x.max()))
        idx = np.floor((np.log10(x) - LOG10_MIN) * self.bins_per_decade).astype(np.int64)
        self.underflow += int((idx < 0).sum())
        self.overflow += int((idx >= self.n_bins).sum())
        inside = (idx >= 0) & (idx < self.n_bins)
        self.counts += np.bincount(idx[inside], minlength=self.n_bins)

    @property
    def n_positive(self) -> int:
        return int(self.counts.sum()) + self.underflow + self.overflow

    def percentile(self, q: float) -> float:
        """The q-th percentile (0…100) of the binned values (interpolated log-linearly in the bin)."""
        n = self.n_positive
        if n == 0:
            raise InputError("all pixels are non-positive or non-finite; cannot log-normalise")
        if q <= 0:
            return self.min
        if q >= 100:
            return self.max
        rank = q / 100.0 * n
        if rank <= self.underflow or rank > n - self.overflow:
            raise InputError(f"the {q}th percentile lies outside 10^{LOG10_MIN:g}…10^{LOG10_MAX:g} DN/s; "
                             "is the data calibrated?")
        cum = np.cumsum(self.counts) + self.underflow
        i = int(np.searchsorted(cum, rank))
        before = cum[i - 1] if i else self.underflow
        frac = (rank - before) / max(self.counts[i], 1)
        value = 10 ** (LOG10_MIN + (i + frac) / self.bins_per_decade)
        return float(min(max(value, self.min), self.max))

    def log_counts(self, decimate: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """(bin edges in log10 DN/s, counts) with ``decimate`` bins merged, for plots."""
        c = self.counts[: self.n_bins // decimate * decimate].reshape(-1, decimate).sum(1)
        edges = LOG10_MIN + np.arange(len(c) + 1) * decimate / self.bins_per_decade
        return edges, c


def _frames(images: Iterable[np.ndarray]):
    for im in images:
        im = np.asarray(im)
        if im.ndim == 3:  # a stack of frames
            yield from im
        else:
            yield im


def compute_constants(images: Iterable[np.ndarray], *, low_percentile: float = 0.5,
                      high_percentile: float = 99.99, bins_per_decade: int = 1000) -> dict:
    """Global clip constants (DN/s) from a stream of calibrated images (each (H, W) or (n, H, W)).

    One pass, constant memory (see `LogHistogram`). Returns the constants as a JSON-ready dict,
    with the counts they were computed from.
    """
    hist = LogHistogram(bins_per_decade)
    for im in _frames(images):
        hist.add(im)
    return constants_from_histogram(hist, low_percentile=low_percentile, high_percentile=high_percentile)


def constants_from_histogram(hist: LogHistogram, *, low_percentile: float, high_percentile: float) -> dict:
    """The clip constants (and the counts behind them) from an accumulated `LogHistogram`."""
    bins_per_decade = hist.bins_per_decade
    if hist.n_frames == 0:
        raise InputError("no calibrated frames to compute normalisation constants from")
    lo, hi = hist.percentile(low_percentile), hist.percentile(high_percentile)
    if not hi > lo > 0:
        raise InputError(f"degenerate clip range [{lo}, {hi}]")
    return {"transform": "log", "clip_min": lo, "clip_max": hi,
            "low_percentile": low_percentile, "high_percentile": high_percentile,
            "method": f"streaming log10 histogram, {bins_per_decade} bins/decade over "
                      f"1e{LOG10_MIN:g}..1e{LOG10_MAX:g} DN/s",
            "bins_per_decade": bins_per_decade, "n_frames": hist.n_frames,
            "n_pixels_positive": hist.n_positive, "n_pixels_nonpositive": hist.nonpositive,
            "n_pixels_nonfinite": hist.nonfinite}


def normalise(image: np.ndarray, constants: dict) -> np.ndarray:
    """Map DN/s to [0, 1] with the global log transform (float32). NaN/≤0 → 0, +inf → 1."""
    lo, hi = constants["clip_min"], constants["clip_max"]
    x = np.nan_to_num(np.asarray(image, np.float64), nan=lo, posinf=hi, neginf=lo)
    x = np.clip(x, lo, hi)
    return ((np.log(x) - np.log(lo)) / (np.log(hi) - np.log(lo))).astype(np.float32)


def denormalise(y: np.ndarray, constants: dict) -> np.ndarray:
    """Inverse of `normalise` for values in [0, 1]: back to DN/s (exact inside the clip range)."""
    lo, hi = np.log(constants["clip_min"]), np.log(constants["clip_max"])
    return np.exp(np.asarray(y, np.float64) * (hi - lo) + lo).astype(np.float32)


def quantise(y: np.ndarray, dtype: str) -> np.ndarray:
    """[0, 1] float image → the stored dtype (``float32``, ``float16`` or ``uint8`` = round(255·y))."""
    if dtype == "uint8":
        return to_uint8(y)
    if dtype in ("float16", "float32"):
        return np.asarray(y, dtype)
    raise ValueError(f"quantisation must be one of {QUANTISATIONS}, got {dtype!r}")


def dequantise(q: np.ndarray) -> np.ndarray:
    """Stored image → float32 in [0, 1] (inverse of `quantise` up to its rounding)."""
    q = np.asarray(q)
    if q.dtype == np.uint8:
        return q.astype(np.float32) / np.float32(255)
    return q.astype(np.float32)


def validate_constants(constants: dict, path: str | Path = "constants") -> dict:
    """Check a constants mapping read from disk; raise `InputError` naming ``path`` if broken."""
    try:
        lo, hi = float(constants["clip_min"]), float(constants["clip_max"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: missing clip_min/clip_max") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo > 0):
        raise InputError(f"{path}: invalid clip range [{lo}, {hi}]")
    return constants
