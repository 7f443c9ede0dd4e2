"""Solar feature networks (MAE, VICReg): they learn, resume exactly, export, and register as
feature networks whose features are the trained encoder's."""

import json

import pytest
import torch
from helpers import smooth_fields

from solargen.models import family
from solargen.models.mae_solar import MAETrainer, reconstruction_check
from solargen.models.vicreg_solar import VICRegTrainer, collapse_check, vicreg_loss
from solargen.train import fit, load_checkpoint

MAE_TINY = {"input_size": 16, "patch_size": 4, "embed_dim": 32, "depth": 2, "num_heads": 2,
            "decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2, "mask_ratio": 0.75,
            "norm_pix_loss": True, "base_lr": 0.1, "weight_decay": 0.05, "betas": [0.9, 0.95],
            "warmup_steps": 0, "schedule_steps": 10_000, "batch_size": 8, "random_flip": False,
            "crop_scale": [1.0, 1.0]}
VIC_TINY = {"input_size": 16, "block": "BasicBlock", "layers": [1, 1, 1, 1], "channels": [4, 8, 8, 16], "stem_width": 4,
            "stem_type": "deep", "expander": [32, 32], "base_lr": 0.1, "optimizer": "adamw",
            "weight_decay": 0.0, "warmup_steps": 0, "schedule_steps": 10_000, "batch_size": 8}


def _frames(n=8, size=16):
    return smooth_fields(n, size, seed=3)


def _mean_loss(rows, a, b):
    return sum(rows[a:b]) / (b - a)


@pytest.mark.parametrize("cls,cfg", [(MAETrainer, MAE_TINY), (VICRegTrainer, VIC_TINY)])
def test_loss_decreases_on_a_fixed_batch(cls, cfg):
    torch.manual_seed(0)
    t = cls(cfg, 16)
    x = _frames()
    losses = []
    for step in range(40):
        # The same batch and the same random draws every step: only the weights change.
        losses.append(t.training_step(x, step, torch.Generator().manual_seed(1))["loss"])
    assert _mean_loss(losses, 30, 40) < 0.8 * _mean_loss(losses, 0, 5), losses


@pytest.mark.parametrize("name,cfg", [("mae_solar", MAE_TINY), ("vicreg_solar", VIC_TINY)])
def test_checkpoint_resume_is_exact(tmp_path, name, cfg):
    data = list(_frames(12))
    trainer = family(name).trainer

    torch.manual_seed(0)
    straight = trainer(cfg, 16)
    fit(straight, data, batch_size=4, total_steps=6, ckpt_dir=tmp_path / "a", save_every=100, seed=1, workers=0)
    torch.manual_seed(0)
    fit(trainer(cfg, 16), data, batch_size=4, total_steps=3, ckpt_dir=tmp_path / "b", save_every=100, seed=1,
        workers=0)
    torch.manual_seed(5)  # a fresh process: weights, optimiser, lr and RNG come from the checkpoint
    resumed = trainer(cfg, 16)
    fit(resumed, data, batch_size=4, total_steps=6, ckpt_dir=tmp_path / "b", save_every=100, seed=1, workers=0)
    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert load_checkpoint(tmp_path / "b" / "step0000006.pt")["step"] == 6


def test_vicreg_loss_terms():
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(0)) * 3
    total, parts = vicreg_loss(z, z)
    assert parts["invariance"] == 0 and parts["variance"] == 0  # std ≈ 3 > 1 on every dimension
    collapsed, cp = vicreg_loss(torch.zeros(64, 16), torch.zeros(64, 16))
    assert float(cp["variance"]) == pytest.approx(1 - 1e-2, abs=1e-4)  # sqrt(0 + 1e-4) = 0.01
    assert float(collapsed) == pytest.approx(25 * float(cp["variance"]), rel=1e-5)


def test_vicreg_views_blur_and_solarise_with_the_configured_probabilities():
    # Whole-frame crops, no jitter: a view is the frame, possibly mirrored, unless blurred or solarised.
    # 64 px: VICReg's σ (0.1–2 px at 224) is 0.03–0.57 px here, visible (at 16 px it would round to nothing).
    x = _frames(6, 64)
    plain = {**VIC_TINY, "input_size": 64, "crop_scale": [1.0, 1.0], "jitter_p": 0.0}

    def untouched(v):
        return all(torch.allclose(a, x[i], atol=1e-4) or torch.allclose(a, x[i].flip(-1), atol=1e-4)
                   for i, a in enumerate(v))

    def views(**kw):
        return VICRegTrainer({**plain, **kw}, 64).views(x, torch.Generator().manual_seed(0))

    v1, v2 = views(blur_p=[0.0, 0.0], solarize_p=[0.0, 0.0])
    assert untouched(v1) and untouched(v2)
    v1, _ = views()  # VICReg's: the first view always blurred
    assert not untouched(v1)
    v1, v2 = views(blur_p=[0.0, 0.0], solarize_p=[0.0, 1.0])
    assert untouched(v1) and not untouched(v2) and float(v2.max()) <= 1e-6  # solarised: nothing above mid-grey


