"""``python -m solargen <command>``: the steps of the study, each one a workflow rule.

acquire → calibrate → constants → dataset → train → sample → features/spectrum → evaluate →
collect → tables/figures. Each command is a step function registered with `solargen.steps.step`
(its arguments declared beside it, its defaults its signature's); the parser is built from that
registry. The acquisition, feature-network, report and expert-test steps live beside their code
(``acquire/commands.py``, ``models/feature_commands.py``, ``report/commands.py``,
``expert/commands.py``). Every command writes its outputs atomically and exits non-zero with a
message naming the bad file on bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .steps import arg, build_parser, run, step

#: The modules holding steps, in the study's order (the order ``--help`` lists them in).
MODULES = ("solargen.acquire.commands", __name__, "solargen.models.feature_commands", "solargen.report.commands",
           "solargen.expert.commands")


@step("calibrate", "level-1 FITS folder (or done-manifest) → calibrated HDF5 shard (DN/s)",
      arg("--inputs"),
      arg("--out"),
      arg("--size", type=int),
      arg("--wavelength", type=int),
      arg("--no-register", action="store_true"),
      arg("--no-exposure", action="store_true"),
      arg("--method", choices=["fused", "reference"],
          help="fused: one warp to the target grid; reference: aiapy register + block mean"),
      arg("--degradation", action="store_true", help="correct instrument degradation"),
      arg("--degradation-table", help="correction table file (default: the aiapy wheel's V8)"),
      arg("--pointing-table", help="pointing table file (default: the level-1 header's pointing)"),
      arg("--rsun-arcsec", type=float, help="rescale every frame to this solar radius (SDOML: 976)"),
      arg("--min-disk-to-background", type=float,
          help="plausibility: reject frames whose median disk/background DN ratio is below this"),
      arg("--max-outside-range-fraction", type=float,
          help="plausibility: reject frames with more pixels than this outside --detector-range-dn"),
      arg("--detector-range-dn", type=float, nargs=2, metavar=("LOW", "HIGH")))
def calibrate(*, inputs, out, size, wavelength=193, no_register=False, no_exposure=False, method="fused",
              degradation=False, degradation_table=None, pointing_table=None, rsun_arcsec=None,
              min_disk_to_background=2.0, max_outside_range_fraction=0.01, detector_range_dn=(-100.0, 20480.0)):
    from .acquire.commands import input_frames, input_records
    from .calibrate.files import calibrate_files
    from .calibrate.options import Options, Plausibility

    paths = input_frames(inputs)  # a folder of FITS files or a JSOC chunk's done-manifest
    opts = Options(method=method, register=not no_register, exposure=not no_exposure, degradation=degradation,
                   degradation_table=degradation_table, pointing_table=pointing_table, rsun_arcsec=rsun_arcsec)
    check = Plausibility(min_disk_to_background, max_outside_range_fraction, tuple(detector_range_dn))
    counts = calibrate_files(paths, out, size, wavelength=wavelength, opts=opts, plausibility=check,
                             expect=input_records(inputs))  # a manifest's files are checked against it
    logging.info("calibrated %(n_ok)d frames, rejected %(n_rejected)d", counts)


@step("split", "train/test split of the calibrated frames by contiguous time blocks",
      arg("--shards", nargs="+"),
      arg("--out"),
      arg("--block-hours", type=float),
      arg("--test-fraction", type=float),
      arg("--placement", choices=["last", "spread"]),
      arg("--guard-hours", type=float),
      arg("--seed", type=int))
def split(*, shards, out, block_hours, test_fraction, placement="spread", guard_hours=0.0, seed=0):
    from .split import split_record
    from .io import write_json

    rec = split_record(shards, block_hours=block_hours, test_fraction=test_fraction, placement=placement, seed=seed,
                       guard_hours=guard_hours)
    write_json(out, rec)
    logging.info("split: %(n_train)d train, %(n_test)d test, %(n_guard)d guard frames in %(n_blocks)d blocks", rec)


@step("constants", "global log-normalisation constants over all shards",
      arg("--shards", nargs="+"),
      arg("--out"),
      arg("--low-percentile", type=float),
      arg("--high-percentile", type=float),
      arg("--bins-per-decade", type=int, help="log-histogram resolution"),
      arg("--split", help="split record (from the split command): use its training frames only"),
      arg("--reference-shards", nargs="+", help="an extra channel's constants: the target channel's "
          "shards, whose split the channel's frames follow (matched by time)"),
      arg("--tolerance-s", type=float, help="time match of --reference-shards (s)"))
def constants(*, shards, out, low_percentile=0.5, high_percentile=99.99, bins_per_decade=1000, split=None,
              reference_shards=None, tolerance_s=120.0):
    from .dataset import training_rows
    from .io import read_json, write_json
    from .normalise import compute_constants
    from .shards import frame_table, iter_images

    # A streaming reduce over the training split: one frame in memory at a time.
    table = frame_table(shards)
    rows = range(len(table["file"]))
    if split:
        rows = training_rows(table, read_json(split), tolerance_s=tolerance_s,
                             reference=frame_table(reference_shards) if reference_shards else None)
        if not rows:
            raise SystemExit(f"error: {split}: no training frames")
    c = compute_constants(iter_images(shards, table, rows), low_percentile=low_percentile,
                          high_percentile=high_percentile, bins_per_decade=bins_per_decade)
    c["split"] = "train" if split else "all"
    write_json(out, c)


@step("dataset", "normalise shards into dataset.h5 and the PNG image folder",
      arg("--shards", nargs="+"),
      arg("--constants"),
      arg("--out"),
      arg("--png-dir"),
      arg("--source"),
      arg("--split", help="split record (from the split command), stored per frame"),
      arg("--quantisation", choices=["float32", "float16", "uint8"]),
      arg("--compression", choices=["gzip", "lzf", "none"]),
      arg("--channel", nargs="+", action="append", metavar="WL CONSTANTS SHARD",
          help="an extra channel: wavelength (Å), its constants.json and its calibrated shards "
               "→ images_<WL>, aligned by time (repeat per channel)"),
      arg("--tolerance-s", type=float,
          help="an extra channel's frame must lie within this many seconds of the target frame"))
def dataset(*, shards, constants, out, png_dir=None, source="", split=None, quantisation="float32",
            compression="gzip", channel=None, tolerance_s=120.0):
    from .dataset import build_dataset
    from .io import read_json
    from .normalise import validate_constants

    target = validate_constants(read_json(constants), constants)
    split_rec = read_json(split) if split else None
    channels = {int(wl): (paths, validate_constants(read_json(c), c)) for wl, c, *paths in channel or []}
    n = build_dataset(shards, target, out, png_dir=png_dir, source=source, split=split_rec, quantisation=quantisation,
                      compression=compression, channels=channels, tolerance_s=tolerance_s)
    logging.info("dataset: %d frames", n)


@step("dataset-qa", "dataset QA figure and summary for the report",
      arg("--dataset"),
      arg("--shards", nargs="+"),
      arg("--raw-dirs", nargs="*", help="level-1 FITS folders or JSOC done-manifests (for the examples)"),
      arg("--east-west-flip", action="store_true", help="record that training mirrors frames"),
      arg("--out"),
      arg("--out-json"))
def dataset_qa(*, dataset, shards, out, out_json, raw_dirs=(), east_west_flip=False):
    from .acquire.commands import input_frames
    from .report.dataqa import dataset_qa as qa

    # Each raw input is a FITS folder (synthetic) or a JSOC chunk's done-manifest (files in the store).
    dirs = sorted({str(p.parent) for r in raw_dirs for p in input_frames(r)})
    qa(dataset, shards, out, out_json, raw_dirs=dirs, east_west_flip=east_west_flip)


def _device(name: str):
    """``auto``: the GPU where there is one (the cluster), else the CPU."""
    import torch

    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


@step("train", "train (or resume) a model up to --steps",
      arg("--family"),
      arg("--model-json"),
      arg("--dataset"),
      arg("--image-size", type=int),
      arg("--steps", type=int),
      arg("--ckpt-dir"),
      arg("--log-csv"),
      arg("--tensorboard", help="TensorBoard log folder (needs the tensorboard package)"),
      arg("--seed", type=int),
      arg("--threads", type=int),
      arg("--in-memory-gib", type=float,
          help="hold the training frames (at --image-size) in memory when they fit in this many GiB"),
      arg("--split", choices=["all", "train"],
          help="frames to train on: all (the study: no split) or the training split"),
      arg("--test-fraction", type=float,
          help="data.test_fraction: only for datasets without a recorded split (the last fraction in time)"),
      arg("--east-west-flip", action="store_true", help="augmentation: mirror half the frames E–W"),
      arg("--device", help="auto (GPU if present), cpu, cuda, cuda:N"),
      arg("--check-every", type=int, help="steps between spectral checks of EMA samples (0: off)"),
      arg("--check-n", type=int, help="images per check (and real frames it compares with)"),
      arg("--check-sampling-steps", type=int, help="DDIM steps of a diffusion model's check"),
      arg("--move-stale", action="store_true",
          help="when the newest checkpoint belongs to another training (other model config, data, seed, "
               "or architecture), move the checkpoints to <ckpt-dir>/stale-<time>/ and train from scratch "
               "(the workflow passes it); without it that is an error naming what differs"))
def train(*, family, model_json, dataset, image_size, steps, ckpt_dir, log_csv=None, tensorboard=None, seed=0,
          threads=1, in_memory_gib=2.0, split="all", test_fraction=None, east_west_flip=False, device="auto",
          check_every=0, check_n=16, check_sampling_steps=25, move_stale=False):
    import numpy as np
    import torch

    from . import distributed
    from .dataset import H5Images, dataset_identity, dataset_split, open_dataset
    from .io import short_digest
    from .models import family as family_of
    from .train import CheckpointError, Interrupted, fit, scale_lr, training_fingerprint

    torch.set_num_threads(threads)
    cfg = json.loads(model_json)
    fam = family_of(family)
    with open_dataset(dataset) as f:
        # The study trains on every frame; only a split needs the recorded split (or a test fraction).
        indices = np.arange(len(f["images"])) if split == "all" else dataset_split(f, test_fraction)[split]
    # What a checkpoint must share with this run to be resumed: model, data, frames, seed, augmentation.
    fingerprint = training_fingerprint(
        family, cfg, image_size, {**dataset_identity(dataset), "data.trained_frames": short_digest(indices)},
        seed=seed, east_west_flip=bool(east_west_flip))
    data = H5Images(dataset, size=image_size, in_memory=in_memory_gib, indices=indices,
                    east_west_flip=east_west_flip, channels=fam.channels(cfg))
    # One process, or one rank of a data-parallel job started by torchrun or srun.
    ctx, dev = distributed.init(_device(device))
    if dev.type == "cuda":  # TF32 matmuls/convolutions on Ampere+ (config tf32, default on)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(cfg.get("tf32", True))
    torch.manual_seed(seed)  # the initial weights, so a fresh run is reproducible too
    trainer = fam.trainer(scale_lr(cfg), image_size, device=dev)
    check = None
    if check_every:
        from .evaluate.training_check import TrainingCheck

        real = torch.stack([data[i] for i in range(min(check_n, len(data)))])
        check = TrainingCheck(fam.sample, cfg, image_size, real, conditional=fam.conditional,
                              steps=check_sampling_steps, seed=seed, device=dev)
    try:
        fit(trainer, data, batch_size=cfg["batch_size"], total_steps=steps, ckpt_dir=ckpt_dir,
            save_every=cfg.get("save_every", 1000), seed=seed, log_csv=log_csv,
            extra={"family": family, "model": json.dumps(cfg), "image_size": image_size}, dist=ctx,
            precision=cfg.get("precision", "fp32"), compile=bool(cfg.get("compile", False)),
            tensorboard=tensorboard, check=check, check_every=check_every, fingerprint=fingerprint,
            move_stale=move_stale)
    except CheckpointError as e:  # a stale checkpoint, or one that could not be written
        raise SystemExit(f"error: {e}") from None
    except Interrupted as e:
        # Not an error of the run: exit 3 so the job fails and is re-submitted (Snakemake retries).
        logging.error("rank %d: %s; run again to resume", ctx.rank, e)
        raise SystemExit(3) from None
    finally:
        distributed.shutdown()


def _held_out(dataset, test_fraction, size, image_indices, channels=()):
    """`dataset.held_out_targets`, its errors as the command's."""
    from .dataset import held_out_targets

    if not dataset:
        raise SystemExit("error: conditional families need --dataset")
    try:
        return held_out_targets(dataset, test_fraction, size, image_indices, channels)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


