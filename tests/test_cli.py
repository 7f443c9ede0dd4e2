"""The CLI as the rules call it: reproducible fresh runs, clear errors on bad input files."""

import json
import subprocess
import sys

import h5py
import numpy as np
import torch

from solargen.train import load_checkpoint

MODEL = {"num_channels": 8, "num_res_blocks": 1, "channel_mult": [1, 2], "attention_resolutions": [],
         "num_heads": 1, "diffusion_steps": 50, "lr": 1e-3, "batch_size": 2, "save_every": 100}


def cli(*args, check=True):
    r = subprocess.run([sys.executable, "-m", "solargen", *map(str, args)], capture_output=True, text=True)
    if check and r.returncode:
        raise AssertionError(r.stderr[-3000:])
    return r


def _dataset(path, n=4, size=16):
    with h5py.File(path, "w") as f:
        f["images"] = np.random.default_rng(0).random((n, size, size), dtype=np.float32)
    return path


def test_two_fresh_training_runs_are_identical(tmp_path):
    data = _dataset(tmp_path / "d.h5")
    for run in ("a", "b"):
        cli("train", "--family", "diffusion", "--model-json", json.dumps(MODEL), "--dataset", data,
            "--image-size", 16, "--steps", 3, "--ckpt-dir", tmp_path / run, "--seed", 7, "--device", "cpu")
    a, b = (load_checkpoint(tmp_path / r / "step0000003.pt") for r in ("a", "b"))
    for k in a["modules"]["unet"]:
        assert torch.equal(a["modules"]["unet"][k], b["modules"]["unet"][k]), k


def test_corrupt_dataset_and_checkpoint_fail_naming_the_file(tmp_path):
    bad = tmp_path / "dataset.h5"
    bad.write_bytes(b"not hdf5")
    r = cli("train", "--family", "diffusion", "--model-json", json.dumps(MODEL), "--dataset", bad,
            "--image-size", 16, "--steps", 1, "--ckpt-dir", tmp_path / "c", check=False)
    assert r.returncode != 0 and "dataset.h5" in r.stderr and "Traceback" not in r.stderr
    ckpt = tmp_path / "step0000001.pt"
    ckpt.write_bytes(b"truncated")
    r = cli("sample", "--family", "diffusion", "--model-json", json.dumps(MODEL), "--checkpoint", ckpt,
            "--image-size", 16, "--n", 1, "--out", tmp_path / "s", check=False)
    assert r.returncode != 0 and "step0000001.pt" in r.stderr and not (tmp_path / "s").exists()


def test_samples_record_their_seed_and_can_be_drawn_again(tmp_path):
    data = _dataset(tmp_path / "d.h5", size=32)
    model = {"z_dim": 8, "w_dim": 8, "mapping_layers": 1, "channel_base": 64, "channel_max": 8,
             "r1_interval": 2, "pl_interval": 2, "lr": 2e-3, "batch_size": 2, "save_every": 100}
    cli("train", "--family", "stylegan2", "--model-json", json.dumps(model), "--dataset", data,
        "--image-size", 32, "--steps", 2, "--ckpt-dir", tmp_path / "ck", "--device", "cpu")
    args = ("sample", "--family", "stylegan2", "--model-json", json.dumps(model), "--checkpoint",
            tmp_path / "ck/step0000002.pt", "--image-size", 32, "--n", 3, "--first-index", 3, "--seed", 2,
            "--device", "cpu")
    cli(*args, "--out", tmp_path / "s1")
    meta = json.loads((tmp_path / "s1/sampling.json").read_text())
    assert meta["seed"] == 2 * 1_000_003 + 3 and meta["first_index"] == 3 and meta["n"] == 3
    assert sorted(p.name for p in (tmp_path / "s1").glob("*.png")) == ["out_3.png", "out_4.png", "out_5.png"]
    cli(*args, "--out", tmp_path / "s2")
    for i in (3, 4, 5):
        assert (tmp_path / f"s1/out_{i}.png").read_bytes() == (tmp_path / f"s2/out_{i}.png").read_bytes()


