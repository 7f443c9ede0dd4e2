"""ProjectedGAN (Sauer et al. 2021) as the study ran it, on the shared training loop.

A StyleGAN2 generator (or FastGAN's) against four small patch discriminators that look at
frozen, ImageNet-pretrained EfficientNet-Lite features mixed by fixed random projections, with
DiffAugment on real and fake and the hinge loss. Per ``training_step`` (upstream's phase order):

    G: −mean D(aug(G(z)))                                   (D frozen, gradients flow through it)
    D: mean relu(1 − D(aug(x))) + mean relu(1 + D(aug(G(z))))

The ablations are switches resolved by `ablations.resolve`. Config keys (``models.<name>``):

- ``ablation`` (``full_projectedgan``): a key of `ablations.ABLATIONS`; its switches
  (``backbone``, ``pretrained``, ``weights_path``, ``freeze_backbone``, ``freeze_projections``,
  ``proj_type``, ``num_discs``, ``diffaug``, ``discriminator``) may also be set directly.
- ``generator`` (``stylegan2``): ``stylegan2`` (the study's ``--cfg=stylegan2``) or ``fastgan``.
  StyleGAN2: ``z_dim`` (64), ``w_dim`` (128), ``mapping_layers`` (2), ``channel_base`` (32768),
  ``channel_max`` (512). FastGAN: ``z_dim`` (256), ``ngf`` (128), ``lite`` (true).
- ``interp_size`` (224): D inputs smaller than this are bilinearly resized to it before the
  feature network (upstream's ``interp224``); ``null`` never resizes.
- ``disc_input_size`` (unset: the data's size, upstream): a power of two ≥ 32 to which every image D
  sees is area-downsampled first (the pixel-D arm's D is then built at that size); with
  ``interp_size`` ≤ it the feature network runs at the smaller size. A demo experiment
  (docs/training_recipes.md); no shipped config sets it.
- ``separable`` (true), ``disc_width`` (1.0): mini-D blocks (depthwise-separable, the stylegan2
  cfg) and a multiplier on their channel widths (small CPU configs).
- ``disc_sizing`` (``nominal``, upstream): mini-D depth from a nominal 256-px input; ``actual``
  sizes it from the real feature maps so the logits stay ≥ 4×4 below 224 px (the demo), each mini-D
  keeping ≥ 1 conv-BN-LeakyReLU block as upstream's.
- ``lr`` (0.002), ``betas`` ([0, 0.99]), ``batch_size``: Adam for G and D. D's lr and betas get
  upstream's lazy-regularisation factor 16/17 although D has no regulariser (a quirk of the
  original code, kept so the recipe is the study's).
- ``r1_gamma`` (unset: 0.0002·res²/batch, stylegan2-ada's heuristic), ``r1_interval`` (16): the
  ``stylegan2_discriminator`` arm only. Its pixel D gets StyleGAN2's lazy R1 on (augmented)
  reals, as a separate D step, so a failure of that arm is about what D sees, not about an
  unregularised D diverging; the 16/17 Adam factor above is then exactly R1's lazy compensation.
  The projected D has no R1 upstream: setting these keys there is an error.
- ``blur_init_sigma`` (0: off, upstream's default), ``blur_fade_kimg`` (0): upstream's loss option
  (``ProjectedGANLoss``) that blurs every image D sees (real and fake, both phases) with a Gaussian
  of σ = ``blur_init_sigma`` px fading linearly to 0 over ``blur_fade_kimg`` thousand images. It
  hides the fine structure on which the frozen features separate reals from fakes at once; on the
  demo it helps the four-mini-D arms and slows the others (docs/training_recipes.md), so no
  shipped config sets it. As upstream, the blur needs ``blur_fade_kimg`` > 1 (upstream silently
  ignores it otherwise; here that is an error).
- ``ema_kimg`` (batch·10/32), ``ema_rampup`` (0.05): G EMA half-life in thousands of images,
  capped at ``ema_rampup`` × images seen (upstream's schedule).
- ``truncation_psi`` (1.0): at sampling.
"""

