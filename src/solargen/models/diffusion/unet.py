"""ADM's UNet (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs"), unconditional.

An ε-predictor ``UNet(x_t, t)``: a residual encoder–decoder over ``len(channel_mult)``
resolution levels, conditioned on the timestep through a sinusoidal embedding and an MLP,
with multi-head self-attention at chosen feature-map resolutions and always in the middle.

Attention placement: ``attention_resolutions`` lists *feature-map sizes in pixels* (ADM's
command line takes the same numbers and converts them to downsampling factors
``image_size // res``; the two are equivalent). The study's 1024 px setting ``(16, 8)`` with
``channel_mult=(1, 1, 2, 2, 4, 4)`` bottoms out at 1024 / 2⁵ = 32 px, so only the middle
block attends.

``use_checkpoint`` (as ADM's): each encoder, middle and decoder step recomputes its activations
in the backward pass instead of keeping them (`torch.utils.checkpoint`, non-reentrant, random
state preserved so dropout recomputes identically). Same gradients, a fraction of the memory
(at 1024 px the kept activations are what does not fit a 40 GB GPU), ~30 % more compute.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import Tensor


def default_channel_mult(image_size: int) -> tuple[int, ...]:
    """ADM's per-level channel multipliers for an image size (a level halves the resolution)."""
    if image_size >= 256:
        return (1, 1, 2, 2, 4, 4)
    if image_size >= 128:
        return (1, 1, 2, 3, 4)
    if image_size >= 64:
        return (1, 2, 3, 4)
    if image_size >= 32:
        return (1, 2, 2, 2)
    return (1, 2, 2)


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the largest of 32, 16, …, 1 groups dividing ``channels`` (ADM uses 32;
    narrow demo models have fewer channels than that)."""
    groups = next(g for g in (32, 16, 8, 4, 2, 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def zero_init(module: nn.Module) -> nn.Module:
    """Zero a layer's weights so the residual branch it ends starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal embedding (Vaswani et al.) of timesteps t (B,) float or long -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    """GroupNorm→SiLU→conv, timestep conditioning, GroupNorm→SiLU→dropout→conv, plus a skip.

    (B, in_ch, H, W), emb (B, emb_dim) -> (B, out_ch, H, W). With ``scale_shift`` the embedding
    modulates the second norm as norm(h)·(1+scale)+shift (ADM's adaptive GroupNorm);
    otherwise it is added before it.
    """

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, scale_shift: bool):
        super().__init__()
        self.scale_shift = scale_shift
        self.in_layers = nn.Sequential(group_norm(in_ch), nn.SiLU(), nn.Conv2d(in_ch, out_ch, 3, padding=1))
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, out_ch * (2 if scale_shift else 1)))
        self.out_norm = group_norm(out_ch)
        self.out_layers = nn.Sequential(nn.SiLU(), nn.Dropout(dropout),
                                        zero_init(nn.Conv2d(out_ch, out_ch, 3, padding=1)))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.in_layers(x)
        e = self.emb_proj(emb)[:, :, None, None]
        if self.scale_shift:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + e)
        return self.skip(x) + self.out_layers(h)


class Attention(nn.Module):
    """Multi-head self-attention over the H·W positions, residual: (B, C, H, W) -> same."""

    def __init__(self, channels: int, num_heads: int):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads={num_heads} does not divide {channels} channels")
        self.num_heads = num_heads
        self.norm = group_norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        # (B, 3C, H, W) -> 3 × (B, heads, HW, C/heads)
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.num_heads, c // self.num_heads, h * w) \
            .transpose(-1, -2).unbind(1)
        if not torch.is_grad_enabled():
            # Contiguous heads let CPU SDPA take its fused (flash) kernel instead of the math one:
            # ~5× faster attention when sampling, equal to float rounding (1e-6). Training keeps
            # the strided call, so trained weights stay bit-identical to those recorded before.
            q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        out = F.scaled_dot_product_attention(q, k, v)  # (B, heads, HW, C/heads)
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    """Strided 3×3 conv: (B, C, H, W) -> (B, C, H/2, W/2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    """Nearest ×2 then 3×3 conv: (B, C, H, W) -> (B, C, 2H, 2W)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Step(nn.Sequential):
    """A sequence of layers in which only the ResBlocks see the timestep embedding."""

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class UNet(nn.Module):
    """ADM's UNet. forward: x (B, in_channels, H, W), t (B,) -> (B, out_channels·(2 if
    learn_sigma else 1), H, W); with ``learn_sigma`` the extra channels carry the variance
    interpolation v of improved DDPM."""

    def __init__(self, image_size: int, in_channels: int = 1, model_channels: int = 128, out_channels: int = 1,
                 num_res_blocks: int = 2, attention_resolutions: tuple[int, ...] = (16, 8), dropout: float = 0.0,
                 channel_mult: tuple[int, ...] | None = None, num_heads: int = 4, use_scale_shift_norm: bool = True,
                 learn_sigma: bool = False, use_checkpoint: bool = False):
        super().__init__()
        self.use_checkpoint = use_checkpoint
        mult = tuple(channel_mult or default_channel_mult(image_size))
        if image_size % 2 ** (len(mult) - 1):
            raise ValueError(f"image_size {image_size} cannot be halved {len(mult) - 1} times")
        self.image_size, self.model_channels, self.learn_sigma = image_size, model_channels, learn_sigma
        attn_res = set(attention_resolutions)
        emb_dim = 4 * model_channels
        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def res(cin: int, cout: int) -> ResBlock:
            return ResBlock(cin, cout, emb_dim, dropout, use_scale_shift_norm)

        # Encoder: every Step's output is kept as a skip for the decoder.
        ch = mult[0] * model_channels
        self.encoder = nn.ModuleList([Step(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skips, size = [ch], image_size
        for level, m in enumerate(mult):
            for _ in range(num_res_blocks):
                layers = [res(ch, m * model_channels)]
                ch = m * model_channels
                if size in attn_res:
                    layers.append(Attention(ch, num_heads))
                self.encoder.append(Step(*layers))
                skips.append(ch)
            if level != len(mult) - 1:
                self.encoder.append(Step(Downsample(ch)))
                skips.append(ch)
                size //= 2

        self.middle = Step(res(ch, ch), Attention(ch, num_heads), res(ch, ch))

        # Decoder: num_res_blocks + 1 Steps per level, so each consumes one encoder skip.
        self.decoder = nn.ModuleList()
        for level, m in reversed(list(enumerate(mult))):
            for i in range(num_res_blocks + 1):
                layers = [res(ch + skips.pop(), m * model_channels)]
                ch = m * model_channels
                if size in attn_res:
                    layers.append(Attention(ch, num_heads))
                if level and i == num_res_blocks:
                    layers.append(Upsample(ch))
                    size *= 2
                self.decoder.append(Step(*layers))

        self.out = nn.Sequential(group_norm(ch), nn.SiLU(),
                                 zero_init(nn.Conv2d(ch, out_channels * (2 if learn_sigma else 1), 3, padding=1)))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=x.device).expand(x.shape[0])  # a scalar t serves the whole batch
        emb = self.time_embed(timestep_embedding(t, self.model_channels))
        run = self._checkpointed if self.use_checkpoint and torch.is_grad_enabled() else self._plain
        h, hs = x, []
        for step in self.encoder:
            h = run(step, h, emb)
            hs.append(h)
        h = run(self.middle, h, emb)
        for step in self.decoder:
            h = run(step, torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h)

    @staticmethod
    def _plain(step: Step, h: Tensor, emb: Tensor) -> Tensor:
        return step(h, emb)

    @staticmethod
    def _checkpointed(step: Step, h: Tensor, emb: Tensor) -> Tensor:
        return torch.utils.checkpoint.checkpoint(step, h, emb, use_reentrant=False)
