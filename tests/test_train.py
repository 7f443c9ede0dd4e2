"""The shared training loop: deterministic data order, exact resume, corrupt-checkpoint fallback."""

import pytest
import torch

from helpers import Toy
from solargen.train import batch_indices, checkpoint_path, fit, latest_checkpoint




DATA = [torch.randn(1, 2, 2, generator=torch.Generator().manual_seed(i)) for i in range(10)]


def _weights(t):
    return torch.cat([p.detach().flatten() for p in t.net.parameters()] +
                     [p.flatten() for p in t.ema["net"].model.parameters()])


def test_batch_indices_cover_each_epoch_once():
    idx = torch.cat([batch_indices(s, 5, 10, seed=3) for s in range(2)])
    assert sorted(idx.tolist()) == list(range(10))
    assert torch.equal(batch_indices(7, 4, 10, 3), batch_indices(7, 4, 10, 3))
    assert not torch.equal(batch_indices(0, 10, 10, 3), batch_indices(0, 10, 10, 4))


def test_resume_is_exact(tmp_path):
    straight = Toy()
    fit(straight, DATA, batch_size=3, total_steps=8, ckpt_dir=tmp_path / "a", save_every=100, seed=1)
    first = Toy()
    fit(first, DATA, batch_size=3, total_steps=5, ckpt_dir=tmp_path / "b", save_every=100, seed=1)
    resumed = Toy()  # a fresh process: state comes only from the checkpoint
    fit(resumed, DATA, batch_size=3, total_steps=8, ckpt_dir=tmp_path / "b", save_every=100, seed=1,
        log_csv=tmp_path / "b" / "log.csv", log_every=1)
    assert torch.equal(_weights(straight), _weights(resumed))
    assert not torch.equal(_weights(first), _weights(resumed))


def test_corrupt_newest_checkpoint_falls_back(tmp_path):
    t = Toy()
    fit(t, DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path, save_every=2, seed=0)
    checkpoint_path(tmp_path, 4).write_bytes(b"truncated")
    path, state = latest_checkpoint(tmp_path)
    assert path == checkpoint_path(tmp_path, 2) and state["step"] == 2
    # Training to step 4 again redoes steps 3–4 from the valid checkpoint and reproduces them.
    again = Toy()
    fit(again, DATA, batch_size=2, total_steps=4, ckpt_dir=tmp_path, save_every=2, seed=0)
    assert torch.equal(_weights(again), _weights(t))