def test_checks_run_on_held_out_frames():
    torch.manual_seed(0)
    t = MAETrainer(MAE_TINY, 16)
    r = reconstruction_check(t.model, _frames(4), 0.75)
    # A constant fill scores ≥ 1 in normalised-pixel space: the baseline can never beat 1.
    assert r["baseline_masked_mse"] >= 1.0
    v = collapse_check(VICRegTrainer(VIC_TINY, 16).model, _frames(6))
    assert v["embedding_std_mean"] > 0 and 0 <= v["embedding_dims_std_ge_1"] <= 1


def test_collapse_check_uses_vicregs_own_std():
    # The check's per-dimension std is the variance term's: sqrt(Var + 1e-4), hinge at 1.
    m = VICRegTrainer(VIC_TINY, 16).model
    x = _frames(6)
    v = collapse_check(m, x)
    with torch.no_grad():
        z = m.eval()(x)
    assert v["embedding_variance_term"] == pytest.approx(float(vicreg_loss(z, z)[1]["variance"]), rel=1e-5)


@pytest.mark.parametrize("name,cfg", [("mae_solar", MAE_TINY), ("vicreg_solar", VIC_TINY)])
def test_registered_network_features_equal_the_trained_encoder(tmp_path, name, cfg):
    from solargen.cli import main
    from solargen.evaluate import features

    data = list(_frames(8))
    torch.manual_seed(0)
    t = family(name).trainer(cfg, 16)
    fit(t, data, batch_size=4, total_steps=3, ckpt_dir=tmp_path / "ckpt", save_every=100, seed=0, workers=0)
    enc_file = tmp_path / "nets" / "solar_net" / "encoder.pt"
    assert main(["feature-export", "--family", name, "--model-json", json.dumps(cfg), "--image-size", "16",
                 "--checkpoint", str(tmp_path / "ckpt" / "step0000003.pt"), "--out", str(enc_file)]) == 0
    features.configure(features.solar_specs({"solar_net": {"family": name, **cfg}}, str(tmp_path / "nets")))
    try:
        net = features.build_extractor("solar_net")
        grey = (torch.rand(5, 1, 16, 16, generator=torch.Generator().manual_seed(2)) * 255).round()
        got = net(grey.repeat(1, 3, 1, 1))  # what clean-fid's loader hands a feature network
        encoder = t.model.encoder if name == "mae_solar" else t.model.trunk
        encoder.eval()
        with torch.no_grad():
            if name == "mae_solar":  # manual forward: all patches visible, the final-normed class token
                tokens = t.model.encode_visible(grey / 127.5 - 1, torch.arange(16).expand(5, -1))
                want = tokens[:, 0]
            else:
                want = encoder(grey / 127.5 - 1)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        # The export is a plain timm model: loadable without solargen's extractor.
        state = torch.load(enc_file, weights_only=True)
        if name == "mae_solar":
            import timm

            vit = timm.create_model("vit_base_patch16_224", pretrained=False, **{
                k: v for k, v in state["kwargs"].items()}).eval()
            vit.load_state_dict(state["state_dict"])
            with torch.no_grad():
                torch.testing.assert_close(vit(grey / 127.5 - 1), want, rtol=1e-5, atol=1e-5)
    finally:
        features.configure({})


def test_missing_encoder_is_a_clear_error(tmp_path):
    from solargen.evaluate import features

    features.configure(features.solar_specs({"mae_x": {"family": "mae_solar", **MAE_TINY}}, str(tmp_path)))
    try:
        with pytest.raises(features.FeatureNetUnavailable, match="mae_x.*encoder.pt is absent"):
            features.build_extractor("mae_x")
    finally:
        features.configure({})


def test_export_of_a_missing_checkpoint_names_it(tmp_path):
    from solargen.cli import main

    with pytest.raises(SystemExit, match="step0000009.pt does not exist"):
        main(["feature-export", "--family", "mae_solar", "--model-json", json.dumps(MAE_TINY), "--image-size", "16",
              "--checkpoint", str(tmp_path / "step0000009.pt"), "--out", str(tmp_path / "e.pt")])


def test_metric_details_shows_mae_fids_times_100_and_vicreg_unscaled():
    import pandas as pd

    from solargen.report.tables import metric_details

    rows = [{"run": r, "metric": "fid", "net": n, "crop": "", "value": v}
            for r, k in (("a", 1.0), ("b", 2.0))
            for n, v in (("random_inception_v3", 0.001 * k), ("mae_solar_vitb16", 0.03 * k),
                         ("vicreg_rn50_solar", 5.0 * k))]
    d = metric_details(pd.DataFrame(rows))
    assert d.loc["b", "fid/mae_solar_vitb16 ×10²"] == pytest.approx(6.0)
    assert d.loc["b", "fid/vicreg_rn50_solar"] == pytest.approx(10.0)
    assert list(d.index) == ["a", "b"]


