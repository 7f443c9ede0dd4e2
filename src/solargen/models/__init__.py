"""Model families. Each family offers a trainer for `solargen.train.fit` and a sampler.

`family` returns a `Family`: the trainer class (None for a non-learned baseline), the
``sample(state, cfg, image_size, n, **run)`` function, and whether sampling is conditioned on
held-out frames (``targets``), and ``channels(cfg)``: the extra wavelengths (Å) its batches carry
after the target (channel translation; [] for all others). Families whose issue is not done are simply absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

FAMILIES = ("diffusion", "projectedgan", "stylegan2", "msdgan", "bicubic")
#: Families of solar feature networks (trained by the feature_train rule; no sampler): their
#: trainers also have ``export_args()`` for `solargen.models.ssl_common.save_encoder`.
FEATURE_FAMILIES = ("mae_solar", "vicreg_solar")


@dataclass(frozen=True)
class Family:
    name: str
    trainer: type | None
    sample: Callable
    conditional: bool
    channels: Callable = lambda cfg: []


def family(name: str) -> Family:
    """The named family (imported lazily: each pulls in only its own modules)."""
    if name == "diffusion":
        from .diffusion.family import DiffusionTrainer, sample

        return Family(name, DiffusionTrainer, sample, conditional=False)
    if name == "projectedgan":
        from .projectedgan.family import ProjectedGANTrainer, sample

        return Family(name, ProjectedGANTrainer, sample, conditional=False)
    if name == "stylegan2":
        from .stylegan2.family import StyleGAN2Trainer, sample

        return Family(name, StyleGAN2Trainer, sample, conditional=False)
    if name == "msdgan":
        from .msdgan.family import MSDGANTrainer, input_wavelengths, sample

        return Family(name, MSDGANTrainer, sample, conditional=True, channels=input_wavelengths)
    if name == "bicubic":
        from .msdgan.family import sample_bicubic

        return Family(name, None, sample_bicubic, conditional=True)
    if name == "mae_solar":
        from .mae_solar import MAETrainer

        return Family(name, MAETrainer, None, conditional=False)
    if name == "vicreg_solar":
        from .vicreg_solar import VICRegTrainer

        return Family(name, VICRegTrainer, None, conditional=False)
    raise ValueError(f"unknown model family {name!r} (allowed: {', '.join(FAMILIES + FEATURE_FAMILIES)})")