from __future__ import annotations

import torch

from ..ema import EMA, half_life_decay
from .ablations import resolve

#: upstream keeps D_reg_interval = 16 although PG's D has no regulariser: lr·c and betas**c, c = 16/17
_D_REG_RATIO = 16 / 17


def build_generator(cfg: dict, image_size: int) -> torch.nn.Module:
    """The generator (1 output channel) of a resolved config."""
    if cfg.get("generator", "stylegan2") == "fastgan":
        from .fastgan import FastGANGenerator

        return FastGANGenerator(image_size, z_dim=int(cfg.get("z_dim", 256)), ngf=int(cfg.get("ngf", 128)),
                                lite=bool(cfg.get("lite", True)))
    from ..stylegan2.networks import Generator

    return Generator(image_size, z_dim=int(cfg.get("z_dim", 64)), w_dim=int(cfg.get("w_dim", 128)),
                     mapping_layers=int(cfg.get("mapping_layers", 2)),
                     channel_base=int(cfg.get("channel_base", 32768)), channel_max=int(cfg.get("channel_max", 512)))


def build_discriminator(cfg: dict, image_size: int) -> torch.nn.Module:
    """The projected D of a resolved config, or StyleGAN2's own D for the ``stylegan2_discriminator`` arm.

    Both take (B, 1, H, W) and return logits (B, N); DiffAugment happens inside.
    """
    from .diffaug import diff_augment

    d_size = disc_input_side(cfg, image_size)
    if cfg["discriminator"] == "stylegan2":
        from ..stylegan2.networks import Discriminator

        return _AugmentedD(Discriminator(d_size, channel_base=int(cfg.get("channel_base", 32768)),
                                         channel_max=int(cfg.get("channel_max", 512))), cfg["diffaug"], diff_augment)
    from .discriminator import ProjectedDiscriminator
    from .projector import FeatureNetwork

    fn = FeatureNetwork(cfg["backbone"], pretrained=cfg["pretrained"], weights_path=cfg.get("weights_path"),
                        proj_type=int(cfg["proj_type"]), interp_size=cfg.get("interp_size", 224))
    return ProjectedDiscriminator(fn, num_discs=int(cfg["num_discs"]), separable=bool(cfg.get("separable", True)),
                                  width=float(cfg.get("disc_width", 1.0)), diffaug_policy=cfg["diffaug"],
                                  sizing=cfg.get("disc_sizing", "nominal"), image_size=d_size)


def disc_input_side(cfg: dict, image_size: int) -> int:
    """The side of the images D sees: ``image_size`` (upstream), or ``disc_input_size`` if set.

    A power of two from 32 (the feature network's cross-scale mixing needs its 4 levels to halve
    exactly) up to the data's size.
    """
    s = cfg.get("disc_input_size")
    if s is None:
        return image_size
    if not isinstance(s, int) or s < 32 or s > image_size or s & (s - 1):
        raise ValueError(f"disc_input_size must be a power of two in 32..image_size ({image_size}), got {s!r}")
    return s