@step("sample", "draw samples from a checkpoint into a PNG folder",
      arg("--family"),
      arg("--model-json"),
      arg("--checkpoint", help="trained families"),
      arg("--dataset", help="conditional families: the dataset whose test split conditions them"),
      arg("--test-fraction", type=float, help="data.test_fraction (datasets without a recorded split)"),
      arg("--factor", type=int, help="(conditional) degradation factor; read from the model config"),
      arg("--image-size", type=int),
      arg("--n", type=int),
      arg("--first-index", type=int, help="index of the first image (chunked sampling)"),
      arg("--steps", type=int),
      arg("--sampler"),
      arg("--batch-size", type=int),
      arg("--seed", type=int),
      arg("--threads", type=int),
      arg("--device", help="auto (GPU if present), cpu, cuda, cuda:N"),
      arg("--out"),
      blas_threads=True)
def sample(*, family, model_json, image_size, n, out, checkpoint=None, dataset=None, test_fraction=None, factor=4,
           first_index=0, steps=250, sampler="ddpm", batch_size=16, seed=0, threads=1, device="auto"):
    # factor: unused (no rule passes it), kept so command lines naming it still parse; the model config's counts.
    import torch
    from PIL import Image

    from .dataset import to_uint8
    from .io import atomic_dir, write_json
    from .models import family as family_of
    from .train import load_checkpoint

    torch.set_num_threads(threads)
    cfg = json.loads(model_json)
    fam = family_of(family)
    state = None
    if fam.trainer is not None:
        if not checkpoint:
            raise SystemExit(f"error: family {family} needs --checkpoint")
        try:
            state = load_checkpoint(checkpoint)
        except Exception as e:
            raise SystemExit(f"error: {checkpoint}: unreadable checkpoint ({e})") from None
    extra = {}
    if fam.conditional:
        # Condition on held-out frames, image i on test frame i (cycling if N exceeds the split).
        extra["targets"] = _held_out(dataset, test_fraction, image_size, range(first_index, first_index + n),
                                     fam.channels(cfg))
    # Each chunk of a run (its own job: a CPU core set or a GPU) has its own noise stream.
    noise_seed = seed * 1_000_003 + first_index
    x = fam.sample(state, cfg, image_size, n, steps=steps, sampler=sampler, seed=noise_seed, batch_size=batch_size,
                   device=_device(device), **extra)
    y = ((x[:, 0] + 1) / 2).numpy()
    with atomic_dir(out) as tmp:
        for i, im in enumerate(y):
            Image.fromarray(to_uint8(im)).save(tmp / f"out_{first_index + i}.png")
        # What drew these images, so any of them can be drawn again.
        write_json(tmp / "sampling.json", {"family": family, "checkpoint": checkpoint, "seed": noise_seed,
                                           "first_index": first_index, "n": n, "steps": steps,
                                           "sampler": sampler, "batch_size": batch_size, "model": cfg})


