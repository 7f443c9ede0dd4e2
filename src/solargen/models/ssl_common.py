"""What the solar feature networks (`mae_solar`, `vicreg_solar`) share: the warm-up + cosine
learning-rate schedule of both papers, batched random resized crops of one-channel frames, and
the exported-encoder file format (one module owns it: `save_encoder` / `load_encoder`).

Random draws come from the training loop's CPU generator, so a run is reproducible and a
resumed run continues exactly.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

#: Format tag of an exported encoder file.
ENCODER_FORMAT = "solargen-feature-encoder-v1"


def warmup_cosine(step: int, base_lr: float, warmup_steps: int, total_steps: int, min_lr: float = 0.0) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then a half-cosine to ``min_lr`` at
    ``total_steps`` (MAE's and VICReg's schedule, per step instead of per epoch)."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    t = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + (base_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * t))


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)


def random_boxes(n: int, h: int, w: int, generator: torch.Generator, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3),
                 side: int | None = None) -> list[tuple[int, int, int, int]]:
    """``n`` crop boxes (top, left, height, width): torchvision's RandomResizedCrop sampling (area
    fraction in ``scale``, log-uniform aspect ratio, 10 tries then the whole image), or, with
    ``side``, square crops of ``side`` native pixels at uniform positions."""
    out = []
    for _ in range(n):
        if side is not None:
            if side > min(h, w):
                raise ValueError(f"crop side {side} exceeds the {h}×{w} frames")
            top = int(torch.randint(0, h - side + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - side + 1, (1,), generator=generator))
            out.append((top, left, side, side))
            continue
        box = (0, 0, h, w)
        for _ in range(10):
            area = h * w * float(torch.empty(1).uniform_(scale[0], scale[1], generator=generator))
            logr = torch.empty(1).uniform_(math.log(ratio[0]), math.log(ratio[1]), generator=generator)
            r = math.exp(float(logr))
            cw, ch = round(math.sqrt(area * r)), round(math.sqrt(area / r))
            if 0 < cw <= w and 0 < ch <= h:
                top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
                left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
                box = (top, left, ch, cw)
                break
        out.append(box)
    return out


def crop_resize(x: torch.Tensor, boxes, size: int) -> torch.Tensor:
    """Each image's box, resized to ``size``² (bicubic, antialiased when shrinking, as the
    evaluation's clean-fid resizer), clamped to the data range [-1, 1]."""
    out = []
    for img, (t, l, h, w) in zip(x, boxes):
        c = img[None, :, t:t + h, l:l + w]
        if (h, w) != (size, size):
            c = F.interpolate(c, size=(size, size), mode="bicubic", align_corners=False, antialias=h > size or w > size)
        out.append(c)
    return torch.cat(out).clamp(-1, 1)


def save_encoder(path: str | Path, *, kind: str, library: str, arch: str, kwargs: dict, state_dict: dict,
                 input_size: int, feature: str, provenance: dict) -> None:
    """An encoder as a file timm loads: ``state_dict`` fits timm's ``arch``(**kwargs)
    (``timm.models.vision_transformer.VisionTransformer`` or ``timm.models.resnet.ResNet``; a
    ResNet-50's keys are torchvision's too), stored with what built it. Plain tensors and JSON
    types: loads with ``weights_only=True``."""
    from ..io import atomic_path

    state = {"format": ENCODER_FORMAT, "kind": kind, "library": library, "arch": arch, "kwargs": kwargs,
             "input_size": int(input_size), "feature": feature, "provenance": provenance,
             "state_dict": {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_encoder(path: str | Path) -> dict:
    """An exported encoder file; a missing or foreign file is a `FileNotFoundError`/`ValueError`
    naming it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such encoder file (train it with the feature_train rule)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: unreadable encoder file ({e})") from None
    if not isinstance(state, dict) or state.get("format") != ENCODER_FORMAT:
        raise ValueError(f"{path}: not a solargen encoder file (format {ENCODER_FORMAT})")
    return state


def build_encoder(state: dict) -> torch.nn.Module:
    """The module an exported encoder file describes (timm's VisionTransformer or ResNet built
    from its ``kwargs``), with its weights, in eval mode."""
    if state.get("library") != "timm" or state.get("arch") not in ("VisionTransformer", "ResNet"):
        raise ValueError(f"unknown encoder {state.get('library')} {state.get('arch')}")
    net = encoder_class(state["arch"])(**constructor_kwargs(state["kwargs"]))
    net.load_state_dict(state["state_dict"])
    return net.eval()


def encoder_class(arch: str):
    if arch == "VisionTransformer":
        from timm.models.vision_transformer import VisionTransformer

        return VisionTransformer
    from timm.models.resnet import ResNet

    return ResNet


def constructor_kwargs(kw: dict) -> dict:
    """Constructor arguments from their JSON-safe form (a ResNet's block given by name)."""
    if "block" in kw:
        from timm.models import resnet

        return {**kw, "block": getattr(resnet, kw["block"])}
    return dict(kw)
