# Config validation, output prefix, run lookup. Everything a rule needs to know about a run
# comes from here, so the rules stay thin.

import json

from snakemake.utils import validate


validate(config, "../schemas/config.schema.yaml")


def _check_config(cfg):
    """Cross-key checks a JSON schema cannot express; fail before any job runs."""
    for run, r in cfg["runs"].items():
        if r["model"] not in cfg["models"]:
            raise ValueError(
                f"config: runs.{run}.model = {r['model']!r} is not a key of models "
                f"(allowed: {', '.join(cfg['models'])})"
            )
    d = cfg["data"]
    for name, m in cfg["models"].items():
        if d["resolution"] % m["image_size"]:
            raise ValueError(
                f"config: models.{name}.image_size = {m['image_size']} must divide data.resolution = {d['resolution']}"
            )
    if d["source"] == "synthetic" and d["synthetic"]["native_size"] % d["resolution"]:
        raise ValueError(
            f"config: data.synthetic.native_size = {d['synthetic']['native_size']} must be a multiple "
            f"of data.resolution = {d['resolution']}"
        )


_check_config(config)

OUT = f"results/{config['name']}"
DATA = f"{OUT}/data"
RUNS = config["runs"]
MODELS = config["models"]
N_SHARDS = -(-config["data"]["n_frames"] // config["data"]["frames_per_shard"])
SHARDS = [f"{i:04d}" for i in range(N_SHARDS)]


wildcard_constraints:
    shard=r"\d{4}",
    step=r"\d{7}",
    run="|".join(map(lambda s: s.replace("+", r"\+").replace(".", r"\."), RUNS)) or "NONE",
    model="|".join(map(lambda s: s.replace(".", r"\."), MODELS)) or "NONE",
    family="|".join(sorted({m["family"] for m in MODELS.values()})) or "NONE",
    net="|".join(config["evaluation"]["nets"]),


def model_of(run):
    return RUNS[run]["model"]


def family_of_model(model):
    return MODELS[model]["family"]


def run_dir(run):
    return f"{OUT}/runs/{family_of_model(model_of(run))}/{run}"


def checkpoint(model, step):
    return f"{OUT}/models/{family_of_model(model)}/{model}/checkpoints/step{int(step):07d}.pt"


def train_steps_of(model):
    """Every checkpoint step some run of ``model`` asks for, ascending."""
    return sorted({r["train_steps"] for r in RUNS.values() if r["model"] == model})


def model_json(model):
    """The model's hyperparameters as JSON for the CLI (family and image size are separate args)."""
    m = {k: v for k, v in MODELS[model].items() if k not in ("family", "image_size")}
    return json.dumps(m, sort_keys=True)


def all_metrics():
    return [f"{run_dir(r)}/metrics.json" for r in RUNS]
