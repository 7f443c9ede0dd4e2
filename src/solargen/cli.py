"""``python -m solargen <command>``: the steps of the study, each one a workflow rule.

acquire → calibrate → constants → dataset → train → sample → features/spectrum → evaluate →
collect → tables/figures. The acquisition, report and expert-test commands live beside their
code (``acquire/commands.py``, ``report/commands.py``, ``expert/commands.py``) and register here.
Every command writes its outputs atomically and exits non-zero with a message naming the bad
file on bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _acquire_synthetic(a):
    from .acquire.synthetic import write_synthetic_series
    from .io import atomic_dir

    with atomic_dir(a.out) as tmp:
        write_synthetic_series(tmp, a.n, a.start, a.cadence_s, a.seed, native_size=a.native_size, exptime=a.exptime,
                               first_index=a.first_index, wavelength=a.wavelength, bad_fraction=a.bad_fraction)


def _calibrate(a):
    from .acquire.commands import input_frames, input_records
    from .calibrate.files import calibrate_files

    paths = input_frames(a.inputs)  # a folder of FITS files or a JSOC chunk's done-manifest
    from .calibrate.options import Options, Plausibility

    opts = Options(method=a.method, register=not a.no_register, exposure=not a.no_exposure,
                   degradation=a.degradation, degradation_table=a.degradation_table,
                   pointing_table=a.pointing_table, rsun_arcsec=a.rsun_arcsec)
    check = Plausibility(a.min_disk_to_background, a.max_outside_range_fraction, tuple(a.detector_range_dn))
    counts = calibrate_files(paths, a.out, a.size, wavelength=a.wavelength, opts=opts, plausibility=check,
                             expect=input_records(a.inputs))  # a manifest's files are checked against it
    logging.info("calibrated %(n_ok)d frames, rejected %(n_rejected)d", counts)


def _split(a):
    from .split import split_record
    from .io import write_json

    rec = split_record(a.shards, block_hours=a.block_hours, test_fraction=a.test_fraction,
                       placement=a.placement, seed=a.seed, guard_hours=a.guard_hours)
    write_json(a.out, rec)
    logging.info("split: %(n_train)d train, %(n_test)d test, %(n_guard)d guard frames in %(n_blocks)d blocks", rec)


def _constants(a):
    from .shards import frame_table, iter_images
    from .io import read_json, write_json
    from .normalise import compute_constants

    # A streaming reduce over the training split: one frame in memory at a time.
    table = frame_table(a.shards)
    rows = range(len(table["file"]))
    if a.split:
        codes = dict(zip(*(read_json(a.split)["frames"][k] for k in ("file", "split"))))
        if a.reference_shards:
            # An extra channel: its training frames are those matched to a training frame of the
            # target channel, i.e. exactly the ones that enter the dataset's training split.
            from .dataset import align_channel

            ref = frame_table(a.reference_shards)
            match, _ = align_channel(ref["date_obs"], table["date_obs"], a.tolerance_s)
            rows = sorted({int(m) for m, f in zip(match, ref["file"]) if m >= 0 and codes.get(f) == 0})
        else:
            rows = [r for r, f in enumerate(table["file"]) if codes.get(f) == 0]
        if not rows:
            raise SystemExit(f"error: {a.split}: no training frames")
    c = compute_constants(iter_images(a.shards, table, rows), low_percentile=a.low_percentile,
                          high_percentile=a.high_percentile, bins_per_decade=a.bins_per_decade)
    c["split"] = "train" if a.split else "all"
    write_json(a.out, c)


def _dataset(a):
    from .dataset import build_dataset
    from .io import read_json
    from .normalise import validate_constants

    constants = validate_constants(read_json(a.constants), a.constants)
    split = read_json(a.split) if a.split else None
    channels = {}
    for wl, c, *shards in a.channel or []:
        channels[int(wl)] = (shards, validate_constants(read_json(c), c))
    n = build_dataset(a.shards, constants, a.out, png_dir=a.png_dir, source=a.source, split=split,
                      quantisation=a.quantisation, compression=a.compression, channels=channels,
                      tolerance_s=a.tolerance_s)
    logging.info("dataset: %d frames", n)


def _dataset_qa(a):
    from .acquire.commands import input_frames
    from .report.dataqa import dataset_qa

    # Each raw input is a FITS folder (synthetic) or a JSOC chunk's done-manifest (files in the store).
    dirs = sorted({str(p.parent) for r in a.raw_dirs for p in input_frames(r)})
    dataset_qa(a.dataset, a.shards, a.out, a.out_json, raw_dirs=dirs, east_west_flip=a.east_west_flip)


def _device(name: str):
    """``auto``: the GPU where there is one (the cluster), else the CPU."""
    import torch

    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def _train(a):
    import torch

    from .dataset import H5Images
    from .models import family
    from .train import CheckpointError, Interrupted, fit, scale_lr, training_fingerprint

    torch.set_num_threads(a.threads)
    import numpy as np

    from .dataset import dataset_identity, dataset_split, open_dataset
    from .io import short_digest

    cfg = json.loads(a.model_json)
    fam = family(a.family)
    with open_dataset(a.dataset) as f:
        # The study trains on every frame; only a split needs the recorded split (or a test fraction).
        indices = np.arange(len(f["images"])) if a.split == "all" else dataset_split(f, a.test_fraction)[a.split]
    # What a checkpoint must share with this run to be resumed: model, data, frames, seed, augmentation.
    fingerprint = training_fingerprint(
        a.family, cfg, a.image_size, {**dataset_identity(a.dataset), "data.trained_frames": short_digest(indices)},
        seed=a.seed, east_west_flip=bool(a.east_west_flip))
    data = H5Images(a.dataset, size=a.image_size, in_memory=a.in_memory_gib, indices=indices,
                    east_west_flip=a.east_west_flip, channels=fam.channels(cfg))
    from . import distributed

    # One process, or one rank of a data-parallel job started by torchrun or srun.
    ctx, device = distributed.init(_device(a.device))
    if device.type == "cuda":  # TF32 matmuls/convolutions on Ampere+ (config tf32, default on)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(cfg.get("tf32", True))
    torch.manual_seed(a.seed)  # the initial weights, so a fresh run is reproducible too
    trainer = fam.trainer(scale_lr(cfg), a.image_size, device=device)
    check = None
    if a.check_every:
        from .evaluate.training_check import TrainingCheck

        real = torch.stack([data[i] for i in range(min(a.check_n, len(data)))])
        check = TrainingCheck(fam.sample, cfg, a.image_size, real, conditional=fam.conditional,
                              steps=a.check_sampling_steps, seed=a.seed, device=device)
    try:
        fit(trainer, data, batch_size=cfg["batch_size"], total_steps=a.steps, ckpt_dir=a.ckpt_dir,
            save_every=cfg.get("save_every", 1000), seed=a.seed, log_csv=a.log_csv,
            extra={"family": a.family, "model": json.dumps(cfg), "image_size": a.image_size}, dist=ctx,
            precision=cfg.get("precision", "fp32"), compile=bool(cfg.get("compile", False)),
            tensorboard=a.tensorboard, check=check, check_every=a.check_every, fingerprint=fingerprint,
            move_stale=a.move_stale)
    except CheckpointError as e:  # a stale checkpoint, or one that could not be written
        raise SystemExit(f"error: {e}") from None
    except Interrupted as e:
        # Not an error of the run: exit 3 so the job fails and is re-submitted (Snakemake retries).
        logging.error("rank %d: %s; run again to resume", ctx.rank, e)
        raise SystemExit(3) from None
    finally:
        distributed.shutdown()


def _sample(a):
    import torch
    from PIL import Image

    from .dataset import to_uint8
    from .io import atomic_dir, write_json
    from .models import family
    from .train import load_checkpoint

    torch.set_num_threads(a.threads)
    cfg = json.loads(a.model_json)
    fam = family(a.family)
    state = None
    if fam.trainer is not None:
        if not a.checkpoint:
            raise SystemExit(f"error: family {a.family} needs --checkpoint")
        try:
            state = load_checkpoint(a.checkpoint)
        except Exception as e:
            raise SystemExit(f"error: {a.checkpoint}: unreadable checkpoint ({e})") from None
    extra = {}
    if fam.conditional:
        # Condition on held-out frames, image i on test frame i (cycling if N exceeds the split).
        extra["targets"] = held_out_targets(a.dataset, a.test_fraction, a.image_size,
                                            range(a.first_index, a.first_index + a.n), fam.channels(cfg))
    # Each chunk of a run (its own job: a CPU core set or a GPU) has its own noise stream.
    seed = a.seed * 1_000_003 + a.first_index
    x = fam.sample(state, cfg, a.image_size, a.n, steps=a.steps, sampler=a.sampler,
                   seed=seed, batch_size=a.batch_size, device=_device(a.device), **extra)
    y = ((x[:, 0] + 1) / 2).numpy()
    with atomic_dir(a.out) as tmp:
        for i, im in enumerate(y):
            Image.fromarray(to_uint8(im)).save(tmp / f"out_{a.first_index + i}.png")
        # What drew these images, so any of them can be drawn again.
        write_json(tmp / "sampling.json", {"family": a.family, "checkpoint": a.checkpoint, "seed": seed,
                                           "first_index": a.first_index, "n": a.n, "steps": a.steps,
                                           "sampler": a.sampler, "batch_size": a.batch_size, "model": cfg})


def held_out_targets(dataset, test_fraction: float, size: int, image_indices, channels=()):
    """Test-split frames (len(image_indices), 1 + len(channels), size, size) in [-1, 1] for
    conditional runs: the target, then the extra ``channels`` (Å) a translation model reads."""
    import torch

    from .dataset import H5Images, dataset_split, open_dataset

    if not dataset:
        raise SystemExit("error: conditional families need --dataset")
    with open_dataset(dataset) as f:
        test = dataset_split(f, test_fraction)["test"]
    if len(test) == 0:
        raise SystemExit("error: data.test_fraction is 0: a conditional family has no held-out frames")
    data = H5Images(dataset, size=size, indices=test, channels=channels)
    return torch.stack([data[i % len(test)] for i in image_indices])


def _crop_arguments(s):
    s.add_argument("--crop", help="crop mode, the study's suffix: CROPPED64 or CROPPED299CS_0.1,1_CR_1,1")
    s.add_argument("--crops-per-image", type=int, default=1)
    s.add_argument("--crop-seed", type=int, default=0)
    s.add_argument("--crop-reference", type=int, help="resolution the crop size is given at (the dataset's)")
    s.add_argument("--crop-on-disk", type=float, help="crops wholly inside a disk of this radius (fraction of the side)")


def _crop_mode(a):
    from .evaluate.crops import CropMode

    if not a.crop:
        return None
    return CropMode.parse(a.crop, per_image=a.crops_per_image, seed=a.crop_seed, reference=a.crop_reference,
                          on_disk=a.crop_on_disk)


def _features(a):
    import torch

    from .evaluate import features
    from .evaluate.metrics import save_features

    torch.set_num_threads(a.threads)
    features.configure(a.net_specs)
    save_features(a.images, a.net, a.out, crop=_crop_mode(a))


def _fetch_weights(a):
    from .evaluate.weights import fetch

    for name, spec in json.loads(a.specs).items():
        fetch(spec["url"], spec["weights"], spec.get("sha256"))


def _spectrum(a):
    from .evaluate.metrics import save_spectrum

    save_spectrum(a.images, a.out, a.window, crop=_crop_mode(a))


def _evaluate(a):
    import torch

    from .evaluate import features
    from .evaluate.metrics import evaluate_run

    torch.set_num_threads(a.threads)
    features.configure(a.net_specs)
    real = dict(kv.split("=", 1) for kv in a.real_features)
    targets = None
    if a.dataset:
        from .dataset import to_uint8

        from .io import image_files

        n = len(image_files(a.samples))  # an empty folder: an InputError naming it
        size = _png_size(a.samples)
        t = held_out_targets(a.dataset, a.test_fraction, size, range(n))
        # Quantised like the samples, so 8-bit rounding is not counted as an error.
        targets = to_uint8(((t[:, 0] + 1) / 2).numpy()) / 255.0
    evaluate_run(a.samples, real, a.real_spectrum, a.out, a.out_spectrum, real_name=a.real_name,
                 fake_name=a.fake_name, targets=targets, factor=a.factor, real_crop_spectra=a.real_crop_spectra,
                 n_expected=a.n_samples, on_count_mismatch=a.sample_count_mismatch,
                 out_features=a.out_features, bias_sizes=tuple(a.bias_sizes))


def _png_size(folder) -> int:
    from PIL import Image

    with Image.open(sorted(Path(folder).glob("*.png"))[0]) as im:
        return im.size[0]


def _check_config(a):
    from .io import InputError, read_yaml

    bad = []
    for f in a.files:
        try:  # a syntax error is an InputError naming the file, line and column
            if not isinstance(read_yaml(f), dict):
                raise InputError(f"{f}: not a mapping of keys at the top level")
            print(f"{f}: YAML syntax ok (snakemake -n --configfile {f} checks its keys)")
        except InputError as e:
            bad.append(str(e))
    if bad:
        raise InputError("\n".join(bad))


def parser() -> argparse.ArgumentParser:
    from .expert.commands import add_commands as expert_commands
    from .report.commands import add_commands as report_commands

    p = argparse.ArgumentParser(prog="python -m solargen", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("acquire-synthetic", help="write synthetic AIA 193 Å level-1 FITS frames")
    s.add_argument("--out", required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--first-index", type=int, default=0)
    s.add_argument("--start", default="2011-01-01T00:00:00")
    s.add_argument("--cadence-s", type=float, default=7200.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--native-size", type=int, default=4096)
    s.add_argument("--exptime", type=float, default=2.0)
    s.add_argument("--bad-fraction", type=float, default=0.0)
    s.add_argument("--wavelength", type=int, default=193, help="WAVELNTH (Å): 193, or an extra channel (171, 211)")
    s.set_defaults(func=_acquire_synthetic)

    from .acquire.commands import add_commands

    add_commands(sub)  # acquire-query, acquire-download, acquire-summary, dataset-images

    s = sub.add_parser("calibrate", help="level-1 FITS folder (or done-manifest) → calibrated HDF5 shard (DN/s)")
    s.add_argument("--inputs", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--wavelength", type=int, default=193)
    s.add_argument("--no-register", action="store_true")
    s.add_argument("--no-exposure", action="store_true")
    s.add_argument("--method", choices=["fused", "reference"], default="fused",
                   help="fused: one warp to the target grid; reference: aiapy register + block mean")
    s.add_argument("--degradation", action="store_true", help="correct instrument degradation")
    s.add_argument("--degradation-table", help="correction table file (default: the aiapy wheel's V8)")
    s.add_argument("--pointing-table", help="pointing table file (default: the level-1 header's pointing)")
    s.add_argument("--rsun-arcsec", type=float, help="rescale every frame to this solar radius (SDOML: 976)")
    s.add_argument("--min-disk-to-background", type=float, default=2.0,
                   help="plausibility: reject frames whose median disk/background DN ratio is below this")
    s.add_argument("--max-outside-range-fraction", type=float, default=0.01,
                   help="plausibility: reject frames with more pixels than this outside --detector-range-dn")
    s.add_argument("--detector-range-dn", type=float, nargs=2, default=[-100.0, 20480.0], metavar=("LOW", "HIGH"))
    s.set_defaults(func=_calibrate)

    s = sub.add_parser("split", help="train/test split of the calibrated frames by contiguous time blocks")
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--block-hours", type=float, required=True)
    s.add_argument("--test-fraction", type=float, required=True)
    s.add_argument("--placement", choices=["last", "spread"], default="spread")
    s.add_argument("--guard-hours", type=float, default=0.0)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_split)

    s = sub.add_parser("constants", help="global log-normalisation constants over all shards")
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--low-percentile", type=float, default=0.5)
    s.add_argument("--high-percentile", type=float, default=99.99)
    s.add_argument("--bins-per-decade", type=int, default=1000, help="log-histogram resolution")
    s.add_argument("--split", help="split record (from the split command): use its training frames only")
    s.add_argument("--reference-shards", nargs="+", help="an extra channel's constants: the target channel's "
                   "shards, whose split the channel's frames follow (matched by time)")
    s.add_argument("--tolerance-s", type=float, default=120.0, help="time match of --reference-shards (s)")
    s.set_defaults(func=_constants)

    s = sub.add_parser("dataset", help="normalise shards into dataset.h5 and the PNG image folder")
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--constants", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--png-dir")
    s.add_argument("--source", default="")
    s.add_argument("--split", help="split record (from the split command), stored per frame")
    s.add_argument("--quantisation", choices=["float32", "float16", "uint8"], default="float32")
    s.add_argument("--compression", choices=["gzip", "lzf", "none"], default="gzip")
    s.add_argument("--channel", nargs="+", action="append", metavar="WL CONSTANTS SHARD",
                   help="an extra channel: wavelength (Å), its constants.json and its calibrated shards "
                        "→ images_<WL>, aligned by time (repeat per channel)")
    s.add_argument("--tolerance-s", type=float, default=120.0,
                   help="an extra channel's frame must lie within this many seconds of the target frame")
    s.set_defaults(func=_dataset)

    s = sub.add_parser("dataset-qa", help="dataset QA figure and summary for the report")
    s.add_argument("--dataset", required=True)
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--raw-dirs", nargs="*", default=[], help="level-1 FITS folders or JSOC done-manifests (for the examples)")
    s.add_argument("--east-west-flip", action="store_true", help="record that training mirrors frames")
    s.add_argument("--out", required=True)
    s.add_argument("--out-json", required=True)
    s.set_defaults(func=_dataset_qa)

    s = sub.add_parser("train", help="train (or resume) a model up to --steps")
    s.add_argument("--family", required=True)
    s.add_argument("--model-json", required=True)
    s.add_argument("--dataset", required=True)
    s.add_argument("--image-size", type=int, required=True)
    s.add_argument("--steps", type=int, required=True)
    s.add_argument("--ckpt-dir", required=True)
    s.add_argument("--log-csv")
    s.add_argument("--tensorboard", help="TensorBoard log folder (needs the tensorboard package)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--in-memory-gib", type=float, default=2.0,
                   help="hold the training frames (at --image-size) in memory when they fit in this many GiB")
    s.add_argument("--split", choices=["all", "train"], default="all",
                   help="frames to train on: all (the study: no split) or the training split")
    s.add_argument("--test-fraction", type=float,
                   help="data.test_fraction: only for datasets without a recorded split (the last fraction in time)")
    s.add_argument("--east-west-flip", action="store_true", help="augmentation: mirror half the frames E–W")
    s.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:N")
    s.add_argument("--check-every", type=int, default=0, help="steps between spectral checks of EMA samples (0: off)")
    s.add_argument("--check-n", type=int, default=16, help="images per check (and real frames it compares with)")
    s.add_argument("--check-sampling-steps", type=int, default=25, help="DDIM steps of a diffusion model's check")
    s.add_argument("--move-stale", action="store_true",
                   help="when the newest checkpoint belongs to another training (other model config, data, seed, "
                        "or architecture), move the checkpoints to <ckpt-dir>/stale-<time>/ and train from scratch "
                        "(the workflow passes it); without it that is an error naming what differs")
    s.set_defaults(func=_train)

    s = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG folder")
    s.add_argument("--family", required=True)
    s.add_argument("--model-json", required=True)
    s.add_argument("--checkpoint", help="trained families")
    s.add_argument("--dataset", help="conditional families: the dataset whose test split conditions them")
    s.add_argument("--test-fraction", type=float, help="data.test_fraction (datasets without a recorded split)")
    s.add_argument("--factor", type=int, default=4, help="(conditional) degradation factor; read from the model config")
    s.add_argument("--image-size", type=int, required=True)
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--first-index", type=int, default=0, help="index of the first image (chunked sampling)")
    s.add_argument("--steps", type=int, default=250)
    s.add_argument("--sampler", default="ddpm")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=int, default=1)
    s.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:N")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_sample)

    s = sub.add_parser("features", help="feature-network features of an image folder")
    s.add_argument("--images", required=True)
    s.add_argument("--net", required=True)
    s.add_argument("--out", required=True)
    _crop_arguments(s)
    s.add_argument("--net-specs", default="{}", help="JSON: the config's evaluation.feature_networks")
    s.add_argument("--threads", type=int, default=1)
    s.set_defaults(func=_features)

    s = sub.add_parser("fetch-weights", help="download feature-network weights files (needs internet)")
    s.add_argument("--specs", required=True, help="JSON: name → {url, weights, sha256}")
    s.set_defaults(func=_fetch_weights)

    s = sub.add_parser("spectrum", help="radial power spectra of an image folder")
    s.add_argument("--images", required=True)
    s.add_argument("--window", choices=["none", "hann"], default="none", help="taper before the DFT")
    s.add_argument("--out", required=True)
    _crop_arguments(s)
    s.set_defaults(func=_spectrum)

    s = sub.add_parser("evaluate", help="FID/KID per feature network and spectral distances of one run")
    s.add_argument("--samples", required=True)
    s.add_argument("--real-features", nargs="+", required=True, metavar="NET=NPZ")
    s.add_argument("--real-spectrum", required=True)
    s.add_argument("--real-name", required=True)
    s.add_argument("--fake-name", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--out-spectrum", required=True)
    s.add_argument("--out-features", help="the generated set's features and spectra (for bootstrap intervals)")
    s.add_argument("--bias-sizes", type=int, nargs="*", default=[],
                   help="image sizes (px) whose band of scales gets a spectral_bias_high_<s>px row")
    s.add_argument("--dataset", help="conditional runs: score pixel metrics against the test split")
    s.add_argument("--test-fraction", type=float, help="data.test_fraction (datasets without a recorded split)")
    s.add_argument("--factor", type=int, help="conditional runs: degradation factor (spectral band above its Nyquist)")
    s.add_argument("--net-specs", default="{}", help="JSON: the config's evaluation.feature_networks")
    s.add_argument("--real-crop-spectra", nargs="*", default=[], help="spectra of real crops (spectrum --crop)")
    s.add_argument("--n-samples", type=int, help="the number of images the run should have (evaluation.n_samples)")
    s.add_argument("--sample-count-mismatch", choices=["fail", "warn"], default="fail",
                   help="when --samples holds another number of images than --n-samples: fail (default), or "
                        "warn and record it in the metrics file")
    s.add_argument("--threads", type=int, default=1)
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("check-config", help="YAML syntax of config files, naming the file, line and column of an "
                       "error (Snakemake's message for a --configfile names neither)")
    s.add_argument("files", nargs="+")
    s.set_defaults(func=_check_config)

    from .models.feature_commands import add_commands as feature_commands

    feature_commands(sub)  # feature-export (solar feature networks)
    report_commands(sub)  # collect, spearman, figure, table, plot, compare
    expert_commands(sub)  # expert-eval packet | serve | analyse
    return p


#: Environment variables that size NumPy's and SciPy's BLAS/OpenMP thread pools.
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(args) -> None:
    """Sampling, features and evaluation use ``--threads`` for NumPy's BLAS too (torch's own
    pool is set by each command). OpenBLAS otherwise starts a thread per core, and on a shared
    or busy machine its spinning threads make the small products of FID/KID 10-20× slower (KID of
    32 vs 60 samples: 3-5 s instead of 0.2 s, measured on 2 contended cores). Must run before
    NumPy is imported; variables the user set are kept."""
    import os

    if getattr(args, "func", None) in (_sample, _features, _evaluate) and getattr(args, "threads", None):
        for var in BLAS_THREAD_VARS:
            os.environ.setdefault(var, str(args.threads))


def main(argv: list[str] | None = None) -> int:
    from .io import InputError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    limit_blas_threads(args)
    try:
        args.func(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