#: The crop options of `features` and `spectrum` (`_crop_mode`), and their defaults.
CROP_ARGS = (
    arg("--crop", help="crop mode, the study's suffix: CROPPED64 or CROPPED299CS_0.1,1_CR_1,1"),
    arg("--crops-per-image", type=int),
    arg("--crop-seed", type=int),
    arg("--crop-reference", type=int, help="resolution the crop size is given at (the dataset's)"),
    arg("--crop-on-disk", type=float, help="crops wholly inside a disk of this radius (fraction of the side)"),
)
CROPS_PER_IMAGE, CROP_SEED = 1, 0


def _crop_mode(crop, crops_per_image, crop_seed, crop_reference, crop_on_disk):
    from .evaluate.crops import CropMode

    if not crop:
        return None
    return CropMode.parse(crop, per_image=crops_per_image, seed=crop_seed, reference=crop_reference,
                          on_disk=crop_on_disk)


@step("features", "feature-network features of an image folder",
      arg("--images"),
      arg("--net"),
      arg("--out"),
      *CROP_ARGS,
      arg("--crop-outs", nargs="*", metavar="MODE=NPZ",
          help="also the features of each crop mode's crops (cut with the other crop options) → its file"),
      arg("--net-specs", help="JSON: the config's evaluation.feature_networks"),
      arg("--threads", type=int),
      blas_threads=True)