def test_paper_dag_trains_the_solar_nets_on_gpus_before_scoring_with_them():
    from helpers import smk

    env = {"JUWELS_ACCOUNT": "testproject", "JUWELS_PARTITION": "booster"}
    r = smk("-n", "--profile", "profiles/juwels", "results/paper/real/features_mae_solarp128_vitb16.npz", env=env)
    out = r.stdout
    assert "rule feature_train:" in out and "real_features" in out
    job = out.split("rule feature_train:")[1].split("\nrule ")[0]
    assert "gres=gpu:4" in job and "nodes=16" in job and "srun" in job
    assert "--family mae_solar" in job and '"crop_px": 128' in job and "--split train" in job
    assert "feature-export" in job and "results/paper/feature_nets/mae_solarp128_vitb16/encoder.pt" in job


def test_a_net_neither_built_in_nor_configured_nor_trained_is_refused(tmp_path):
    from helpers import ci_config, smk

    cfg = ci_config(tmp_path, lambda c: c["evaluation"]["nets"].append("mae_solar_typo"))
    r = smk("-n", "--configfile", str(cfg), "--cores", "1", check=False)
    assert r.returncode and "nor trained under feature_train" in r.stdout + r.stderr


def _two_rank_vicreg_grad(rank, init_file, x1, x2, w, out):
    import torch.distributed as dist

    from solargen.models.vicreg_solar import gather_batch

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        w = w.clone().requires_grad_(True)
        half = slice(rank * 4, rank * 4 + 4)
        loss, _ = vicreg_loss(gather_batch(x1[half] @ w), gather_batch(x2[half] @ w))
        loss.backward()
        dist.all_reduce(w.grad)  # the training loop's gradient averaging
        torch.save({"loss": loss.detach(), "grad": w.grad / 2}, f"{out}.{rank}")
    finally:
        dist.destroy_process_group()


def test_vicreg_loss_over_two_ranks_equals_one_process_on_the_global_batch(tmp_path):
    import torch.multiprocessing as mp

    g = torch.Generator().manual_seed(0)
    x1, x2, w = torch.randn(8, 6, generator=g), torch.randn(8, 6, generator=g), torch.randn(6, 5, generator=g)
    mp.spawn(_two_rank_vicreg_grad, args=(str(tmp_path / "init"), x1, x2, w, str(tmp_path / "r")), nprocs=2)
    ws = w.clone().requires_grad_(True)
    loss, _ = vicreg_loss(x1 @ ws, x2 @ ws)
    loss.backward()
    for r in range(2):
        got = torch.load(tmp_path / f"r.{r}")
        torch.testing.assert_close(got["loss"], loss.detach())
        torch.testing.assert_close(got["grad"], ws.grad)


def _solar_benchmark():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "solar_features.py"
    spec = importlib.util.spec_from_file_location("solar_features_benchmark", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_blur_shift_over_spread_is_the_mean_shift_in_units_of_the_frames_variance():
    import numpy as np

    bench = _solar_benchmark()
    rng = np.random.default_rng(0)
    sharp, other = rng.normal(size=(30, 4)), rng.normal(size=(30, 4))
    blurred = sharp + np.array([3.0, 0.0, 4.0, 0.0])  # the blur moves every frame's features by |(3, 0, 4, 0)| = 5
    want = 25.0 / np.trace(np.cov(np.concatenate([sharp, other]), rowvar=False))
    assert bench.blur_shift_over_spread(sharp, blurred, other) == pytest.approx(want, rel=1e-12)
    # Independent of the features' scale, as the FID ratio it explains.
    assert bench.blur_shift_over_spread(10 * sharp, 10 * blurred, 10 * other) == pytest.approx(want, rel=1e-12)
    assert bench.blur_shift_over_spread(sharp, sharp, other) == 0.0


def test_block_windows_are_runs_of_consecutive_training_blocks():
    import numpy as np

    bench = _solar_benchmark()
    blocks = np.array([1, 1, 2, 2, 3, 4, 4, 5, 6, 6, 7])
    train = np.array([0, 1, 2, 3, 4, 8, 9, 10])  # blocks 1, 2, 3 and 6, 7 train; 4 and 5 are held out
    got = [w.tolist() for w in bench.block_windows(blocks, train, 2)]
    assert got == [[0, 1, 2, 3], [2, 3, 4], [8, 9, 10]]  # (1, 2), (2, 3), (6, 7); never across the gap
    assert [w.tolist() for w in bench.block_windows(blocks, train, 3)] == [[0, 1, 2, 3, 4]]