def blur_sigma(cfg: dict, nimg: int) -> float:
    """σ (px) of the D-input blur after ``nimg`` training images (upstream's linear fade)."""
    sigma0, fade = float(cfg.get("blur_init_sigma") or 0), float(cfg.get("blur_fade_kimg") or 0)
    if sigma0 < 0:
        raise ValueError(f"blur_init_sigma must be ≥ 0, got {sigma0}")
    if sigma0 > 0 and fade <= 1:
        raise ValueError(f"blur_init_sigma = {sigma0} needs blur_fade_kimg > 1 (got {fade}): "
                         "upstream's ProjectedGANLoss applies no blur otherwise")
    return max(1 - nimg / (fade * 1e3), 0) * sigma0 if sigma0 > 0 else 0.0


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, C, H, W) as upstream's ``run_D``: taps 2^−(t/σ)² for
    |t| ≤ ⌊3σ⌋, normalised, zero padding, same size; identity when ⌊3σ⌋ = 0."""
    r = int(sigma * 3)
    if r <= 0:
        return x
    f = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device).div(sigma).square().neg().exp2()
    f = f / f.sum()
    c = x.shape[1]
    x = torch.nn.functional.conv2d(x, f.view(1, 1, 1, -1).expand(c, 1, 1, -1), padding=(0, r), groups=c)
    return torch.nn.functional.conv2d(x, f.view(1, 1, -1, 1).expand(c, 1, -1, 1), padding=(r, 0), groups=c)


class _AugmentedD(torch.nn.Module):
    """StyleGAN2's D behind the same DiffAugment, returning (B, 1) logits like the projected D."""

    def __init__(self, d, policy, augment):
        super().__init__()
        self.d, self.policy, self.augment = d, policy, augment

    def forward(self, x, generator=None):
        return self.d(self.augment(x, self.policy, generator))[:, None]


