"""The findings table (issue 21): every verdict kind from a fixture with known values and draws,
and the published study's own numbers (tests/data/published_inception_whole.csv: the
InceptionV3 whole-frame rows of ../shared/reference/published_results.csv, values unchanged)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from solargen.evaluate.bootstrap import save_draws
from solargen.report import findings
from solargen.report.tables import read_results

PUBLISHED = Path(__file__).parent / "data" / "published_inception_whole.csv"
REAL = "image_folder_64x64_synthetic"
DIFF = "diffusion_1000steps_train_250_steps_inference_58Ktraining"


def _published():
    return findings.Context(read_results(PUBLISHED), None, "inception_v3")


def test_the_published_fixture_has_the_studys_numbers():
    df = read_results(PUBLISHED)
    fid = df[df.metric == "fid"].set_index("run").value
    # study.md §3.1 and §5.2 (InceptionV3, 1024 px)
    for run, v in {"full_projectedgan": 2.37, "full_projectedgan_baseline": 5.41, "efficientnet-lite2": 4.07,
                   "efficientnet-lite3": 3.80, "augmentations_off": 4.19, "unfreeze_feature_network": 171.6,
                   DIFF: 15.27}.items():
        assert fid[run] == pytest.approx(v, abs=0.05)  # study.md rounds to 2-3 digits


def test_published_numbers_claims_1_to_8_hold_against_full_projectedgan():
    t = findings.findings_table(_published())
    main = t[t.baseline.isin(["full_projectedgan", ""])].set_index("claim")
    assert main.loc[1:8, "verdict"].tolist() == ["holds"] * 8
    assert (main.loc[1:8, "basis"] == "point values (no interval: no stored features)").all()
    # No spectra, no StyleGAN2, no conditional runs in the published file.
    assert main.loc[9:11, "verdict"].tolist() == ["not in this config"] * 3


def test_published_numbers_claims_5_and_6_reverse_against_the_same_budget_baseline():
    t = findings.findings_table(_published())
    same_budget = t[t.baseline == "full_projectedgan_baseline"].set_index("claim").verdict
    assert same_budget[5] == "reversed" and same_budget[6] == "reversed"  # lite2 4.07, lite3 3.80, no-aug 4.19 < 5.41
    assert same_budget[2] == "holds"


def _fixture(tmp_path):
    """Runs with known values; draws N(value, sd) so each interval is known."""
    rng = np.random.default_rng(0)
    n = 400
    spec = {  # (metric, run, net, crop): (value, sd)
        ("fid", "full_projectedgan", "efficientnet_lite0", ""): (3.0, 0.1),
        ("fid", "randomly_initialized_feature_network", "efficientnet_lite0", ""): (10.0, 0.1),   # 2: holds
        ("fid", "augmentations_off", "efficientnet_lite0", ""): (2.0, 0.1),                       # 6: reversed
        ("fid", "unfreeze_feature_network", "efficientnet_lite0", ""): (3.05, 1.0),               # 1: inconclusive
        ("precision", "unfreeze_feature_network", "efficientnet_lite0", ""): (0.01, 0.005),
        ("recall", "unfreeze_feature_network", "efficientnet_lite0", ""): (0.01, 0.005),
        ("fid", DIFF, "efficientnet_lite0", ""): (20.0, 0.5),
        ("spectral_bias_high", "stylegan2", "power_spectrum", ""): (-0.5, 0.05),                # 9: holds
        ("spectral_bias_high", DIFF, "power_spectrum", ""): (0.02, 0.03),
        ("spectral_bias_high", "full_projectedgan", "power_spectrum", ""): (0.0, 0.02),
        ("spectral_bias_above_x4_nyquist", "msdgan_l1_only", "power_spectrum", ""): (-0.6, 0.05),  # 11: holds
        ("spectral_bias_above_x4_nyquist", "msdgan", "power_spectrum", ""): (-0.1, 0.05),
        ("spectral_distance_above_x4_nyquist", "msdgan", "power_spectrum", ""): (0.1, 0.02),
        ("spectral_distance_above_x4_nyquist", "msdgan_discriminator_1", "power_spectrum", ""): (0.3, 0.02),
    }
    rows, draws = [], {}
    for (metric, run, net, crop), (v, sd) in spec.items():
        rows.append({"metric": metric, "value": v, "real": REAL, "fake": run, "net": net})
        draws[(metric, REAL, run, net)] = v + sd * rng.standard_normal(n)
    pd.DataFrame(rows).to_csv(tmp_path / "results.csv", index=False)
    save_draws(tmp_path / "bootstrap.npz", draws, n)
    return tmp_path / "results.csv", tmp_path / "bootstrap.npz"


def test_every_verdict_kind_from_a_fixture_with_known_intervals(tmp_path):
    results, draws = _fixture(tmp_path)
    t = findings.write_findings(results, tmp_path / "f.csv", tmp_path / "f.html", draws=draws,
                                not_converged={"augmentations_off": "radial profile error 0.31 > 0.1"})
    v = t.set_index("claim").verdict
    assert v[2] == "holds" and v[6] == "reversed" and v[1] == "inconclusive"
    assert v[3] == "not in this config" and v[4] == "not in this config" and v[10] == "not in this config"
    assert v[9] == "holds" and v[11] == "holds" and v[7] == "holds"
    row = t.set_index("claim").loc[2]
    assert row.basis == "bootstrap 95 % interval of the paired difference" and row.baseline == "full_projectedgan"
    assert "[" in row.measured  # the interval of the difference is shown
    assert "not sole evidence" in row.notes  # decided on the ProjectedGAN backbone's features
    assert "augmentations_off not converged (radial profile error 0.31" in t.set_index("claim").loc[6, "notes"]
    assert list(pd.read_csv(tmp_path / "f.csv").columns) == findings.COLUMNS
    page = (tmp_path / "f.html").read_text()
    assert "reversed" in page and "not in this config" in page and "±0.1 dex" in page


def test_absence_and_removal_verdicts_follow_their_stated_margins():
    def ctx(values):
        rows = [{"metric": m, "value": v, "real": REAL, "fake": r, "net": "power_spectrum", "run": r, "crop": ""}
                for (m, r), v in values.items()]
        return findings.Context(pd.DataFrame(rows), None, "x")

    absent = findings.Comparison("absence", "spectral_bias_high", "a")
    assert findings.judge(ctx({("spectral_bias_high", "a"): 0.05}), absent)["verdict"] == "holds"
    assert findings.judge(ctx({("spectral_bias_high", "a"): -0.3}), absent)["verdict"] == "reversed"
    assert findings.judge(ctx({("spectral_bias_high", "a"): 0.3}), absent)["verdict"] == "inconclusive"
    b = "spectral_bias_above_x4_nyquist"
    removes = findings.Comparison("removes", b, "l1", "full")
    assert findings.judge(ctx({(b, "l1"): -0.6, (b, "full"): -0.2}), removes)["verdict"] == "holds"
    assert findings.judge(ctx({(b, "l1"): -0.6, (b, "full"): -0.4}), removes)["verdict"] == "reversed"
    # No deficit to remove: nothing decided.
    assert findings.judge(ctx({(b, "l1"): 0.1, (b, "full"): 0.0}), removes)["verdict"] == "inconclusive"
    # A tie in point values decides nothing.
    less = findings.Comparison("less", b, "l1", "full")
    assert findings.judge(ctx({(b, "l1"): 1.0, (b, "full"): 1.0}), less)["verdict"] == "inconclusive"


def test_convergence_check_marks_a_run_that_has_not_learned_the_disk(tmp_path):
    from PIL import Image

    from solargen.evaluate.metrics import evaluate_run, radial_profile, save_spectrum
    from solargen.report.results import collect, not_converged
    from solargen.report.tables import ranking

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32]
    disk = ((yy - 15.5) ** 2 + (xx - 15.5) ** 2 < 144).astype(float) * 0.6 + 0.1

    def folder(name, imgs):
        (tmp_path / name).mkdir()
        for i, im in enumerate(imgs):
            Image.fromarray((np.clip(im, 0, 1) * 255).astype(np.uint8)).save(tmp_path / name / f"out_{i}.png")
        return tmp_path / name

    real = folder("real", [disk + 0.03 * rng.normal(size=(32, 32)) for _ in range(8)])
    save_spectrum(real, tmp_path / "s.npz")
    # The profile is a fraction of the half-side: the same disk at another resolution, the same profile.
    big = np.kron(disk, np.ones((2, 2)))
    assert np.abs(radial_profile(big[None], 16) - radial_profile(disk[None], 16)).max() < 0.05
    files = []
    for name, imgs in (("learned", [disk + 0.03 * rng.normal(size=(32, 32)) for _ in range(8)]),
                       ("noise", [rng.random((32, 32)) for _ in range(8)])):
        files.append(tmp_path / f"{name}.json")
        m = evaluate_run(folder(name, imgs), {}, tmp_path / "s.npz", files[-1], tmp_path / f"{name}.npz",
                         real_name="R", fake_name=name)
        assert m["convergence"]["converged"] == (name == "learned")
    collect(files, tmp_path / "results.csv", out_meta=tmp_path / "meta.csv")
    stale = not_converged(tmp_path / "meta.csv")
    assert list(stale) == ["noise"] and "radial intensity profile error" in stale["noise"]
    # No feature network here: FID rows by hand, the noise run "better" by FID.
    rows = pd.DataFrame([{"metric": "fid", "value": v, "real": "R", "fake": r, "net": "n", "run": r, "crop": ""}
                         for r, v in (("learned", 5.0), ("noise", 1.0))])
    rank = ranking(rows, not_converged=stale)
    assert rank.loc["noise", "converged"].startswith("not converged: radial") and rank.loc["learned", "converged"] == "yes"
