"""Log-normalisation with *global* constants, as the study's ``normalized_log_transform``.

AIA intensities span four decades and their histogram is very skewed, so the study trains on
log intensities. The clip range is one pair of constants for the whole training set (not per
image), so relative brightness between frames survives:

    y = (log(clip(I, lo, hi)) - log(lo)) / (log(hi) - log(lo))        ∈ [0, 1]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import InputError


def compute_constants(shards: list[np.ndarray], *, low_percentile: float = 0.5,
                      high_percentile: float = 99.99, pixels_per_frame: int = 20000,
                      seed: int = 0) -> dict:
    """Global clip constants from calibrated images (DN/s), pooled over all frames of all shards.

    To scale to ~40K frames of 1024², percentiles are taken over a seeded random subsample of
    ``pixels_per_frame`` pixels per frame. Only positive pixels count (log domain).
    """
    rng = np.random.default_rng(seed)
    samples = []
    for images in shards:
        for img in images:
            flat = img.reshape(-1)
            idx = rng.integers(0, flat.size, size=min(pixels_per_frame, flat.size))
            samples.append(flat[idx])
    if not samples:
        raise InputError("no calibrated frames to compute normalisation constants from")
    pool = np.concatenate(samples).astype(np.float64)
    pool = pool[np.isfinite(pool) & (pool > 0)]
    if pool.size == 0:
        raise InputError("all calibrated pixels are non-positive; cannot log-normalise")
    lo, hi = np.percentile(pool, [low_percentile, high_percentile])
    if not hi > lo > 0:
        raise InputError(f"degenerate clip range [{lo}, {hi}]")
    return {"transform": "log", "clip_min": float(lo), "clip_max": float(hi),
            "low_percentile": low_percentile, "high_percentile": high_percentile,
            "n_frames": int(sum(len(s) for s in shards)), "n_pixels_sampled": int(pool.size)}


def normalise(image: np.ndarray, constants: dict) -> np.ndarray:
    """Map DN/s to [0, 1] with the global log transform (float32)."""
    lo, hi = np.log(constants["clip_min"]), np.log(constants["clip_max"])
    x = np.clip(np.asarray(image, np.float64), constants["clip_min"], constants["clip_max"])
    return ((np.log(x) - lo) / (hi - lo)).astype(np.float32)


def denormalise(y: np.ndarray, constants: dict) -> np.ndarray:
    """Inverse of `normalise` for values in [0, 1]: back to DN/s (exact inside the clip range)."""
    lo, hi = np.log(constants["clip_min"]), np.log(constants["clip_max"])
    return np.exp(np.asarray(y, np.float64) * (hi - lo) + lo).astype(np.float32)


def validate_constants(constants: dict, path: str | Path = "constants") -> dict:
    """Check a constants mapping read from disk; raise `InputError` naming ``path`` if broken."""
    try:
        lo, hi = float(constants["clip_min"]), float(constants["clip_max"])
    except (KeyError, TypeError, ValueError):
        raise InputError(f"{path}: missing clip_min/clip_max") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and hi > lo > 0):
        raise InputError(f"{path}: invalid clip range [{lo}, {hi}]")
    return constants
