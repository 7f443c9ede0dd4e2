# Loading and checking the config, output paths, and the small lookups the rules use. Everything a
# rule needs to know about a run comes from here, so the rules stay thin; the checks themselves
# live in solargen.config (tested as Python), the constant defaults in the schema only.

import functools
import json
import os
import re
import shlex
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

import solargen.config as study
from solargen.evaluate.registry import solar_specs


def validate_config():
    """Snakemake's schema validation, which also fills every constant default.

    Snakemake parses a YAML schema with a pure-Python parser (~0.3 s for ours, a noticeable share
    of a dry run); the same schema handed over as JSON is read in a millisecond. So the YAML,
    still the only schema, is parsed here with libyaml and passed to validate() as a temporary
    JSON file (its $refs are all internal, so nothing else needs to sit beside it).
    """
    import tempfile

    import yaml

    rel = "../schemas/config.schema.yaml"
    schema = Path(workflow.current_basedir.get_path_or_uri(secret_free=True), rel)
    if not schema.is_file():  # the workflow read from a remote source: Snakemake fetches the schema
        validate(config, rel)
        return
    with open(schema, encoding="utf-8") as f:
        data = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    with tempfile.TemporaryDirectory(prefix="solargen-schema-") as tmp:
        as_json = Path(tmp, "config.schema.json")
        as_json.write_text(json.dumps(data), encoding="utf-8")
        validate(config, str(as_json))


try:
    validate_config()  # fills every constant default
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

study.check(config)
study.expand_seeds(config)
study.fill_defaults(config)

TRAINED, CONDITIONAL = study.TRAINED, study.CONDITIONAL
UNAVAILABLE = study.unavailable_models(config)
for _m, _why in UNAVAILABLE.items():
    logger.warning(f"model {_m} is not run: {_why}")


# ---- Paths and data source ----------------------------------------------------------------

OUT = f"results/{config['name']}"
DATA = f"{OUT}/data"
DATASET = f"{DATA}/dataset.h5"
#: The real frames as the study's PNG folder (what every feature network and figure reads).
REAL = f"{DATA}/{config['data']['name']}"
SOURCE = config["data"]["source"]
JSOC_SOURCES = study.JSOC_SOURCES
#: Synthetic shards (n_frames / frames_per_shard) or one per JSOC time chunk.
SHARDS = study.shards(config)
if SOURCE in JSOC_SOURCES:
    from solargen.acquire.records import iso_time, parse_cadence, time_chunks

    JSOC = config["data"]["jsoc"]
    JSOC_STORE = JSOC["store"] or f"{DATA}/store"
    CHUNK_TIMES = time_chunks(JSOC["start"], JSOC["end"], JSOC["chunk_days"])
#: data.calibration.pointing_table: "jsoc" = fetched by the acquisition stage (rule pointing_table).
POINTING = config["data"]["calibration"]["pointing_table"]
if POINTING == "jsoc":
    POINTING = f"{DATA}/acquire/pointing_table.ecsv"
#: Optional extra channels for channel translation (data.extra_wavelengths).
EXTRA_WAVELENGTHS = [int(w) for w in config["data"]["extra_wavelengths"]]


def pointing_input():
    """The calibrate jobs' pointing-table file, when one is configured (fetched or given)."""
    return [POINTING] if POINTING else []


def channel_suffix(wavelength):
    """A channel's path suffix (the `channel` wildcard): none for the target wavelength, whose
    paths are the study's own (raw/, calibrated/, constants.json), ``_<wl>`` for an extra one."""
    return "" if int(wavelength) == config["data"]["wavelength"] else f"_{wavelength}"


def channel_wavelength(channel):
    """The wavelength (Å) of a `channel` wildcard value."""
    return int(channel[1:]) if channel else config["data"]["wavelength"]


def raw_input(shard, channel=""):
    """A shard's level-1 frames: a synthetic shard's FITS folder, or a JSOC chunk's done-manifest."""
    if SOURCE in JSOC_SOURCES:
        return f"{DATA}/acquire{channel}/done_{shard}.parquet"
    return f"{DATA}/raw{channel}/shard_{shard}"