def test_sampling_and_evaluation_size_numpys_blas_pool_by_threads(monkeypatch):
    """--threads also sizes NumPy's BLAS for sample/features/evaluate (set before NumPy loads in
    the command's process); a variable the user set is kept; training is left alone."""
    import os

    from solargen.cli import BLAS_THREAD_VARS, limit_blas_threads, parser

    for var in BLAS_THREAD_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    limit_blas_threads(parser().parse_args(["features", "--images", "d", "--net", "n", "--out", "o", "--threads", "2"]))
    assert os.environ["OPENBLAS_NUM_THREADS"] == "2" and os.environ["OMP_NUM_THREADS"] == "2"
    assert os.environ["MKL_NUM_THREADS"] == "3"
    monkeypatch.delenv("OPENBLAS_NUM_THREADS")
    limit_blas_threads(parser().parse_args(["check-config", "x.yaml"]))
    assert "OPENBLAS_NUM_THREADS" not in os.environ


# --- the registry of steps ----------------------------------------------------------------------

def _rule_commands() -> set[str]:
    """The ``python -m solargen <step>`` commands of the rules' shell strings (``group sub`` for a
    group's subcommand); comments and log messages (f-strings) do not count."""
    import re
    from pathlib import Path

    from solargen import steps

    groups = {s.name.split(" ")[0] for s in steps.registry() if " " in s.name}
    found = set()
    for f in (Path(__file__).resolve().parents[1] / "workflow" / "rules").glob("*.smk"):
        for m in re.finditer(r'^\s*"[^"\n]*?python -m solargen ([a-z-]+)(?: ([a-z-]+))?', f.read_text(), re.M):
            found.add(f"{m[1]} {m[2]}" if m[1] in groups else m[1])
    return found


def test_every_step_is_a_rule_and_every_rule_a_step():
    from solargen import steps
    from solargen.cli import parser

    parser()  # imports every module of steps
    registered = {s.name: s for s in steps.registry()}
    called = _rule_commands()
    assert called, "no python -m solargen command found in workflow/rules"
    assert called - set(registered) == set(), "rules call commands no step registers"
    assert {n for n, s in registered.items() if not s.by_hand} - called == set(), "steps no rule runs"
    assert {n for n, s in registered.items() if s.by_hand} & called == set(), "a by-hand step is a rule's"


def test_the_parser_is_built_from_the_registry(monkeypatch, tmp_path):
    """A newly registered step is a command with its signature's defaults, and main calls it."""
    from solargen import cli, steps

    names = {s.name for s in (cli.parser(), steps.registry())[1]}
    sub = next(a for a in cli.parser()._actions if a.dest == "command").choices
    assert set(sub) == {n.split(" ")[0] for n in names}
    monkeypatch.setattr(steps, "_STEPS", dict(steps._STEPS))
    calls = []

    @steps.step("echo-test", "a test step", steps.arg("--out"), steps.arg("--n", type=int),
                steps.arg("--flag", action="store_true"))
    def echo(*, out, n=3, flag=False):
        calls.append((out, n, flag))

    assert cli.main(["echo-test", "--out", "x"]) == 0 and calls == [("x", 3, False)]
    assert cli.main(["echo-test", "--out", "y", "--n", "5", "--flag"]) == 0 and calls[-1] == ("y", 5, True)
    r = subprocess.run([sys.executable, "-m", "solargen", "constants", "--out", "o"], capture_output=True, text=True)
    assert r.returncode == 2 and "the following arguments are required: --shards" in r.stderr


def test_a_step_must_declare_exactly_its_keyword_arguments():
    import pytest

    from solargen import steps

    with pytest.raises(TypeError, match="keyword-only parameters"):
        steps.step("bad-test", "", steps.arg("--out"))(lambda *, out, n=1: None)
    with pytest.raises(TypeError, match="keyword-only parameters"):
        steps.step("bad-test", "", steps.arg("--out"))(lambda out: None)
    with pytest.raises(TypeError, match="signature"):
        steps.arg("--n", type=int, default=3)
    with pytest.raises(ValueError, match="registered twice"):
        steps.step("calibrate", "", steps.arg("--out"))(lambda *, out: None)
