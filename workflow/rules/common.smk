# Config validation, output prefix, run lookup. Everything a rule needs to know about a run
# comes from here, so the rules stay thin.

import functools
import json
import os
import re

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate


try:
    validate(config, "../schemas/config.schema.yaml")
except WorkflowError as e:
    # Snakemake reads every value inside a nested --config (key={a: 1}) as text, so a number there
    # fails the schema as a string; say how to give it instead.
    if any(isinstance(v, dict) for v in workflow.config_settings.config.values()):
        raise WorkflowError(
            f"{e}\nNote: Snakemake reads every value inside a nested --config value (key={{a: 1}}) as text. "
            "Give nested overrides in a YAML file after the study's config: --configfile config/ci.yaml "
            "override.yaml (see 'Overriding keys' in config/README.md)."
        ) from None
    raise


#: Families with weights to train, and families that sample conditioned on held-out frames.
TRAINED = {"diffusion", "projectedgan", "stylegan2", "msdgan"}
CONDITIONAL = {"msdgan", "bicubic"}


def _check_config(cfg):
    """Cross-key checks a JSON schema cannot express; fail before any job runs."""
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
    from solargen.evaluate.metrics import MIN_SAMPLES

    ev = cfg["evaluation"]
    if ev["n_samples"] < MIN_SAMPLES["precision"]:
        raise ValueError(
            f"config: evaluation.n_samples = {ev['n_samples']} is too few: precision and recall need at least "
            f"{MIN_SAMPLES['precision']} generated images (k = 3 nearest neighbours)"
        )
    if ev.get("sample_chunks", 1) > ev["n_samples"]:
        raise ValueError(
            f"config: evaluation.sample_chunks = {ev['sample_chunks']} exceeds evaluation.n_samples = {ev['n_samples']}"
        )
    from solargen.evaluate.features import BUILTIN

    nets = ev.get("feature_networks", {})
    trained = cfg.get("feature_train", {})
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
    d = cfg["data"]
    for key in ("crops", "spectrum_crops"):
        for c in ev.get(key, []):
            m = re.match(r"CROPPED(\d+)", c)
            if "CS_" not in c and int(m[1]) > d["resolution"]:
                raise ValueError(f"config: evaluation.{key}: {c} is larger than data.resolution = {d['resolution']}")
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
        if d["resolution"] % m["image_size"]:
            raise ValueError(
                f"config: models.{name}.image_size = {m['image_size']} must divide data.resolution = {d['resolution']}"
            )
    extra = d.get("extra_wavelengths", [])
    if extra and d["source"] == "image_folder":
        raise ValueError("config: data.extra_wavelengths needs a level-1 source (synthetic, jsoc_lev1, jsoc_synoptic)")
    if d["wavelength"] in extra:
        raise ValueError(f"config: data.extra_wavelengths holds the target wavelength {d['wavelength']}")
    for name, m in cfg["models"].items():
        if m["family"] == "msdgan" and m.get("condition") == "translation":
            missing = [w for w in m.get("input_wavelengths", []) if w not in extra]
            if not m.get("input_wavelengths"):
                raise ValueError(f"config: models.{name}: condition translation needs input_wavelengths")
            if missing:
                raise ValueError(
                    f"config: models.{name}.input_wavelengths asks for {', '.join(map(str, missing))} Å, which "
                    f"the data does not fetch (data.extra_wavelengths: {extra or 'none'})"
                )
        elif m.get("input_wavelengths"):
            raise ValueError(f"config: models.{name}.input_wavelengths is only read with condition: translation")
    if d["source"] == "synthetic" and d["synthetic"]["native_size"] % d["resolution"]:
        raise ValueError(
            f"config: data.synthetic.native_size = {d['synthetic']['native_size']} must be a multiple "
            f"of data.resolution = {d['resolution']}"
        )


def _power_of_two(n):
    return n > 0 and n & (n - 1) == 0


def _near_powers(n):
    lo = 1 << (max(n, 1).bit_length() - 1)
    return f"{lo} or {2 * lo}" if lo != n else str(n)


_check_config(config)


def _expand_seeds(cfg):
    """Seed replicates (``runs.<run>.seeds``). The replicate at the top-level ``seed`` is the run
    itself, under its plain name, so listing seeds never renames or retrains it. Every other seed
    s adds run ``<run>@seed<s>`` of model ``<model>@seed<s>``: trained and sampled with seed s (runs
    of one model share its replicate, as they share the model), named so in results.csv."""
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


_expand_seeds(config)