def calibrated_shards(channel=""):
    return expand(f"{DATA}/calibrated{channel}/shard_{{shard}}.h5", shard=SHARDS)


def jsoc_args(shard, wavelength=None):
    """CLI arguments shared by the query and download commands of one chunk (of the target
    channel, or of the extra channel ``wavelength``: same slots, that channel's nominal EXPTIME)."""
    t0, t1 = CHUNK_TIMES[int(shard)]
    j = JSOC
    if wavelength is None or int(wavelength) == config["data"]["wavelength"]:
        wavelength, nominal = config["data"]["wavelength"], j["nominal_exptime"]
    else:
        from solargen.acquire.manifest import NOMINAL_EXPTIME_S

        nominal = NOMINAL_EXPTIME_S[int(wavelength)]
    return (
        f"--source {SOURCE} --server {j['server']} --series {j['series']} --segment {j['segment']}"
        f" --wavelength {wavelength} --start {iso_time(t0)} --end {iso_time(t1)}"
        f" --window-s {j['window_s']} --nominal-exptime {nominal}"
        f" --exptime-min-fraction {j['exptime_min_fraction']}"
        f" --min-percentd {j['min_percentd']} --retries {j['retries']} --backoff-s {j['backoff_s']}"
    )


def calibration_flags(cal):
    """data.calibration → calibrate command flags."""
    p = cal["plausibility"]
    flags = [
        "" if cal["register"] else "--no-register",
        "" if cal["exposure"] else "--no-exposure",
        f"--method {cal['method']}",
        "--degradation" if cal["degradation"] else "",
        f"--degradation-table {cal['degradation_table']}" if cal["degradation_table"] else "",
        f"--pointing-table {POINTING}" if POINTING else "",
        f"--rsun-arcsec {cal['rsun_arcsec']}" if cal["rsun_arcsec"] else "",
        f"--min-disk-to-background {p['min_disk_to_background']}",
        f"--max-outside-range-fraction {p['max_outside_range_fraction']}",
        "--detector-range-dn {} {}".format(*p["detector_range_dn"]),
    ]
    return " ".join(f for f in flags if f)


# ---- Runs, models, samples ----------------------------------------------------------------

ALL_RUNS = config["runs"]
#: The runs the study makes here; runs of models without their pretrained weights are skipped.
RUNS = {r: v for r, v in ALL_RUNS.items() if v["model"] not in UNAVAILABLE}
SKIPPED = {r: UNAVAILABLE[v["model"]] for r, v in ALL_RUNS.items() if v["model"] in UNAVAILABLE}
MODELS = config["models"]
EV = config["evaluation"]
N_SAMPLES = EV["n_samples"]
CHUNKS = [f"{i:03d}" for i in range(EV["sample_chunks"])]
NETS = EV["nets"]
CROPS = EV["crops"]
#: Spectra of real crops (fixed-size crop modes, always on the disk).
SPECTRUM_CROPS = EV["spectrum_crops"]
#: Real-set feature files, keyed "<net>" (whole images) or "<net>-<crop mode>".
REAL_FEATURES = {
    **{n: f"{OUT}/real/features_{n}.npz" for n in NETS},
    **{f"{n}-{c}": f"{OUT}/real/features_{n}-{c}.npz" for n in NETS for c in CROPS},
}
#: Solar feature networks trained here (config feature_train) → their exported encoder files.
FEATURE_TRAIN = config["feature_train"]
SOLAR_ENCODERS = {n: f"{OUT}/feature_nets/{n}/encoder.pt" for n in FEATURE_TRAIN}


wildcard_constraints:
    shard=r"\d{4}",
    step=r"\d{7}",
    chunk=r"\d{3}",
    run="|".join(map(re.escape, ALL_RUNS)) or "NONE",
    model="|".join(map(re.escape, MODELS)) or "NONE",
    family="|".join(sorted({m["family"] for m in MODELS.values()})) or "NONE",
    net="|".join(NETS),
    fnet="|".join(map(re.escape, FEATURE_TRAIN)) or "NONE",
    crop="|".join(map(re.escape, CROPS)) or "NONE",
    spectrum_crop="|".join(map(re.escape, SPECTRUM_CROPS)) or "NONE",
    channel="(?:{})?".format("|".join(f"_{w}" for w in EXTRA_WAVELENGTHS)),  # "" = the target wavelength


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
    factor = "" if m.get("condition") == "translation" else f" --factor {m['factor']}"
    return f"--dataset {dataset or DATASET} --test-fraction {config['data']['test_fraction']}{factor}"


