"""The frozen feature network F of ProjectedGAN: pretrained EfficientNet-Lite stages + random
projections (CCM, CSM). Its weights never train, but gradients flow through it to G.

proj_type 0: the 4 backbone stage outputs; 1: + CCM (cross-channel mixing, a random 1×1 conv per
level); 2 (the paper's default): + CSM (cross-scale mixing, an FPN-like random top-down path),
whose maps are 2× the backbone's. For lite0, cout=64, expand=True, 224-px input (C, H, W):
  type 0: (24, 56, 56)   (40, 28, 28)  (112, 14, 14) (320, 7, 7)
  type 1: (64, 56, 56)   (128, 28, 28) (256, 14, 14) (512, 7, 7)
  type 2: (64, 112, 112) (64, 56, 56)  (128, 28, 28) (256, 14, 14)
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..efficientnet_lite import efficientnet_lite


def backbone_stages(net: nn.Module) -> nn.ModuleList:
    """Cut a timm EfficientNet into ProjectedGAN's 4 stages (strides 4, 8, 16, 32); the head goes.

    The 7 timm block groups are indexed the same for lite0…3 (only their depth and width differ).
    timm ≥ 0.6 folds the stem's ReLU6 into ``bn1`` (BatchNormAct2d) and has no ``act1``; older timm
    has a plain BN plus ``act1``. Taking ``act1`` only where it exists applies ReLU6 exactly once.
    """
    stem = [net.conv_stem, net.bn1] + ([net.act1] if hasattr(net, "act1") else [])
    b = net.blocks
    return nn.ModuleList([nn.Sequential(*stem, *b[0:2]), nn.Sequential(*b[2:3]),
                          nn.Sequential(*b[3:5]), nn.Sequential(*b[5:])])


class FeatureFusionBlock(nn.Module):
    """One CSM level: (coarser CSM output +) this level's CCM output → ×2 bilinear up → 1×1 conv.
    (B, C, h, w) → (B, C/2 if expand else C, 2h, 2w)."""

    def __init__(self, channels: int, expand: bool):
        super().__init__()
        self.out_conv = nn.Conv2d(channels, channels // 2 if expand else channels, 1, bias=True)

    def forward(self, x, coarser=None):
        if coarser is not None:
            x = x + coarser
        return self.out_conv(F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True))


class RandomProjections(nn.Module):
    """CCM (proj_type ≥ 1) and CSM (proj_type 2), randomly initialised (PyTorch default init) and
    normally left frozen: random projections that spread the pretrained features' information
    over channels and scales, which the paper finds makes D's job harder and G's better."""

    def __init__(self, in_channels: list[int], proj_type: int = 2, cout: int = 64, expand: bool = True):
        super().__init__()
        ccm_ch = [cout * 2 ** i for i in range(4)] if expand else [cout] * 4
        self.ccm = nn.ModuleList(nn.Conv2d(c, o, 1, bias=True) for c, o in zip(in_channels, ccm_ch))
        self.csm = None
        self.channels = ccm_ch
        if proj_type == 2:
            # the finest level never halves: it would cost resolution-heavy channels for nothing
            self.csm = nn.ModuleList(FeatureFusionBlock(c, expand and i > 0) for i, c in enumerate(ccm_ch))
            self.channels = [ccm_ch[0]] + [c // 2 for c in ccm_ch[1:]] if expand else ccm_ch

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        feats = [ccm(f) for ccm, f in zip(self.ccm, feats)]
        if self.csm is None:
            return feats
        out, coarser = [], None
        for csm, f in zip(reversed(self.csm), reversed(feats)):  # top-down, coarsest first
            coarser = csm(f, coarser)
            out.append(coarser)
        return out[::-1]


class FeatureNetwork(nn.Module):
    """F: (B, 1 or 3, H, W) in [-1, 1] → list of 4 feature maps, finest first.

    As upstream: grey is repeated to the 3 RGB channels the stem expects; the image is resized
    (bilinear) to ``interp_size`` only when smaller (``interp224``); the [-1, 1] image goes in
    without ImageNet mean/std normalisation. Always in eval mode (BatchNorm running statistics),
    even when a trainer makes its parameters trainable for an ablation.
    """

    def __init__(self, backbone: str = "lite0", pretrained: bool = True, weights_path: str | None = None,
                 proj_type: int = 2, cout: int = 64, expand: bool = True, interp_size: int | None = 224):
        super().__init__()
        if proj_type not in (0, 1, 2):
            raise ValueError(f"proj_type must be 0, 1 or 2, got {proj_type!r}")
        self.proj_type, self.interp_size = proj_type, interp_size
        self.backbone = backbone_stages(efficientnet_lite(backbone, pretrained, weights_path))
        stage_ch = [s[-1][-1].conv_pwl.out_channels for s in self.backbone]  # last block's projection
        self.projections = RandomProjections(stage_ch, proj_type, cout, expand) if proj_type else None
        self.channels = self.projections.channels if proj_type else stage_ch
        self.train(False)

    def train(self, mode: bool = True):
        return super().train(False)  # frozen BatchNorm statistics, whatever the caller asks

    def resolutions(self, image_size: int) -> list[int]:
        """Side of each output map for a square ``image_size`` input (TF 'same' padding: ⌈s/stride⌉)."""
        s = self.interp_size if self.interp_size and image_size < self.interp_size else image_size
        sides = [math.ceil(s / 2 ** k) for k in (2, 3, 4, 5)]
        return [2 * r for r in sides] if self.proj_type == 2 else sides

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.interp_size and min(x.shape[-2:]) < self.interp_size:
            x = F.interpolate(x, size=self.interp_size, mode="bilinear", align_corners=False)
        feats = []
        for stage in self.backbone:
            x = stage(x)
            feats.append(x)
        return self.projections(feats) if self.projections is not None else feats
