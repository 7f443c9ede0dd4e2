"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), config F.

Plain-torch re-implementation for single-channel images, scaled by arguments:

- ``Generator``: z → ``MappingNetwork`` (pixel norm + MLP, lr multiplier 0.01, tracked w̄ for
  truncation) → w broadcast to ``num_ws`` per-layer latents → synthesis from a learned 4×4
  constant, two 3×3 ``ModulatedConv2d`` (modulation + demodulation) per resolution, per-pixel
  ``NoiseInjection``, and the "skip" output architecture (a ``ToRGB`` per resolution, FIR-upsampled
  and summed). No output non-linearity: data live in [-1, 1] and the generator is unbounded.
- ``Discriminator``: "resnet" architecture: FromRGB at full resolution, one residual block per
  resolution (blur + stride-2 downsampling), minibatch standard deviation at 4×4, conv, FC, FC → logit.
- Equalised learning rate everywhere: weights are stored N(0, 1) and scaled by He's constant at
  run time, so Adam's per-parameter step sizes act equally on every layer.

The custom CUDA ops of the official code (bias_act, upfirdn2d, fused modconv) are replaced by
grouped convolutions (modulated conv) and depthwise convolutions (the [1, 3, 3, 1] FIR filter),
which give the same maths and run anywhere. conv_clamp and mixed precision are omitted.

