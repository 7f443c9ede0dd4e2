"""DiffAugment (Zhao et al. 2020) with ProjectedGAN's settings.

Applied to real and fake images alike inside D, in both the D and the G step; every transform is
differentiable in the image (additions, products, index gathers, masks), so G gets gradients
through it. Random per sample. The random numbers are drawn on the CPU (from ``generator`` if
given, else the global CPU RNG) and then moved to the image's device, so a seeded generator
gives the same augmentation on any device.
"""

from __future__ import annotations

import torch


def _rand(b: int, x: torch.Tensor, generator) -> torch.Tensor:
    """(B, 1, 1, 1) uniform [0, 1) per sample."""
    return torch.rand(b, 1, 1, 1, generator=generator).to(x)


def _randint(low: int, high: int, b: int, x: torch.Tensor, generator) -> torch.Tensor:
    """(B, 1) integers in [low, high) per sample."""
    return torch.randint(low, high, (b, 1), generator=generator).to(x.device)


def brightness(x, generator=None):
    return x + (_rand(len(x), x, generator) - 0.5)  # ±0.5


def saturation(x, generator=None):
    mean = x.mean(dim=1, keepdim=True)  # over channels: a no-op on grey (or replicated grey) images
    return (x - mean) * (_rand(len(x), x, generator) * 2) + mean  # ×[0, 2]


def contrast(x, generator=None):
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(len(x), x, generator) + 0.5) + mean  # ×[0.5, 1.5]


def translation(x, generator=None, ratio: float = 0.125):
    """Integer shift by up to ``ratio`` of each side, per sample; vacated pixels become 0."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    rows = torch.arange(h, device=x.device) + _randint(-sh, sh + 1, b, x, generator)  # (B, H) source rows
    cols = torch.arange(w, device=x.device) + _randint(-sw, sw + 1, b, x, generator)  # (B, W)
    inside = ((rows >= 0) & (rows < h))[:, :, None] & ((cols >= 0) & (cols < w))[:, None, :]  # (B, H, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = x[batch, :, rows.clamp(0, h - 1)[:, :, None], cols.clamp(0, w - 1)[:, None, :]]  # (B, H, W, C)
    return out.permute(0, 3, 1, 2) * inside[:, None].to(x.dtype)


def cutout(x, generator=None, ratio: float = 0.2):
    """Zero one square of side ``ratio``·H per sample; its centre is uniform over the image, so it
    may be clipped by the border (as upstream)."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = _randint(0, h + (1 - ch % 2), b, x, generator) - ch // 2  # (B, 1)
    left = _randint(0, w + (1 - cw % 2), b, x, generator) - cw // 2
    r, c = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_r = (r >= top) & (r < top + ch)  # (B, H)
    in_c = (c >= left) & (c < left + cw)  # (B, W)
    keep = ~(in_r[:, :, None] & in_c[:, None, :])  # (B, H, W)
    return x * keep[:, None].to(x.dtype)


AUGMENTS = {"color": (brightness, saturation, contrast), "translation": (translation,), "cutout": (cutout,)}


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, C, H, W) → (B, C, H, W), the transforms of ``policy`` in order; "" is the identity."""
    for name in filter(None, (p.strip() for p in policy.split(","))):
        if name not in AUGMENTS:
            raise ValueError(f"unknown DiffAugment policy {name!r} (allowed: {', '.join(AUGMENTS)})")
        for f in AUGMENTS[name]:
            x = f(x, generator)
    return x