def training_check_args():
    """The train command's periodic-check flags (config ``training_check``; off by default)."""
    c = config["training_check"]
    if not c["every"]:
        return ""
    return f"--check-every {c['every']} --check-n {c['n']} --check-sampling-steps {c['sampling_steps']}"


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

#: The configured feature networks (where their weights are), for every command that extracts features.
NET_SPECS = json.dumps({**solar_specs(FEATURE_TRAIN, f"{OUT}/feature_nets"), **EV["feature_networks"]})


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
    w = EV["feature_networks"][net].get("weights") if net in EV["feature_networks"] else None
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
    return f"--crop {crop} {crop_options(on_disk)}"


def crop_options(on_disk):
    """The crop protocol's arguments shared by every crop mode (all but ``--crop``)."""
    on_disk = f" --crop-on-disk {EV['disk_radius']}" if on_disk else ""
    return (
        f"--crops-per-image {EV['crops_per_image']} --crop-seed {config['seed']}"
        f" --crop-reference {config['data']['resolution']}{on_disk}"
    )


#: Feature-network weights with a download address: fetched only when asked for
#: (``snakemake fetch_weights``, on a machine with internet, e.g. a cluster login node). Nothing
#: depends on them, so an offline run never tries; without them those metrics are "not run".
FETCHABLE = {n: s for n, s in EV["feature_networks"].items() if s.get("url")}

#: Image sizes of unconditional runs trained below data.resolution (their band gets bias rows).
BIAS_SIZES = sorted({MODELS[model_of(r)]["image_size"] for r in RUNS if not is_conditional(r)}
                    - {config["data"]["resolution"]})

#: Per run its family, so every figure colours a family the same way.
FAMILIES_JSON = json.dumps({r: family_of_model(model_of(r)) for r in RUNS})
HAS_DIFFUSION = any(family_of_model(model_of(r)) == "diffusion" for r in RUNS)
HAS_PROJECTEDGAN = any(family_of_model(model_of(r)) == "projectedgan" for r in RUNS)
REFERENCE = config["reference_results"]


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



# ---- The human-expert test (optional section expert_eval; rules in expert.smk) ------------

#: The optional expert_eval section (absent: no packet, no rows).
EXPERT = config.get("expert_eval")
EXPERT_DIR = f"{OUT}/expert"
EXPERT_PACKET = f"{EXPERT_DIR}/packet"
EXPERT_KEY = f"{EXPERT_DIR}/key.csv"
#: The packet job's output: which packet there is, and whether it was kept or built.
EXPERT_STATUS = f"{EXPERT_DIR}/status.json"
EXPERT_ANSWERS = (EXPERT["answers_dir"] or f"{EXPERT_DIR}/answers") if EXPERT else None
#: The packet's runs; a run that is not a run, or is not made here, is a config error now.
EXPERT_RUNS = study.expert_runs(config, SKIPPED) if EXPERT else []
EXPERT_ANSWER_FILES = sorted(str(p) for p in Path(EXPERT_ANSWERS).glob("*.jsonl")) if EXPERT else []
#: results.csv rows of the expert test, once there are answers (report.smk's results_csv reads them).
EXPERT_ROWS = [f"{EXPERT_DIR}/human_accuracy_rows.csv"] if EXPERT_ANSWER_FILES else []


def expert_targets():
    """The packet's status, and the accuracy table and figure once there are answers."""
    if not EXPERT:
        return []
    if not EXPERT_ANSWER_FILES:
        logger.info(
            f"expert_eval: no answers in {EXPERT_ANSWERS} yet; after the packet is built, collect them with "
            f"python -m solargen expert-eval serve {EXPERT_PACKET}"
            + (f" --answers {EXPERT_ANSWERS}" if EXPERT["answers_dir"] else "")
        )
        return [EXPERT_STATUS]
    return [EXPERT_STATUS, f"{OUT}/tables/human_accuracy.csv", f"{OUT}/figures/human_accuracy.png"]


