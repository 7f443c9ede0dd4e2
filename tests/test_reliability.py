"""Issue 20: no silent wrong results under change (stale resumes, sample counts, weights files)
and clear errors on bad input (config sizes, YAML syntax, corrupt HDF5 and .npz, a full disk).

Each test here failed before its fix."""

import json
import logging
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from helpers import ROOT, ci_config, smk
from helpers import Toy
from test_train import DATA, _weights

from solargen.io import InputError
from solargen.train import (CheckpointError, StaleCheckpoint, checkpoint_path, fit, load_checkpoint,
                            training_fingerprint)

# --------------------------------------------------------------------------------------------
# 1. A resume never continues another training


CFG = {"lr": 1e-2, "batch_size": 2, "save_every": 2}
DATA_ID = {"data.constants": "aaaa", "data.frames": "bbbb"}


def _fp(cfg=CFG, data=DATA_ID, **more):
    return training_fingerprint("toy", cfg, 2, data, seed=0, **more)


def test_a_checkpoint_of_another_config_or_data_is_refused_naming_the_key(tmp_path):
    fit(Toy(), DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path, save_every=2, fingerprint=_fp())
    with pytest.raises(StaleCheckpoint) as e:
        fit(Toy(), DATA, batch_size=2, total_steps=6, ckpt_dir=tmp_path, save_every=2,
            fingerprint=_fp({**CFG, "lr": 2e-2}))
    msg = str(e.value)
    assert "step0000004.pt" in msg and "model.lr is 0.01 there and 0.02 now" in msg and "--move-stale" in msg
    with pytest.raises(StaleCheckpoint, match="data.constants is aaaa there and cccc now"):
        fit(Toy(), DATA, batch_size=2, total_steps=6, ckpt_dir=tmp_path, save_every=2,
            fingerprint=_fp(data={**DATA_ID, "data.constants": "cccc"}))
    assert sorted(p.name for p in tmp_path.glob("step*.pt")) == ["step0000002.pt", "step0000004.pt"]  # untouched


def test_move_stale_sets_the_old_training_aside_and_starts_fresh(tmp_path, caplog):
    log_csv = tmp_path / "train_log.csv"
    fit(Toy(), DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path / "c", save_every=2, fingerprint=_fp(),
        log_csv=log_csv, log_every=1)
    new = _fp({**CFG, "lr": 2e-2})
    with caplog.at_level(logging.WARNING, logger="solargen.train"):
        moved = Toy()
        fit(moved, DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path / "c", save_every=2, fingerprint=new,
            move_stale=True, log_csv=log_csv, log_every=1)
    assert "moved the checkpoints" in caplog.text and "model.lr" in caplog.text
    stale = list((tmp_path / "c").glob("stale-*"))
    assert len(stale) == 1  # nothing deleted: the old training, with its log, is set aside
    assert sorted(p.name for p in stale[0].iterdir()) == ["step0000002.pt", "step0000004.pt", "train_log.csv"]
    assert len(log_csv.read_text().splitlines()) == 5  # the new log starts over
    fresh = Toy()
    fit(fresh, DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path / "f", save_every=2, fingerprint=new)
    assert torch.equal(_weights(moved), _weights(fresh))  # trained from scratch, not resumed
    assert load_checkpoint(checkpoint_path(tmp_path / "c", 4))["extra"]["fingerprint"] == new


def test_nodes_save_every_world_size_and_steps_are_not_part_of_the_fingerprint(tmp_path, caplog):
    assert _fp({**CFG, "nodes": 16, "save_every": 1000}) == _fp()
    straight = Toy()
    fit(straight, DATA, batch_size=2, total_steps=6, ckpt_dir=tmp_path / "a", save_every=100, fingerprint=_fp())
    first = Toy()  # the "58K" run
    fit(first, DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path / "b", save_every=100, fingerprint=_fp(),
        extra={"world_size": 4})
    resumed = Toy()  # the "100K" run, other save_every and nodes: resumes, exactly
    with caplog.at_level(logging.INFO, logger="solargen.train"):
        fit(resumed, DATA, batch_size=2, total_steps=6, ckpt_dir=tmp_path / "b", save_every=3,
            fingerprint=_fp({**CFG, "nodes": 2, "save_every": 3}))
    assert "resumed from" in caplog.text and torch.equal(_weights(straight), _weights(resumed))


