"""Bootstrap intervals from stored features/spectra (issue 21): FID in sample space, coverage on a
case with a known answer, paired differences that share the real resample, the on-disk files."""

import numpy as np
import pandas as pd
import pytest

from helpers import png_folder
from solargen.evaluate import bootstrap as bs
from solargen.evaluate.distances import frechet_distance
from solargen.evaluate.features import save_features
from solargen.evaluate.metrics import evaluate_run, save_spectrum
from solargen.evaluate.spectrum import spectral_bias

HIGH = {"spectral_bias_high": (spectral_bias, (0.5, 1.0))}


def test_sample_space_fid_equals_the_frechet_distance():
    rng = np.random.default_rng(0)
    for n, m, d in ((12, 9, 64), (40, 30, 8)):   # fewer and more samples than dimensions
        a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
        b = rng.normal(size=(m, d)) @ rng.normal(size=(d, d)) + 0.5
        assert bs.fid_fast(a, b) == pytest.approx(frechet_distance(a, b)[0], rel=1e-6)


def test_runs_sharing_the_real_resamples_get_the_same_draws_bit_for_bit(monkeypatch):
    """`bootstrap_runs` keeps each real set's resample terms (KID's real sums, the k-NN radii)
    for the next run: every draw equals the one computed alone, to the last bit, and the real
    terms are computed once per resample and fake-set size, not once per run."""
    rng = np.random.default_rng(7)
    real = rng.normal(size=(30, 64))
    fakes = [rng.normal(0.2 * i, 1, size=(n, 64)) for i, n in enumerate((20, 20, 12))]
    ri = bs.resample_indices(2, "real", 30, 4)
    alone = [bs.feature_draws(real, f, ri, bs.resample_indices(2, f"f{i}", len(f), 4), 3) for i, f in enumerate(fakes)]
    calls = []
    real_sums = bs.kid_real_sums
    monkeypatch.setattr(bs, "kid_real_sums", lambda *a, **k: calls.append(1) or real_sums(*a, **k))
    cache = {}
    shared = [bs.feature_draws(real, f, ri, bs.resample_indices(2, f"f{i}", len(f), 4), 3, real_cache=cache)
              for i, f in enumerate(fakes)]
    for a, s in zip(alone, shared):
        for m in ("fid", "kid", "precision", "recall"):
            assert a[m].tobytes() == s[m].tobytes(), m
    assert len(calls) == 4 * 2  # 4 resamples × 2 fake-set sizes (KID's subsets depend on it)


def test_kid_from_precomputed_kernels_is_clean_fids_kid_of_the_resample(monkeypatch):
    from solargen.evaluate.distances import kernel_distance

    rng = np.random.default_rng(5)
    real, fake = rng.normal(size=(30, 64)), rng.normal(0.3, 1, size=(20, 64))
    kernels = bs.polynomial_kernels(real, fake)
    ri, fi = bs.resample_indices(1, "r", 30, 3), bs.resample_indices(1, "f", 20, 3)
    for b in range(3):
        assert bs.kid_from_kernels(*kernels, ri[b], fi[b], seed=b) == pytest.approx(
            kernel_distance(real[ri[b]], fake[fi[b]], seed=b), rel=1e-10, abs=1e-14)
    # Sets too large for the kernel matrices fall back to clean-fid per resample: the same draws.
    fast = bs.feature_draws(real, fake, ri, fi, 3)
    monkeypatch.setattr(bs, "KERNEL_BYTES", 0)
    slow = bs.feature_draws(real, fake, ri, fi, 3)
    np.testing.assert_allclose(slow["kid"], fast["kid"], rtol=1e-10)
    # Precision/recall read from the full sets' distances equal those recomputed per resample.
    for m in ("precision", "recall"):
        np.testing.assert_array_equal(slow[m], fast[m])


