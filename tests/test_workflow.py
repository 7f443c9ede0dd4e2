"""The workflow as a user drives it: config validation, the paper DAG, one end-to-end CI run."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from helpers import ROOT, ci_config, smk


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["data"].update(reslution=c["data"].pop("resolution")), "'reslution' was unexpected"),
    (lambda c: c["data"].update(resolution=-32), "-32 is less than the minimum of 8"),
    (lambda c: next(iter(c["models"].values())).update(family="gan"), "'gan' is not one of ['diffusion', 'projectedgan', 'stylegan2', 'msdgan', 'bicubic']"),
    (lambda c: next(iter(c["runs"].values())).update(model="nosuch"), "'nosuch' is not a key of models"),
    (lambda c: next(iter(c["models"].values())).update(image_size=24), "must divide data.resolution"),
    (lambda c: c["runs"]["msdgan"].pop("train_steps"), "runs.msdgan.train_steps is required"),
    (lambda c: c["models"]["msdgan"].update(lambda_l1=-1), "-1 is less than the minimum of 0"),
    (lambda c: c["models"]["full_projectedgan"].update(ablation="no_such_ablation"),
     "models.full_projectedgan: unknown ProjectedGAN ablation 'no_such_ablation'"),
    (lambda c: c["models"]["full_projectedgan"].update(ablation="discriminator_1", num_discs=3),
     "ablation 'discriminator_1' sets num_discs = 1, but the model entry sets num_discs = 3"),
    (lambda c: c["models"]["full_projectedgan"].update(diffaug="colour"), "'colour' does not match"),
])
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path, edit, message):
    r = smk("-n", "--configfile", str(ci_config(tmp_path, edit)), check=False)
    assert r.returncode != 0
    assert message in r.stdout + r.stderr
    assert "rule " not in r.stdout  # no job was even scheduled


JUWELS_ENV = {"JUWELS_ACCOUNT": "testproject", "JUWELS_PARTITION": "booster"}


def test_paper_dag_dry_runs_with_the_juwels_profile():
    r = smk("-n", "--profile", "profiles/juwels", env=JUWELS_ENV)
    out = r.stdout
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    runs = cfg["runs"]
    families = {r: cfg["models"][v["model"]]["family"] for r, v in runs.items()}
    assert sum(f == "diffusion" for f in families.values()) == 23
    assert sum(f == "msdgan" for f in families.values()) == 8 and families["bicubic"] == "bicubic"
    # The baseline at two budgets, the study's 14 ablations and the StyleGAN2-D arm; two StyleGAN2 runs.
    assert sum(f == "projectedgan" for f in families.values()) == 17
    assert sum(f == "stylegan2" for f in families.values()) == 2
    # Lite3's weights ship in no wheel: without the configured file its run is left out, saying why.
    assert "model efficientnet-lite3 is not run" in out + r.stderr
    for run, fam in families.items():
        assert (f"results/paper/runs/{fam}/{run}/metrics.json" in out) == (run != "efficientnet-lite3")
    assert "gres=gpu:4" in out and "slurm_partition=booster" in out
    # The 100K run continues the 58K training rather than starting over.
    assert ("input: results/paper/data/dataset.h5, results/paper/models/diffusion/"
            "diffusion_125t_lr0.0001_128ch_2bpr_horiz_flip/checkpoints/step0058000.pt") in out


def test_job_independent_profile_resources_are_evaluated_once_not_per_job():
    """A profile resource expression naming none of the job's variables has one value for every job,
    so common.smk evaluates it once (the paper dry run spent ~1 ms per such value per job); one
    naming the job (here `attempt`) is still evaluated for each job, and both reach the jobs."""
    r = smk("-n", "--profile", "profiles/juwels", "--configfile", "config/ci.yaml", "--set-resources",
            "calibrate:once=print('EVAL-ONCE') or 'x'", "calibrate:each=print('EVAL-EACH') or attempt",
            env=JUWELS_ENV)
    printed = (r.stdout + r.stderr).splitlines()  # each evaluation prints one line (the command echo is longer)
    jobs = sum(line.startswith("rule calibrate:") for line in r.stdout.splitlines())
    assert jobs >= 2
    assert printed.count("EVAL-ONCE") == 1
    assert printed.count("EVAL-EACH") >= jobs
    calibrate = [line for line in r.stdout.splitlines() if "each=1" in line]
    assert len(calibrate) == jobs and all("once=x" in line for line in calibrate)


@pytest.mark.parametrize("run", [
    "diffusion/diffusion_1000steps_train_50_steps_inference_58Ktraining",
    # Names with "," and "+" are targets as they stand.
    "projectedgan/discriminator_1,2",
    "projectedgan/unfreeze_feature_network+trainable_projections",
])
def test_a_single_run_is_a_target(run):
    target = f"results/paper/runs/{run}/metrics.json"
    r = smk("-n", "--profile", "profiles/juwels", target, env=JUWELS_ENV)
    assert "sample " in r.stdout and "evaluate " in r.stdout
    # Only that run is sampled (in its configured number of chunks), from one training.
    stats = {tuple(line.split()[:1]): line.split()[1:] for line in r.stdout.split("Job stats:")[1].splitlines()}
    chunks = yaml.safe_load((ROOT / "config/config.yaml").read_text())["evaluation"]["sample_chunks"]
    assert stats[("sample",)] == [str(chunks)] and stats[("gather_samples",)] == ["1"]
    assert stats[("train",)] == ["1"] and stats[("evaluate",)] == ["1"]


def test_the_longest_chain_is_scheduled_first():
    """On few cores the scheduler starts the model whose runs sample longest (the demo's diffusion:
    a network call per sampling step) before the GANs, and its longest sampling first, so that
    chain does not end the workflow alone on one core; what every evaluation waits for comes next."""
    r = smk("-n", "--configfile", "config/demo.yaml", "--cores", "2")
    prio = {}
    for job in re.split(r"\n(?=\[)", r.stdout):  # one block per job, each from its time stamp
        rule = next((line.split()[-1].rstrip(":") for line in job.splitlines() if line.startswith(("rule ", "localrule "))), None)
        wc = next((line.split(":", 1)[1].strip() for line in job.splitlines() if line.strip().startswith("wildcards:")), "")
        p = next((float(line.split(":")[1]) for line in job.splitlines() if line.strip().startswith("priority:")), 0.0)
        if rule in ("train", "sample", "feature_train", "real_features", "evaluate"):
            prio[(rule, wc)] = p
    cfg = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    longest = max(cfg["runs"], key=lambda r: cfg["runs"][r].get("sampling_steps", 1))
    model = cfg["runs"][longest]["model"]
    train = {wc: p for (rule, wc), p in prio.items() if rule == "train"}
    sample = {wc: p for (rule, wc), p in prio.items() if rule == "sample"}
    first_train = max(train, key=train.get)
    assert f"model={model}," in first_train and sorted(train.values())[-2] < train[first_train]
    first_sample = max(sample, key=sample.get)
    assert f"run={longest}," in first_sample and sorted(sample.values())[-2] < sample[first_sample]
    assert len(sample) == len(cfg["runs"])  # one sampling job per run (evaluation.sample_chunks: 1)
    # Every evaluation waits for the real features of all networks: those (and the solar networks'
    # training) come before the GANs' trainings, so evaluations interleave with training.
    gates = [p for (rule, _), p in prio.items() if rule in ("feature_train", "real_features")]
    gan_trains = [p for wc, p in train.items() if wc != first_train]
    assert len(gates) == 2 + len(cfg["evaluation"]["nets"]) and min(gates) > max(gan_trains)
    assert min(p for (rule, _), p in prio.items() if rule == "evaluate") > 0


PUBLISHED = ROOT.parent / "shared" / "reference" / "published_results.csv"


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _check_report_in_a_browser(html: Path, sections):
    """Render the report in headless Chromium: its navigation lists every section (only the
    rendered DOM has them as elements), and a screenshot is written beside it to look at."""
    browser = _chromium()
    if not browser:
        print("headless Chromium not found (apt-get install chromium): report not rendered in a browser")
        return
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000"]
    dom = subprocess.run([*args, "--dump-dom", html.as_uri()], capture_output=True, text=True, timeout=120).stdout
    for s in sections:
        assert f">{s}<" in dom, f"section {s} not rendered in the report"
    shot = html.with_suffix(".png")
    subprocess.run([*args, "--window-size=1400,1000", f"--screenshot={shot}", html.as_uri()],
                   capture_output=True, timeout=120)
    from PIL import Image

    assert np.asarray(Image.open(shot).convert("L")).std() > 10  # not a blank page


@pytest.mark.slow
def test_end_to_end_ci_study():
    name = "pytest_e2e"
    out = ROOT / "results" / name
    shutil.rmtree(out, ignore_errors=True)
    # The published results (when this checkout has them beside it) exercise the comparison.
    config = [f"name={name}"] + ([f"reference_results={PUBLISHED}"] if PUBLISHED.exists() else [])
    smk("--profile", "profiles/ci", "--config", *config)
    df = pd.read_csv(out / "results.csv")
    assert list(df.columns) == ["metric", "value", "real", "fake", "net"]
    runs = yaml.safe_load((ROOT / "config/ci.yaml").read_text())["runs"]
    # Lite3 has no weights here: not run, and said so in not_run.csv.
    not_run = pd.read_csv(out / "not_run.csv")
    assert "efficientnet-lite3" in set(not_run.fake)
    # So do the standard FID Inception's metrics, whose weights file is absent: every run, with the reason.
    inc = not_run[not_run.net == "inception_v3"]
    assert set(inc.fake) >= set(runs) - {"efficientnet-lite3"} and inc.reason.str.contains("is absent").all()
    runs.pop("efficientnet-lite3")
    assert set(df.fake.str.removesuffix("-CROPPED8")) == set(runs)
    for net in ("random_inception_v3", "efficientnet_lite0"):
        whole = df[(df.metric == "fid") & (df.net == net) & ~df.fake.str.endswith("-CROPPED8")]
        assert set(whole.fake) == set(runs)
    assert df.value.notna().all()
    # Crop FIDs in the study's naming: the suffix on both the real and the fake name.
    crop = df[df.fake.str.endswith("-CROPPED8") & (df.net != "power_spectrum")]
    assert set(crop.fake) == {f"{r}-CROPPED8" for r in runs} and set(crop.metric) == {"fid"}
    assert crop.real.str.endswith("-CROPPED8").all()
    # Power spectra of on-disk crops (evaluation.spectrum_crops), scored under the same suffix.
    spec = df[df.fake.str.endswith("-CROPPED8") & (df.net == "power_spectrum")]
    assert set(spec.fake) == {f"{r}-CROPPED8" for r in runs}
    assert {"spectral_distance", "spectral_distance_high"} <= set(spec.metric)
    assert (spec[spec.metric.str.startswith("spectral_distance")].value >= 0).all()
    # The signed fine-scale bias with its interval, on frames and on-disk crops (issue 21).
    for fake in ("stylegan2", "stylegan2-CROPPED8"):
        b = df[(df.fake == fake) & df.metric.str.startswith("spectral_bias_high")].set_index("metric").value
        assert b["spectral_bias_high_ci95_low"] <= b["spectral_bias_high"] <= b["spectral_bias_high_ci95_high"]
    # The conditional runs are also scored pixel by pixel and in the band they had to generate.
    for run in ("msdgan", "bicubic"):
        assert set(df[(df.fake == run) & (df.net == "pixel")].metric) == {"l1", "psnr", "ssim"}
        assert len(df[(df.fake == run) & (df.metric == "spectral_distance_above_x4_nyquist")]) == 1
    # The sidecar says what every number rests on; the Spearman table ranks metrics across runs.
    meta = pd.read_csv(out / "results_meta.csv").set_index("fake")
    assert set(meta.index) == set(runs) and (meta.n_samples == 8).all()
    assert meta.loc["stylegan2", "checkpoint"].endswith("stylegan2/checkpoints/step0000008.pt")
    assert "fid/random_inception_v3" in pd.read_csv(out / "tables/spearman.csv", index_col=0).columns
    # Bootstrap intervals from the stored features, and the findings table (issue 21).
    ci = pd.read_csv(out / "results_ci.csv")
    assert {"fid", "kid", "precision", "recall", "spectral_bias_high"} <= set(ci.metric)
    assert (ci.ci95_low <= ci.ci95_high).all() and (ci.resamples > 0).all()
    found = pd.read_csv(out / "tables/findings.csv")
    assert set(found.claim) == set(range(1, 12)) and set(found.verdict) <= {
        "holds", "reversed", "inconclusive", "not in this config"}
    assert {"converged", "radial_profile_error", "sun_fraction", "sun_pass"} <= set(meta.columns)
    # "Draws the Sun" is for unconditional runs; conditional ones copy the Sun from their input.
    assert meta.loc[["msdgan", "bicubic"], "sun_pass"].isna().all() and meta.loc["stylegan2", "sun_pass"] in ("yes", "no")
    assert (out / "figures/samples.png").stat().st_size > 0
    assert (out / "figures/zoom.png").stat().st_size > 0
    assert (out / "figures/dft.png").stat().st_size > 0
    # Dataset QA: the split is recorded in the dataset and summarised beside the figure.
    assert (out / "figures/dataset_qa.png").stat().st_size > 0
    qa = json.loads((out / "tables/dataset_qa.json").read_text())
    assert qa["split"]["test"] > 0 and qa["calibration"]["method"] == "fused"
    # The QUALITY-flagged synthetic frame was rejected, not silently used.
    assert "rejected" in (out / "logs/calibrate/shard_0000.log").read_text()
    # Training resumed: the longer run continued from the shorter run's checkpoint.
    log = (out / "logs/train/diffusion/diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip_step0000030.log").read_text()
    assert "resumed from" in log and "step0000020.pt" in log
    # The periodic spectral check of EMA samples (config training_check) is in the training logs.
    for fam_model in ("diffusion/diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip", "stylegan2/stylegan2", "msdgan/msdgan"):
        tl = pd.read_csv(out / f"models/{fam_model}/train_log.csv")
        assert tl.check_spectral_distance_high.notna().any() and (tl.check_spectral_distance_high.dropna() >= 0).all()
    # The study's tables and figures, rebuilt from results.csv.
    rank = pd.read_csv(out / "tables/ranking.csv")
    assert set(rank.run) == set(runs) and rank.fid.is_monotonic_increasing
    assert len(pd.read_csv(out / "tables/diffusion_sampling.csv")) == 2
    assert set(pd.read_csv(out / "tables/crops.csv").columns) == {"run", "fid", "CROPPED8"}
    for fig in ["ranking", "diffusion", "spearman", "spectral_distance", "training", *(f"samples/{r}" for r in runs)]:
        assert (out / f"figures/{fig}.png").stat().st_size > 0, fig
    if PUBLISHED.exists():
        both = pd.read_csv(out / "tables/comparison.csv")
        assert "full_projectedgan" in set(both.run)
        assert "Scales differ" in (out / "tables/comparison.html").read_text()
    smk("--profile", "profiles/ci", "--config", *config, "--report", str(out / "report.html"))
    html = (out / "report.html").read_text(errors="replace")
    assert "results.csv" in html and "spectrum.png" in html and "Patch FIDs" in html and "findings.html" in html
    _check_report_in_a_browser(out / "report.html", ["Findings", "Results", "Figures", "Tables", "Samples"]
                               + (["Comparison"] if PUBLISHED.exists() else []))
    assert "Nothing to be done" in smk("--profile", "profiles/ci", "--config", *config).stderr