def test_another_package_version_only_warns(tmp_path, caplog):
    old = {**_fp(), "version": "0.0.1"}
    fit(Toy(), DATA, batch_size=2, total_steps=2, ckpt_dir=tmp_path, save_every=2, fingerprint=old)
    with caplog.at_level(logging.INFO, logger="solargen.train"):
        fit(Toy(), DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path, save_every=2, fingerprint=_fp())
    assert "written by solargen 0.0.1" in caplog.text and "resumed from" in caplog.text


class _Wide(Toy):
    """Another architecture under the same module names."""

    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 1))
        self.modules = {"net": self.net}
        self.optimizers = {"adam": torch.optim.Adam(self.net.parameters(), lr=1e-2)}
        from solargen.models.ema import EMA

        self.ema = {"net": EMA(self.net, 0.9)}


def test_a_checkpoint_of_another_architecture_gets_one_clear_message(tmp_path):
    fit(Toy(), DATA, batch_size=2, total_steps=2, ckpt_dir=tmp_path, save_every=2)
    with pytest.raises(StaleCheckpoint) as e:  # no fingerprint to compare (a legacy checkpoint): the weights tell
        fit(_Wide(), DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path, save_every=2)
    msg = str(e.value)
    assert "module 'net' is another architecture" in msg and "--move-stale" in msg
    assert "size mismatch" not in msg and msg.count("\n") == 0 and len(msg) < 1000


MODEL = {"num_channels": 8, "num_res_blocks": 1, "channel_mult": [1, 2], "attention_resolutions": [],
         "num_heads": 1, "diffusion_steps": 50, "lr": 1e-3, "batch_size": 2, "save_every": 100}


def cli(*args):
    return subprocess.run([sys.executable, "-m", "solargen", *map(str, args)], capture_output=True, text=True)


def _dataset(path, constants, n=4, size=16):
    with h5py.File(path, "w") as f:
        f["images"] = np.random.default_rng(0).random((n, size, size), dtype=np.float32)
        f.create_group("frames")["file"] = np.array([f"f{i}.fits" for i in range(n)], dtype=h5py.string_dtype())
        f.attrs["constants"] = json.dumps(constants)
    return path


def _train(data, ckpt, model, *extra):
    return cli("train", "--family", "diffusion", "--model-json", json.dumps(model), "--dataset", data,
               "--image-size", 16, "--steps", 2, "--ckpt-dir", ckpt, "--device", "cpu", *extra)


def test_the_train_command_refuses_a_stale_checkpoint_and_starts_fresh_when_asked(tmp_path):
    data = _dataset(tmp_path / "d.h5", {"low": 0.5, "high": 99.99})
    assert _train(data, tmp_path / "c", {**MODEL, "save_every": 1}).returncode == 0
    checkpoint_path(tmp_path / "c", 2).unlink()  # as Snakemake removes the output of a job it re-runs
    r = _train(data, tmp_path / "c", {**MODEL, "lr": 2e-3})
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "model.lr is 0.001 there and 0.002 now" in r.stderr and "--move-stale" in r.stderr
    # A changed normalisation (the dataset rebuilt with another percentile) is stale too.
    _dataset(data, {"low": 1.0, "high": 99.99})
    r = _train(data, tmp_path / "c", MODEL)
    assert r.returncode != 0 and "data.constants" in r.stderr
    r = _train(data, tmp_path / "c", {**MODEL, "lr": 2e-3}, "--move-stale")
    assert r.returncode == 0 and "moved the checkpoints" in r.stderr
    state = load_checkpoint(checkpoint_path(tmp_path / "c", 2))
    assert state["optimizers"]["adam"]["param_groups"][0]["lr"] == 2e-3
    assert [p.name for p in next((tmp_path / "c").glob("stale-*")).iterdir()] == ["step0000001.pt"]