Channels at resolution r are ``min(channel_base // r, channel_max)`` in both networks;
``channel_base=32768, channel_max=512`` is config F at 1024 px.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' second moment through LeakyReLU(0.2)
NOISE_MODES = ("random", "const", "none")


def lrelu(x: Tensor) -> Tensor:
    """LeakyReLU(0.2)·√2, StyleGAN's activation."""
    return F.leaky_relu(x, 0.2) * LRELU_GAIN


def _activate(x: Tensor, activation: str | None) -> Tensor:
    if activation is None:
        return x
    if activation == "lrelu":
        return lrelu(x)
    raise ValueError(f"unknown activation {activation!r} (allowed: None, 'lrelu')")


def _log2(size: int, minimum: int) -> int:
    n = int(math.log2(size)) if size > 0 else -1
    if size < minimum or 2**n != size:
        raise ValueError(f"image_size must be a power of two >= {minimum}, got {size}")
    return n


def _channels(res: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // res, channel_max)


# ----------------------------------------------------------------------------------------------
# FIR resampling with the [1, 3, 3, 1] binomial filter


def fir_kernel(taps=(1, 3, 3, 1), gain: float = 1.0) -> Tensor:
    """Separable 2-D FIR kernel (k, k) from 1-D taps, normalised to sum ``gain``."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = f[:, None] * f[None, :]
    return f * (gain / f.sum())


class Blur(nn.Module):
    """Pad by ``pad`` = (before, after) on both axes, then a depthwise [1,3,3,1]⊗[1,3,3,1] filter.

    (B, C, H, W) → (B, C, H + before + after − 3, W + …). ``gain`` = 4 after a zero-inserting ×2
    upsampling restores the mean (3 of 4 output pixels are zeros there).
    """

    def __init__(self, pad: tuple[int, int], taps=(1, 3, 3, 1), gain: float = 1.0):
        super().__init__()
        self.pad = pad
        self.register_buffer("kernel", fir_kernel(taps, gain)[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        p0, p1 = self.pad
        x = F.pad(x, (p0, p1, p0, p1))
        # the filter is symmetric, so conv2d's correlation equals convolution
        return F.conv2d(x, self.kernel.expand(x.shape[1], -1, -1, -1), groups=x.shape[1])


class Upsample2d(nn.Module):
    """×2 FIR upsampling (B, C, H, W) → (B, C, 2H, 2W): zero insertion + [1,3,3,1] filter (gain 4).

    Written as one depthwise stride-2 transposed conv; padding 1 aligns it exactly with
    upfirdn2d(up=2, pad=(2, 1)) of the official code.
    """

    def __init__(self, taps=(1, 3, 3, 1)):
        super().__init__()
        if len(taps) != 4:
            raise ValueError("Upsample2d's padding is derived for a 4-tap filter")
        self.register_buffer("kernel", fir_kernel(taps, gain=4.0)[None, None], persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        c = x.shape[1]
        return F.conv_transpose2d(x, self.kernel.expand(c, -1, -1, -1), stride=2, padding=1, groups=c)


# ----------------------------------------------------------------------------------------------
# Equalised-learning-rate layers


class EqualLinear(nn.Module):
    """Fully connected layer with equalised lr: (B, in_dim) → (B, out_dim).

    Stored weight ~ N(0, 1)/lr_multiplier, used as weight·lr_multiplier/√in_dim; the bias is used
    as bias·lr_multiplier. A small lr_multiplier (0.01 in the mapping net) slows those layers'
    effective learning rate by that factor under Adam.
    """

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, bias_init: float = 0.0,
                 lr_multiplier: float = 1.0, activation: str | None = None):
        super().__init__()
        _activate(torch.zeros(()), activation)  # validate early
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_multiplier)
        # stored as bias_init/lr_mul so the effective initial bias is bias_init for any lr_mul
        self.bias = nn.Parameter(torch.full((out_dim,), bias_init / lr_multiplier)) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_dim)
        self.lr_multiplier = lr_multiplier
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        b = None if self.bias is None else self.bias * self.lr_multiplier
        return _activate(F.linear(x, self.weight * self.weight_gain, b), self.activation)

    def extra_repr(self) -> str:
        o, i = self.weight.shape
        return f"{i}, {o}, bias={self.bias is not None}, lr_mul={self.lr_multiplier}, act={self.activation}"


class EqualConv2d(nn.Module):
    """Conv with equalised lr: (B, in_ch, H, W) → (B, out_ch, H, W), or (…, H/2, W/2) with down.

    down=True: FIR blur, then a stride-2 conv without padding (the blur's padding replaces it);
    blurring first stops the strided conv from aliasing, as in StyleGAN2's D.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, bias: bool = True, down: bool = False,
                 activation: str | None = None):
        super().__init__()
        _activate(torch.zeros(()), activation)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.down, self.activation, self.kernel = down, activation, kernel
        if down:
            p = (4 - 2) + (kernel - 1)  # total blur padding so that the strided conv gives H/2
            self.blur = Blur(((p + 1) // 2, p // 2))

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight * self.weight_gain
        if self.down:
            x = F.conv2d(self.blur(x), w, self.bias, stride=2)
        else:
            x = F.conv2d(x, w, self.bias, padding=self.kernel // 2)
        return _activate(x, self.activation)

    def extra_repr(self) -> str:
        o, i, k, _ = self.weight.shape
        return f"{i}, {o}, kernel={k}, bias={self.bias is not None}, down={self.down}, act={self.activation}"


# ----------------------------------------------------------------------------------------------
# Generator


class MappingNetwork(nn.Module):
    """z (B, z_dim) → w (B, w_dim): pixel norm, then ``num_layers`` FC + lrelu (lr multiplier 0.01).

    Tracks w̄ (``w_avg``) as an exponential moving average (β = 0.995) of the batch-mean w,
    updated on every forward in training mode; truncation lerps w towards it: w̄ + ψ(w − w̄).
    """

    def __init__(self, z_dim: int, w_dim: int, num_layers: int = 8, lr_multiplier: float = 0.01,
                 w_avg_beta: float = 0.995):
        super().__init__()
        dims = [z_dim] + [w_dim] * num_layers
        self.layers = nn.Sequential(*[EqualLinear(dims[i], dims[i + 1], lr_multiplier=lr_multiplier,
                                                  activation="lrelu") for i in range(num_layers)])
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.z_dim, self.w_dim, self.w_avg_beta = z_dim, w_dim, w_avg_beta

    def forward(self, z: Tensor, truncation_psi: float = 1.0, update_w_avg: bool = True) -> Tensor:
        # pixel norm: put every z on the sphere of radius √z_dim, so its scale carries no information
        z = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        w = self.layers(z)
        if self.training and update_w_avg:
            self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
        if truncation_psi != 1:
            w = self.w_avg.lerp(w, truncation_psi)
        return w


class ModulatedConv2d(nn.Module):
    """Style-modulated conv: x (B, in_ch, H, W), w (B, w_dim) → (B, out_ch, H, W), or 2H×2W if up.

    s = A(w) (affine, bias init 1, so the initial style is identity); w′ = s·weight scales each
    input channel; demodulation w″ = w′/√(Σ_{in,k,k} w′² + 1e-8) restores unit output variance
    for unit-variance input, replacing AdaIN's data-dependent normalisation (the cause of
    StyleGAN1's droplet artefacts) by a statistical assumption. Per-sample weights run as one
    grouped conv with groups = batch. up=True: stride-2 transposed conv, then a FIR blur.
    """

    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True,
                 up: bool = False):
        super().__init__()
        self.affine = EqualLinear(w_dim, in_ch, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.weight_gain = 1.0 / math.sqrt(in_ch * kernel * kernel)
        self.in_ch, self.out_ch, self.kernel = in_ch, out_ch, kernel
        self.demodulate, self.up = demodulate, up
        if up:
            # transposed conv gives 2H + k − 2; pad the blur so that the result is 2H
            p = (4 - 2) - (kernel - 1)
            self.blur = Blur(((p + 1) // 2 + 1, p // 2 + 1), gain=4.0)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        b, _, h, wd = x.shape
        s = self.affine(w)                                                    # (B, in)
        weight = self.weight[None] * self.weight_gain * s[:, None, :, None, None]  # (B, out, in, k, k)
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        x = x.reshape(1, b * self.in_ch, h, wd)
        k = self.kernel
        if self.up:
            weight = weight.transpose(1, 2).reshape(b * self.in_ch, self.out_ch, k, k)
            x = self.blur(F.conv_transpose2d(x, weight, stride=2, groups=b))
        else:
            x = F.conv2d(x, weight.reshape(b * self.out_ch, self.in_ch, k, k), padding=k // 2, groups=b)
        return x.reshape(b, self.out_ch, *x.shape[2:])

    def extra_repr(self) -> str:
        return (f"{self.in_ch}, {self.out_ch}, kernel={self.kernel}, demodulate={self.demodulate}, "
                f"up={self.up}")


class NoiseInjection(nn.Module):
    """x (B, C, R, R) + strength · n, n ~ N(0, 1) of shape (B, 1, R, R): one map shared by channels.

    ``strength`` is a learned scalar starting at 0. Modes: "random" draws fresh noise (from
    ``generator`` on its device, then moved to x's device, if given); "const" uses a fixed map
    drawn at construction from ``seed``; "none" adds nothing.
    """

    def __init__(self, resolution: int, seed: int = 0):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(()))
        g = torch.Generator().manual_seed(seed)
        # not persistent: it is a deterministic function of (resolution, seed)
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution, generator=g),
                             persistent=False)

    def forward(self, x: Tensor, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> Tensor:
        if noise_mode == "none":
            return x
        if noise_mode == "const":
            return x + self.strength * self.noise_const
        if noise_mode != "random":
            raise ValueError(f"unknown noise_mode {noise_mode!r} (allowed: {', '.join(NOISE_MODES)})")
        b, _, h, w = x.shape
        if generator is None:
            n = torch.randn(b, 1, h, w, device=x.device, dtype=x.dtype)
        else:  # draw where the generator lives, so a CPU generator reproduces on any device
            n = torch.randn(b, 1, h, w, generator=generator, device=generator.device, dtype=x.dtype)
            n = n.to(x.device)
        return x + self.strength * n


class SynthesisLayer(nn.Module):
    """Modulated 3×3 conv → + noise → + bias → lrelu·√2.

    (B, in_ch, R/2, R/2) with up, else (B, in_ch, R, R) → (B, out_ch, R, R).
    """

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, up: bool = False,
                 kernel: int = 3, noise_seed: int = 0):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, out_ch, kernel, w_dim, demodulate=True, up=up)
        self.noise = NoiseInjection(resolution, seed=noise_seed)
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> Tensor:
        x = self.noise(self.conv(x, w), noise_mode, generator)
        return lrelu(x + self.bias[None, :, None, None])


class ToRGB(nn.Module):
    """1×1 modulated conv without demodulation, + bias: (B, in_ch, R, R) → (B, img_channels, R, R).

    No demodulation: the output is an image contribution whose scale the style should control.
    """

    def __init__(self, in_ch: int, img_channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(in_ch, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution R of the synthesis network ("skip" output architecture).

    in_ch == 0 marks the 4×4 block: a learned constant (out_ch, 4, 4) and one conv. Otherwise two
    convs, the first upsampling R/2 → R. The block's ToRGB output is added to the FIR-upsampled
    image of the previous block. Uses ``num_conv + 1`` consecutive rows of ws (B, ·, w_dim); the
    ToRGB row is shared with the next block's first conv.

    x (B, in_ch, R/2, R/2) | None, img (B, C, R/2, R/2) | None → x (B, out_ch, R, R), img (B, C, R, R)
    """

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, resolution: int, img_channels: int,
                 noise_seed: int = 0):
        super().__init__()
        self.resolution = resolution
        if in_ch == 0:
            self.const = nn.Parameter(torch.randn(out_ch, 4, 4))
            self.convs = nn.ModuleList([
                SynthesisLayer(out_ch, out_ch, w_dim, resolution, noise_seed=noise_seed),
            ])
        else:
            self.convs = nn.ModuleList([
                SynthesisLayer(in_ch, out_ch, w_dim, resolution, up=True, noise_seed=noise_seed),
                SynthesisLayer(out_ch, out_ch, w_dim, resolution, noise_seed=noise_seed + 1),
            ])
            self.upsample = Upsample2d()
        self.num_conv = len(self.convs)
        self.torgb = ToRGB(out_ch, img_channels, w_dim)

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        if x is None:
            x = self.const[None].expand(ws.shape[0], -1, -1, -1)
        for i, conv in enumerate(self.convs):
            x = conv(x, ws[:, i], noise_mode, generator)
        y = self.torgb(x, ws[:, self.num_conv])
        img = y if img is None else self.upsample(img) + y
        return x, img


def style_mix(ws: Tensor, ws2: Tensor, crossover: int | Tensor) -> Tensor:
    """Style mixing: rows (layers) with index >= crossover come from ws2, the rest from ws.

    ws, ws2 (B, num_ws, w_dim); crossover an int or a per-sample LongTensor (B,) (num_ws = no mix).
    """
    idx = torch.arange(ws.shape[1], device=ws.device)
    crossover = torch.as_tensor(crossover, device=ws.device).reshape(-1, 1)  # (B or 1, 1)
    return torch.where((idx[None] >= crossover)[..., None], ws2, ws)


def mixing_crossover(num_ws: int, batch: int, prob: float,
                     generator: torch.Generator | None = None) -> Tensor:
    """Crossover layers (B,) on the generator's device (CPU if none): one draw for the whole batch.

    With probability ``prob`` (0.9 in StyleGAN2) the batch mixes at a layer drawn uniformly from
    1..num_ws−1, else it gets num_ws (no mixing); as stylegan2-ada, one crossover per batch, not
    per sample. Mixing stops the network from assuming that adjacent styles are correlated, which
    localises what each layer controls.
    """
    device = generator.device if generator is not None else torch.device("cpu")
    if num_ws < 2:
        return torch.full((batch,), num_ws, dtype=torch.long, device=device)
    cut = torch.randint(1, num_ws, (), generator=generator, device=device)
    mix = torch.rand((), generator=generator, device=device) < prob
    return torch.where(mix, cut, torch.full_like(cut, num_ws)).expand(batch).clone()


class Generator(nn.Module):
    """StyleGAN2 generator: z (B, z_dim) → image (B, img_channels, image_size, image_size), unbounded.

    ``num_ws`` = 2·log2(image_size) − 2 per-layer latents (18 at 1024 px).
    """

    def __init__(self, image_size: int, z_dim: int = 512, w_dim: int = 512, mapping_layers: int = 8,
                 channel_base: int = 32768, channel_max: int = 512, img_channels: int = 1,
                 mapping_lr_multiplier: float = 0.01):
        super().__init__()
        log2 = _log2(image_size, 4)
        self.image_size, self.img_channels, self.z_dim, self.w_dim = image_size, img_channels, z_dim, w_dim
        self.block_resolutions = [2**i for i in range(2, log2 + 1)]
        ch = {r: _channels(r, channel_base, channel_max) for r in self.block_resolutions}
        self.mapping_network = MappingNetwork(z_dim, w_dim, mapping_layers, mapping_lr_multiplier)
        self.blocks = nn.ModuleList()
        seed = 0
        for r in self.block_resolutions:
            in_ch = 0 if r == 4 else ch[r // 2]
            block = SynthesisBlock(in_ch, ch[r], w_dim, r, img_channels, noise_seed=seed)
            seed += block.num_conv
            self.blocks.append(block)
        self.num_ws = sum(b.num_conv for b in self.blocks) + 1

    def mapping(self, z: Tensor, truncation_psi: float = 1.0, update_w_avg: bool = True) -> Tensor:
        """z (B, z_dim) → ws (B, num_ws, w_dim), the same w broadcast to every layer."""
        w = self.mapping_network(z, truncation_psi, update_w_avg)
        return w[:, None].expand(-1, self.num_ws, -1)

    def mixed_mapping(self, z: Tensor, mixing_prob: float = 0.9, generator: torch.Generator | None = None,
                      truncation_psi: float = 1.0) -> Tensor:
        """Training-time mapping with style mixing: ws (B, num_ws, w_dim).

        A second z2 (from ``generator``) is mapped without touching w̄, and the batch switches
        to it at one crossover layer (``mixing_crossover``).
        """
        ws = self.mapping(z, truncation_psi)
        if mixing_prob <= 0:
            return ws
        device = generator.device if generator is not None else z.device
        z2 = torch.randn(z.shape, generator=generator, device=device, dtype=z.dtype).to(z.device)
        ws2 = self.mapping(z2, truncation_psi, update_w_avg=False)
        cross = mixing_crossover(self.num_ws, z.shape[0], mixing_prob, generator).to(z.device)
        return style_mix(ws, ws2, cross)

    def synthesis(self, ws: Tensor, noise_mode: str = "random",
                  generator: torch.Generator | None = None) -> Tensor:
        """ws (B, num_ws, w_dim) → image (B, img_channels, image_size, image_size)."""
        if ws.ndim != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be (B, {self.num_ws}, {self.w_dim}), got {tuple(ws.shape)}")
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"unknown noise_mode {noise_mode!r} (allowed: {', '.join(NOISE_MODES)})")
        x = img = None
        w_idx = 0
        for block in self.blocks:
            x, img = block(x, img, ws[:, w_idx:w_idx + block.num_conv + 1], noise_mode, generator)
            w_idx += block.num_conv
        return img

    def forward(self, z: Tensor, truncation_psi: float = 1.0, noise_mode: str = "random",
                generator: torch.Generator | None = None) -> Tensor:
        return self.synthesis(self.mapping(z, truncation_psi), noise_mode, generator)

    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())


# ----------------------------------------------------------------------------------------------
# Discriminator


class MinibatchStd(nn.Module):
    """Append the minibatch standard deviation as extra feature maps: (B, C, H, W) → (B, C + F, H, W).

    Samples are split into groups of G = min(group_size, B) (lowered to the largest divisor of B
    if B is not a multiple); per group, the std over members of each feature, averaged over
    channels (within each of F channel groups) and pixels, is broadcast as F constant maps.
    It lets D see batch-level diversity, penalising mode collapse.
    """

    def __init__(self, group_size: int = 4, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        g = min(self.group_size, b)
        while b % g:
            g -= 1
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)        # group members are b // g apart in the batch
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # (B/G, F, C/F, H, W) variance over the group
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4))      # (B/G, F)
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # (B, F, H, W)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block (B, in_ch, R, R) → (B, out_ch, R/2, R/2).

    Main path: 3×3 conv + lrelu, 3×3 blur + stride-2 conv + lrelu; skip: blur + stride-2 1×1 conv,
    linear, no bias. The sum is scaled by 1/√2 to keep the variance of a sum of two unit paths.
    """

    def __init__(self, in_ch: int, out_ch: int):
        super().__init__()
        self.conv0 = EqualConv2d(in_ch, in_ch, 3, activation="lrelu")
        self.conv1 = EqualConv2d(in_ch, out_ch, 3, down=True, activation="lrelu")
        self.skip = EqualConv2d(in_ch, out_ch, 1, bias=False, down=True)

    def forward(self, x: Tensor) -> Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class Discriminator(nn.Module):
    """StyleGAN2 "resnet" discriminator: x (B, img_channels, S, S) → logits (B,).

    FromRGB (1×1 + lrelu) at S, residual blocks S → 4, then minibatch std, 3×3 conv + lrelu,
    FC (C₄·16 → C₄) + lrelu, FC → 1. S must be a power of two >= 8.
    """

    def __init__(self, image_size: int, img_channels: int = 1, channel_base: int = 32768,
                 channel_max: int = 512, mbstd_group_size: int = 4, mbstd_channels: int = 1):
        super().__init__()
        log2 = _log2(image_size, 8)
        self.image_size, self.img_channels = image_size, img_channels
        ch = {2**i: _channels(2**i, channel_base, channel_max) for i in range(2, log2 + 1)}
        self.from_rgb = EqualConv2d(img_channels, ch[image_size], 1, activation="lrelu")
        self.blocks = nn.Sequential(*[DiscriminatorBlock(ch[2**i], ch[2**(i - 1)])
                                      for i in range(log2, 2, -1)])  # S → 4
        c4 = ch[4]
        if c4 % mbstd_channels:
            raise ValueError(f"mbstd_channels {mbstd_channels} must divide the 4×4 channels {c4}")
        self.mbstd = MinibatchStd(mbstd_group_size, mbstd_channels)
        self.conv = EqualConv2d(c4 + mbstd_channels, c4, 3, activation="lrelu")
        self.fc = EqualLinear(c4 * 4 * 4, c4, activation="lrelu")
        self.out = EqualLinear(c4, 1)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1:] != (self.img_channels, self.image_size, self.image_size):
            raise ValueError(f"D expects (B, {self.img_channels}, {self.image_size}, {self.image_size}), "
                             f"got {tuple(x.shape)}")
        x = self.blocks(self.from_rgb(x))
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1))).squeeze(1)

    def param_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
