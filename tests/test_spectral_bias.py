"""The signed fine-scale metric (issue 21): spectra with a known deficit and excess of power."""

import json

import numpy as np
import pytest

from helpers import png_folder
from solargen.evaluate.distances import kernel_distance
from solargen.evaluate.metrics import BIAS_BANDS, bias_rows, evaluate_run, save_spectrum
from solargen.evaluate.spectrum import radial_power_spectrum, spectral_bias, spectral_distance


def test_spectral_bias_has_the_sign_of_the_power_ratio():
    p = np.ones(32)
    deficit = np.where(np.arange(32) >= 16, 0.1, 1.0)   # 10x too little power in the upper half
    excess = np.where(np.arange(32) >= 16, 10.0, 1.0)   # 10x too much there
    assert spectral_bias(p, deficit, (0.5, 1.0)) == pytest.approx(-1.0)
    assert spectral_bias(p, excess, (0.5, 1.0)) == pytest.approx(1.0)
    assert spectral_bias(p, deficit, (0.0, 0.5)) == 0
    assert spectral_bias(p, deficit) == pytest.approx(-0.5)
    # The unsigned distance cannot tell the two apart; the signed one can.
    assert spectral_distance(p, deficit, (0.5, 1.0)) == spectral_distance(p, excess, (0.5, 1.0))
    # A deficit and an excess in the same band cancel in the bias but not in the distance.
    mixed = np.where(np.arange(32) % 2 == 0, 10.0, 0.1)
    assert spectral_bias(p, mixed) == pytest.approx(0) and spectral_distance(p, mixed) == pytest.approx(1)


def _smooth(images, sigma):
    from scipy.ndimage import gaussian_filter
    return np.stack([gaussian_filter(im, sigma) for im in images])


def test_bias_rows_find_a_blur_deficit_and_a_noise_excess_with_intervals_that_exclude_zero():
    rng = np.random.default_rng(0)
    real = _smooth(rng.normal(size=(40, 32, 32)), 1.0)
    blurred = _smooth(_smooth(rng.normal(size=(40, 32, 32)), 1.0), 1.5)   # fine scales removed
    noisy = _smooth(rng.normal(size=(40, 32, 32)), 1.0) + 0.2 * rng.normal(size=(40, 32, 32))
    _, pr = radial_power_spectrum(real)
    for fake, sign in ((blurred, -1), (noisy, +1)):
        _, pf = radial_power_spectrum(fake)
        rows = {r["metric"]: r["value"] for r in bias_rows(pr, pf, BIAS_BANDS, seed=3, net="power_spectrum")}
        assert set(rows) == {"spectral_bias", "spectral_bias_ci95_low", "spectral_bias_ci95_high",
                             "spectral_bias_high", "spectral_bias_high_ci95_low", "spectral_bias_high_ci95_high"}
        assert sign * rows["spectral_bias_high"] > 0.3
        assert rows["spectral_bias_high_ci95_low"] < rows["spectral_bias_high"] < rows["spectral_bias_high_ci95_high"]
        assert sign * rows["spectral_bias_high_ci95_low"] > 0 and sign * rows["spectral_bias_high_ci95_high"] > 0
    # Seeded: the same spectra give the same interval; another seed another one.
    a = bias_rows(pr, pf, BIAS_BANDS, seed=3)
    assert a == bias_rows(pr, pf, BIAS_BANDS, seed=3) and a != bias_rows(pr, pf, BIAS_BANDS, seed=4)



