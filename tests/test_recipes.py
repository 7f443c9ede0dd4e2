"""Training recipes against the reference implementations (issue #22): loss scales, EMA schedules,
regularisation weights and phases, style mixing, projected-discriminator logit sizes."""

import pytest
import torch

from solargen.models.diffusion.family import DiffusionTrainer
from solargen.models.msdgan.family import MSDGANTrainer

# --- conditional GAN: LSGAN summed over scales (pix2pixHD), no ½ in G ------------------------------


class _ConstantD(torch.nn.Module):
    """Three 'scales' whose final logits are a fixed value on reals and another on fakes."""

    def __init__(self, real: float, fake: float, scales: int = 3):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(()))
        self.real, self.fake, self.scales = real, fake, scales

    def forward(self, y, cond):
        is_real = getattr(y, "_is_real", False)
        v = self.real if is_real else self.fake
        return [[torch.full((y.shape[0], 1, 4, 4), v) + 0 * self.w] for _ in range(self.scales)]


def test_msdgan_lsgan_is_summed_over_scales_without_a_half_in_g():
    cfg = {"factor": 4, "noise": True, "base_channels": 8, "lambda_l1": 0.0, "lambda_gan": 1.0,
           "batch_size": 2, "save_every": 1000}
    torch.manual_seed(0)
    t = MSDGANTrainer(cfg, 16)
    # D outputs 0.5 everywhere for fakes (and reals: the stub cannot tell them apart)
    t.D = _ConstantD(real=0.5, fake=0.5)
    t.optimizers["D"] = torch.optim.SGD(t.D.parameters(), lr=0.0)
    out = t.training_step(torch.zeros(2, 1, 16, 16), 0, torch.Generator().manual_seed(0))
    # G: Σ over 3 scales of (0.5 − 1)² = 0.75 (the old mean·½ gave 0.125)
    assert out["gan_G"] == pytest.approx(3 * 0.25)
    # D: ½ Σ over scales of [(0.5 − 1)² + 0.5²] = 0.75
    assert out["loss_D"] == pytest.approx(0.5 * 3 * (0.25 + 0.25))


# --- diffusion EMA: constant decay unless the config asks for the warm-up ------------------------

DIFF = {"num_channels": 8, "num_res_blocks": 1, "channel_mult": [1, 2], "attention_resolutions": [],
        "num_heads": 1, "diffusion_steps": 100, "noise_schedule": "linear", "lr": 3e-3,
        "batch_size": 4, "ema_rate": 0.99, "random_flip": False, "save_every": 1000}


def _decays(cfg, steps=4):
    """The decay each EMA update actually applied, recovered from one parameter."""
    torch.manual_seed(0)
    t = DiffusionTrainer(cfg, 16)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 1, 16, 16, generator=g) * 2 - 1
    ema_p = dict(t.ema["unet"].model.named_parameters())
    out = []
    for s in range(steps):
        name = "out.2.bias" if "out.2.bias" in ema_p else next(iter(ema_p))
        before = ema_p[name].detach().double().clone()
        t.training_step(x, s, g)
        p = dict(t.unet.named_parameters())[name].detach().double()
        after = ema_p[name].detach().double()
        i = (before - p).abs().argmax()
        out.append(float((after.flatten()[i] - p.flatten()[i]) / (before.flatten()[i] - p.flatten()[i])))
    return out


def test_diffusion_ema_is_constant_by_default_and_warms_up_only_when_asked():
    assert _decays(DIFF) == pytest.approx([0.99] * 4, abs=1e-6)
    warm = _decays({**DIFF, "ema_warmup": True})
    assert warm == pytest.approx([min(0.99, (1 + s) / (10 + s)) for s in range(4)], abs=1e-6)
