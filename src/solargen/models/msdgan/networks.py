"""Networks of the conditional GAN: a pix2pix U-Net generator and a pix2pixHD multi-scale PatchGAN.

Both use InstanceNorm2d(affine=True), not BatchNorm: the batches are small (down to 1 at
sampling), where batch statistics are noisy or undefined and make an image depend on its
batch-mates. Weights start from N(0, 0.02) (norm gains from N(1, 0.02)), as in pix2pix and
Schmidt et al.'s clouds_dist.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def _norm(c: int) -> nn.Module:
    return nn.InstanceNorm2d(c, affine=True)


def init_weights(m: nn.Module):
    """pix2pix initialisation: convs N(0, 0.02), norm gains N(1, 0.02), biases 0."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.InstanceNorm2d) and m.affine:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _up(c_in: int, c_out: int, mode: str, bias: bool) -> nn.Module:
    """×2 upsampling conv. 'nearest' (default) = nearest resize + 3×3 conv: unlike a stride-2
    transposed conv it leaves no checkerboard pattern (Odena et al. 2016), which would show as
    spurious peaks in exactly the high-k band this task is judged on. 'transposed' is pix2pix."""
    if mode == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                             nn.Conv2d(c_in, c_out, 3, 1, 1, bias=bias, padding_mode="reflect"))
    if mode == "transposed":
        return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=bias)
    raise ValueError(f"unknown upsample mode {mode!r} (allowed: nearest, transposed)")


