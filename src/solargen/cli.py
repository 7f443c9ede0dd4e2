"""``python -m solargen <command>``: the steps of the study, each one a workflow rule.

acquire → calibrate → constants → dataset → train → sample → features/spectrum → evaluate →
collect → figures. Every command writes its outputs atomically and exits non-zero with a
message naming the bad file on bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _acquire_synthetic(a):
    import numpy as np
    from tqdm import tqdm

    from .acquire.synthetic import synthetic_series, write_synthetic_frame
    from .io import atomic_dir

    dates = synthetic_series(a.start, a.cadence_s, a.first_index + a.n)[a.first_index:]
    with atomic_dir(a.out) as tmp:
        for i, date in enumerate(tqdm(dates, desc="synthesize", unit="frame")):
            index = a.first_index + i
            rng = np.random.default_rng([a.seed, index, 1])
            # A realistic archive has flagged frames; the calibration must reject them, with reasons.
            quality = int(1 << int(rng.integers(0, 31))) if rng.random() < a.bad_fraction else 0
            write_synthetic_frame(tmp / f"aia_lev1_193a_{index:06d}.fits", seed=int(np.random.SeedSequence([a.seed, index]).generate_state(1)[0]),
                                  date_obs=date, native_size=a.native_size, exptime=a.exptime, quality=quality)


def _calibrate(a):
    from .calibrate import calibrate_files

    paths = sorted(Path(a.inputs).glob("*.fits"))
    if not paths:
        raise SystemExit(f"error: {a.inputs}: no FITS files")
    counts = calibrate_files(paths, a.out, a.size, wavelength=a.wavelength, register=not a.no_register,
                             exposure=not a.no_exposure)
    logging.info("calibrated %(n_ok)d frames, rejected %(n_rejected)d", counts)


def _constants(a):
    from .calibrate import read_shard
    from .io import write_json
    from .normalise import compute_constants

    shards = [read_shard(p)[0] for p in a.shards]
    write_json(a.out, compute_constants(shards, low_percentile=a.low_percentile,
                                        high_percentile=a.high_percentile, seed=a.seed))


def _dataset(a):
    from .dataset import build_dataset
    from .io import read_json
    from .normalise import validate_constants

    constants = validate_constants(read_json(a.constants), a.constants)
    n = build_dataset(a.shards, constants, a.out, png_dir=a.png_dir, source=a.source)
    logging.info("dataset: %d frames", n)


def _device(name: str):
    """``auto``: the GPU where there is one (the cluster), else the CPU."""
    import torch

    return torch.device("cuda" if name == "auto" and torch.cuda.is_available() else ("cpu" if name == "auto" else name))


def _train(a):
    import torch

    from .dataset import H5Images
    from .models import family
    from .train import Interrupted, fit, scale_lr

    torch.set_num_threads(a.threads)
    from .dataset import open_dataset, split_indices

    cfg = json.loads(a.model_json)
    fam = family(a.family)
    with open_dataset(a.dataset) as f:
        indices = split_indices(len(f["images"]), a.test_fraction)[a.split]
    data = H5Images(a.dataset, size=a.image_size, in_memory=a.in_memory, indices=indices)
    from . import distributed

    # One process, or one rank of a data-parallel job started by torchrun or srun.
    ctx, device = distributed.init(_device(a.device))
    if device.type == "cuda":  # TF32 matmuls/convolutions on Ampere+ (config tf32, default on)
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = bool(cfg.get("tf32", True))
    torch.manual_seed(a.seed)  # the initial weights, so a fresh run is reproducible too
    trainer = fam.trainer(scale_lr(cfg), a.image_size, device=device)
    try:
        fit(trainer, data, batch_size=cfg["batch_size"], total_steps=a.steps, ckpt_dir=a.ckpt_dir,
            save_every=cfg.get("save_every", 1000), seed=a.seed, log_csv=a.log_csv,
            extra={"family": a.family, "model": json.dumps(cfg), "image_size": a.image_size}, dist=ctx,
            precision=cfg.get("precision", "fp32"), compile=bool(cfg.get("compile", False)),
            tensorboard=a.tensorboard)
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
                                            range(a.first_index, a.first_index + a.n))
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


def held_out_targets(dataset, test_fraction: float, size: int, image_indices):
    """Test-split frames (len(image_indices), 1, size, size) in [-1, 1] for conditional runs."""
    import torch

    from .dataset import H5Images, open_dataset, split_indices

    if not dataset:
        raise SystemExit("error: conditional families need --dataset")
    with open_dataset(dataset) as f:
        test = split_indices(len(f["images"]), test_fraction)["test"]
    if len(test) == 0:
        raise SystemExit("error: data.test_fraction is 0: a conditional family has no held-out frames")
    data = H5Images(dataset, size=size, indices=test)
    return torch.stack([data[i % len(test)] for i in image_indices])


def _features(a):
    import torch

    from .evaluate.crops import CropMode
    from .evaluate.metrics import save_features

    torch.set_num_threads(a.threads)
    crop = None
    if a.crop:
        crop = CropMode.parse(a.crop, per_image=a.crops_per_image, seed=a.crop_seed, reference=a.crop_reference)
    save_features(a.images, a.net, a.out, crop=crop)


def _spectrum(a):
    from .evaluate.metrics import save_spectrum

    save_spectrum(a.images, a.out, a.window)


def _evaluate(a):
    import torch

    from .evaluate.metrics import evaluate_run

    torch.set_num_threads(a.threads)
    real = dict(kv.split("=", 1) for kv in a.real_features)
    targets = None
    if a.dataset:
        from .dataset import to_uint8

        n = len(list(Path(a.samples).glob("*.png")))
        size = _png_size(a.samples)
        t = held_out_targets(a.dataset, a.test_fraction, size, range(n))
        # Quantised like the samples, so 8-bit rounding is not counted as an error.
        targets = to_uint8(((t[:, 0] + 1) / 2).numpy()) / 255.0
    evaluate_run(a.samples, real, a.real_spectrum, a.out, a.out_spectrum, real_name=a.real_name,
                 fake_name=a.fake_name, targets=targets, factor=a.factor)


def _png_size(folder) -> int:
    from PIL import Image

    with Image.open(sorted(Path(folder).glob("*.png"))[0]) as im:
        return im.size[0]


def _collect(a):
    from .report.results import collect

    collect(a.metrics, a.out, a.not_run, skipped=json.loads(a.skipped_json), out_meta=a.meta)


def _spearman(a):
    import pandas as pd

    from .io import atomic_path
    from .report.results import spearman_table

    with atomic_path(a.out) as tmp:
        spearman_table(pd.read_csv(a.results)).round(3).to_csv(tmp)


def _figure(a):
    from .report import figures

    runs = dict(kv.split("=", 1) for kv in a.runs)
    if a.kind == "samples":
        figures.sample_grid(a.real, runs, a.out)
    elif a.kind == "zoom":
        figures.zoom_grid(a.real, runs, a.out)
    elif a.kind == "spectrum":
        figures.spectrum_figure(a.real, runs, a.out)
    else:
        from .dataset import open_dataset, split_indices

        with open_dataset(a.real) as f:
            real = f["images"][split_indices(len(f["images"]), a.test_fraction)["test"]]
        figures.dft_figure(real, runs, a.out)


def parser() -> argparse.ArgumentParser:
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
    s.set_defaults(func=_acquire_synthetic)

    s = sub.add_parser("calibrate", help="level-1 FITS folder → calibrated HDF5 shard (DN/s)")
    s.add_argument("--inputs", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--wavelength", type=int, default=193)
    s.add_argument("--no-register", action="store_true")
    s.add_argument("--no-exposure", action="store_true")
    s.set_defaults(func=_calibrate)

    s = sub.add_parser("constants", help="global log-normalisation constants over all shards")
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--low-percentile", type=float, default=0.5)
    s.add_argument("--high-percentile", type=float, default=99.99)
    s.add_argument("--seed", type=int, default=0)
    s.set_defaults(func=_constants)

    s = sub.add_parser("dataset", help="normalise shards into dataset.h5 and the PNG image folder")
    s.add_argument("--shards", nargs="+", required=True)
    s.add_argument("--constants", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--png-dir")
    s.add_argument("--source", default="")
    s.set_defaults(func=_dataset)

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
    s.add_argument("--in-memory", action="store_true")
    s.add_argument("--split", choices=["all", "train"], default="all",
                   help="frames to train on: all (the study: no split) or the training split")
    s.add_argument("--test-fraction", type=float, default=0.1)
    s.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda, cuda:N")
    s.set_defaults(func=_train)

    s = sub.add_parser("sample", help="draw samples from a checkpoint into a PNG folder")
    s.add_argument("--family", required=True)
    s.add_argument("--model-json", required=True)
    s.add_argument("--checkpoint", help="trained families")
    s.add_argument("--dataset", help="conditional families: the dataset whose test split conditions them")
    s.add_argument("--test-fraction", type=float, default=0.1)
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
    s.add_argument("--crop", help="crop mode, the study's suffix: CROPPED64 or CROPPED299CS_0.1,1_CR_1,1")
    s.add_argument("--crops-per-image", type=int, default=1)
    s.add_argument("--crop-seed", type=int, default=0)
    s.add_argument("--crop-reference", type=int, help="resolution the crop size is given at (the dataset's)")
    s.add_argument("--threads", type=int, default=1)
    s.set_defaults(func=_features)

    s = sub.add_parser("spectrum", help="radial power spectra of an image folder")
    s.add_argument("--images", required=True)
    s.add_argument("--window", choices=["none", "hann"], default="none", help="taper before the DFT")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_spectrum)

    s = sub.add_parser("evaluate", help="FID/KID per feature network and spectral distances of one run")
    s.add_argument("--samples", required=True)
    s.add_argument("--real-features", nargs="+", required=True, metavar="NET=NPZ")
    s.add_argument("--real-spectrum", required=True)
    s.add_argument("--real-name", required=True)
    s.add_argument("--fake-name", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--out-spectrum", required=True)
    s.add_argument("--dataset", help="conditional runs: score pixel metrics against the test split")
    s.add_argument("--test-fraction", type=float, default=0.1)
    s.add_argument("--factor", type=int, help="conditional runs: degradation factor (spectral band above its Nyquist)")
    s.add_argument("--threads", type=int, default=1)
    s.set_defaults(func=_evaluate)

    s = sub.add_parser("collect", help="gather metrics.json files into results.csv")
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--not-run")
    s.add_argument("--skipped-json", default="{}", help='{"run": "reason"} for runs the workflow left out')
    s.add_argument("--meta", help="sidecar CSV: per run n_samples, n_real, sampling seeds, checkpoint")
    s.set_defaults(func=_collect)

    s = sub.add_parser("spearman", help="Spearman rank correlation between metrics across runs")
    s.add_argument("--results", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_spearman)

    s = sub.add_parser("figure", help="report figures")
    s.add_argument("kind", choices=["samples", "zoom", "spectrum", "dft"])
    s.add_argument("--test-fraction", type=float, default=0.1)
    s.add_argument("--real", required=True)
    s.add_argument("--runs", nargs="+", required=True, metavar="NAME=PATH")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_figure)
    return p


def main(argv: list[str] | None = None) -> int:
    from .io import InputError

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        args.func(args)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
