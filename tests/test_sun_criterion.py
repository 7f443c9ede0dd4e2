"""The per-sample 'draws the Sun' criterion (issue #22): profiles, the real-spread threshold, verdicts."""

import numpy as np
import pytest

from solargen.evaluate.sun_criterion import (RUN_FRACTION, fraction_interval, main, radial_profiles, real_threshold,
                                             sun_criterion)


def _suns(n, rng, size=64, radius=0.62, jitter=0.03):
    """Disks (radius as a fraction of the half-side) with a faint corona and random brightness."""
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2) / (size / 2)
    out = []
    for _ in range(n):
        rad = radius * (1 + jitter * rng.standard_normal())
        disk = np.where(r <= rad, 0.55 + 0.05 * rng.standard_normal(), 0.25 * np.exp(-(r - rad) / 0.1))
        out.append(np.clip(disk + 0.02 * rng.standard_normal((size, size)), 0, 1))
    return np.array(out)


def test_profiles_of_a_constant_image_and_the_binning():
    p = radial_profiles(np.full((2, 16, 16), 0.3))
    assert p.shape == (2, 32) and np.allclose(p[:, p[0] > 0], 0.3)
    with pytest.raises(ValueError, match="N, H, W"):
        radial_profiles(np.zeros((16, 16)))


def test_threshold_is_the_largest_leave_one_out_distance():
    prof = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    # frame 0 vs mean(1, 2) = 1.5; frame 1 vs 1.0 = 0; frame 2 vs 0.5 = 1.5
    assert real_threshold(prof) == pytest.approx(1.5)
    with pytest.raises(ValueError, match="at least 2"):
        real_threshold(prof[:1])


def test_fraction_interval_is_clopper_pearson_and_covers():
    from scipy.stats import beta

    # the exact interval's closed form: beta quantiles at α/2 and 1 − α/2
    for k, n in [(26, 32), (29, 32), (230, 256), (1, 8)]:
        lo, hi = fraction_interval(k, n)
        assert lo == pytest.approx(beta.ppf(0.025, k, n - k + 1)) and hi == pytest.approx(beta.ppf(0.975, k + 1, n - k))
    assert fraction_interval(0, 10)[0] == 0 and fraction_interval(10, 10)[1] == 1
    # it covers a true rate at the verdict's bar at least 95 % of the time at the demo's 32 samples
    rng = np.random.default_rng(3)
    draws = rng.binomial(32, RUN_FRACTION, size=2000)
    cover = np.mean([lo <= RUN_FRACTION <= hi for lo, hi in (fraction_interval(int(k), 32) for k in draws)])
    assert cover >= 0.94, cover
    with pytest.raises(ValueError, match="33 passed of 32"):
        fraction_interval(33, 32)


def test_new_suns_pass_and_blobs_blanks_and_noise_fail():
    rng = np.random.default_rng(0)
    real = _suns(48, rng)
    res = sun_criterion(real, _suns(32, rng))
    assert res["fraction"] >= RUN_FRACTION and res["draws_the_sun"]
    size = 64
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - 31.5, xx - 31.5) / 32
    blob = np.clip(1.6 * np.exp(-(r / 0.45) ** 2), 0, 1)            # saturated blob, no limb
    shifted = np.roll(_suns(1, rng)[0], 14, axis=1)                  # a sun off-centre
    bad = {"blob": blob, "blank": np.full((size, size), 0.3), "noise": rng.random((size, size)),
           "small_sun": _suns(1, rng, radius=0.35)[0], "shifted": shifted}
    for name, img in bad.items():
        out = sun_criterion(real, np.repeat(img[None], 4, 0))
        assert out["passed"] == 0 and not out["draws_the_sun"], (name, out["median_distance"], out["threshold"])
    # a run of mostly suns with a few blobs: the verdict follows RUN_FRACTION
    mix = np.concatenate([_suns(27, rng), np.repeat(blob[None], 5, 0)])
    out = sun_criterion(real, mix)
    assert out["passed"] <= 27 and not out["draws_the_sun"]


def test_a_mean_profile_can_match_while_no_sample_draws_the_sun():
    # half the samples a doubled-brightness mean sun, half black: together they average to the real
    # mean profile (the run-level check's 0.1 tolerance is met), yet no single sample is a Sun
    rng = np.random.default_rng(1)
    real = _suns(32, rng)
    m = real.mean(0)
    split = np.stack([np.clip(2 * m, 0, 1), np.zeros_like(m)] * 8)  # mean ≈ the real mean
    out = sun_criterion(real, split)
    assert np.abs(radial_profiles(split).mean(0) - radial_profiles(real).mean(0)).mean() < 0.1
    assert out["passed"] == 0


