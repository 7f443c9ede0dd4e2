"""Radial power spectra and spectral distance."""

import numpy as np
import pytest

from solargen.evaluate.spectrum import radial_power_spectrum, spectral_distance


def _power_law_field(n, beta, seed):
    rng = np.random.default_rng(seed)
    ky, kx = np.fft.fftfreq(n)[:, None] * n, np.fft.fftfreq(n)[None, :] * n
    k = np.hypot(ky, kx)
    k[0, 0] = 1
    amp = k ** (-beta / 2)
    f = amp * np.exp(2j * np.pi * rng.random((n, n)))
    return np.fft.ifft2(f).real


def test_white_noise_is_flat_and_parseval_holds():
    x = np.random.default_rng(0).normal(size=(16, 64, 64))
    k, p = radial_power_spectrum(x)
    assert k[0] == 1 and k[-1] == 32 and p.shape == (16, 32)
    assert np.allclose(p.mean(0)[2:], 1.0, rtol=0.15)


def test_power_law_slope_is_recovered():
    x = np.stack([_power_law_field(128, 3.0, s) for s in range(8)])
    k, p = radial_power_spectrum(x)
    sel = (k > 4) & (k < 40)
    slope = np.polyfit(np.log(k[sel]), np.log(p.mean(0)[sel]), 1)[0]
    assert slope == pytest.approx(-3.0, abs=0.15)


def test_spectral_distance():
    p = np.logspace(0, -4, 32)
    assert spectral_distance(p, p) == 0
    assert spectral_distance(p, 10 * p) == pytest.approx(1.0)
    q = p.copy()
    q[16:] *= 100  # excess fine-scale power only
    assert spectral_distance(p, q, (0.0, 0.5)) == 0
    assert spectral_distance(p, q, (0.5, 1.0)) == pytest.approx(2.0)
