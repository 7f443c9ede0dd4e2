"""Paired (fake, target) metrics of the super-resolution task and the seed's 2-D DFT figure data.

SSIM follows Wang et al. 2004 as `skimage.metrics.structural_similarity(gaussian_weights=True,
use_sample_covariance=False, data_range=1)` does: Gaussian window σ = 1.5 truncated at 3.5σ
(11×11), K1 = 0.01, K2 = 0.03, population (co)variances, reflect-padded filtering, and the mean
taken over the map with a 5-px border cropped (where the window would leave the image).
"""

from __future__ import annotations

import numpy as np


def _ssim(a: np.ndarray, b: np.ndarray, k1=0.01, k2=0.03, sigma=1.5, data_range=1.0) -> np.ndarray:
    """Mean SSIM of each image pair: (N, H, W) × 2 → (N,)."""
    from scipy.ndimage import gaussian_filter  # here: ~1 s to import, and only conditional runs need it

    blur = lambda x: gaussian_filter(x, sigma=(0, sigma, sigma), truncate=3.5, mode="reflect")  # noqa: E731
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    r = int(3.5 * sigma + 0.5)  # window radius: 5 → crop what the window could not see whole
    return s[:, r:-r, r:-r].mean(axis=(1, 2))


def pixel_metrics(fake: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Means over N image pairs (N, H, W) in [0, 1] of L1, PSNR (dB, data range 1) and SSIM.

    PSNR is per image, then averaged (the usual SR convention); an exact match has infinite
    PSNR and it is reported as ``inf`` (no cap), so it cannot pass for a finite score.
    """
    fake, target = np.asarray(fake, np.float64), np.asarray(target, np.float64)
    if fake.shape != target.shape or fake.ndim != 3:
        raise ValueError(f"need two (N, H, W) arrays of one shape, got {fake.shape} and {target.shape}")
    mse = ((fake - target) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        psnr = -10 * np.log10(mse)
    return {"l1": float(np.abs(fake - target).mean()), "psnr": float(psnr.mean()),
            "ssim": float(_ssim(fake, target).mean())}


def dft_magnitude(images: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Mean over the batch of log10 |FFT2| (DC at the centre): (N, H, W) → (H, W).

    ``eps`` keeps exact zeros finite: nearest-upsampled block images have exact spectral nulls.
    """
    f = np.fft.fftshift(np.fft.fft2(np.asarray(images, np.float64)), axes=(-2, -1))
    return np.log10(np.abs(f) + eps).mean(axis=0)
