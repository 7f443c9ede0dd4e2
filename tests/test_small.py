"""config/small.yaml (issue #23): the small CPU study plans the runs its findings need, under the
study's results.csv names, with its seed replicates, and ProjectedGAN logits of at least 4×4."""

import copy

import pytest
import yaml
from helpers import ROOT, smk
from test_recipes import _logit_sides

from solargen.config import expand_seeds

SMALL = ROOT / "config/small.yaml"
#: The runs under the study's names: claims 1, 2, 7, 8 (S = 250 vs 50), 9 and 11 (in part) of
#: solargen.report.findings compare exactly these.
RUNS = {
    "diffusion_1000steps_train_50_steps_inference_58Ktraining",
    "diffusion_1000steps_train_250_steps_inference_58Ktraining",
    "full_projectedgan",
    "unfreeze_feature_network",
    "randomly_initialized_feature_network",
    "stylegan2",
    "msdgan",
    "msdgan_l1_only",
    "bicubic",
}
REPLICATED = {"full_projectedgan", "unfreeze_feature_network", "randomly_initialized_feature_network"}


@pytest.fixture(scope="module")
def cfg():
    return yaml.safe_load(SMALL.read_text())


def test_small_runs_are_the_study_s_names_with_seed_replicates(cfg):
    paper = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert cfg["name"] == "small"
    assert set(cfg["runs"]) == RUNS
    # results.csv names of the study, so the findings table can evaluate its claims on them
    assert RUNS <= set(paper["runs"])
    for run in RUNS:  # and the same model (hence family and ablation) as the study's run
        assert cfg["runs"][run]["model"] == paper["runs"][run]["model"], run
    expanded = copy.deepcopy(cfg)
    expand_seeds(expanded)
    assert set(expanded["runs"]) == RUNS | {f"{r}@seed1" for r in REPLICATED}
    for r in REPLICATED:
        assert expanded["models"][f"{r}@seed1"]["seed"] == 1
    # one diffusion model, sampled with two step counts
    diff = [cfg["runs"][r] for r in RUNS if r.startswith("diffusion")]
    assert len({d["model"] for d in diff}) == 1 and {d["sampling_steps"] for d in diff} == {50, 250}
    # StyleGAN2 sees as many images as the ProjectedGAN baseline; the ablations train as long
    seen = {r: cfg["runs"][r]["train_steps"] * cfg["models"][cfg["runs"][r]["model"]]["batch_size"]
            for r in REPLICATED | {"stylegan2"}}
    assert len(set(seen.values())) == 1, seen
    assert 32 <= cfg["data"]["resolution"] <= 64
    assert cfg["data"]["n_frames"] > 64  # more than the demo's set


def test_small_projected_discriminators_end_in_at_least_4x4_logits(cfg):
    checked = 0
    for name, m in cfg["models"].items():
        if m["family"] == "projectedgan" and (sides := _logit_sides(m, m["image_size"])) is not None:
            assert all(min(s) >= 4 for s in sides), (name, sides)
            checked += 1
    assert checked == 3


def test_small_dry_run_plans_every_run_and_replicate():
    out = smk("-n", "--configfile", str(SMALL)).stdout
    for run in RUNS | {f"{r}@seed1" for r in REPLICATED}:
        assert f"/{run}/samples" in out, run  # its evaluation is planned (input of rule evaluate)
    assert "results/small/tables/findings.html" in out
    assert "results/small/tables/replicates.csv" in out
