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


def test_a_sinusoid_peaks_in_its_bin_and_parseval_holds():
    n = 64
    yy, xx = np.mgrid[:n, :n]
    x = np.sin(2 * np.pi * (5 * xx + 12 * yy) / n)[None]  # |k| = 13 cycles per image
    k, p = radial_power_spectrum(x)
    assert k[p[0].argmax()] == 13
    # Parseval: Σ|x|² = Σ|X|²/(HW). The annulus means times their counts sum back to Σ|x|².
    f = np.abs(np.fft.fft2(x[0])) ** 2 / n ** 2
    assert f.sum() == pytest.approx((x[0] ** 2).sum())
    kr = np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(n) * n, np.fft.fftfreq(n) * n))).astype(int)
    counts = np.bincount(kr.ravel())[1:n // 2 + 1]
    assert (p[0] * counts).sum() == pytest.approx((x[0] ** 2).sum(), rel=1e-9)


def test_hann_window_stops_leakage_and_keeps_the_noise_level():
    n = 64
    yy, xx = np.mgrid[:n, :n]
    x = np.sin(2 * np.pi * 10.5 * xx / n)[None]  # not periodic in the frame: leaks everywhere
    far = slice(24, 32)
    _, raw = radial_power_spectrum(x)
    _, hann = radial_power_spectrum(x, "hann")
    assert hann[0][far].mean() < raw[0][far].mean() / 100
    noise = np.random.default_rng(0).normal(size=(16, n, n))
    _, a = radial_power_spectrum(noise)
    _, b = radial_power_spectrum(noise, "hann")
    assert b.mean() == pytest.approx(a.mean(), rel=0.05)
    with pytest.raises(ValueError, match="unknown window"):
        radial_power_spectrum(x, "hamming")


def test_the_real_spectrum_job_imports_no_torch(tmp_path):
    """`python -m solargen spectrum` (the real_spectrum and real_crop_spectrum jobs) computes
    spectra and profiles with NumPy only: importing the feature networks' torch would add ~3 s of
    CPU to each job for nothing. Run as the workflow runs it, in a fresh interpreter."""
    import subprocess
    import sys
    from pathlib import Path

    from helpers import png_folder

    rng = np.random.default_rng(0)
    folder = png_folder(tmp_path / "frames", rng.random((4, 32, 32)))
    out = tmp_path / "spectrum.npz"
    code = ("import sys\nfrom solargen.cli import main\n"
            f"rc = main(['spectrum', '--images', {str(folder)!r}, '--window', 'none', '--out', {str(out)!r}])\n"
            "assert not rc, rc\n"
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1] / "src")
    with np.load(out) as z:
        assert z["power"].shape == (4, 16) and "profile" in z.files