class ProjectedGANTrainer:
    """A trainable for `solargen.train.fit`: one G step then one D step per batch."""

    def __init__(self, cfg: dict, image_size: int, device: str | torch.device = "cpu"):
        self.cfg = cfg = resolve(cfg)
        self.device = torch.device(device)
        self.G = build_generator(cfg, image_size).to(self.device)
        self.D = build_discriminator(cfg, image_size).to(self.device)
        # On the CPU oneDNN convolves channels-last maps without reordering them each layer: −31 % CPU
        # per demo training step in the projected arms, −5 % in the pixel-D arm (benchmarks/train_step.py).
        if self.device.type == "cpu":
            self.D.to(memory_format=torch.channels_last)
        if cfg["discriminator"] == "projected":
            fn = self.D.feature_network
            fn.backbone.requires_grad_(not cfg["freeze_backbone"])
            if fn.projections is not None:
                fn.projections.requires_grad_(not cfg["freeze_projections"])
        # What D's optimiser owns: its own layers plus whichever feature-network parts an ablation unfroze.
        self.d_params = [p for p in self.D.parameters() if p.requires_grad]
        lr, betas = float(cfg.get("lr", 0.002)), tuple(float(b) for b in cfg.get("betas", (0.0, 0.99)))
        self.batch_size = int(cfg.get("batch_size", 64))
        self.modules = {"G": self.G, "D": self.D}
        self.optimizers = {
            "G": torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas, eps=1e-8),
            "D": torch.optim.Adam(self.d_params, lr=lr * _D_REG_RATIO,
                                  betas=tuple(b ** _D_REG_RATIO for b in betas), eps=1e-8),
        }
        self.r1_gamma, self.r1_interval = 0.0, 16
        if cfg["discriminator"] == "stylegan2":
            from ..stylegan2.losses import heuristic_r1_gamma

            gamma = cfg.get("r1_gamma")
            self.r1_gamma = heuristic_r1_gamma(image_size, self.batch_size) if gamma is None else float(gamma)
            self.r1_interval = int(cfg.get("r1_interval", 16))
        else:
            for key in ("r1_gamma", "r1_interval"):
                if cfg.get(key) is not None:
                    raise ValueError(f"{key} is set but ablation {cfg['ablation']!r} uses the projected "
                                     "discriminator, which has no R1 (only stylegan2_discriminator does)")
        self.ema = {"G": EMA(self.G, 0.0)}
        self.ema_kimg = float(cfg.get("ema_kimg", self.batch_size * 10 / 32))
        self.ema_rampup = cfg.get("ema_rampup", 0.05)
        blur_sigma(cfg, 0)  # a bad blur setting fails here, before any step
        self.d_size = disc_input_side(cfg, image_size)

    def _D_input(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        x = blur(x, sigma)
        if x.shape[-1] != self.d_size:  # area average: every pixel counts, no aliasing
            x = torch.nn.functional.interpolate(x, size=self.d_size, mode="area")
        return x

    def _D(self, x: torch.Tensor, generator: torch.Generator, sigma: float) -> torch.Tensor:
        return self.D(self._D_input(x, sigma), generator)

    def _D_real_fake(self, real, fake, generator, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """D's logits on reals and fakes as two separate passes (separate mini-D batch statistics),
        sharing the frozen feature network's forward where D has one."""
        real, fake = self._D_input(real, sigma), self._D_input(fake, sigma)
        if hasattr(self.D, "forward_pair"):
            return self.D.forward_pair(real, fake, generator)
        return self.D(real, generator), self.D(fake, generator)  # pixel D: minibatch-std is per batch

    def _z(self, b: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn((b, self.G.z_dim), generator=generator).to(self.device)

    def training_step(self, x: torch.Tensor, step: int, generator: torch.Generator) -> dict[str, float]:
        """One G then one D Adam step on reals ``x`` (B, 1, H, W) in [-1, 1] at 0-based ``step``.

        All randomness (z, noise inputs, DiffAugment) is drawn from the CPU ``generator``.
        """
        self.G.train()
        self.D.train()
        b = x.shape[0]
        sigma = blur_sigma(self.cfg, step * self.batch_size)
        # G phase: D's weights frozen, gradients flow through D (and the feature network) into G.
        for p in self.d_params:
            p.requires_grad_(False)
        loss_G = -self._D(self.G(self._z(b, generator), generator=generator), generator, sigma).mean()
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss_G.backward()
        self.optimizers["G"].step()
        # D phase.
        for p in self.d_params:
            p.requires_grad_(True)
        with torch.no_grad():
            fake = self.G(self._z(b, generator), generator=generator)
        real_logits, fake_logits = self._D_real_fake(x, fake, generator, sigma)
        loss_D_real = torch.relu(1 - real_logits).mean()
        loss_D_fake = torch.relu(1 + fake_logits).mean()
        self.optimizers["D"].zero_grad(set_to_none=True)
        (loss_D_real + loss_D_fake).backward()
        self.optimizers["D"].step()
        out = {"loss_G": float(loss_G.detach()), "loss_D_real": float(loss_D_real.detach()),
               "loss_D_fake": float(loss_D_fake.detach()),
               "logits_real": float(real_logits.detach().mean()), "logits_fake": float(fake_logits.detach().mean())}
        if self.cfg.get("blur_init_sigma"):
            out["blur_sigma"] = sigma
        # D reg (stylegan2_discriminator arm): lazy R1, its own Adam step, gradient taken with
        # respect to the reals before DiffAugment (as stylegan2-ada with its augment pipe).
        if self.r1_gamma > 0 and step % self.r1_interval == 0:
            xr = x.detach().requires_grad_(True)
            (grad,) = torch.autograd.grad(self._D(xr, generator, sigma).sum(), xr, create_graph=True)
            r1 = grad.square().sum(dim=(1, 2, 3)).mean()
            self.optimizers["D"].zero_grad(set_to_none=True)
            (r1 * (self.r1_gamma / 2) * self.r1_interval).backward()
            self.optimizers["D"].step()
            out["r1_penalty"] = float(r1.detach())
        self.ema["G"].decay = half_life_decay(step, self.batch_size, self.ema_kimg, self.ema_rampup)
        self.ema["G"].update(self.G)
        return out


def sample(state: dict, cfg: dict, image_size: int, n: int, *, seed: int = 0, batch_size: int = 16,
           device: str | torch.device = "cpu", **_) -> torch.Tensor:
    """``n`` images (n, 1, H, W) in [-1, 1] from the checkpoint's EMA generator (StyleGAN2 or
    FastGAN), drawn as `solargen.models.stylegan2.family.draw` does; other kwargs are ignored."""
    from ..stylegan2.family import draw

    cfg = resolve(cfg)
    G = build_generator(cfg, image_size)
    G.load_state_dict(state["ema"]["G"])
    return draw(G, n, seed=seed, batch_size=batch_size, device=device,
                truncation_psi=float(cfg.get("truncation_psi", 1.0)))
