"""StyleGAN2 (Karras et al. 2020) with its own discriminator: the study's starting point.

Its fine-scale failure on high-resolution solar images (and not on faces) is what the study
sets out to explain, so the recipe is the faithful one (stylegan2-ada's ``stylegan2`` cfg,
without ADA), scaled by config. Per ``training_step``, four phases as in stylegan2-ada, each its
own Adam step (a regularisation step is a separate optimiser step, not added to the main one):

    G main:  softplus(−D(G(z)))                      z with style mixing (p = ``style_mixing``,
             one crossover layer per batch)
    G reg:   every ``pl_interval`` steps, pl_weight · pl_interval · path-length penalty
             on batch / ``pl_batch_shrink`` images
    D main:  softplus(D(G(z))) + softplus(−D(x))
    D reg:   every ``r1_interval`` steps, (γ/2) · r1_interval · E‖∇ₓD(x)‖²

Lazy regularisation is compensated as in the paper: each net's Adam lr is multiplied by
c = interval/(interval+1) and its betas raised to the power c.

Config keys (``models.<name>``; defaults = stylegan2-ada's cfg ``stylegan2``):
``z_dim`` (512), ``w_dim`` (512), ``mapping_layers`` (8), ``channel_base`` (32768),
``channel_max`` (512), ``mbstd_group_size`` (4), ``lr`` (0.002), ``betas`` ([0, 0.99]),
``batch_size``, ``r1_gamma`` (unset: stylegan2-ada's heuristic 0.0002·res²/batch,
`losses.heuristic_r1_gamma`; config F's 10 is set explicitly in config.yaml), ``r1_interval`` (16), ``pl_weight`` (2), ``pl_interval`` (4),
``pl_batch_shrink`` (2), ``style_mixing`` (0.9), ``ema_kimg`` (10), ``ema_rampup`` (null),
``truncation_psi`` (1, at sampling), ``save_every``. ``ema_rampup`` caps the EMA half-life at
that fraction of the images seen (stylegan2-ada's ``--cfg`` option; config F has none, short
runs need one or the sampled G stays close to its initialisation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ema import EMA, half_life_decay
from .losses import PathLengthPenalty, heuristic_r1_gamma, r1_penalty
from .networks import Discriminator, Generator


def build_generator(cfg: dict, image_size: int) -> Generator:
    return Generator(image_size, z_dim=int(cfg.get("z_dim", 512)), w_dim=int(cfg.get("w_dim", 512)),
                     mapping_layers=int(cfg.get("mapping_layers", 8)),
                     channel_base=int(cfg.get("channel_base", 32768)), channel_max=int(cfg.get("channel_max", 512)))


def build_discriminator(cfg: dict, image_size: int) -> Discriminator:
    return Discriminator(image_size, channel_base=int(cfg.get("channel_base", 32768)),
                         channel_max=int(cfg.get("channel_max", 512)),
                         mbstd_group_size=int(cfg.get("mbstd_group_size", 4)))


def _adam(params, lr, betas, interval):
    c = interval / (interval + 1) if interval else 1.0  # lazy-regularisation compensation
    return torch.optim.Adam(params, lr=lr * c, betas=tuple(b ** c for b in betas), eps=1e-8)


class StyleGAN2Trainer:
    """A trainable for `solargen.train.fit`: G main/reg, then D main/reg phases per batch."""

    def __init__(self, cfg: dict, image_size: int, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.G = build_generator(cfg, image_size).to(self.device)
        self.D = build_discriminator(cfg, image_size).to(self.device)
        if self.device.type == "cpu":  # oneDNN convolutions without NCHW reorders: −7 % CPU per demo step
            self.D.to(memory_format=torch.channels_last)
        self.pl = PathLengthPenalty().to(self.device)
        lr, betas = float(cfg.get("lr", 0.002)), tuple(float(b) for b in cfg.get("betas", (0.0, 0.99)))
        self.batch_size = int(cfg.get("batch_size", 32))
        gamma = cfg.get("r1_gamma")
        self.r1_gamma = heuristic_r1_gamma(image_size, self.batch_size) if gamma is None else float(gamma)
        self.r1_interval, self.pl_interval = int(cfg.get("r1_interval", 16)), int(cfg.get("pl_interval", 4))
        self.pl_weight, self.pl_shrink = float(cfg.get("pl_weight", 2.0)), int(cfg.get("pl_batch_shrink", 2))
        self.mixing = float(cfg.get("style_mixing", 0.9))
        self.ema_kimg, self.ema_rampup = float(cfg.get("ema_kimg", 10.0)), cfg.get("ema_rampup")
        # pl holds the path-length running mean: checkpointed so a resumed run continues exactly.
        self.modules = {"G": self.G, "D": self.D, "pl": self.pl}
        self.optimizers = {"G": _adam(self.G.parameters(), lr, betas, self.pl_interval if self.pl_weight else 0),
                           "D": _adam(self.D.parameters(), lr, betas, self.r1_interval if self.r1_gamma else 0)}
        self.ema = {"G": EMA(self.G, 0.0)}

    def _ws(self, b: int, generator: torch.Generator) -> torch.Tensor:
        """W+ latents (b, num_ws, w_dim) with style mixing (a second z from the crossover layer on)."""
        z = torch.randn((b, self.G.z_dim), generator=generator).to(self.device)
        return self.G.mixed_mapping(z, self.mixing, generator)

    def training_step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> dict[str, float]:
        """One step on reals ``x`` (B, 1, H, W) in [-1, 1] at 0-based ``step`` (randomness from ``generator``)."""
        self.G.train()
        self.D.train()
        b = x.shape[0]
        out = {}
        G_opt, D_opt = self.optimizers["G"], self.optimizers["D"]
        # G main.
        self.D.requires_grad_(False)
        fake = self.G.synthesis(self._ws(b, generator), generator=generator)
        loss_G = F.softplus(-self.D(fake)).mean()
        G_opt.zero_grad(set_to_none=True)
        loss_G.backward()
        G_opt.step()
        out["loss_G"] = float(loss_G.detach())
        # G reg: its own optimiser step, as stylegan2-ada's Greg phase.
        if self.pl_weight > 0 and step % self.pl_interval == 0:
            ws = self._ws(max(1, b // self.pl_shrink), generator)
            pl = self.pl(self.G, ws, generator)
            G_opt.zero_grad(set_to_none=True)
            (pl * self.pl_weight * self.pl_interval).backward()
            G_opt.step()
            out["pl_penalty"] = float(pl.detach())
        # D main.
        self.D.requires_grad_(True)
        with torch.no_grad():
            fake = self.G.synthesis(self._ws(b, generator), generator=generator)
        loss_D = F.softplus(self.D(fake)).mean() + F.softplus(-self.D(x)).mean()
        D_opt.zero_grad(set_to_none=True)
        loss_D.backward()
        D_opt.step()
        out["loss_D"] = float(loss_D.detach())
        # D reg (Dreg phase).
        if self.r1_gamma > 0 and step % self.r1_interval == 0:
            r1, _ = r1_penalty(self.D, x)
            D_opt.zero_grad(set_to_none=True)
            (r1 * (self.r1_gamma / 2) * self.r1_interval).backward()
            D_opt.step()
            out["r1_penalty"] = float(r1.detach())
        self.ema["G"].decay = half_life_decay(step, self.batch_size, self.ema_kimg, self.ema_rampup)
        self.ema["G"].update(self.G)
        return out


@torch.no_grad()
def draw(G: torch.nn.Module, n: int, *, seed: int, batch_size: int, device, truncation_psi: float = 1.0) -> torch.Tensor:
    """``n`` images (n, C, H, W) in [-1, 1] from generator ``G`` (taking z, ψ, noise_mode, generator).

    z and the noise inputs come from ``torch.Generator().manual_seed(seed)`` on the CPU, so the
    images are the same on any device. Shared by every z → image family.
    """
    G.to(device).eval()
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(0, n, batch_size):
        z = torch.randn((min(batch_size, n - i), G.z_dim), generator=g).to(device)
        out.append(G(z, truncation_psi=truncation_psi, noise_mode="random", generator=g))
    return torch.cat(out).clamp(-1, 1).cpu()


def sample(state: dict, cfg: dict, image_size: int, n: int, *, seed: int = 0, batch_size: int = 16,
           device: str | torch.device = "cpu", **_) -> torch.Tensor:
    """``n`` images (n, 1, H, W) in [-1, 1] from the EMA generator at truncation ψ = ``truncation_psi``
    (see `draw`); other kwargs (steps, sampler) are ignored so every family can be called alike."""
    G = build_generator(cfg, image_size)
    G.load_state_dict(state["ema"]["G"])
    return draw(G, n, seed=seed, batch_size=batch_size, device=device,
                truncation_psi=float(cfg.get("truncation_psi", 1.0)))