def test_evaluate_run_writes_signed_rows_for_frames_and_on_disk_crops(tmp_path):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:32, :32]
    disk = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 144).astype(float) * 0.6
    texture = lambda: _smooth(rng.normal(size=(1, 32, 32)), 0.7)[0]  # noqa: E731
    real = png_folder(tmp_path / "real", [disk + 0.4 * texture() + 0.2 for _ in range(12)])
    fake = png_folder(tmp_path / "fake", [disk + 0.4 * _smooth(texture()[None], 1.5)[0] + 0.2 for _ in range(12)])
    save_spectrum(real, tmp_path / "s.npz")
    from solargen.evaluate.crops import CropMode
    save_spectrum(real, tmp_path / "s8.npz", crop=CropMode.parse("CROPPED8", on_disk=0.39))
    out = evaluate_run(fake, {}, tmp_path / "s.npz", tmp_path / "m.json", tmp_path / "ms.npz",
                       real_name="R", fake_name="F", real_crop_spectra=[tmp_path / "s8.npz"], seed=5)
    rows = {(r["metric"], r["fake"]): r["value"] for r in out["rows"]}
    for fake_name in ("F", "F-CROPPED8"):
        assert rows[("spectral_bias_high", fake_name)] < 0  # the blurred set lacks fine-scale power
        assert rows[("spectral_bias_high_ci95_high", fake_name)] < 0
    # The unsigned distance is still there, unchanged in meaning.
    assert rows[("spectral_distance_high", "F")] == pytest.approx(-rows[("spectral_bias_high", "F")], rel=0.3)


def test_kid_is_identical_on_two_calls_with_sets_of_unequal_size():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(60, 16)), rng.normal(0.2, 1, size=(32, 16))
    np.random.seed(1)
    first = kernel_distance(real, fake, seed=7)
    after = np.random.random()
    np.random.seed(1)
    assert kernel_distance(real, fake, seed=7) == first  # bit-identical, not approximately
    assert np.random.random() == after  # the global generator is left as it was
    np.random.seed(99)
    assert kernel_distance(real, fake, seed=7) == first  # whatever state it was in before
    assert kernel_distance(real, fake, seed=8) != first


def test_a_smaller_image_run_is_compared_on_its_own_band_and_on_a_shared_one(tmp_path):
    from solargen.evaluate.metrics import match_resolution

    rng = np.random.default_rng(4)
    big = _smooth(rng.normal(size=(40, 64, 64)), 3.0)  # little power near the 64-px Nyquist
    small = big.reshape(40, 32, 2, 32, 2).mean((2, 4))  # the same frames block-averaged to 32 px
    _, pb = radial_power_spectrum(big)
    _, ps = radial_power_spectrum(small)
    pr, pf = match_resolution(pb, ps, "size")
    assert pf.shape == pr.shape == (40, 16)
    # The same images at half the resolution: no bias on their shared, well-resolved scales
    # (block-averaging damps the top of the small band a little: a sinc² of at most 0.4 dex).
    assert abs(spectral_bias(pr.mean(0), pf.mean(0), (0.0, 0.5))) < 0.05
    with pytest.raises(Exception, match="size"):
        match_resolution(pb, radial_power_spectrum(big[:, :48, :48])[1], "size")

    # Through evaluate_run: the band of a 32-px image's upper half, for both resolutions.
    real = png_folder(tmp_path / "real", list(0.5 + 2 * big[:20]))
    fake = png_folder(tmp_path / "small", list(0.5 + 2 * small[20:]))
    save_spectrum(real, tmp_path / "s.npz")
    out = evaluate_run(fake, {}, tmp_path / "s.npz", tmp_path / "m.json", tmp_path / "ms.npz", real_name="R",
                       fake_name="F", bias_sizes=(32,), out_features=tmp_path / "g.npz")
    rows = {r["metric"]: r["value"] for r in out["rows"]}
    assert rows["spectral_bias_high_32px"] == rows["spectral_bias_high"]  # its own upper half
    assert rows["spectral_bias_high_32px_ci95_low"] < rows["spectral_bias_high_32px"]
    full = png_folder(tmp_path / "full", list(0.5 + 2 * big[20:]))
    out = evaluate_run(full, {}, tmp_path / "s.npz", tmp_path / "m2.json", tmp_path / "ms2.npz", real_name="R",
                       fake_name="G", bias_sizes=(32,))
    rows2 = {r["metric"]: r["value"] for r in out["rows"]}
    assert abs(rows2["spectral_bias_high_32px"]) < 0.1 and rows2["spectral_bias_high_32px"] != rows2["spectral_bias_high"]
