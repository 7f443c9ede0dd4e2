"""Radially averaged power spectra and the spectral distance between image sets.

After Schmidt et al. (2020): compare the 2-D DFTs of real and generated images. Coarse
structure shows at low wavenumber, fine-scale solar texture at high wavenumber — the band
where GANs and diffusion models differ.
"""

from __future__ import annotations

import functools

import numpy as np


WINDOWS = ("none", "hann")
#: Fraction of wavenumbers counted as "high band" (fine scales): the upper half.
HIGH_BAND = (0.5, 1.0)


def radial_power_spectrum(images: np.ndarray, window: str = "none") -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectra of a batch.

    Parameters
    ----------
    images : (N, H, W) array, H == W
        Images (e.g. normalised log intensity in [0, 1]); each image's mean is removed.
    window : "none" or "hann"
        A separable 2-D Hann taper before the DFT, so the frame edge (the off-limb corona cut
        by the field of view) does not leak power into every wavenumber. Power is divided by
        Σw² instead of H·W, which keeps white noise at the same level either way.

    Returns
    -------
    k : (H // 2,) integer wavenumbers 1 … H/2 (cycles per image)
    power : (N, H // 2) mean |DFT|² in each wavenumber annulus
    """
    x = np.asarray(images, dtype=np.float64)
    n, h, w = x.shape
    if h != w:
        raise ValueError(f"square images expected, got {h}×{w}")
    x = x - x.mean(axis=(1, 2), keepdims=True)
    norm = h * w
    if window == "hann":
        import scipy.signal  # here: the import takes ~1 s and the default window is none

        taper = np.outer(scipy.signal.windows.hann(h, sym=False), scipy.signal.windows.hann(w, sym=False))
        x = x * taper
        norm = float((taper ** 2).sum())
    elif window != "none":
        raise ValueError(f"unknown window {window!r} (allowed: {', '.join(WINDOWS)})")
    # Imported here, not at the top: the bootstrap and the report read this module's band statistics only.
    import scipy.fft

    # One batched real FFT over the whole stack, on all cores: no Python loop per image.
    f = scipy.fft.rfft2(x, axes=(1, 2), workers=-1)
    p = np.square(f.real, out=f.real.copy()) + np.square(f.imag)
    del f
    order, starts, weight, counts = _annuli(h, w)
    # The pixels of each annulus are contiguous after one gather, so one reduceat sums every
    # annulus of every image at once (a bincount would need an (N·H·W) index array).
    sums = np.add.reduceat(p.reshape(n, -1)[:, order] * weight, starts, axis=1)[:, : h // 2]
    return np.arange(1, h // 2 + 1), sums / (counts * norm)


@functools.lru_cache(maxsize=8)
def _annuli(h: int, w: int):
    """For the rfft half-plane of an h × w image: the pixel order that groups annuli k = 1 … h/2
    (then everything else), where each annulus starts, each pixel's weight (2 for columns that
    stand for two conjugate coefficients) and each annulus' total weight."""
    ky = np.fft.fftfreq(h) * h
    kx = np.fft.rfftfreq(w) * w
    kr = np.rint(np.hypot(ky[:, None], kx[None, :])).astype(int)
    weight = np.full(kr.shape, 2.0)
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    nk = h // 2
    # Bin k−1 for wavenumber k in 1 … nk; k = 0 and the corners beyond nk go to a last bin nk.
    bins = np.where((kr >= 1) & (kr <= nk), kr - 1, nk).ravel()
    order = np.argsort(bins, kind="stable")
    starts = np.searchsorted(bins[order], np.arange(nk + 1))
    counts = np.bincount(bins, weights=weight.ravel(), minlength=nk + 1)[:nk]
    return order, starts, weight.ravel()[order], counts


def spectral_distance(p_real: np.ndarray, p_fake: np.ndarray, band: tuple[float, float] = (0.0, 1.0)) -> float:
    """Mean |log10 P_fake(k) − log10 P_real(k)| over a band of wavenumbers.

    ``p_real``/``p_fake`` are mean spectra (K,); ``band`` is a fraction of the K wavenumbers
    (``(0.5, 1.0)`` is the upper half: the fine scales). Zero means identical spectra; 1 means a
    factor of 10 in power on average.
    """
    sl = band_slice(len(p_real), band)
    eps = 1e-30
    return float(np.mean(np.abs(np.log10(p_fake[sl] + eps) - np.log10(p_real[sl] + eps))))


def band_slice(k: int, band: tuple[float, float]) -> slice:
    """The wavenumber indices of ``band`` (fractions of the K wavenumbers) in spectra of length ``k``."""
    return slice(int(np.floor(band[0] * k)), int(np.ceil(band[1] * k)))


def spectral_bias(p_real: np.ndarray, p_fake: np.ndarray, band: tuple[float, float] = (0.0, 1.0)) -> float:
    """Mean **signed** log10(P_fake(k) / P_real(k)) over a band of wavenumbers (fractions as in
    `spectral_distance`). Negative: too little power (the fine-scale deficit the study reports for
    StyleGAN2 at high resolution); positive: too much (noise, artefacts). −0.3 ≈ half the power."""
    sl = band_slice(len(p_real), band)
    eps = 1e-30
    return float(np.mean(np.log10(p_fake[sl] + eps) - np.log10(p_real[sl] + eps)))


def relative_error(p_real: np.ndarray, p_fake: np.ndarray) -> np.ndarray:
    """The relative-error curve (P_fake(k) − P_real(k)) / P_real(k) of two mean spectra (K,):
    where in k a model has too much (> 0) or too little (< 0) power."""
    return (p_fake - p_real) / np.maximum(p_real, 1e-30)