def test_every_rank_of_a_data_parallel_run_refuses_a_stale_checkpoint(tmp_path):
    from test_distributed import DIFFUSION, _launch, _run, _train_args, _wait
    from test_distributed import _dataset as _bare_dataset

    data = _bare_dataset(tmp_path / "d.h5")
    _run(_train_args("diffusion", DIFFUSION, data, tmp_path / "c", 2), 2)
    new = {**DIFFUSION, "lr": 2e-3}
    results = _wait(_launch(_train_args("diffusion", new, data, tmp_path / "c", 4), 2), timeout=240)
    assert all(rc != 0 for rc, _ in results)  # both ranks stop (none waits forever for the other)
    assert "model.lr is 0.001 there and 0.002 now" in results[0][1] and "Traceback" not in results[0][1]
    _run(_train_args("diffusion", new, data, tmp_path / "c", 4) + ["--move-stale"], 2)
    state = load_checkpoint(checkpoint_path(tmp_path / "c", 4))
    assert state["optimizers"]["adam"]["param_groups"][0]["lr"] == 2e-3 and state["extra"]["world_size"] == 2


def _train_only_config(tmp_path, lr, name="cfg.yaml"):
    """config/ci.yaml with its diffusion model alone (runs at 4 and 6 steps, a checkpoint every 2)."""

    def edit(c):
        model = "diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip"
        c["models"] = {model: {**c["models"][model], "lr": lr, "save_every": 2}}
        c["runs"] = {r: {**v, "train_steps": 4 + 2 * i}
                     for i, (r, v) in enumerate((r, v) for r, v in c["runs"].items() if v["model"] == model)}
        c.pop("training_check")

    return ci_config(tmp_path, edit, name)


@pytest.mark.slow
def test_the_workflow_moves_stale_checkpoints_aside_and_trains_fresh(tmp_path):
    """The issue's case: change a diffusion model's lr, re-run its first target (here step 4)."""
    model = "diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip"
    out = tmp_path / "results/ci"
    (out / "data").mkdir(parents=True)
    _dataset(out / "data/dataset.h5", {"low": 0.5}, n=6, size=32)
    target = f"results/ci/models/diffusion/{model}/checkpoints/step0000004.pt"
    # Only the train rule: the hand-made dataset stands in for the data stages.
    args = (target, "-d", str(tmp_path), "-c1", "--allowed-rules", "train")
    smk(*args, "--configfile", str(_train_only_config(tmp_path, 1e-3)))
    smk(*args, "--configfile", str(_train_only_config(tmp_path, 2e-3)))
    log = (out / f"logs/train/diffusion/{model}_step0000004.log").read_text()
    assert "resumed from" not in log and "belongs to another training (model.lr is 0.001 there and 0.002 now)" in log
    assert "moved the checkpoints" in log
    ckpts = out / f"models/diffusion/{model}/checkpoints"
    stale = list(ckpts.glob("stale-*"))
    assert len(stale) == 1 and (stale[0] / "step0000002.pt").exists()
    assert (stale[0] / "train_log.csv").exists()  # the old training's log went with it
    state = load_checkpoint(ckpts / "step0000004.pt")
    assert state["optimizers"]["adam"]["param_groups"][0]["lr"] == 2e-3


# --------------------------------------------------------------------------------------------
# Unclear errors


def test_a_full_disk_while_saving_a_checkpoint_names_it_and_keeps_the_previous_one(tmp_path, monkeypatch):
    fit(Toy(), DATA, batch_size=2, total_steps=2, ckpt_dir=tmp_path, save_every=2)
    before = checkpoint_path(tmp_path, 2).read_bytes()
    real_save = torch.save

    def save_on_a_full_disk(obj, f):
        Path(f).write_bytes(b"PK\x03\x04")  # the part that fitted
        real_save(obj, "/dev/full")  # then torch's own error for a full disk: "unexpected pos …"

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    with pytest.raises(CheckpointError) as e:
        fit(Toy(), DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path, save_every=2)
    msg = str(e.value)
    assert "unexpected pos" not in msg
    assert f"cannot write checkpoint {checkpoint_path(tmp_path, 4)}: the disk is full" in msg
    assert f"{checkpoint_path(tmp_path, 2)}, is intact and a re-run resumes from it" in msg
    assert checkpoint_path(tmp_path, 2).read_bytes() == before  # nothing lost, no partial file left
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step0000002.pt"]