def features(*, images, net, out, crop=None, crops_per_image=CROPS_PER_IMAGE, crop_seed=CROP_SEED,
             crop_reference=None, crop_on_disk=None, crop_outs=(), net_specs="{}", threads=1):
    from .io import InputError

    # Checked before the network is built: a malformed pair fails at once, writing nothing.
    extra = [item.partition("=") for item in crop_outs]
    bad = [item for item, (mode, sep, path) in zip(crop_outs, extra) if not (mode and sep and path)]
    if bad:
        raise InputError(f"--crop-outs {bad[0]!r}: expected MODE=NPZ (e.g. CROPPED16=features-CROPPED16.npz)")
    modes = [(_crop_mode(mode, crops_per_image, crop_seed, crop_reference, crop_on_disk), path)
             for mode, _, path in extra]

    import torch

    from .evaluate import features as feature_nets
    from .evaluate.features import save_features

    torch.set_num_threads(threads)
    feature_nets.configure(net_specs)
    save_features(images, net, out, crop=_crop_mode(crop, crops_per_image, crop_seed, crop_reference, crop_on_disk))
    # The same network (built once per process) for the crops: one job per network instead of one
    # per crop mode saves each further job's start-up (torch, torchvision and timm imports: ~6 s).
    for mode, path in modes:
        save_features(images, net, path, crop=mode)


