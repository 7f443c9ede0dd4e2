"""Exponential moving averages of a model's weights, the weights every family samples from.

Its own module so that the model families need not import the training loop (`solargen.train`,
downstream of the models), which only saves and restores them.
"""

from __future__ import annotations

import copy

import torch


class EMA:
    """Exponential moving average of a module's parameters (buffers are copied)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int | None = None):
        # Warm-up: early on follow the weights closely, else the average of a short (demo-scale)
        # run is still dominated by the random initial weights.
        d = self.decay if step is None else min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)

    def state_dict(self):
        return self.model.state_dict()

    def load_state_dict(self, sd):
        self.model.load_state_dict(sd)


def half_life_decay(step: int, batch_size: int, ema_kimg: float, ema_rampup: float | None = None) -> float:
    """Per-step EMA decay for a half-life of ``ema_kimg``·1000 images, as in StyleGAN2/ProjectedGAN.

    With ``ema_rampup`` the half-life is capped at that fraction of the images seen so far, so
    early weights are forgotten quickly.
    """
    half_life = ema_kimg * 1000
    if ema_rampup is not None:
        half_life = min(half_life, (step + 1) * batch_size * ema_rampup)
    return 0.5 ** (batch_size / max(half_life, 1e-8))
