"""The study's configuration as the workflow sees it, after Snakemake's schema validation.

The schema (``workflow/schemas/config.schema.yaml``) fills every *constant* default; this module
adds what a JSON schema cannot express: checks across keys, seed replicates expanded into runs,
models left out for missing weights, and the shards a source yields. Defaults computed from other
keys live with the family that uses them (config/README.md lists them). Nothing here imports torch,
so building the DAG stays fast.
"""

from __future__ import annotations

import re

#: Families with weights to train, and families that sample conditioned on held-out frames.
TRAINED = {"diffusion", "projectedgan", "stylegan2", "msdgan"}
CONDITIONAL = {"msdgan", "bicubic"}
#: Sources that acquire from JSOC (time chunks instead of synthetic shards).
JSOC_SOURCES = ("jsoc_lev1", "jsoc_synoptic")

__all__ = ["TRAINED", "CONDITIONAL", "JSOC_SOURCES", "check", "expand_seeds", "unavailable_models",
           "expert_runs", "shards", "fill_defaults"]


def check(cfg: dict) -> None:
    """Cross-key checks; a ``ValueError`` naming the key, before any job runs."""
    _check_runs(cfg)
    _check_evaluation(cfg)
    _check_models(cfg)
    _check_data(cfg)


def _check_runs(cfg):
    for run, r in cfg["runs"].items():
        if r["model"] not in cfg["models"]:
            raise ValueError(
                f"config: runs.{run}.model = {r['model']!r} is not a key of models "
                f"(allowed: {', '.join(cfg['models'])})"
            )
        fam = cfg["models"][r["model"]]["family"]
        if fam in TRAINED and "train_steps" not in r:
            raise ValueError(f"config: runs.{run}.train_steps is required for family {fam}")
        if fam == "diffusion" and "sampling_steps" not in r:
            raise ValueError(f"config: runs.{run}.sampling_steps is required for family diffusion")


def _check_evaluation(cfg):
    from .evaluate.registry import BUILTIN, MIN_SAMPLES

    ev = cfg["evaluation"]
    if ev["n_samples"] < MIN_SAMPLES["precision"]:
        raise ValueError(
            f"config: evaluation.n_samples = {ev['n_samples']} is too few: precision and recall need at least "
            f"{MIN_SAMPLES['precision']} generated images (k = 3 nearest neighbours)"
        )
    if ev["sample_chunks"] > ev["n_samples"]:
        raise ValueError(
            f"config: evaluation.sample_chunks = {ev['sample_chunks']} exceeds evaluation.n_samples = {ev['n_samples']}"
        )
    nets, trained = ev["feature_networks"], cfg["feature_train"]
    for n in ev["nets"]:
        if n not in BUILTIN and n not in nets and n not in trained:
            raise ValueError(
                f"config: evaluation.nets: {n!r} is neither built in ({', '.join(BUILTIN)}) nor configured "
                "under evaluation.feature_networks nor trained under feature_train"
            )
    for n, f in trained.items():
        if n in nets or n in BUILTIN:
            raise ValueError(f"config: feature_train.{n} is also a built-in or configured feature network: rename one")
        if cfg["data"]["resolution"] % f["image_size"]:
            raise ValueError(
                f"config: feature_train.{n}.image_size = {f['image_size']} must divide data.resolution = "
                f"{cfg['data']['resolution']}"
            )
    for n, spec in nets.items():
        need = ["kind", "weights", "input_size"] + (["arch"] if spec.get("kind") in ("timm", "torchvision") else [])
        missing = [k for k in need if k not in {**BUILTIN.get(n, {}), **spec}]
        if missing:
            raise ValueError(f"config: evaluation.feature_networks.{n} needs {', '.join(missing)}")
    for key in ("crops", "spectrum_crops"):
        for c in ev[key]:
            m = re.match(r"CROPPED(\d+)", c)
            if "CS_" not in c and int(m[1]) > cfg["data"]["resolution"]:
                raise ValueError(
                    f"config: evaluation.{key}: {c} is larger than data.resolution = {cfg['data']['resolution']}"
                )


def _check_models(cfg):
    d = cfg["data"]
    for name, m in cfg["models"].items():
        size, fam = m["image_size"], m["family"]
        # The StyleGAN2 and FastGAN generators double the resolution from 4×4: powers of two only.
        if fam in ("stylegan2", "projectedgan") and not _power_of_two(size):
            raise ValueError(
                f"config: models.{name}.image_size = {size} must be a power of two for family {fam} "
                f"(e.g. {_near_powers(size)})"
            )
        if fam == "msdgan":
            levels = max(2, size.bit_length() - 3)  # the U-Net halves the size down to ~4×4
            if size % 2**levels:
                raise ValueError(
                    f"config: models.{name}.image_size = {size} must be a multiple of {2**levels} for family "
                    f"msdgan (its U-Net halves it {levels} times; e.g. {_near_powers(size)})"
                )
        if d["resolution"] % size:
            raise ValueError(f"config: models.{name}.image_size = {size} must divide data.resolution = {d['resolution']}")
        extra = d["extra_wavelengths"]
        if fam == "msdgan" and m.get("condition") == "translation":
            if not m.get("input_wavelengths"):
                raise ValueError(f"config: models.{name}: condition translation needs input_wavelengths")
            missing = [w for w in m["input_wavelengths"] if w not in extra]
            if missing:
                raise ValueError(
                    f"config: models.{name}.input_wavelengths asks for {', '.join(map(str, missing))} Å, which "
                    f"the data does not fetch (data.extra_wavelengths: {extra or 'none'})"
                )
        elif m.get("input_wavelengths"):
            raise ValueError(f"config: models.{name}.input_wavelengths is only read with condition: translation")