@step("fetch-weights", "download feature-network weights files (needs internet)",
      arg("--specs", help="JSON: name → {url, weights, sha256}"))
def fetch_weights(*, specs):
    from .evaluate.weights import fetch

    for spec in json.loads(specs).values():
        fetch(spec["url"], spec["weights"], spec.get("sha256"))


@step("spectrum", "radial power spectra of an image folder",
      arg("--images"),
      arg("--window", choices=["none", "hann"], help="taper before the DFT"),
      arg("--out"),
      *CROP_ARGS)
def spectrum(*, images, out, window="none", crop=None, crops_per_image=CROPS_PER_IMAGE, crop_seed=CROP_SEED,
             crop_reference=None, crop_on_disk=None):
    from .evaluate.metrics import save_spectrum

    save_spectrum(images, out, window,
                  crop=_crop_mode(crop, crops_per_image, crop_seed, crop_reference, crop_on_disk))


@step("evaluate", "FID/KID per feature network and spectral distances of one run",
      arg("--samples"),
      arg("--real-features", nargs="+", metavar="NET=NPZ"),
      arg("--real-spectrum"),
      arg("--real-name"),
      arg("--fake-name"),
      arg("--out"),
      arg("--out-spectrum"),
      arg("--out-features", help="the generated set's features and spectra (for bootstrap intervals)"),
      arg("--bias-sizes", type=int, nargs="*",
          help="image sizes (px) whose band of scales gets a spectral_bias_high_<s>px row"),
      arg("--dataset", help="conditional runs: score pixel metrics against the test split"),
      arg("--test-fraction", type=float, help="data.test_fraction (datasets without a recorded split)"),
      arg("--factor", type=int, help="conditional runs: degradation factor (spectral band above its Nyquist)"),
      arg("--net-specs", help="JSON: the config's evaluation.feature_networks"),
      arg("--real-crop-spectra", nargs="*", help="spectra of real crops (spectrum --crop)"),
      arg("--n-samples", type=int, help="the number of images the run should have (evaluation.n_samples)"),
      arg("--sample-count-mismatch", choices=["fail", "warn"],
          help="when --samples holds another number of images than --n-samples: fail (default), or "
               "warn and record it in the metrics file"),
      arg("--threads", type=int),
      blas_threads=True)
