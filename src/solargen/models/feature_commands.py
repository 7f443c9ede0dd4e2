"""The ``feature-export`` command: a trained solar feature network's checkpoint → its encoder
file (`solargen.models.ssl_common.save_encoder`), which the evaluation's feature networks and
timm load."""

from __future__ import annotations

import json

from ..steps import arg, step


@step("feature-export", "export a trained solar feature network's encoder (timm-loadable)",
      arg("--family"),
      arg("--model-json"),
      arg("--image-size", type=int),
      arg("--checkpoint"),
      arg("--out"))
def feature_export(*, family, model_json, image_size, checkpoint, out):
    from ..train import load_checkpoint
    from . import FEATURE_FAMILIES
    from . import family as family_of
    from .ssl_common import save_encoder

    if family not in FEATURE_FAMILIES:
        raise SystemExit(f"error: --family {family}: not a feature-network family ({', '.join(FEATURE_FAMILIES)})")
    cfg = json.loads(model_json)
    try:
        state = load_checkpoint(checkpoint)
    except FileNotFoundError:
        raise SystemExit(f"error: checkpoint {checkpoint} does not exist (train it first)") from None
    except Exception as e:
        raise SystemExit(f"error: checkpoint {checkpoint} is unreadable ({e})") from None
    trainer = family_of(family).trainer(cfg, image_size)
    for k, m in trainer.modules.items():
        if k not in state.get("modules", {}):
            raise SystemExit(f"error: checkpoint {checkpoint} has no module {k!r}: not a {family} checkpoint")
        m.load_state_dict(state["modules"][k])
    fp = state.get("extra", {}).get("fingerprint", {})
    save_encoder(out, **trainer.export_args(),
                 provenance={"checkpoint": checkpoint, "step": int(state["step"]), "family": family,
                             "fingerprint": fp})