def _unavailable_models(cfg):
    """Models whose pretrained weights are not on this machine → why. Their runs are left out of
    the study (listed in not_run.csv with the reason); asking for one explicitly is an error."""
    from solargen.models.projectedgan.ablations import resolve, weights_problem

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


UNAVAILABLE = _unavailable_models(config)
for _m, _why in UNAVAILABLE.items():
    logger.warning(f"model {_m} is not run: {_why}")

OUT = f"results/{config['name']}"
DATA = f"{OUT}/data"
DATASET = f"{DATA}/dataset.h5"
ALL_RUNS = config["runs"]
#: The runs the study makes here; runs of models without their pretrained weights are skipped.
RUNS = {r: v for r, v in ALL_RUNS.items() if v["model"] not in UNAVAILABLE}
SKIPPED = {r: UNAVAILABLE[v["model"]] for r, v in ALL_RUNS.items() if v["model"] in UNAVAILABLE}
MODELS = config["models"]
N_SHARDS = -(-config["data"]["n_frames"] // config["data"]["frames_per_shard"])
SHARDS = [f"{i:04d}" for i in range(N_SHARDS)]
N_SAMPLES = config["evaluation"]["n_samples"]
CHUNKS = [f"{i:03d}" for i in range(config["evaluation"].get("sample_chunks", 1))]
NETS = config["evaluation"]["nets"]
CROPS = config["evaluation"].get("crops", [])
#: Real-set feature files, keyed "<net>" (whole images) or "<net>-<crop mode>".
REAL_FEATURES = {
    **{n: f"{OUT}/real/features_{n}.npz" for n in NETS},
    **{f"{n}-{c}": f"{OUT}/real/features_{n}-{c}.npz" for n in NETS for c in CROPS},
}


wildcard_constraints:
    shard=r"\d{4}",
    step=r"\d{7}",
    chunk=r"\d{3}",
    run="|".join(map(re.escape, ALL_RUNS)) or "NONE",
    model="|".join(map(re.escape, MODELS)) or "NONE",
    family="|".join(sorted({m["family"] for m in MODELS.values()})) or "NONE",
    net="|".join(config["evaluation"]["nets"]),
    fnet="|".join(map(re.escape, config.get("feature_train", {}))) or "NONE",
    crop="|".join(map(re.escape, CROPS)) or "NONE",
    spectrum_crop="|".join(map(re.escape, config["evaluation"].get("spectrum_crops", []))) or "NONE",


def model_of(run):
    return ALL_RUNS[run]["model"]


def family_of_model(model):
    return MODELS[model]["family"]


def run_dir(run):
    return f"{OUT}/runs/{family_of_model(model_of(run))}/{run}"


def checkpoint(model, step):
    return f"{OUT}/models/{family_of_model(model)}/{model}/checkpoints/step{int(step):07d}.pt"


def is_conditional(run):
    return family_of_model(model_of(run)) in CONDITIONAL


def sample_inputs(wildcards):
    """What a run's sampling needs: its checkpoint (trained families), held-out frames (conditional)."""
    run = wildcards.run
    out = {}
    if family_of_model(model_of(run)) in TRAINED:
        out["checkpoint"] = checkpoint(model_of(run), ALL_RUNS[run]["train_steps"])
    if is_conditional(run):
        out["dataset"] = DATASET
    return out


def conditional_args(run, dataset=None):
    """CLI arguments that point a conditional run at the held-out split."""
    if not is_conditional(run):
        return ""
    m = MODELS[model_of(run)]
    # A channel translation has no degradation factor (its input is at full resolution).
    factor = "" if m.get("condition") == "translation" else f" --factor {m.get('factor', 4)}"
    return f"--dataset {dataset or DATASET} --test-fraction {config['data'].get('test_fraction', 0.1)}{factor}"


def training_check_args():
    """The train command's periodic-check flags (config ``training_check``; off by default)."""
    c = config.get("training_check", {})
    if not c.get("every"):
        return ""
    return f"--check-every {c['every']} --check-n {c.get('n', 16)} --check-sampling-steps {c.get('sampling_steps', 25)}"


def train_steps_of(model):
    """Every checkpoint step some run of ``model`` asks for, ascending."""
    return sorted({r["train_steps"] for r in ALL_RUNS.values() if r["model"] == model and "train_steps" in r})


def previous_checkpoint(wildcards):
    """The checkpoint a training job resumes from: the model's next-lower requested step, if any."""
    if wildcards.model in UNAVAILABLE:
        raise WorkflowError(f"model {wildcards.model} cannot be trained here: {UNAVAILABLE[wildcards.model]}")
    earlier = [s for s in train_steps_of(wildcards.model) if s < int(wildcards.step)]
    return [checkpoint(wildcards.model, max(earlier))] if earlier else []


def chunk_range(chunk):
    """(first image index, number of images) of one sampling chunk."""
    per = -(-N_SAMPLES // len(CHUNKS))
    first = int(chunk) * per
    return first, max(0, min(per, N_SAMPLES - first))


def model_json(model):
    """The model's hyperparameters as JSON for the CLI (family and image size are separate args)."""
    # nodes: where it runs, not what it learns (batch_size is global), so no retraining on change.
    # seed: a replicate's training seed, passed as --seed.
    m = {k: v for k, v in MODELS[model].items() if k not in ("family", "image_size", "nodes", "seed")}
    return json.dumps(m, sort_keys=True)


def all_metrics():
    return [f"{run_dir(r)}/metrics.json" for r in RUNS]


# ---- Evaluation and report helpers ----

#: Spectra of real crops (fixed-size crop modes, always on the disk).
SPECTRUM_CROPS = config["evaluation"].get("spectrum_crops", [])
#: Solar feature networks trained here (config feature_train) → their exported encoder files.
FEATURE_TRAIN = config.get("feature_train", {})
SOLAR_ENCODERS = {n: f"{OUT}/feature_nets/{n}/encoder.pt" for n in FEATURE_TRAIN}


def _solar_specs():
    from solargen.evaluate.features import solar_specs

    return solar_specs(FEATURE_TRAIN, f"{OUT}/feature_nets")


#: The configured feature networks (where their weights are), for every command that extracts features.
NET_SPECS = json.dumps({**_solar_specs(), **config["evaluation"].get("feature_networks", {})})


def net_weights(net):
    """A feature network's weights file the DAG makes (a solar network's encoder), else nothing."""
    return [SOLAR_ENCODERS[net]] if net in SOLAR_ENCODERS else []


def feature_net_json(fnet):
    """A solar feature network's hyperparameters as JSON for the train command (the cosine schedule
    runs over train_steps unless schedule_steps says otherwise)."""
    m = {k: v for k, v in FEATURE_TRAIN[fnet].items() if k not in ("family", "image_size", "nodes", "seed")}
    return json.dumps(m, sort_keys=True)


def weights_identity(net):
    """A network's configured weights file as the jobs that read it see it: "absent", or its size
    and sha256. A params value, so fetching the file later, or replacing it (a corrupt one by a
    valid one), re-runs the features and evaluations that were "not run" or ran without it."""
    w = config["evaluation"].get("feature_networks", {}).get(net, {}).get("weights")
    if not w:
        return "none configured"
    if not os.path.isfile(w):
        return "absent"
    st = os.stat(w)
    return f"{st.st_size} bytes, sha256 {_sha256(os.path.abspath(w), st.st_size, st.st_mtime_ns)}"


@functools.lru_cache(maxsize=None)
def _sha256(path, size, mtime_ns):
    """A file's sha256, once per (path, size, mtime) in this Snakemake process."""
    from solargen.io import sha256_of

    return sha256_of(path)


def crop_args(crop, on_disk):
    """The crop protocol's CLI arguments (real sets; generated sets read it from the real files)."""
    ev = config["evaluation"]
    on_disk = f" --crop-on-disk {ev.get('disk_radius', 0.39)}" if on_disk else ""
    return (
        f"--crop {crop} --crops-per-image {ev.get('crops_per_image', 1)} --crop-seed {config['seed']}"
        f" --crop-reference {config['data']['resolution']}{on_disk}"
    )


#: Feature-network weights with a download address: fetched only when asked for
#: (``snakemake fetch_weights``, on a machine with internet, e.g. a cluster login node). Nothing
#: depends on them, so an offline run never tries; without them those metrics are "not run".
FETCHABLE = {n: s for n, s in config["evaluation"].get("feature_networks", {}).items() if s.get("url")}

#: Image sizes of unconditional runs trained below data.resolution (their band gets bias rows).
BIAS_SIZES = sorted({MODELS[model_of(r)]["image_size"] for r in RUNS if not is_conditional(r)}
                    - {config["data"]["resolution"]})

#: Per run its family, so every figure colours a family the same way.
FAMILIES_JSON = json.dumps({r: family_of_model(model_of(r)) for r in RUNS})
HAS_DIFFUSION = any(family_of_model(model_of(r)) == "diffusion" for r in RUNS)
HAS_PROJECTEDGAN = any(family_of_model(model_of(r)) == "projectedgan" for r in RUNS)
REFERENCE = config.get("reference_results")


def report_targets():
    """The tables and figures the default target asks for (only those the configured runs can fill)."""
    tables = ["ranking", "metric_details", "spectral"] + (["crops"] if CROPS else [])
    tables += ["diffusion_sampling", "diffusion_training", "regularisation"] if HAS_DIFFUSION else []
    tables += ["ablations"] if HAS_PROJECTEDGAN else []
    figs = ["ranking", "spearman", "spectral_distance"] + (["diffusion"] if HAS_DIFFUSION else [])
    out = [f"{OUT}/tables/{t}.csv" for t in tables] + [f"{OUT}/figures/{f}.png" for f in figs]
    out += [f"{OUT}/figures/samples/{r}.png" for r in RUNS]
    out += [f"{OUT}/figures/training.png"] if any(model_of(r) in TRAINED_MODELS for r in RUNS) else []
    out += [f"{OUT}/tables/comparison.html"] if REFERENCE else []
    out += [f"{OUT}/tables/findings.html", f"{OUT}/results_ci.csv"]
    out += [f"{OUT}/tables/replicates.csv"] if any("@seed" in r for r in RUNS) else []
    return out


#: Trained models of the runs made here, with their training logs (written beside the checkpoints).
TRAINED_MODELS = {model_of(r): family_of_model(model_of(r)) for r in RUNS if family_of_model(model_of(r)) in TRAINED}


# Data stages (calibrate, split, constants, dataset): flags and the schema's defaults.


def calibration_flags(cal):
    """data.calibration → calibrate command flags (schema defaults for keys a config leaves out)."""
    flags = [
        "" if cal["register"] else "--no-register",
        "" if cal["exposure"] else "--no-exposure",
        f"--method {cal.get('method', 'fused')}",
        "--degradation" if cal.get("degradation", False) else "",
        f"--degradation-table {cal['degradation_table']}" if cal.get("degradation_table") else "",
        f"--pointing-table {POINTING}" if POINTING else "",
        f"--rsun-arcsec {cal['rsun_arcsec']}" if cal.get("rsun_arcsec") else "",
    ]
    p = {"min_disk_to_background": 2.0, "max_outside_range_fraction": 0.01, "detector_range_dn": [-100, 20480],
         **cal.get("plausibility", {})}
    flags += [f"--min-disk-to-background {p['min_disk_to_background']}",
              f"--max-outside-range-fraction {p['max_outside_range_fraction']}",
              "--detector-range-dn {} {}".format(*p["detector_range_dn"])]
    return " ".join(f for f in flags if f)


SPLIT = {"block_hours": 24, "placement": "spread", "guard_hours": 0, **config["data"].get("split", {})}
NORM = {"bins_per_decade": 1000, "quantisation": "float32", "compression": "gzip", **config["data"]["normalisation"]}


def unset_profile_variables():
    """Profile resources that still hold a literal $VAR after expansion: {resource: [VAR, ...]}.

    A profile's "$JUWELS_ACCOUNT" stays literal when the variable is unset, which a dry run
    accepts and sbatch rejects; stop before any job instead.
    """
    rs = workflow.resource_settings
    layers = {"default-resources": rs.default_resources or {}}
    layers.update({f"set-resources {r}": m for r, m in (rs.overwrite_resources or {}).items()})
    bad = {}
    for where, mapping in layers.items():
        for name, res in mapping.items():
            raw = getattr(res, "raw", res)
            if isinstance(raw, str):
                missing = re.findall(r"\$\{?([A-Za-z_]\w*)", os.path.expandvars(raw))
                if missing:
                    bad[f"{where}: {name}"] = missing
    return bad


UNSET = unset_profile_variables()
if UNSET:
    _msg = (
        "environment variables used by the profile are not set: "
        + "; ".join(f"{k} needs ${', $'.join(v)}" for k, v in UNSET.items())
        # The profile names the variables (JUWELS_ACCOUNT, SOLARGEN_SLURM_ACCOUNT, ...).
        + f" (e.g. export {next(iter(UNSET.values()))[0]}=<your compute project>)"
    )
    # A dry run (CI, planning) needs no account; a real run stops before any submission.
    if getattr(workflow.output_settings, "dryrun", False):
        logger.warning(f"{_msg}; this dry run goes on, a real run would stop here")
    else:
        raise WorkflowError(_msg)
