"""The ``feature-export`` command: a trained solar feature network's checkpoint → its encoder
file (`solargen.models.ssl_common.save_encoder`), which the evaluation's feature networks and
timm load."""

from __future__ import annotations

import json


def _export(a):
    from ..train import load_checkpoint
    from . import FEATURE_FAMILIES, family
    from .ssl_common import save_encoder

    if a.family not in FEATURE_FAMILIES:
        raise SystemExit(f"error: --family {a.family}: not a feature-network family ({', '.join(FEATURE_FAMILIES)})")
    cfg = json.loads(a.model_json)
    try:
        state = load_checkpoint(a.checkpoint)
    except FileNotFoundError:
        raise SystemExit(f"error: checkpoint {a.checkpoint} does not exist (train it first)") from None
    except Exception as e:
        raise SystemExit(f"error: checkpoint {a.checkpoint} is unreadable ({e})") from None
    trainer = family(a.family).trainer(cfg, a.image_size)
    for k, m in trainer.modules.items():
        if k not in state.get("modules", {}):
            raise SystemExit(f"error: checkpoint {a.checkpoint} has no module {k!r}: not a {a.family} checkpoint")
        m.load_state_dict(state["modules"][k])
    fp = state.get("extra", {}).get("fingerprint", {})
    save_encoder(a.out, **trainer.export_args(),
                 provenance={"checkpoint": a.checkpoint, "step": int(state["step"]), "family": a.family,
                             "fingerprint": fp})


def add_commands(sub):
    s = sub.add_parser("feature-export", help="export a trained solar feature network's encoder (timm-loadable)")
    s.add_argument("--family", required=True)
    s.add_argument("--model-json", required=True)
    s.add_argument("--image-size", type=int, required=True)
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_export)
