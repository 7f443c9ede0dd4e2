"""The seed's conditional GAN (Schmidt et al. 2020) as solar super-resolution, on the shared loop.

Task: from the 193 Å frame block-averaged by ``factor`` (kept at H×W by *nearest* upsampling,
so the input is an honest block image that carries exactly the low-res information, with no
interpolation prior baked in) plus an optional N(0, 1) noise channel, generate the full-res
frame. All power above the low-res Nyquist k_Nyq/factor must be generated. `bicubic_baseline`
is the non-learned reference.

Optional channel translation (``condition: translation``): G's input is instead the frames of
``input_wavelengths`` (e.g. 171 Å and 211 Å, taken at the same slot; plus the noise channel), the
target the 193 Å frame, all at full resolution. Batches then carry the target and its inputs as
channels, (B, 1 + k, H, W) = [193, input_wavelengths...] (`solargen.dataset.H5Images` with
``channels``); everything else — losses, EMA, D (conditioned on the k input channels), sampling —
is the same.

Model: pix2pix U-Net G, pix2pixHD multi-scale PatchGAN D conditioned on the block image,
LSGAN + L1 matching loss (+ optional pix2pixHD feature matching). Per ``training_step``:

    D: ½ Σ_scales [(D(c, y) − 1)² + D(c, G(c))²]     each averaged over patch positions
    G: λ_gan·Σ_scales (D(c, G(c)) − 1)² + λ_l1·|G(c) − y|₁ + λ_fm·FM

as pix2pixHD and Schmidt et al. (summed over scales, no ½ in G: an earlier version averaged with
a ½, an adversarial weight λ/6 of theirs at 3 scales). The scales ablation therefore changes the
adversarial weight with the number of scales, as in the references. FM = 4 · mean over scales and D layers of |D_l(c, G(c)) − D_l(c, y)|₁, i.e. exactly
pix2pixHD's weighting 4/(n_layers+1)·1/num_D summed, so λ_fm = 10 is pix2pixHD's λ_feat.

Config keys (``models.<name>`` entries):

- ``factor`` (4): block-averaging factor of the condition (4 or 8; H must be divisible by it).
- ``condition`` ("superresolution"): or "translation" (see above); ``input_wavelengths``: the
  translation's input channels in Å (required there, refused otherwise).
- ``noise`` (true): append one N(0, 1) channel to G's input (Schmidt et al.'s ``Cnoise``;
  pix2pix notes G may learn to ignore it, dropout being its other noise source).
- ``base_channels`` (64): G's first-level width (capped at 8× deeper).
- ``disc_channels`` (= base_channels), ``disc_layers`` (3): each PatchGAN's width and stride-2
  depth (the depth shrinks by itself at small scales, see `PatchDiscriminator`).
- ``dropout`` (0.5): pix2pix dropout on G's innermost decoder levels.
- ``upsample`` ("nearest"): G's up-conv, "nearest" (resize + conv) or "transposed" (pix2pix).
- ``lambda_l1`` (10): L1 matching weight; between Schmidt et al.'s final 1 and pix2pix's 100
  (the reference sweep is {1, 10, 100}).
- ``lambda_gan`` (1.0): adversarial weight; 0 gives the L1-only regression arm with no D at all.
- ``lambda_fm`` (0): feature-matching weight (0 = off, as in Schmidt et al.).
- ``num_scales`` (3), ``scales`` (all of 1..num_scales): which D scales exist (1 = full, 2 = ½, 3 = ¼).
- ``lr`` (2e-4), ``betas`` ([0.5, 0.999]): Adam for G and for D.
- ``ema_rate`` (0.999): EMA of G's weights, which samples come from.
- ``sample_dropout`` (false): keep dropout active when sampling (pix2pix's test-time noise).
- ``batch_size``, ``save_every``: read by the shared loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..ema import EMA
from .networks import MultiScaleDiscriminator, UNetGenerator


def degrade(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Block mean by ``factor``, nearest upsampling back: (B, 1, H, W) → (B, 1, H, W)."""
    if x.shape[-1] % factor or x.shape[-2] % factor:
        raise ValueError(f"image size {tuple(x.shape[-2:])} is not divisible by factor {factor}")
    return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="nearest")