def test_kid_subsets_summed_together_equal_the_loop_in_chunks(monkeypatch):
    """Resample sizes above clean-fid's 1000-sample cap draw proper subsets; the chunked sum
    (KID_GATHER entries at a time) gives clean-fid's value."""
    from solargen.evaluate.distances import kernel_distance

    rng = np.random.default_rng(6)
    real, fake = rng.normal(size=(40, 16)), rng.normal(0.2, 1, size=(50, 16))
    kernels = bs.polynomial_kernels(real, fake)
    ri, fi = bs.resample_indices(2, "r", 40, 1)[0], bs.resample_indices(2, "f", 50, 1)[0]
    monkeypatch.setattr(bs, "KID_GATHER", 30 * 30 * 3)  # 3 subsets per chunk, the last one short
    ours = bs.kid_from_kernels(*kernels, ri, fi, seed=4, num_subsets=10, max_subset_size=30)
    state = np.random.get_state()
    np.random.seed(4)
    from cleanfid import fid

    ref = fid.kernel_distance(real[ri], fake[fi], num_subsets=10, max_subset_size=30)
    np.random.set_state(state)
    assert ours == pytest.approx(ref, rel=1e-10)


def test_kid_subsets_kept_between_draws_give_the_same_kid(monkeypatch):
    """The subsets are kept by (seed, set sizes): draws of a second feature set and of a run of
    another size equal those drawn afresh, bit for bit; the store stays within its byte bound and
    the global generator is left as it was."""
    rng = np.random.default_rng(7)
    real = rng.normal(size=(30, 8))
    fakes = [rng.normal(0.2, 1, size=(20, 8)), rng.normal(size=(20, 8)), rng.normal(size=(25, 8))]
    ri = bs.resample_indices(0, "r", 30, 6)

    def draws():
        return [bs.kid_from_kernels(*bs.polynomial_kernels(real, f), ri[b], fi[b], seed=b)
                for f in fakes for fi in [bs.resample_indices(0, f"f{len(f)}", len(f), 6)] for b in range(6)]

    monkeypatch.setattr(bs, "_kid_subsets", {})
    monkeypatch.setattr(bs, "KID_SUBSETS_BYTES", 0)  # nothing kept: every draw permutes afresh
    fresh = draws()
    assert bs._kid_subsets == {}
    monkeypatch.setattr(bs, "KID_SUBSETS_BYTES", 256 * 1024 ** 2)
    state = np.random.get_state()[1].copy()
    assert draws() == fresh
    assert len(bs._kid_subsets) == 12  # 6 seeds × 2 fake sizes (20 and 25)
    assert draws() == fresh  # now all from the store
    np.testing.assert_array_equal(np.random.get_state()[1], state)
    one = sum(a.nbytes + b.nbytes for a, b in bs._kid_subsets.values()) // 12
    monkeypatch.setattr(bs, "_kid_subsets", {})
    monkeypatch.setattr(bs, "KID_SUBSETS_BYTES", 3 * one)
    assert draws() == fresh
    assert len(bs._kid_subsets) == 3


def _spectra(rng, n, ratio, k=16, s=0.5):
    base = 1.0 / np.arange(1, k + 1) ** 2
    return np.exp(rng.normal(0, s, (n, k))) * base * ratio


def test_interval_covers_a_known_bias_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    ratio = np.where(np.arange(16) >= 8, 0.5, 1.0)   # half the power in the upper band
    truth = np.log10(0.5)                            # E of both sets scale alike: the bias is exact
    hits, reps = 0, 300
    for rep in range(reps):
        pr, pf = _spectra(rng, 30, 1.0), _spectra(rng, 30, ratio)
        ri, fi = bs.resample_indices(rep, "real", 30, 300), bs.resample_indices(rep, "fake", 30, 300)
        d = bs.spectral_draws(pr, pf, ri, fi, HIGH)["spectral_bias_high"]
        lo, hi = np.quantile(d, [0.025, 0.975])
        hits += lo <= truth <= hi
    # Binomial(300, 0.95) has sd 1.3 %: a broken interval (too narrow by half, or off-centre) fails.
    assert 0.90 <= hits / reps <= 0.99