def _check_data(cfg):
    d = cfg["data"]
    extra = d["extra_wavelengths"]
    if extra and d["source"] == "image_folder":
        raise ValueError("config: data.extra_wavelengths needs a level-1 source (synthetic, jsoc_lev1, jsoc_synoptic)")
    if d["wavelength"] in extra:
        raise ValueError(f"config: data.extra_wavelengths holds the target wavelength {d['wavelength']}")
    if d["source"] == "synthetic" and d["synthetic"]["native_size"] % d["resolution"]:
        raise ValueError(
            f"config: data.synthetic.native_size = {d['synthetic']['native_size']} must be a multiple "
            f"of data.resolution = {d['resolution']}"
        )
    if d["calibration"]["pointing_table"] == "jsoc" and d["source"] != "jsoc_lev1":
        raise ValueError(
            f"data.calibration.pointing_table: jsoc needs data.source: jsoc_lev1 (got {d['source']}); "
            "set a table file or null (the level-1 header's pointing)"
        )


def _power_of_two(n):
    return n > 0 and n & (n - 1) == 0


def _near_powers(n):
    lo = 1 << (max(n, 1).bit_length() - 1)
    return f"{lo} or {2 * lo}" if lo != n else str(n)


def expand_seeds(cfg: dict) -> None:
    """Seed replicates (``runs.<run>.seeds``), in place. The replicate at the top-level ``seed`` is
    the run itself, under its plain name, so listing seeds never renames or retrains it. Every
    other seed s adds run ``<run>@seed<s>`` of model ``<model>@seed<s>``: trained and sampled with
    seed s (runs of one model share its replicate, as they share the model), named so in
    results.csv."""
    runs, models = {}, dict(cfg["models"])
    for run, r in cfg["runs"].items():
        runs[run] = {k: v for k, v in r.items() if k != "seeds"}
        for s in r.get("seeds", []):
            if s == cfg["seed"]:
                continue
            model = f"{r['model']}@seed{s}"
            models.setdefault(model, {**cfg["models"][r["model"]], "seed": s})
            runs[f"{run}@seed{s}"] = {**runs[run], "model": model, "seed": s}
    cfg["runs"], cfg["models"] = runs, models


def unavailable_models(cfg: dict) -> dict[str, str]:
    """Models whose pretrained weights are not on this machine → why. Their runs are left out of
    the study (listed in not_run.csv with the reason); asking for one explicitly is an error."""
    from .models.projectedgan.ablations import weights_problem

    out = {}
    for name, m in cfg["models"].items():
        if m["family"] == "projectedgan":
            try:
                problem = weights_problem(m)
            except ValueError as e:  # an unknown ablation or a conflicting switch
                raise ValueError(f"config: models.{name}: {e}") from None
            if problem:
                out[name] = problem
    return out


def expert_runs(cfg: dict, skipped: dict[str, str]) -> list[str]:
    """The runs of the config's ``expert_eval`` block, checked against the rest of the config;
    ``skipped``: runs the workflow does not make → why."""
    ex = cfg["expert_eval"]
    for r in ex["runs"]:
        if r not in cfg["runs"]:
            raise ValueError(f"config: expert_eval.runs: {r!r} is not a key of runs (allowed: {', '.join(cfg['runs'])})")
        if r in skipped:
            raise ValueError(f"config: expert_eval.runs: run {r!r} is not made here: {skipped[r]}")
    if ex["n_per_run"] > cfg["evaluation"]["n_samples"]:
        raise ValueError(f"config: expert_eval.n_per_run = {ex['n_per_run']} exceeds evaluation.n_samples = "
                         f"{cfg['evaluation']['n_samples']}")
    for c in ex["crops"]:
        if c > cfg["data"]["resolution"]:
            raise ValueError(f"config: expert_eval.crops: {c} is larger than data.resolution = {cfg['data']['resolution']}")
    return list(ex["runs"])


def shards(cfg: dict) -> list[str]:
    """The shard ids of the data: ``n_frames / frames_per_shard`` synthetic shards, or one per
    JSOC time chunk (``data.jsoc.chunk_days``)."""
    d = cfg["data"]
    if d["source"] in JSOC_SOURCES:
        from .acquire.records import time_chunks

        n = len(time_chunks(d["jsoc"]["start"], d["jsoc"]["end"], d["jsoc"]["chunk_days"]))
    else:
        n = -(-d["n_frames"] // d["frames_per_shard"])
    return [f"{i:04d}" for i in range(n)]


def fill_defaults(cfg: dict) -> None:
    """The defaults computed from other keys, in place (after `expand_seeds`): every model, run,
    solar feature network and the expert test train or draw with the top-level ``seed`` unless
    they name their own (a run: its model's); a run of a family without sampling steps gets 1."""
    for m in cfg["models"].values():
        m.setdefault("seed", cfg["seed"])
    for r in cfg["runs"].values():
        r.setdefault("seed", cfg["models"][r["model"]]["seed"])
        r.setdefault("sampling_steps", 1)
    for f in cfg["feature_train"].values():
        f.setdefault("seed", cfg["seed"])
    if cfg.get("expert_eval"):
        cfg["expert_eval"].setdefault("seed", cfg["seed"])
