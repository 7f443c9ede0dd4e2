"""The diffusion family through the shared loop: overfitting one image, exact resume, EMA."""

import csv

import torch

from solargen.models.diffusion.family import DiffusionTrainer, sample
from solargen.models.ema import EMA
from solargen.train import fit, load_checkpoint

TINY = {"num_channels": 8, "num_res_blocks": 1, "channel_mult": [1, 2], "attention_resolutions": [],
        "num_heads": 1, "diffusion_steps": 100, "noise_schedule": "linear", "lr": 3e-3,
        "batch_size": 8, "ema_rate": 0.9, "random_flip": False, "save_every": 1000}


def _target():
    yy, xx = torch.meshgrid(torch.arange(16.0), torch.arange(16.0), indexing="ij")
    disk = ((yy - 7.5) ** 2 + (xx - 7.5) ** 2 < 30).float()
    return (disk * 1.6 - 0.8)[None]  # (1, 16, 16) in [-1, 1]


def test_a_tiny_model_overfits_one_image_and_its_samples_move_toward_it(tmp_path):
    torch.manual_seed(0)
    x = _target()
    trainer = DiffusionTrainer(TINY, 16)
    before = sample({"ema": {"unet": trainer.ema["unet"].state_dict()}}, TINY, 16, 8, steps=20,
                    sampler="ddim", seed=1)
    fit(trainer, [x], batch_size=8, total_steps=300, ckpt_dir=tmp_path, save_every=1000, seed=0,
        log_csv=tmp_path / "log.csv", log_every=1)
    losses = [float(r["loss"]) for r in csv.DictReader(open(tmp_path / "log.csv"))]
    assert sum(losses[-30:]) / 30 < sum(losses[:30]) / 30 / 4
    after = sample(load_checkpoint(tmp_path / "step0000300.pt"), TINY, 16, 8, steps=20, sampler="ddim", seed=1)
    err_before = ((before - x) ** 2).mean()
    err_after = ((after - x) ** 2).mean()
    assert err_after < err_before / 2


def test_resume_continues_the_same_loss_curve(tmp_path):
    data = [_target(), -_target()]
    torch.manual_seed(0)
    fit(DiffusionTrainer(TINY, 16), data, batch_size=4, total_steps=12, ckpt_dir=tmp_path / "a",
        save_every=1000, seed=3, log_csv=tmp_path / "a.csv", log_every=1)
    torch.manual_seed(0)
    fit(DiffusionTrainer(TINY, 16), data, batch_size=4, total_steps=6, ckpt_dir=tmp_path / "b",
        save_every=1000, seed=3, log_csv=tmp_path / "b.csv", log_every=1)
    torch.manual_seed(123)  # a new process with other global RNG state: the checkpoint restores it
    fit(DiffusionTrainer(TINY, 16), data, batch_size=4, total_steps=12, ckpt_dir=tmp_path / "b",
        save_every=1000, seed=3, log_csv=tmp_path / "b.csv", log_every=1)
    a = [r["loss"] for r in csv.DictReader(open(tmp_path / "a.csv"))]
    b = [r["loss"] for r in csv.DictReader(open(tmp_path / "b.csv"))]
    assert len(a) == 12 and a == b


def test_ema_update_is_an_exponential_moving_average():
    net = torch.nn.Linear(3, 1)
    ema = EMA(net, decay=0.9)
    start = [p.clone() for p in ema.model.parameters()]
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update(net)
    for e, s, p in zip(ema.model.parameters(), start, net.parameters()):
        torch.testing.assert_close(e, 0.9 * s + 0.1 * p)
    # Warm-up: at step 0 the effective decay is min(0.9, 1/10) = 0.1.
    before = [p.clone() for p in ema.model.parameters()]
    ema.update(net, step=0)
    for e, s, p in zip(ema.model.parameters(), before, net.parameters()):
        torch.testing.assert_close(e, 0.1 * s + 0.9 * p)
    assert not any(p.requires_grad for p in ema.model.parameters())


def test_ddim_with_eta_0_is_deterministic_for_a_seed():
    trainer = DiffusionTrainer(TINY, 16)
    state = {"ema": {"unet": trainer.unet.state_dict()}}
    a = sample(state, TINY, 16, 3, steps=10, sampler="ddim", seed=5)
    b = sample(state, TINY, 16, 3, steps=10, sampler="ddim", seed=5)
    c = sample(state, TINY, 16, 3, steps=10, sampler="ddim", seed=6)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sampling_layout_equals_the_plain_nchw_strided_model_to_float_rounding():
    """`sample` runs the UNet channels-last with contiguous attention heads (for speed); its images
    equal the same chain run on the plain NCHW model with training's strided attention."""
    from solargen.models.diffusion.family import build_unet
    from solargen.models.diffusion.gaussian_diffusion import beta_schedule, respaced, space_timesteps

    cfg = {"num_channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention_resolutions": [8],
           "num_heads": 2, "diffusion_steps": 40, "noise_schedule": "linear"}
    torch.manual_seed(0)
    ref = build_unet(cfg, 16)
    with torch.no_grad():
        for p in ref.parameters():  # zero-initialised output layers would hide the attention
            p.copy_(torch.randn_like(p) * 0.2)
    ref.eval()
    ours = sample({"ema": {"unet": ref.state_dict()}}, cfg, 16, 3, steps=8, seed=5, batch_size=3)

    def plain(x, t):
        with torch.enable_grad():  # the training path: strided attention
            return ref(x.contiguous(), t).detach()

    d = respaced(beta_schedule("linear", 40), space_timesteps(40, 8))
    want = d.p_sample_loop(plain, (3, 1, 16, 16), generator=torch.Generator().manual_seed(5)).clamp(-1, 1)
    assert ours.abs().max() > 0.1
    torch.testing.assert_close(ours, want, rtol=1e-4, atol=1e-4)
