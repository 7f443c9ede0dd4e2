"""ProjectedGAN's discriminator: one small patch D per feature level of the frozen network F.

Each mini-D halves its input down to 8×8 and ends in a 4×4 valid conv to one logit channel, so
it is a PatchGAN on F's features. The number of down blocks comes from a *nominal* 256-px input
(upstream fixes this: "works best"), not from the actual map size: at 224 px every mini-D gives
4×4 logits, at 256 px 5×5, at 1024 px 29×29. Below 224 px (small CPU configs) the nominal plan
shrinks the maps to 1×1 logits; ``sizing="actual"`` (config ``disc_sizing: actual``) instead
chooses each mini-D's number of down blocks from its actual input map, so every mini-D ends in at
least 4×4 patch logits at any input size (the channel plan is the nominal one's first blocks).
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn.utils.parametrizations import spectral_norm

from .diffaug import diff_augment
from .projector import FeatureNetwork

CHANNELS = {4: 512, 8: 512, 16: 256, 32: 128, 64: 64, 128: 64, 256: 32, 512: 16, 1024: 8}  # by map side
NOMINAL_SIZE = 256  # upstream's fixed image size for sizing the mini-Ds


def sn_conv(*args, **kwargs) -> nn.Module:
    return spectral_norm(nn.Conv2d(*args, **kwargs))


class DownBlock(nn.Module):
    """(B, c_in, h, w) → (B, c_out, h/2, w/2). Separable (stylegan2 cfg): depthwise 3×3 + pointwise
    1×1, BN, LeakyReLU, avg-pool 2; else (fastgan cfg) 4×4 stride-2 conv, BN, LeakyReLU.

    ``down=False`` keeps the side (no pool; 3×3 stride-1 conv in the fastgan cfg): the block for a
    map already too small to halve (``disc_sizing: actual``), so it still gets upstream's BN.
    """

    def __init__(self, c_in: int, c_out: int, separable: bool = True, down: bool = True):
        super().__init__()
        if separable:
            self.main = nn.Sequential(sn_conv(c_in, c_in, 3, padding=1, groups=c_in, bias=False),
                                      sn_conv(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out),
                                      nn.LeakyReLU(0.2), *([nn.AvgPool2d(2)] if down else []))
        elif down:
            self.main = nn.Sequential(sn_conv(c_in, c_out, 4, 2, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))
        else:
            self.main = nn.Sequential(sn_conv(c_in, c_out, 3, 1, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))

    def forward(self, x):
        return self.main(x)


class MiniDiscriminator(nn.Module):
    """(B, in_channels, h, w) → (B, 1, h/2^n − 3, w/2^n − 3) patch logits, n = log2(start_size/8).

    ``start_size`` is the nominal side (a power of two ≥ 8) that fixes n and the channel plan
    CHANNELS[side] (×``width``, for small CPU configs); the input channels replace CHANNELS[start_size].
    With ``map_side`` (the actual input side) the blocks stop before the map falls below 7, and a
    map already smaller than 7 gets a zero-padded final conv, so the logits are ≥ 4×4. A map too
    small to halve even once gets one side-keeping block instead: upstream's mini-Ds all have ≥ 1
    block, and without its BatchNorm the logit conv would be a linear read-out of the raw
    (unnormalised) features, which saturates the hinge within 2 steps (issue #22).
    """

    def __init__(self, in_channels: int, start_size: int, separable: bool = True, width: float = 1.0,
                 map_side: int | None = None):
        super().__init__()
        if start_size < 8 or start_size & (start_size - 1):
            raise ValueError(f"start_size must be a power of two ≥ 8, got {start_size}")
        ch = lambda s: max(1, round(CHANNELS[s] * width))  # noqa: E731
        n_down, pad = 0, 0
        if map_side is None:
            n_down = (start_size // 8).bit_length() - 1
        else:
            side = map_side
            while side // 2 >= 7:  # AvgPool2d(2) floors
                side //= 2
                n_down += 1
            pad = max(0, -(-(7 - side) // 2))
        layers, c, s = [], in_channels, start_size
        for _ in range(n_down):
            s = max(s // 2, 8)  # past the nominal plan's end keep its last (widest) channels
            layers.append(DownBlock(c, ch(s), separable))
            c = ch(s)
        if n_down == 0 and map_side is not None:
            s = max(s // 2, 8)
            layers.append(DownBlock(c, ch(s), separable, down=False))
            c = ch(s)
        layers.append(sn_conv(c, 1, 4, 1, pad, bias=False))
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


class MultiScaleDiscriminator(nn.Module):
    """A mini-D on each of the first ``num_discs`` feature levels (finest first).
    list of (B, C_i, H_i, W_i) → (B, N) all patch logits, flattened and concatenated."""

    def __init__(self, feature_channels: list[int], proj_type: int, num_discs: int = 4, separable: bool = True,
                 width: float = 1.0, map_sides: list[int] | None = None):
        super().__init__()
        if not 1 <= num_discs <= len(feature_channels):
            raise ValueError(f"num_discs must be in 1..{len(feature_channels)}, got {num_discs}")
        # nominal sides of F's levels at 256 px: strides 4…32, ×2 after CSM
        sizes = [NOMINAL_SIZE // 2 ** k * (2 if proj_type == 2 else 1) for k in (2, 3, 4, 5)]
        sides = map_sides or [None] * 4
        self.mini_discs = nn.ModuleList(MiniDiscriminator(c, s, separable, width, m)
                                        for c, s, m in zip(feature_channels[:num_discs], sizes, sides))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([d(f).flatten(1) for d, f in zip(self.mini_discs, features)], dim=1)


class ProjectedDiscriminator(nn.Module):
    """D(x) = multi-scale D(F(DiffAugment(x))): (B, 1 or 3, H, W) in [-1, 1] → (B, N) logits.

    F stays in eval mode whatever ``train(mode)`` is asked; the mini-Ds follow ``mode``.
    """

    def __init__(self, feature_network: FeatureNetwork, num_discs: int = 4, separable: bool = True,
                 width: float = 1.0, diffaug_policy: str = "color,translation,cutout",
                 sizing: str = "nominal", image_size: int | None = None):
        super().__init__()
        if sizing not in ("nominal", "actual"):
            raise ValueError(f"disc_sizing must be 'nominal' or 'actual', got {sizing!r}")
        if sizing == "actual" and image_size is None:
            raise ValueError("disc_sizing 'actual' needs the image size")
        self.diffaug_policy = diffaug_policy
        self.feature_network = feature_network
        sides = feature_network.resolutions(image_size) if sizing == "actual" else None
        self.discriminator = MultiScaleDiscriminator(feature_network.channels, feature_network.proj_type,
                                                     num_discs, separable, width, sides)

    def train(self, mode: bool = True):
        super().train(mode)
        self.feature_network.train(False)  # FeatureNetwork already refuses; explicit, as upstream
        return self

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.diffaug_policy:
            x = diff_augment(x, self.diffaug_policy, generator)
        return self.discriminator(self.feature_network(x))

    def forward_pair(self, a: torch.Tensor, b: torch.Tensor,
                     generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(self(a), self(b))`` with the same random draws, F run once on both batches.

        F is in eval mode, so its output per image does not depend on the batch; the mini-Ds
        (BatchNorm on batch statistics) still see ``a`` and ``b`` as separate batches, as in
        upstream's separate real and fake passes. One F call instead of two: ~0.014 CPU s less
        per demo training step.
        """
        if self.diffaug_policy:
            a = diff_augment(a, self.diffaug_policy, generator)
            b = diff_augment(b, self.diffaug_policy, generator)
        feats = self.feature_network(torch.cat([a, b]))
        n = len(a)
        return self.discriminator([f[:n] for f in feats]), self.discriminator([f[n:] for f in feats])
