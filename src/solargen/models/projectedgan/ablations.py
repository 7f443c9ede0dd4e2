"""The study's ProjectedGAN ablations: each one a small override of the baseline switches.

A ``models.<name>`` entry of family ``projectedgan`` names its ablation (``ablation:``, default
``full_projectedgan``); `resolve` merges the baseline switches, the entry's own keys and the
ablation's override. Names are exactly the study's ``results.csv`` names (study.md §3.1); what
each switch means is in models_metrics.md §1.8.
"""

from __future__ import annotations

#: The baseline's switches (upstream ProjectedGAN with ``--cfg=stylegan2``).
BASELINE = {
    "backbone": "lite0",            # timm tf_efficientnet_lite{0,1,2,3}
    "pretrained": True,             # ImageNet weights (False: the random-init arms)
    "freeze_backbone": True,        # EfficientNet weights never update
    "freeze_projections": True,     # CCM/CSM stay at their random initialisation
    "proj_type": 2,                 # 0 raw features, 1 CCM, 2 CCM + CSM
    "num_discs": 4,                 # mini-discriminators on the finest num_discs feature levels
    "diffaug": "color,translation,cutout",
    "discriminator": "projected",   # or "stylegan2": the same G against StyleGAN2's own D
}

ABLATIONS: dict[str, dict] = {
    # The study's `full_projectedgan_baseline` row is this model at the ablations' (shorter) budget:
    # a second run of the same training, not a separate ablation.
    "full_projectedgan": {},
    "no_cross_scale_mixing": {"proj_type": 1},
    "no_cross_scale_and_no_cross_channel_mixing": {"proj_type": 0},
    "unfreeze_feature_network": {"freeze_backbone": False},
    "trainable_projections": {"freeze_projections": False},
    "unfreeze_feature_network+trainable_projections": {"freeze_backbone": False, "freeze_projections": False},
    "randomly_initialized_feature_network": {"pretrained": False},
    "randomly_initialized_feature_network_unfrozen": {"pretrained": False, "freeze_backbone": False},
    "efficientnet-lite1": {"backbone": "lite1"},
    "efficientnet-lite2": {"backbone": "lite2"},
    "efficientnet-lite3": {"backbone": "lite3"},
    "discriminator_1": {"num_discs": 1},
    "discriminator_1,2": {"num_discs": 2},
    "discriminator_1,2,3": {"num_discs": 3},
    "augmentations_off": {"diffaug": ""},
    # Not in the study: isolates its central claim. The same StyleGAN2 G, loss, augmentation and
    # budget, against StyleGAN2's residual D on pixels instead of the projected D.
    "stylegan2_discriminator": {"discriminator": "stylegan2"},
}


def resolve(cfg: dict) -> dict:
    """The full switch set of a model entry: baseline ← entry ← its ablation's override.

    An entry that sets a switch its ablation also sets, to another value, is an error: the
    run would not be the ablation its name claims.
    """
    name = cfg.get("ablation", "full_projectedgan")
    if name not in ABLATIONS:
        raise ValueError(f"unknown ProjectedGAN ablation {name!r} (allowed: {', '.join(ABLATIONS)})")
    override = ABLATIONS[name]
    for k, v in override.items():
        if k in cfg and cfg[k] != v:
            raise ValueError(f"ablation {name!r} sets {k} = {v!r}, but the model entry sets {k} = {cfg[k]!r}")
    return {**BASELINE, **cfg, **override, "ablation": name}


def weights_problem(cfg: dict) -> str | None:
    """Why this entry's pretrained backbone cannot be built here, or None if it can.

    Checked when the workflow reads its config, so a missing weights file stops the run
    before any job starts instead of crashing a training job.
    """
    from ..efficientnet_lite import WeightsUnavailable, weights_file

    r = resolve(cfg)
    if not r["pretrained"] or r["discriminator"] != "projected":
        return None
    try:
        weights_file(r["backbone"], r.get("weights_path"))
    except WeightsUnavailable as e:
        return str(e)
    return None