def input_wavelengths(cfg: dict) -> list[int]:
    """The wavelengths (Å) G is conditioned on besides the target: [] for super-resolution, the
    ``input_wavelengths`` for ``condition: translation``. A wrong combination is a ValueError."""
    condition = cfg.get("condition", "superresolution")
    wls = [int(w) for w in cfg.get("input_wavelengths") or []]
    if condition == "superresolution":
        if wls:
            raise ValueError("input_wavelengths is only read with condition: translation")
        return []
    if condition != "translation":
        raise ValueError(f"condition must be 'superresolution' or 'translation', got {condition!r}")
    if not wls:
        raise ValueError("condition: translation needs input_wavelengths (e.g. [171, 211])")
    return wls


def n_condition(cfg: dict) -> int:
    """Channels of the condition: the block image (1) or the translation's input channels (k)."""
    return len(input_wavelengths(cfg)) or 1


def generator_input(x_target: torch.Tensor, factor: int, noise: bool,
                    generator: torch.Generator | None, translation: bool = False) -> torch.Tensor:
    """G's input: (B, 1, H, W) target → (B, 1 + noise, H, W) = [block image, N(0, 1) noise].

    With ``translation`` ``x_target`` is (B, 1 + k, H, W) = [target, k input channels] and the
    input is (B, k + noise, H, W) = [input channels, noise]; ``factor`` is not used.
    Noise is drawn on the CPU ``generator`` and moved over, so runs are reproducible on any device.
    """
    if translation:
        if x_target.shape[1] < 2:
            raise ValueError(f"channel translation needs [target, inputs...] channels, got shape {tuple(x_target.shape)}")
        c = x_target[:, 1:]
    else:
        c = degrade(x_target[:, :1], factor)
    if not noise:
        return c
    z = torch.randn((c.shape[0], 1, *c.shape[2:]), generator=generator).to(c.device, c.dtype)
    return torch.cat([c, z], 1)


def bicubic_baseline(x_target: torch.Tensor, factor: int) -> torch.Tensor:
    """Non-learned baseline: block mean to low res, bicubic back (align_corners=False), clamped to [-1, 1]."""
    lo = F.avg_pool2d(x_target, factor)
    return F.interpolate(lo, size=x_target.shape[-2:], mode="bicubic", align_corners=False).clamp(-1, 1)


def build_generator(cfg: dict, image_size: int) -> UNetGenerator:
    return UNetGenerator(n_condition(cfg) + (1 if cfg.get("noise", True) else 0), 1, int(cfg.get("base_channels", 64)),
                         dropout=float(cfg.get("dropout", 0.5)), image_size=image_size,
                         upsample=cfg.get("upsample", "nearest"))


def build_discriminator(cfg: dict, image_size: int) -> MultiScaleDiscriminator:
    return MultiScaleDiscriminator(n_condition(cfg) + 1, int(cfg.get("num_scales", 3)), cfg.get("scales"),
                                   int(cfg.get("disc_channels", cfg.get("base_channels", 64))),
                                   int(cfg.get("disc_layers", 3)), image_size=image_size)


def check_channels(x: torch.Tensor, inputs: list[int]):
    """Batches must carry the target plus exactly the model's input channels."""
    if x.ndim != 4 or x.shape[1] != 1 + len(inputs):
        want = f"[193, {', '.join(map(str, inputs))}]" if inputs else "[193]"
        raise ValueError(f"the model expects (B, {1 + len(inputs)}, H, W) batches {want}, got {tuple(x.shape)}"
                         + (" (is the dataset read with its extra channels?)" if inputs else ""))


def _mean(xs):
    return sum(xs) / len(xs)