def test_paired_difference_covers_the_known_difference_and_shares_the_real_resample():
    rng = np.random.default_rng(2)
    ra, rb = np.where(np.arange(16) >= 8, 0.5, 1.0), np.where(np.arange(16) >= 8, 0.8, 1.0)
    truth = np.log10(0.5) - np.log10(0.8)
    hits, reps, widths = 0, 200, []
    for rep in range(reps):
        pr = _spectra(rng, 30, 1.0, s=1.0)  # a noisy real set: its variation must cancel in a − b
        pa, pb = _spectra(rng, 30, ra, s=0.3), _spectra(rng, 30, rb, s=0.3)
        ri = bs.resample_indices(rep, "real:spectrum", 30, 300)
        da = bs.spectral_draws(pr, pa, ri, bs.resample_indices(rep, "fake:a:spectrum", 30, 300), HIGH)
        db = bs.spectral_draws(pr, pb, ri, bs.resample_indices(rep, "fake:b:spectrum", 30, 300), HIGH)
        lo, hi = bs.paired_interval(da["spectral_bias_high"], db["spectral_bias_high"])
        hits += lo <= truth <= hi
        # Unpaired (each run its own real resample): the real set's variation counted twice.
        ri2 = bs.resample_indices(rep, "another real stream", 30, 300)
        db2 = bs.spectral_draws(pr, pb, ri2, bs.resample_indices(rep, "fake:b:spectrum", 30, 300), HIGH)
        lo2, hi2 = bs.paired_interval(da["spectral_bias_high"], db2["spectral_bias_high"])
        widths.append((hi - lo) / (hi2 - lo2))
    assert 0.90 <= hits / reps <= 0.99
    assert np.median(widths) < 0.6



def test_results_ci_from_stored_features_without_recomputing(tmp_path, monkeypatch):
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:32, :32]
    disk = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 144).astype(float) * 0.6
    real = png_folder(tmp_path / "real", [disk + 0.05 * rng.normal(size=(32, 32)) for _ in range(10)])
    save_features(real, "efficientnet_lite0", tmp_path / "f.npz")
    save_spectrum(real, tmp_path / "s.npz")
    metrics, gen = [], []
    for name, noise in (("good", 0.05), ("bad", 0.3)):
        fake = png_folder(tmp_path / name, [disk + noise * rng.normal(size=(32, 32)) for _ in range(8)])
        evaluate_run(fake, {"efficientnet_lite0": tmp_path / "f.npz"}, tmp_path / "s.npz", tmp_path / f"{name}.json",
                     tmp_path / f"{name}_s.npz", real_name="R", fake_name=name, seed=0,
                     out_features=tmp_path / f"{name}_g.npz")
        metrics.append(tmp_path / f"{name}.json")
        gen.append(tmp_path / f"{name}_g.npz")
    feats, power, _, _, _ = bs.load_generated(gen[0])
    assert feats["efficientnet_lite0"].shape[0] == 8 and power[""].shape == (8, 16)

    # Nothing is recomputed from images: the feature network must not be called.
    import solargen.evaluate.features as features
    monkeypatch.setattr(features, "folder_features", lambda *a, **k: pytest.fail("features recomputed"))
    args = (metrics, gen, {"efficientnet_lite0": tmp_path / "f.npz"}, tmp_path / "s.npz", [])
    ci = bs.bootstrap_runs(*args, tmp_path / "ci.csv", tmp_path / "draws.npz", n_boot=50, seed=4)
    assert list(pd.read_csv(tmp_path / "ci.csv").columns) == bs.CI_COLUMNS
    assert {"fid", "kid", "precision", "recall", "spectral_bias_high", "spectral_distance_high"} <= set(ci.metric)
    fid = ci[ci.metric == "fid"].set_index("fake")
    assert (fid.ci95_low <= fid.value * 1.5).all() and (fid.ci95_low < fid.ci95_high).all()
    # Seeded: the same call gives the same intervals.
    again = bs.bootstrap_runs(*args, tmp_path / "ci2.csv", tmp_path / "draws2.npz", n_boot=50, seed=4)
    pd.testing.assert_frame_equal(ci, again)
    draws = bs.load_draws(tmp_path / "draws.npz")
    good, bad = draws[("fid", "R", "good", "efficientnet_lite0")], draws[("fid", "R", "bad", "efficientnet_lite0")]
    assert len(good) == 50
    lo, hi = bs.paired_interval(good, bad)
    assert hi < 0  # the noisy run is clearly worse
    with pytest.raises(Exception, match="2 metrics files but 1"):
        bs.bootstrap_runs(metrics, gen[:1], *args[2:], tmp_path / "x.csv", tmp_path / "x.npz")
