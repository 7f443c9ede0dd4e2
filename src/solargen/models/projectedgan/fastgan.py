"""FastGAN's generator (Liu et al. 2021) as ProjectedGAN configures it (``--cfg=fastgan[_lite]``).

The lighter alternative to the StyleGAN2 generator the study used: no mapping network, a 4×4
transposed-conv start from z, nearest ×2 up-blocks with GLU, and skip-layer excitation (SLE)
gating each fine map by a coarse one (4→64, 8→128, 16→256, 32→512 px). All convs are spectrally
normalised; no output tanh (the data are in [-1, 1]). models_metrics.md §1.1 has the channel plan.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import spectral_norm

#: channel multiplier of ngf at each resolution
CHANNEL_MULT = {4: 16, 8: 8, 16: 4, 32: 2, 64: 2, 128: 1, 256: 0.5, 512: 0.25, 1024: 0.125}


def _conv(cin, cout, k, **kw):
    return spectral_norm(nn.Conv2d(cin, cout, k, **kw))


class NoiseInjection(nn.Module):
    """x + s·n with one per-pixel N(0, 1) map n per sample and a learned scalar s (starts at 0)."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x, generator=None):
        n = torch.randn((x.shape[0], 1, *x.shape[2:]), generator=generator).to(x.device, x.dtype)
        return x + self.weight * n


class UpBlock(nn.Module):
    """(B, cin, H, W) → (B, cout, 2H, 2W): nearest ×2, then one ("small") or two ("big") conv–BN–GLU."""

    def __init__(self, cin: int, cout: int, big: bool = False):
        super().__init__()
        self.big = big
        self.conv1, self.bn1 = _conv(cin, 2 * cout, 3, padding=1, bias=False), nn.BatchNorm2d(2 * cout)
        if big:
            self.noise1, self.noise2 = NoiseInjection(), NoiseInjection()
            self.conv2, self.bn2 = _conv(cout, 2 * cout, 3, padding=1, bias=False), nn.BatchNorm2d(2 * cout)

    def forward(self, x, generator=None):
        x = self.conv1(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
        if self.big:
            x = self.noise1(x, generator)
        x = nn.functional.glu(self.bn1(x), dim=1)
        if self.big:
            x = nn.functional.glu(self.bn2(self.noise2(self.conv2(x), generator)), dim=1)
        return x


class SkipLayerExcitation(nn.Module):
    """Gate a fine map (B, c_fine, H, W) channel-wise by a coarse one (B, c_coarse, h, w)."""

    def __init__(self, c_coarse: int, c_fine: int):
        super().__init__()
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(4), _conv(c_coarse, c_fine, 4, bias=False), nn.SiLU(),
                                  _conv(c_fine, c_fine, 1, bias=False), nn.Sigmoid())

    def forward(self, coarse, fine):
        return fine * self.gate(coarse)


class FastGANGenerator(nn.Module):
    """z (B, z_dim) → image (B, img_channels, S, S), S a power of two ≥ 16.

    ``lite`` uses small up-blocks everywhere (ProjectedGAN's ``fastgan_lite``); otherwise the
    blocks at 8…S px are "big" (two convs with noise inputs). The call signature matches the
    StyleGAN2 generator's, so a trainer can use either; ``truncation_psi`` and ``noise_mode``
    (other than "random") are not FastGAN concepts and are ignored.
    """

    def __init__(self, image_size: int, z_dim: int = 256, ngf: int = 128, img_channels: int = 1, lite: bool = True):
        super().__init__()
        if image_size < 16 or image_size > 1024 or image_size & (image_size - 1):
            raise ValueError(f"FastGAN needs a power-of-two image size in 16…1024, got {image_size}")
        self.z_dim, self.image_size = z_dim, image_size
        nfc = {r: max(1, int(m * ngf)) for r, m in CHANNEL_MULT.items()}
        self.init = nn.Sequential(spectral_norm(nn.ConvTranspose2d(z_dim, 2 * nfc[4], 4, bias=False)),
                                  nn.BatchNorm2d(2 * nfc[4]), nn.GLU(dim=1))
        self.res = [2 ** i for i in range(3, int(math.log2(image_size)) + 1)]
        self.up = nn.ModuleDict({str(r): UpBlock(nfc[r // 2], nfc[r], big=not lite and r >= 8) for r in self.res})
        self.sle = nn.ModuleDict({str(hi): SkipLayerExcitation(nfc[lo], nfc[hi])
                                  for lo, hi in ((4, 64), (8, 128), (16, 256), (32, 512)) if hi <= image_size})
        self.to_img = _conv(nfc[image_size], img_channels, 3, padding=1)

    def forward(self, z, truncation_psi: float = 1.0, noise_mode: str = "random", generator=None):
        # Unit second moment ("hypersphere" z), as FastGAN normalises its input.
        z = z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8)
        feats = {4: self.init(z[:, :, None, None])}
        for r in self.res:
            x = self.up[str(r)](feats[r // 2], generator if noise_mode == "random" else None)
            if str(r) in self.sle:
                x = self.sle[str(r)](feats[r // 16], x)
            feats[r] = x
        return self.to_img(feats[self.image_size])