# ---- The default target -------------------------------------------------------------------


def final_targets():
    """What `snakemake` with no target makes: results, tables, figures and report inputs that the
    configured runs and sources can fill."""
    return [
        f"{OUT}/results.csv",
        list(SOLAR_ENCODERS.values()),
        f"{OUT}/not_run.csv",
        f"{OUT}/results_meta.csv",
        f"{OUT}/tables/spearman.csv",
        f"{OUT}/figures/samples.png",
        f"{OUT}/figures/spectrum.png",
        [f"{OUT}/figures/zoom.png"] if not all(map(is_conditional, RUNS)) else [],
        [f"{OUT}/figures/dft.png"] if any(map(is_conditional, RUNS)) else [],
        [f"{OUT}/figures/data_summary.png"] if SOURCE in JSOC_SOURCES else [],
        [f"{OUT}/figures/dataset_qa.png"] if SOURCE != "image_folder" else [],
        *report_targets(),
        *expert_targets(),
    ]


# ---- Data stages -------------------------------------------------------------------------

# Snakemake records a params dict by its repr, so these keep the key order results made before
# the schema filled the defaults were recorded with (a new order would re-run every dataset).
SPLIT = {k: config["data"]["split"][k] for k in ("block_hours", "placement", "guard_hours")}
NORM = {k: config["data"]["normalisation"][k]
        for k in ("bins_per_decade", "quantisation", "compression", "low_percentile", "high_percentile")}


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


def _code_names(code):
    """Every name a compiled expression refers to, nested lambdas and comprehensions included."""
    names = set(code.co_names) | set(code.co_varnames) | set(code.co_freevars)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _code_names(const)
    return names


def freeze_job_independent_resources():
    """Evaluate once, now, the profile's resource expressions that cannot differ between jobs.

    Snakemake re-evaluates every string of --default-resources / --set-resources for every job
    (a Python eval with the job's wildcards, input, threads and attempt), ~1 ms per value: most of
    the resource cost of the paper's 1100-job dry run. A string that does not parse as Python
    ("gpu:4", "srun ...") or an expression naming none of the job's variables (the account from
    $JUWELS_ACCOUNT, the partition from os.environ) evaluates to the same value for every job, so
    it is evaluated here and stored as that value. The raw string is kept: job steps receive the
    profile's text unchanged (and evaluate it again on the compute node). tmpdir stays per job
    (Snakemake evaluates it where the job runs); a value that fails here is left for the job to
    report as before. Returns the names frozen, per layer ("default" or the name of a rule).
    """
    import snakemake.ioutils
    from snakemake.resources import Resource
    from snakemake.common.tbdstring import TBDString
    from snakemake.iocontainers import Wildcards

    # What a resource expression sees of its job, and the job-aware helpers Snakemake adds.
    ns = {}
    snakemake.ioutils.register_in_globals(ns)
    per_job = {"wildcards", "input", "attempt", "threads", "async_run", "system_tmpdir", "shutil", *ns}
    rs = workflow.resource_settings
    try:  # Snakemake's own (private) parsed layers; another Snakemake version: leave them per job
        layers = {"default": rs._parsed_default_resources, **rs._parsed_overwrite_resources}
    except (AttributeError, TypeError):
        return {}
    frozen = {}
    for where, resources in layers.items():
        for name, res in list(resources.items()):
            raw = res.raw
            if name == "tmpdir" or not res.is_evaluable() or not isinstance(raw, str):
                continue
            try:
                code = compile(os.path.expanduser(os.path.expandvars(raw)), "<resource>", "eval")
            except SyntaxError:
                code = None  # a plain string: Snakemake's per-job eval returns it unchanged
            if code is not None and _code_names(code) & per_job:
                continue
            try:
                value = res.evaluate(Wildcards(), input=[], attempt=1, threads=1, rulename=where, async_run=None)
            except Exception:
                continue
            if isinstance(value.value, TBDString):
                continue
            resources[name] = Resource(name, value.value, raw=raw)
            frozen.setdefault(where, []).append(name)
    return frozen


FROZEN_RESOURCES = freeze_job_independent_resources()
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