def test_command_reads_folders_and_refuses_mismatched_sizes(tmp_path, capsys):
    from PIL import Image

    rng = np.random.default_rng(2)
    for name, imgs in {"real": _suns(8, rng, size=64), "samples": _suns(4, rng, size=32)}.items():
        (tmp_path / name).mkdir()
        for i, im in enumerate(imgs):
            Image.fromarray((im * 255).round().astype(np.uint8)).save(tmp_path / name / f"out_{i}.png")
    assert main(["--real", str(tmp_path / "real"), "--samples", str(tmp_path / "samples"),
                 "--out", str(tmp_path / "c.json")]) == 0  # real 64 px block-averaged to 32
    import json

    res = json.loads((tmp_path / "c.json").read_text())
    assert res["n_real"] == 8 and res["n_samples"] == 4 and "draw the Sun" in capsys.readouterr().err
    with pytest.raises(ValueError, match="sizes differ"):
        sun_criterion(np.zeros((3, 8, 8)), np.zeros((2, 16, 16)))


def test_evaluation_records_the_criterion_as_the_command_computes_it(tmp_path):
    """evaluate_run scores unconditional runs with the stored real profiles, at the samples' size
    (block-averaged real frames for smaller samples), with the command line's numbers; results_meta
    gets the columns; a real spectrum without the profiles (an older file) leaves them empty."""
    import json

    import pandas as pd
    from PIL import Image

    from solargen.evaluate.metrics import evaluate_run, save_spectrum
    from solargen.report.results import collect

    rng = np.random.default_rng(7)

    def folder(name, imgs):
        (tmp_path / name).mkdir()
        for i, im in enumerate(imgs):
            Image.fromarray((im * 255).round().astype(np.uint8)).save(tmp_path / name / f"out_{i}.png")
        return tmp_path / name

    real = folder("real", _suns(12, rng, size=32))
    save_spectrum(real, tmp_path / "s.npz")
    blobs = np.clip(_suns(3, rng, size=16, radius=0.3) * 1.6, 0, 1)
    runs = {"full": _suns(10, rng, size=32), "half": np.concatenate([_suns(7, rng, size=16), blobs])}
    files = []
    for name, imgs in runs.items():
        samples = folder(name, imgs)
        files.append(tmp_path / f"{name}.json")
        m = evaluate_run(samples, {}, tmp_path / "s.npz", files[-1], tmp_path / f"{name}.npz",
                         real_name="R", fake_name=name)
        main(["--real", str(real), "--samples", str(samples), "--out", str(tmp_path / f"{name}_cli.json")])
        cli = json.loads((tmp_path / f"{name}_cli.json").read_text())
        assert m["sun_fraction"] == pytest.approx(cli["fraction"]) and m["sun_pass"] == cli["draws_the_sun"]
        assert m["sun_criterion"]["threshold"] == pytest.approx(cli["threshold"])
    assert m["sun_fraction"] == pytest.approx(0.7) and m["sun_pass"] is False  # 3 blobs of 10
    collect(files, tmp_path / "results.csv", out_meta=tmp_path / "meta.csv")
    meta = pd.read_csv(tmp_path / "meta.csv", dtype={"sun_pass": str}).set_index("fake")
    assert meta.loc["half", "sun_fraction"] == pytest.approx(0.7) and meta.loc["half", "sun_pass"] == "no"
    assert (meta.loc["half", "sun_fraction_lo"], meta.loc["half", "sun_fraction_hi"]) == pytest.approx(fraction_interval(7, 10))
    assert (meta["sun_fraction_lo"] <= meta["sun_fraction"]).all() and (meta["sun_fraction"] <= meta["sun_fraction_hi"]).all()
    assert meta.loc["full", "sun_pass"] == ("yes" if json.loads(files[0].read_text())["sun_pass"] else "no")
    # A real spectrum made before the criterion: no verdict, an empty cell, nothing else lost.
    with np.load(tmp_path / "s.npz") as z:
        np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if not k.startswith("sun_profiles")})
    m = evaluate_run(tmp_path / "full", {}, tmp_path / "old.npz", tmp_path / "old.json", tmp_path / "o.npz",
                     real_name="R", fake_name="full")
    assert m["sun_fraction"] is None and m["sun_pass"] is None and m["rows"]
    collect([tmp_path / "old.json"], tmp_path / "r2.csv", out_meta=tmp_path / "meta2.csv")
    old_meta = pd.read_csv(tmp_path / "meta2.csv", keep_default_na=False).loc[0]
    assert old_meta["sun_pass"] == "" and old_meta["sun_fraction_lo"] == old_meta["sun_fraction_hi"] == ""