def _corrupt_chunk(path, key="images", i=2):
    """Overwrite part of frame ``i``'s compressed chunk, as a bad sector or a torn copy would."""
    with h5py.File(path, "r") as f:
        info = f[key].id.get_chunk_info(i)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + 8)
        fh.write(b"\xff" * 48)


def _compressed_dataset(path, n=4, size=16):
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=np.random.default_rng(0).random((n, size, size), dtype=np.float32),
                         chunks=(1, size, size), compression="gzip", shuffle=True)
    return path


def test_a_corrupt_hdf5_chunk_names_the_file_and_frame(tmp_path):
    from solargen.dataset import H5Images, open_dataset, read_images
    from solargen.shards import iter_images

    path = _compressed_dataset(tmp_path / "dataset.h5")
    _corrupt_chunk(path)
    for read in (lambda: H5Images(path, in_memory=True), lambda: H5Images(path)[2],
                 lambda: read_images(open_dataset(path), [1, 2]),
                 lambda: list(iter_images([path], {"file": np.zeros(4), "shard": np.zeros(4, int),
                                                   "index": np.arange(4)}))):
        with pytest.raises(InputError, match=r"dataset.h5: frame .*2.* of 'images' is unreadable .* the file is corrupt"):
            read()
    r = cli("train", "--family", "diffusion", "--model-json", json.dumps(MODEL), "--dataset", path,
            "--image-size", 16, "--steps", 1, "--ckpt-dir", tmp_path / "c", "--device", "cpu")
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert "dataset.h5: frame 2 of 'images' is unreadable" in r.stderr and "re-run the dataset rule" in r.stderr