def test_training_log_drops_rows_of_a_lost_run(tmp_path):
    log = tmp_path / "log.csv"
    fit(Toy(), DATA, batch_size=2, total_steps=6, ckpt_dir=tmp_path / "c", save_every=3, seed=0,
        log_csv=log, log_every=1)
    (tmp_path / "c" / "step0000006.pt").unlink()
    fit(Toy(), DATA, batch_size=2, total_steps=6, ckpt_dir=tmp_path / "c", save_every=3, seed=0,
        log_csv=log, log_every=1)
    steps = [int(line.split(",")[0]) for line in log.read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_lr_scaling_rules():
    from solargen.train import scale_lr

    cfg = {"lr": 1e-4, "batch_size": 64}
    assert scale_lr(cfg) == cfg
    assert scale_lr({**cfg, "lr_scaling": "linear", "lr_reference_batch": 16})["lr"] == 4e-4
    assert abs(scale_lr({**cfg, "lr_scaling": "sqrt", "lr_reference_batch": 16})["lr"] - 2e-4) < 1e-12
    import pytest

    with pytest.raises(ValueError, match="lr_reference_batch"):
        scale_lr({**cfg, "lr_scaling": "linear"})


def test_tensorboard_scalars_match_the_csv_log_and_survive_a_resume(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = tmp_path / "tb"
    fit(Toy(), DATA, batch_size=2, total_steps=6, ckpt_dir=tmp_path / "c", save_every=3, seed=0,
        log_csv=tmp_path / "log.csv", log_every=1, tensorboard=tb)
    (tmp_path / "c" / "step0000006.pt").unlink()  # steps 4–6 are lost and trained again
    fit(Toy(), DATA, batch_size=2, total_steps=6, ckpt_dir=tmp_path / "c", save_every=3, seed=0,
        log_csv=tmp_path / "log.csv", log_every=1, tensorboard=tb)
    csv_rows = (tmp_path / "log.csv").read_text().splitlines()
    assert csv_rows[0] == "step,loss,images_per_s"
    ev = EventAccumulator(str(tb))
    ev.Reload()
    loss = ev.Scalars("train/loss")
    assert [e.step for e in loss] == [1, 2, 3, 4, 5, 6]  # the lost run's events were purged
    assert [f"{e.value:.6g}" for e in loss] == [r.split(",")[1] for r in csv_rows[1:]]


def test_periodic_check_is_logged_and_does_not_change_training(tmp_path):
    calls = []

    def check(trainable):
        calls.append(1)
        return {"check_value": float(len(calls))}

    plain, checked = Toy(), Toy()
    fit(plain, DATA, batch_size=3, total_steps=6, ckpt_dir=tmp_path / "a", save_every=100, seed=1)
    fit(checked, DATA, batch_size=3, total_steps=6, ckpt_dir=tmp_path / "b", save_every=100, seed=1,
        log_csv=tmp_path / "log.csv", log_every=5, check=check, check_every=2)
    assert torch.equal(_weights(plain), _weights(checked))
    import pandas as pd

    log = pd.read_csv(tmp_path / "log.csv")
    # Checks at 2, 4, 6 join the log (the column added when the first one came); loss rows at 5, 6.
    assert log.step.tolist() == [2, 4, 5, 6] and log.check_value.tolist()[:2] == [1.0, 2.0]
    assert log.check_value.isna().tolist() == [False, False, True, False] and log.loss.notna().all()


def test_training_check_on_a_real_family():
    from solargen.evaluate.training_check import TrainingCheck
    from solargen.models import family

    fam = family("stylegan2")
    cfg = {"z_dim": 8, "w_dim": 8, "mapping_layers": 1, "channel_base": 64, "channel_max": 8, "lr": 0.002,
           "batch_size": 2}
    trainer = fam.trainer(cfg, 16, device=torch.device("cpu"))
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    check = TrainingCheck(fam.sample, cfg, 16, real, conditional=False, steps=2)
    state = torch.get_rng_state()
    first = check(trainer)
    assert torch.equal(state, torch.get_rng_state())  # the training's random stream is untouched
    assert set(first) == {"check_spectral_distance", "check_spectral_distance_high"}
    assert all(v >= 0 and v == v for v in first.values())
    assert check(trainer) == first  # same weights, same seed: the same numbers


def test_training_check_in_single_image_calls_gives_the_same_numbers():
    """``batch_size=1`` (the CPU paper smoke's bound on activations) draws the same images as one call
    for all: the same noise from the same generator, the same deterministic DDIM chain."""
    from solargen.evaluate.training_check import TrainingCheck
    from solargen.models import family

    fam = family("diffusion")
    cfg = {"num_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [8],
           "num_heads": 2, "diffusion_steps": 40, "noise_schedule": "linear", "lr": 1e-4, "batch_size": 2}
    torch.manual_seed(0)
    trainer = fam.trainer(cfg, 16, device=torch.device("cpu"))
    with torch.no_grad():
        for p in trainer.ema["unet"].model.parameters():  # zero-initialised output layers would draw noise
            p.copy_(torch.randn_like(p) * 0.2)
    real = torch.rand(3, 1, 16, 16) * 2 - 1
    whole = TrainingCheck(fam.sample, cfg, 16, real, conditional=False, steps=4)(trainer)
    single = TrainingCheck(fam.sample, cfg, 16, real, conditional=False, steps=4, batch_size=1)(trainer)
    assert single == pytest.approx(whole, rel=1e-4)
    assert whole["check_spectral_distance"] > 0