class MSDGANTrainer:
    """A trainable for `solargen.train.fit`: one D step then one G step per batch."""

    def __init__(self, cfg: dict, image_size: int, device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        self.factor = int(cfg.get("factor", 4))
        self.noise = bool(cfg.get("noise", True))
        self.inputs = input_wavelengths(cfg)
        self.n_cond = n_condition(cfg)
        self.lambda_l1 = float(cfg.get("lambda_l1", 10.0))
        self.lambda_gan = float(cfg.get("lambda_gan", 1.0))
        self.lambda_fm = float(cfg.get("lambda_fm", 0.0))
        lr, betas = float(cfg.get("lr", 2e-4)), tuple(float(b) for b in cfg.get("betas", (0.5, 0.999)))
        self.G = build_generator(cfg, image_size).to(self.device)
        self.modules = {"G": self.G}
        self.optimizers = {"G": torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas)}
        self.D = None
        if self.lambda_gan > 0:  # the L1-only arm trains no D at all
            self.D = build_discriminator(cfg, image_size).to(self.device)
            self.modules["D"] = self.D
            self.optimizers["D"] = torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas)
        self.ema = {"G": EMA(self.G, float(cfg.get("ema_rate", 0.999)))}

    def training_step(self, y: torch.Tensor, step: int, generator: torch.Generator) -> dict[str, float]:
        """One D then one G Adam step on targets ``y`` (B, 1, H, W) in [-1, 1] at 0-based ``step``
        (translation: (B, 1 + k, H, W), the target then its k input channels)."""
        self.G.train()
        check_channels(y, self.inputs)
        inp = generator_input(y, self.factor, self.noise, generator, translation=bool(self.inputs))
        y = y[:, :1]
        cond = inp[:, :self.n_cond]  # D sees the condition only: the noise channel says nothing about y
        fake = self.G(inp)
        l1 = (fake - y).abs().mean()
        zero = torch.zeros((), device=self.device)
        loss_D = gan_G = fm = zero
        if self.D is not None:
            self.D.train().requires_grad_(True)
            real_out, fake_out = self.D(y, cond), self.D(fake.detach(), cond)
            # pix2pixHD: each LSGAN term summed over the scales, D's halved, G's not.
            loss_D = 0.5 * sum(((r[-1] - 1) ** 2).mean() + (f[-1] ** 2).mean() for r, f in zip(real_out, fake_out))
            self.optimizers["D"].zero_grad(set_to_none=True)
            loss_D.backward()
            self.optimizers["D"].step()
            self.D.requires_grad_(False)  # G's step needs gradients through D, not into it
            fake_out = self.D(fake, cond)
            gan_G = sum(((f[-1] - 1) ** 2).mean() for f in fake_out)
            if self.lambda_fm > 0:
                with torch.no_grad():  # real features from the updated D, like the fake ones
                    real_out = self.D(y, cond)
                fm = 4 * _mean([_mean([(a - b).abs().mean() for a, b in zip(f[:-1], r[:-1])])
                                for f, r in zip(fake_out, real_out)])
        loss_G = self.lambda_gan * gan_G + self.lambda_l1 * l1 + self.lambda_fm * fm
        self.optimizers["G"].zero_grad(set_to_none=True)
        loss_G.backward()
        self.optimizers["G"].step()
        self.ema["G"].update(self.G, step)
        return {k: float(v.detach()) for k, v in
                {"loss_G": loss_G, "loss_D": loss_D, "l1": l1, "gan_G": gan_G, "fm": fm}.items()}


@torch.no_grad()
def sample(state: dict, cfg: dict, image_size: int, n: int, *, targets: torch.Tensor, seed: int = 0,
           batch_size: int = 16, device: str | torch.device = "cpu", **_) -> torch.Tensor:
    """``n`` super-resolved images (n, 1, H, W) in [-1, 1] from the EMA G, conditioned on
    degrade(targets[:n]) (targets (N, 1, H, W) or (N, H, W) in [-1, 1]); for a translation model
    on the input channels of targets (N, 1 + k, H, W) (channel 0, the target, is not read).

    Noise comes from ``torch.Generator().manual_seed(seed)``; other kwargs (steps, sampler) are
    ignored so every family can be called alike.
    """
    targets = targets[:, None] if targets.ndim == 3 else targets
    inputs = input_wavelengths(cfg)
    check_channels(targets, inputs)
    if len(targets) < n:
        raise ValueError(f"{n} samples need {n} targets to condition on, got {len(targets)}")
    G = build_generator(cfg, image_size)
    G.load_state_dict(state["ema"]["G"])
    G.to(device).eval()
    if cfg.get("sample_dropout", False):
        for m in G.modules():
            if isinstance(m, torch.nn.Dropout):
                m.train()
    g = torch.Generator().manual_seed(seed)
    factor, noise = int(cfg.get("factor", 4)), bool(cfg.get("noise", True))
    dev = torch.device(device)
    # Dropout draws from the global RNG: fork and seed it so sample_dropout stays deterministic.
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)
        out = [G(generator_input(targets[i:min(i + batch_size, n)].to(dev, torch.float32), factor, noise, g,
                                 translation=bool(inputs)))
               for i in range(0, n, batch_size)]
    return torch.cat(out).clamp(-1, 1).cpu()


def sample_bicubic(state, cfg: dict, image_size: int, n: int, *, targets: torch.Tensor, **_) -> torch.Tensor:
    """The non-learned baseline as a "sampler": bicubic upsampling of the degraded ``targets[:n]``."""
    x = (targets[:n, :1] if targets.ndim == 4 else targets[:n]).reshape(n, 1, image_size, image_size).float()
    return bicubic_baseline(x, cfg.get("factor", 4))