def test_a_truncated_npz_names_the_file(tmp_path):
    from solargen.evaluate.features import load_features
    from solargen.evaluate.metrics import evaluate_run, save_spectrum
    from helpers import png_folder as _folder

    rng = np.random.default_rng(0)
    real = _folder(tmp_path / "real", [rng.random((32, 32)) for _ in range(4)])
    save_spectrum(real, tmp_path / "spectrum.npz")
    np.savez(tmp_path / "features.npz", feats=rng.random((50, 64), dtype=np.float32), status="ok", crop="")
    for name in ("spectrum.npz", "features.npz"):
        b = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(b[:len(b) // 2])
    with pytest.raises(InputError, match="cut_features.npz: truncated or corrupt .npz file"):
        load_features(tmp_path / "cut_features.npz")
    with pytest.raises(InputError, match="cut_spectrum.npz: truncated or corrupt .npz file.*re-run the rule"):
        evaluate_run(real, {}, tmp_path / "cut_spectrum.npz", tmp_path / "m.json", tmp_path / "ms.npz",
                     real_name="R", fake_name="F")
    with pytest.raises(InputError, match="cut_spectrum.npz: truncated or corrupt"):
        evaluate_run(real, {}, tmp_path / "spectrum.npz", tmp_path / "m.json", tmp_path / "ms.npz",
                     real_name="R", fake_name="F", real_crop_spectra=[tmp_path / "cut_spectrum.npz"])


def _sizes(resolution, image_size, *families):
    """Frames at ``resolution`` from an image folder, every model at ``image_size``; only the
    models of ``families`` (and of diffusion, bicubic) are kept."""

    def edit(c):
        c["data"].update(source="image_folder", image_folder={"path": "frames"}, resolution=resolution)
        c["models"] = {k: {**m, "image_size": image_size} for k, m in c["models"].items()
                       if m["family"] in (*families, "diffusion", "bicubic")}
        c["runs"] = {k: r for k, r in c["runs"].items() if r["model"] in c["models"]}
        # The solar feature networks have sizes of their own, checked first (tested with them).
        c["evaluation"]["nets"] = [n for n in c["evaluation"]["nets"] if n not in c.get("feature_train", {})]
        c.pop("feature_train", None)

    return edit


@pytest.mark.parametrize("edit, message", [
    (_sizes(96, 48, "projectedgan"), "image_size = 48 must be a power of two for family projectedgan (e.g. 32 or 64)"),
    (_sizes(96, 48, "stylegan2"), "models.stylegan2.image_size = 48 must be a power of two for family stylegan2"),
    (_sizes(72, 36, "msdgan"), "models.msdgan.image_size = 36 must be a multiple of 8 for family msdgan"),
    (lambda c: c["evaluation"].update(n_samples=3),
     "evaluation.n_samples = 3 is too few: precision and recall need at least 4"),
])
def test_sizes_a_model_cannot_train_on_and_too_few_samples_fail_at_validation(tmp_path, edit, message):
    r = smk("-n", "--configfile", str(ci_config(tmp_path, edit)), check=False)
    assert r.returncode != 0 and message in r.stdout + r.stderr
    assert "rule " not in r.stdout  # no job was even scheduled


def test_a_nested_config_override_that_fails_validation_says_the_working_form():
    r = smk("-n", "--configfile", "config/ci.yaml", "--config", "evaluation={n_samples: 16}", check=False)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "'16' is not of type 'integer'" in out
    assert "reads every value inside a nested --config value" in out and "config/README.md" in out
    readme = (ROOT / "config/README.md").read_text()
    assert "--configfile config/ci.yaml override.yaml" in readme  # the documented working form


def test_a_yaml_syntax_error_names_the_file_and_line(tmp_path):
    (tmp_path / "config").mkdir()
    text = (ROOT / "config/demo.yaml").read_text().splitlines()
    i = next(n for n, line in enumerate(text) if line.startswith("seed:"))
    text[i] = "seed: [0"  # an unclosed list
    (tmp_path / "config/demo.yaml").write_text("\n".join(text) + "\n")
    r = smk("-n", "-d", str(tmp_path), check=False)  # the Snakefile's own default config
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "config/demo.yaml, line " in out and "YAML syntax error" in out and f"starts at line {i + 1}," in out
    # A --configfile is parsed by Snakemake before the workflow runs; check-config names the place.
    r = cli("check-config", "config/ci.yaml", tmp_path / "config/demo.yaml")
    assert r.returncode == 2 and "demo.yaml, line " in r.stderr
    assert f"that starts at line {i + 1}," in r.stderr and "Traceback" not in r.stderr
    assert cli("check-config", ROOT / "config/ci.yaml").returncode == 0


# --------------------------------------------------------------------------------------------
# 3. Sample counts are checked at evaluation


def _eval_set(tmp_path, n_fake, n_real=6, status="ok"):
    """Real spectra, real features of ``n_real`` images (random, or "not run") and ``n_fake`` samples."""
    from solargen.evaluate.metrics import save_spectrum
    from helpers import png_folder as _folder

    rng = np.random.default_rng(0)
    real = tmp_path / "real"
    if not real.exists():
        _folder(real, [rng.random((32, 32)) for _ in range(4)])
        save_spectrum(real, tmp_path / "spectrum.npz")
    np.savez(tmp_path / "features.npz", feats=rng.random((n_real, 16) if status == "ok" else (0, 0)),
             net="efficientnet_lite0", status=status)
    return _folder(tmp_path / f"fake{n_fake}", [rng.random((32, 32)) for _ in range(n_fake)])


def _evaluate(tmp_path, fake, **kw):
    from solargen.evaluate.metrics import evaluate_run

    return evaluate_run(fake, {"efficientnet_lite0": tmp_path / "features.npz"}, tmp_path / "spectrum.npz",
                        tmp_path / "m.json", tmp_path / "ms.npz", real_name="R", fake_name="F", **kw)


def test_evaluate_fails_when_the_run_has_another_number_of_samples(tmp_path):
    fake = _eval_set(tmp_path, 6, status="not run: spectra only, for speed")
    r = cli("evaluate", "--samples", fake, "--real-features", f"efficientnet_lite0={tmp_path / 'features.npz'}",
            "--real-spectrum", tmp_path / "spectrum.npz", "--real-name", "R", "--fake-name", "F",
            "--out", tmp_path / "m.json", "--out-spectrum", tmp_path / "ms.npz", "--n-samples", 8)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "fake6: 6 generated images, but the run should have 8 (evaluation.n_samples)" in r.stderr
    assert "sample_count_mismatch: warn" in r.stderr and not (tmp_path / "m.json").exists()
    # The documented switch: scored, with the mismatch recorded beside the metrics.
    out = _evaluate(tmp_path, fake, n_expected=8, on_count_mismatch="warn")
    assert out["n_fake"] == 6 and out["n_expected"] == 8 and "should have 8" in out["warnings"][0]
    assert json.loads((tmp_path / "m.json").read_text())["warnings"] == out["warnings"]
    assert _evaluate(tmp_path, fake, n_expected=6)["warnings"] == []


@pytest.mark.parametrize("n, message", [
    (1, "fake1: 1 generated images are too few: fid needs at least 2 images per set, kid 2, precision 4, recall 4"),
    (3, "fake3: 3 generated images are too few: precision needs at least 4 images per set, recall 4 "
        "(precision/recall: k = 3 nearest neighbours); raise evaluation.n_samples"),
])
def test_too_few_samples_for_a_metric_name_it_and_its_minimum(tmp_path, n, message):
    with pytest.raises(InputError) as e:
        _evaluate(tmp_path, _eval_set(tmp_path, n), n_expected=n)
    assert message in str(e.value)


def test_too_few_real_images_for_a_metric_name_it_and_its_minimum(tmp_path):
    with pytest.raises(InputError, match="features.npz: features of 3 real images are too few: precision needs at "
                                         "least 4 images per set"):
        _evaluate(tmp_path, _eval_set(tmp_path, 4, n_real=3))


def test_the_workflow_tells_evaluate_how_many_samples_a_run_should_have():
    r = smk("results/ci/runs/stylegan2/stylegan2/metrics.json", "-n", "-p", "--configfile", "config/ci.yaml")
    assert "--n-samples 8 --sample-count-mismatch fail" in r.stdout


# --------------------------------------------------------------------------------------------
# 4. A replaced feature-network weights file re-runs what was computed without it


@pytest.mark.slow
def test_replacing_a_corrupt_weights_file_reruns_the_features(tmp_path):
    from PIL import Image
    from torchvision.models import inception_v3

    net = "inception_v3_other_block_0"
    weights = tmp_path / "pt_inception.pth"
    weights.write_bytes(b"a download cut short")

    def edit(c):
        c["evaluation"].update(nets=[net], feature_networks={net: {"weights": str(weights)}})

    cfg = ci_config(tmp_path, edit)
    real = tmp_path / "results/ci/data" / yaml.safe_load(cfg.read_text())["data"]["name"]
    real.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (32, 32), dtype=np.uint8)).save(real / f"out_{i}.png")
    target = f"results/ci/real/features_{net}.npz"
    # Only the features rule: the hand-made image folder stands in for the data stages.
    args = (target, "-d", str(tmp_path), "-c1", "--allowed-rules", "real_features", "--configfile", str(cfg))
    smk(*args)
    with np.load(tmp_path / target) as z:
        assert str(z["status"]).startswith("not run") and "cannot read weights file" in str(z["status"])
    blocks = ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3")
    sd = {k: v for k, v in inception_v3(weights=None, aux_logits=False, init_weights=False).state_dict().items()
          if k.startswith(blocks)}
    torch.save(sd, weights)  # a valid file in its place
    r = smk("-n", *args)
    assert "Nothing to be done" not in r.stdout + r.stderr and "real_features" in r.stdout
    smk(*args)
    with np.load(tmp_path / target) as z:
        assert str(z["status"]) == "ok" and z["feats"].shape == (4, 64)
