"""The study's tables and figures from a results.csv, and the comparison with a reference one."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from solargen.cli import main
from solargen.report import compare, tables

PUBLISHED = Path(__file__).resolve().parents[2] / "shared" / "reference" / "published_results.csv"
REAL = "image_folder_64x64_normalized_log_transform_193A_synthetic"

#: A small results.csv: three diffusion settings, two ProjectedGAN ablations, crops, spectra.
FIXTURE_FID = {
    "diffusion_1000steps_train_50_steps_inference_58Ktraining": 30.0,
    "diffusion_1000steps_train_250_steps_inference_58Ktraining": 12.0,
    "diffusion_250steps_train_250_steps_inference_58Ktraining": 20.0,
    "diffusion_1000steps_train_250_steps_inference_54Ktraining_no_random_flip": 25.0,
    "full_projectedgan": 3.0,
    "discriminator_1,2": 8.0,
}


@pytest.fixture
def results_csv(tmp_path):
    rows = []
    for i, (run, fid) in enumerate(FIXTURE_FID.items()):
        for net, scale in (("efficientnet_lite0", 1.0), ("random_inception_v3", 0.1)):
            rows.append(("fid", fid * scale, REAL, run, net))
            rows.append(("kid", fid * scale / 1000, REAL, run, net))
            rows.append(("precision", 1 - fid / 100, REAL, run, net))
            rows.append(("recall", 0.5, REAL, run, net))
        rows.append(("fid", fid / 2, f"{REAL}-CROPPED16", f"{run}-CROPPED16", "efficientnet_lite0"))
        rows.append(("spectral_distance_high", 0.1 * (i + 1), REAL, run, "power_spectrum"))
        rows.append(("spectral_distance_high_ci95_low", 0.1 * (i + 1) - 0.05, REAL, run, "power_spectrum"))
        rows.append(("spectral_distance_high_ci95_high", 0.1 * (i + 1) + 0.05, REAL, run, "power_spectrum"))
        rows.append(("spectral_distance", 0.2, REAL, run, "power_spectrum"))
    path = tmp_path / "results.csv"
    pd.DataFrame(rows, columns=["metric", "value", "real", "fake", "net"]).to_csv(path, index=False)
    return path


def test_tables_from_a_fixture(results_csv):
    df = tables.read_results(results_csv)
    assert tables.primary_net(df) == "efficientnet_lite0"  # no InceptionV3 here: the offline net, labelled
    rank = tables.ranking(df)
    assert list(rank.index[:2]) == ["full_projectedgan", "discriminator_1,2"]
    assert rank.loc["full_projectedgan", "family"] == "projectedgan" and (rank.net == "efficientnet_lite0").all()
    assert rank["rank"].tolist() == list(range(1, len(FIXTURE_FID) + 1))
    by_s = tables.fid_vs_sampling_steps(df)
    assert by_s.S.tolist() == [50, 250] and by_s.fid.tolist() == [30.0, 12.0]
    by_t = tables.fid_vs_training_steps(df)
    assert by_t["T"].tolist() == [250, 1000] and by_t.fid.tolist() == [20.0, 12.0]
    reg = tables.regularisation_table(df).set_index("regularisation").fid
    assert reg.to_dict() == {"Random horizontal flip": 12.0, "No regularization": 25.0}
    abl = tables.ablation_table(df)
    assert abl[["group", "run"]].values.tolist() == [["baseline", "full_projectedgan"],
                                                     ["discriminators", "discriminator_1,2"]]
    crops = tables.crop_table(df)
    assert crops.loc["full_projectedgan"].tolist() == [3.0, 1.5]
    spec = tables.spectral_table(df)
    assert spec.spectral_distance_high.is_monotonic_increasing and len(spec) == len(FIXTURE_FID)
    details = tables.metric_details(df)
    assert details.columns[0] == "fid/efficientnet_lite0" and "recall/random_inception_v3" in details.columns


def test_every_table_and_plot_renders_deterministically(results_csv, tmp_path):
    for kind in ("ranking", "diffusion_sampling", "diffusion_training", "regularisation", "ablations", "crops",
                 "metric_details", "spectral"):
        assert main(["table", kind, "--results", str(results_csv), "--out", str(tmp_path / f"{kind}.csv")]) == 0
        assert len(pd.read_csv(tmp_path / f"{kind}.csv")) > 0, kind
    digests = []
    for attempt in range(2):
        for kind in ("ranking", "diffusion", "spectral_distance"):
            out = tmp_path / f"{kind}_{attempt}.png"
            assert main(["plot", kind, "--results", str(results_csv), "--out", str(out)]) == 0
        digests.append([hashlib.sha256((tmp_path / f"{k}_{attempt}.png").read_bytes()).hexdigest()
                        for k in ("ranking", "diffusion", "spectral_distance")])
    assert digests[0] == digests[1]


def test_published_quirks_are_handled(tmp_path):
    # An empty net duplicating the inception_v3 row, a crop name with quoted commas, a dash in the run.
    csv = tmp_path / "pub.csv"
    csv.write_text(
        "metric,value,real,fake,net\n"
        "fid,2.5,R,full_projectedgan,inception_v3\n"
        "fid,2.5,R,full_projectedgan,\n"
        'fid,1.0,"R-CROPPED299CS_0.1,1_CR_1,1","efficientnet-lite1-CROPPED299CS_0.1,1_CR_1,1",inception_v3\n'
    )
    df = tables.read_results(csv)
    assert len(df) == 2 and set(df.net) == {"inception_v3"}
    crop = df[df.crop != ""].iloc[0]
    assert crop.run == "efficientnet-lite1" and crop.crop == "CROPPED299CS_0.1,1_CR_1,1"
    with pytest.raises(ValueError, match="not a results.csv"):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        tables.read_results(tmp_path / "bad.csv")


def test_comparison_ranks_and_scale_note(results_csv):
    ours = tables.read_results(results_csv)
    ref = ours.assign(real=ours.real.str.replace("64x64", "1024x1024"))
    both = compare.side_by_side(ours, ref)
    agree = compare.ranking_agreement(both).set_index(["metric", "net", "crop"])
    assert agree.loc[("fid", "efficientnet_lite0", ""), "spearman_rho"] == pytest.approx(1.0)
    reversed_ref = ref.assign(value=-ref.value)
    agree = compare.ranking_agreement(compare.side_by_side(ours, reversed_ref)).set_index(["metric", "net", "crop"])
    assert agree.loc[("fid", "efficientnet_lite0", ""), "spearman_rho"] == pytest.approx(-1.0)
    assert "Scales differ" in compare.scale_note(ours, ref) and "64 px" in compare.scale_note(ours, ref)
    assert "comparable" in compare.scale_note(ours, ours)


@pytest.mark.skipif(not PUBLISHED.exists(), reason=f"the published results.csv is not at {PUBLISHED}")
def test_published_numbers_are_the_notebooks():
    """The tables rebuilt from the authors' file give the numbers of their notebook (study.md §5)."""
    df = tables.read_results(PUBLISHED)
    assert tables.primary_net(df) == "inception_v3"
    rank = tables.ranking(df)
    assert rank.index[0] == "full_projectedgan" and rank.fid.iloc[0] == pytest.approx(2.37, abs=0.01)
    assert len(rank) == 39
    np.testing.assert_allclose(tables.fid_vs_sampling_steps(df).fid, [26.7, 16.3, 15.3, 15.8], atol=0.05)
    by_t = tables.fid_vs_training_steps(df)
    np.testing.assert_allclose(by_t.fid, [44.9, 16.2, 15.3, 26.6], atol=0.05)
    reg = tables.regularisation_table(df).set_index("regularisation").fid
    np.testing.assert_allclose(reg[["Random horizontal flip", "Dropout=0.3", "No regularization",
                                    "Random h-flip + reduced capacity"]], [15.3, 25.4, 28.1, 43.3], atol=0.05)
    assert len(tables.ablation_table(df)) == 16
    np.testing.assert_allclose(tables.crop_table(df).loc["full_projectedgan", ["CROPPED64", "CROPPED128", "CROPPED256"]],
                               [1.01, 0.84, 0.97], atol=0.005)


