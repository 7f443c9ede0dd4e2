"""The study's diffusion family (ADM, unconditional, grayscale) plugged into the shared loop.

Training: ε-prediction with the MSE loss, Adam at a constant learning rate, EMA of the
weights at a constant ``ema_rate`` (guided-diffusion's; ``ema_warmup: true`` caps it at
(1 + step)/(10 + step), for runs too short for a constant rate to forget the initial weights),
optional random horizontal flip (the study's effective regulariser). Sampling:
respaced ancestral DDPM (the study's default) or DDIM, from the EMA weights.
"""

from __future__ import annotations

import torch

from ..ema import EMA
from .gaussian_diffusion import GaussianDiffusion, beta_schedule, respaced, space_timesteps
from .unet import UNet, default_channel_mult


def build_unet(cfg: dict, image_size: int) -> UNet:
    """The UNet of a ``models.<name>`` config entry (keys as in ``config/README.md``)."""
    mult = cfg.get("channel_mult") or default_channel_mult(image_size)
    return UNet(image_size=image_size, in_channels=1, out_channels=1,
                model_channels=cfg["num_channels"], num_res_blocks=cfg["num_res_blocks"],
                attention_resolutions=tuple(cfg.get("attention_resolutions", [16, 8])),
                dropout=cfg.get("dropout", 0.0), channel_mult=tuple(mult),
                num_heads=cfg.get("num_heads", 4), use_scale_shift_norm=True,
                learn_sigma=cfg.get("learn_sigma", False), use_checkpoint=bool(cfg.get("use_checkpoint", False)))


def build_diffusion(cfg: dict) -> GaussianDiffusion:
    return GaussianDiffusion(beta_schedule(cfg.get("noise_schedule", "linear"), cfg["diffusion_steps"]),
                             learn_sigma=cfg.get("learn_sigma", False))


class DiffusionTrainer:
    """A trainable for `solargen.train.fit` (see there for the protocol)."""

    def __init__(self, cfg: dict, image_size: int, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.unet = build_unet(cfg, image_size).to(self.device)
        if self.device.type == "cpu":  # as in `sample`: −14 % CPU per demo training step
            self.unet.to(memory_format=torch.channels_last)
        self.diffusion = build_diffusion(cfg)
        self.opt = torch.optim.Adam(self.unet.parameters(), lr=float(cfg["lr"]),
                                    weight_decay=float(cfg.get("weight_decay", 0.0)))
        self.modules = {"unet": self.unet}
        self.optimizers = {"adam": self.opt}
        self.ema = {"unet": EMA(self.unet, float(cfg.get("ema_rate", 0.9999)))}
        self.ema_warmup = bool(cfg.get("ema_warmup", False))

    def training_step(self, x0: torch.Tensor, step: int, generator: torch.Generator) -> dict[str, float]:
        """One Adam step on a batch ``x0`` (B, 1, H, W) in [-1, 1] at 0-based ``step``.

        Random draws come from the CPU ``generator`` (then move to the device), so a run is
        reproducible and resumable whatever the device.
        """
        self.unet.train()
        b = x0.shape[0]
        if self.cfg.get("random_flip", True):
            flip = (torch.rand(b, generator=generator) < 0.5).to(self.device)
            x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
        t = torch.randint(0, self.diffusion.num_timesteps, (b,), generator=generator).to(self.device)
        noise = torch.randn(x0.shape, generator=generator).to(self.device)
        losses = self.diffusion.training_loss(self.unet, x0, t=t, noise=noise)
        self.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        self.opt.step()
        # EMA.update applies the warm-up cap only when given the step.
        self.ema["unet"].update(self.unet, step if self.ema_warmup else None)
        return {k: float(v.detach()) for k, v in losses.items()}


@torch.no_grad()
def sample(state: dict, cfg: dict, image_size: int, n: int, *, steps: int, sampler: str = "ddpm",
           seed: int = 0, batch_size: int = 16, device: str | torch.device = "cpu") -> torch.Tensor:
    """Draw ``n`` images (n, 1, H, W) in [-1, 1] from a checkpoint's EMA weights.

    ``steps`` respaces the trained T-step chain to S evenly spaced steps (the study's
    ``timestep_respacing``), so one trained model serves a whole sampling-steps sweep.
    """
    from tqdm import tqdm

    from ...memory import keep_freed_memory

    keep_freed_memory()  # the UNet's activations reused from the heap, not re-faulted each call
    unet = build_unet(cfg, image_size)
    unet.load_state_dict(state["ema"]["unet"])
    # Channels-last: oneDNN's convolutions take ~14 % less CPU per UNet call at the demo's size
    # (measured, 1 thread); the samples equal NCHW ones to float rounding.
    unet.to(device, memory_format=torch.channels_last).eval()
    betas = beta_schedule(cfg.get("noise_schedule", "linear"), cfg["diffusion_steps"])
    diffusion = respaced(betas, space_timesteps(cfg["diffusion_steps"], steps),
                         learn_sigma=cfg.get("learn_sigma", False))
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in tqdm(range(0, n, batch_size), desc=f"sample {sampler}-{steps}", unit="batch"):
        shape = (min(batch_size, n - i), 1, image_size, image_size)
        if sampler == "ddim":
            out.append(diffusion.ddim_sample_loop(unet, shape, eta=0.0, generator=g))
        elif sampler == "ddpm":
            out.append(diffusion.p_sample_loop(unet, shape, generator=g))
        else:
            raise ValueError(f"unknown sampler {sampler!r} (allowed: ddpm, ddim)")
    return torch.cat(out).clamp(-1, 1).cpu()