def evaluate(*, samples, real_features, real_spectrum, real_name, fake_name, out, out_spectrum, out_features=None,
             bias_sizes=(), dataset=None, test_fraction=None, factor=None, net_specs="{}", real_crop_spectra=(),
             n_samples=None, sample_count_mismatch="fail", threads=1):
    import torch

    from .evaluate import features as feature_nets
    from .evaluate.metrics import evaluate_run

    torch.set_num_threads(threads)
    feature_nets.configure(net_specs)
    real = dict(kv.split("=", 1) for kv in real_features)
    targets = None
    if dataset:
        from .dataset import to_uint8
        from .io import image_files

        n = len(image_files(samples))  # an empty folder: an InputError naming it
        t = _held_out(dataset, test_fraction, _png_size(samples), range(n))
        # Quantised like the samples, so 8-bit rounding is not counted as an error.
        targets = to_uint8(((t[:, 0] + 1) / 2).numpy()) / 255.0
    evaluate_run(samples, real, real_spectrum, out, out_spectrum, real_name=real_name, fake_name=fake_name,
                 targets=targets, factor=factor, real_crop_spectra=real_crop_spectra, n_expected=n_samples,
                 on_count_mismatch=sample_count_mismatch, out_features=out_features, bias_sizes=tuple(bias_sizes))


def _png_size(folder) -> int:
    from PIL import Image

    with Image.open(sorted(Path(folder).glob("*.png"))[0]) as im:
        return im.size[0]


@step("check-config", "YAML syntax of config files, naming the file, line and column of an "
      "error (Snakemake's message for a --configfile names neither)",
      arg("files", nargs="+"),
      by_hand=True)
def check_config(*, files):
    from .io import InputError, read_yaml

    bad = []
    for f in files:
        try:  # a syntax error is an InputError naming the file, line and column
            if not isinstance(read_yaml(f), dict):
                raise InputError(f"{f}: not a mapping of keys at the top level")
            print(f"{f}: YAML syntax ok (snakemake -n --configfile {f} checks its keys)")
        except InputError as e:
            bad.append(str(e))
    if bad:
        raise InputError("\n".join(bad))


def parser() -> argparse.ArgumentParser:
    """The command line, one subcommand per registered step of `MODULES`."""
    # Importing a module registers its steps (named here, not looked up, so import graphs see them).
    from .acquire import commands as _acquire  # noqa: F401
    from .expert import commands as _expert  # noqa: F401
    from .models import feature_commands as _features  # noqa: F401
    from .report import commands as _report  # noqa: F401

    return build_parser("python -m solargen", __doc__.splitlines()[0], MODULES)


#: Environment variables that size NumPy's and SciPy's BLAS/OpenMP thread pools.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(args) -> None:
    """Sampling, features and evaluation (steps registered with ``blas_threads``) use
    ``--threads`` for NumPy's BLAS too (torch's own pool is set by each step). OpenBLAS otherwise
    starts a thread per core, and on a shared or busy machine its spinning threads make the small
    products of FID/KID 10-20× slower (KID of 32 vs 60 samples: 3-5 s instead of 0.2 s, measured
    on 2 contended cores). Must run before NumPy is imported; variables the user set are kept."""
    import os

    s = getattr(args, "_step", None)
    if s is not None and s.blas_threads and getattr(args, "threads", None):
        for var in BLAS_THREAD_VARS:
            os.environ.setdefault(var, str(args.threads))


def main(argv: list[str] | None = None) -> int:
    from .io import InputError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    limit_blas_threads(args)
    try:
        run(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
