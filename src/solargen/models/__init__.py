"""Model families. Each family module offers a trainer for `solargen.train.fit` and a sampler.

``FAMILIES`` maps a config ``family`` name to ``(make_trainer(cfg, image_size), sample(state,
cfg, image_size, n, **run))``. Families whose issue is not done are simply absent.
"""

from __future__ import annotations


def family(name: str):
    """Return ``(make_trainer, sample)`` for a family name."""
    if name == "diffusion":
        from .diffusion.family import DiffusionTrainer, sample

        return DiffusionTrainer, sample
    raise ValueError(f"unknown model family {name!r} (allowed: {', '.join(FAMILIES)})")


FAMILIES = ("diffusion",)