def test_spectrum_figure_tells_every_run_apart(tmp_path):
    """The small study plots 12 runs: with tab10 alone two pairs of runs shared a colour."""
    from solargen.report.figures import line_styles, spectrum_figure

    styles = line_styles(40)
    assert len({(s["color"], s["ls"]) for s in styles}) == 40
    k = np.arange(1, 9)
    np.savez(tmp_path / "real.npz", k=k, power=np.ones((3, 8)))
    runs = {}
    for i in range(12):
        np.savez(tmp_path / f"r{i}.npz", k=k, power=np.full((3, 8), 1.0 + i))
        runs[f"run{i}"] = tmp_path / f"r{i}.npz"
    spectrum_figure(tmp_path / "real.npz", runs, tmp_path / "spectrum.png")
    assert (tmp_path / "spectrum.png").stat().st_size > 0


def test_aia193_colour_map_is_sunpys(tmp_path):
    """The sample grids' stored AIA 193 map maps every grey level to sunpy's ``sdoaia193`` colour
    (a sunpy release that changes the map fails here: re-save ``report/sdoaia193.npy``), and a run's
    grid is drawn without importing sunpy (its import was most of a grid job's CPU time)."""
    import subprocess
    import sys

    import matplotlib
    import sunpy.visualization.colormaps  # noqa: F401

    from solargen.report.figures import _aia_cmap

    grey = np.arange(256) / 255
    assert np.array_equal(_aia_cmap()(grey), matplotlib.colormaps["sdoaia193"](grey))

    from PIL import Image

    (tmp_path / "s").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / "s" / f"out_{i}.png")
    code = ("import sys; from solargen.report.figures import run_grid; "
            f"run_grid({str(tmp_path / 's')!r}, {str(tmp_path / 'g.png')!r}); "
            "assert 'sunpy' not in sys.modules, 'sunpy imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert (tmp_path / "g.png").stat().st_size > 0
