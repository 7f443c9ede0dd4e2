"""A periodic, cheap look at what a model draws while it trains.

Every ``every`` steps rank 0 draws ``n`` images from the current EMA weights (the weights the
samples will come from), exactly as the `sample` rule would, and compares their mean radial
power spectrum with that of ``n`` real training frames: the spectral distance over all
wavenumbers and over the upper half (the fine scales the study is about). With tens of images
these are trends, not results; a FID on so few images would be mostly noise, so there is none.
"""

from __future__ import annotations

import numpy as np
import torch

from .spectrum import HIGH_BAND, radial_power_spectrum, spectral_distance


class TrainingCheck:
    """``check(trainable) -> {"check_spectral_distance": …, "check_spectral_distance_high": …}``.

    ``real``: (n, 1, H, W) frames in [-1, 1]; conditional families are conditioned on them.
    ``sample``: the family's sampler (`solargen.models.Family.sample`); ``steps``: sampling
    steps for diffusion (a short DDIM chain keeps the check cheap). ``batch_size``: images per
    sampler call (default all ``n`` at once; 1 bounds the activations, e.g. a 1024-px UNet on a CPU).
    """

    def __init__(self, sample, cfg: dict, image_size: int, real: torch.Tensor, *, conditional: bool,
                 steps: int = 25, seed: int = 0, device="cpu", batch_size: int | None = None):
        self.sample, self.cfg, self.image_size = sample, cfg, image_size
        self.batch_size = batch_size or len(real)
        self.real, self.conditional, self.steps, self.seed, self.device = real, conditional, steps, seed, device
        self.p_real = radial_power_spectrum(_unit(real))[1].mean(0)

    def __call__(self, trainable) -> dict[str, float]:
        state = {"ema": {k: e.state_dict() for k, e in trainable.ema.items()}}
        extra = {"targets": self.real} if self.conditional else {}
        # The same seed every time, so successive checks differ only by the weights; the
        # training's own random streams are left untouched.
        with torch.random.fork_rng(devices=[]):
            x = self.sample(state, self.cfg, self.image_size, len(self.real), steps=self.steps, sampler="ddim",
                            seed=self.seed, batch_size=self.batch_size, device=self.device, **extra)
        p = radial_power_spectrum(_unit(x.cpu()))[1].mean(0)
        return {"check_spectral_distance": spectral_distance(self.p_real, p),
                "check_spectral_distance_high": spectral_distance(self.p_real, p, HIGH_BAND)}


def _unit(x: torch.Tensor) -> np.ndarray:
    """(n, 1, H, W) in [-1, 1] → (n, H, W) in [0, 1], as the evaluation sees PNGs."""
    return ((x[:, 0].float().clamp(-1, 1) + 1) / 2).numpy().astype(np.float64)