class UNetGenerator(nn.Module):
    """pix2pix U-Net: (B, in_channels, H, W) → (B, out_channels, H, W) in (-1, 1).

    Encoder level i: [LeakyReLU 0.2] → conv 4×4 stride 2 → InstanceNorm, channels
    min(base·2^i, 8·base), at H/2^(i+1). The first level has no activation/norm on its input side
    and the innermost (bottleneck) none either, as pix2pix: at depth log2(H) it is 1×1, where
    instance statistics are undefined. Decoder mirrors it: ReLU → ×2 up-conv → InstanceNorm →
    Dropout (only on the innermost min(3, max(1, depth//2)) levels, pix2pix's "three 8·ngf blocks"
    at depth 8) → concat with the encoder skip; the last level maps to ``out_channels`` + tanh.

    ``depth`` defaults to max(2, log2(image_size) − 2), so the bottleneck is 4×4 at any size
    (16 px → 2 levels, 64 px → 4, 256 px → 6).
    """

    def __init__(self, in_channels: int, out_channels: int = 1, base_channels: int = 64,
                 depth: int | None = None, dropout: float = 0.5, image_size: int = 64,
                 upsample: str = "nearest"):
        super().__init__()
        depth = depth or max(2, int(math.log2(image_size)) - 2)
        if image_size % 2**depth:
            raise ValueError(f"image_size {image_size} is not divisible by 2^depth = {2**depth}")
        self.depth = depth
        ch = [min(base_channels * 2**i, 8 * base_channels) for i in range(depth)]
        self.down = nn.ModuleList()
        for i in range(depth):
            normed = 0 < i < depth - 1
            layers = [] if i == 0 else [nn.LeakyReLU(0.2)]
            layers.append(nn.Conv2d(in_channels if i == 0 else ch[i - 1], ch[i], 4, 2, 1, bias=not normed))
            if normed:
                layers.append(_norm(ch[i]))
            self.down.append(nn.Sequential(*layers))
        n_drop = min(3, max(1, depth // 2))
        self.up = nn.ModuleList()
        for i in reversed(range(depth)):  # decoder level i: H/2^(i+1) → H/2^i
            c_in = ch[i] if i == depth - 1 else 2 * ch[i]  # all but the innermost see a skip concat
            last = i == 0
            layers = [nn.ReLU(), _up(c_in, out_channels if last else ch[i - 1], upsample, bias=last)]
            if last:
                layers.append(nn.Tanh())
            else:
                layers.append(_norm(ch[i - 1]))
                if dropout > 0 and i >= depth - n_drop:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for d in self.down:
            x = d(x)
            skips.append(x)
        x = skips.pop()  # bottleneck (B, 8·base, 4, 4) at the default depth
        for u in self.up:
            x = u(x)
            if skips:
                x = torch.cat([x, skips.pop()], 1)
        return x


class PatchDiscriminator(nn.Module):
    """pix2pixHD N-layer PatchGAN: (B, in_channels, H, W) → list of feature maps, logits last.

    ``n_layers`` conv 4×4 stride-2 blocks (LeakyReLU 0.2, InstanceNorm except the first),
    channels min(base·2^i, 8·base), then one stride-1 block with norm and a stride-1 conv to 1
    logit channel. The stride-1 convs are 3×3 with padding 1 (pix2pixHD: 4×4, padding 2, which
    grows the map by one pixel each), so the logit map is exactly H/2^n_layers.

    Given ``image_size``, n_layers is capped at log2(image_size) − 1 so no map shrinks below 2×2
    (InstanceNorm needs > 1 element; at 64 px the ¼-scale D of 16 px would otherwise hit 1×1).
    Returned features: n_layers + 1 block outputs (for feature matching), then (B, 1, h, w) logits.
    """

    def __init__(self, in_channels: int, base_channels: int = 64, n_layers: int = 3,
                 image_size: int | None = None):
        super().__init__()
        if image_size is not None:
            n_layers = min(n_layers, int(math.log2(image_size)) - 1)
        if n_layers < 1:
            raise ValueError(f"input of {image_size} px is too small for a PatchGAN (needs ≥ 4 px)")
        self.n_layers = n_layers
        ch = [min(base_channels * 2**i, 8 * base_channels) for i in range(n_layers + 1)]
        blocks = [nn.Sequential(nn.Conv2d(in_channels, ch[0], 4, 2, 1), nn.LeakyReLU(0.2))]
        for i in range(1, n_layers):
            blocks.append(nn.Sequential(nn.Conv2d(ch[i - 1], ch[i], 4, 2, 1, bias=False), _norm(ch[i]),
                                        nn.LeakyReLU(0.2)))
        blocks.append(nn.Sequential(nn.Conv2d(ch[n_layers - 1], ch[n_layers], 3, 1, 1, bias=False),
                                    _norm(ch[n_layers]), nn.LeakyReLU(0.2)))
        blocks.append(nn.Conv2d(ch[n_layers], 1, 3, 1, 1))
        self.blocks = nn.ModuleList(blocks)
        self.apply(init_weights)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return feats


def downsample(x: torch.Tensor) -> torch.Tensor:
    """pix2pixHD's ½ step between scales: 3×3 mean, stride 2, padding not counted in the mean
    (so borders are not darkened toward the zero padding). (B, C, H, W) → (B, C, ⌈H/2⌉, ⌈W/2⌉)."""
    return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)


class MultiScaleDiscriminator(nn.Module):
    """PatchGANs on the input at scale 1 (full), 2 (½) and 3 (¼), as pix2pixHD / Schmidt et al.

    ``scales`` picks which are used (ablations: [1], [1, 2], [1, 2, 3]); default all of
    1..num_scales. ``in_channels`` counts condition + image channels: a conditional D sees
    concat(condition, image) (pix2pix), so it judges the pair, not the image alone.
    forward → one feature list per used scale (ascending), each ending in its logit map.
    """

    def __init__(self, in_channels: int, num_scales: int = 3, scales: list[int] | None = None,
                 base_channels: int = 64, n_layers: int = 3, image_size: int | None = None):
        super().__init__()
        self.scales = sorted(set(scales)) if scales else list(range(1, num_scales + 1))
        if self.scales[0] < 1:
            raise ValueError(f"scales are 1-based (1 = full resolution), got {scales}")
        self.discs = nn.ModuleDict({
            f"scale{s}": PatchDiscriminator(in_channels, base_channels, n_layers,
                                            None if image_size is None else image_size // 2 ** (s - 1))
            for s in self.scales})

    def forward(self, image: torch.Tensor, condition: torch.Tensor | None = None) -> list[list[torch.Tensor]]:
        x = image if condition is None else torch.cat([condition, image], 1)
        out = []
        for s in range(1, self.scales[-1] + 1):
            if s in self.scales:
                out.append(self.discs[f"scale{s}"](x))
            if s < self.scales[-1]:
                x = downsample(x)
        return out
