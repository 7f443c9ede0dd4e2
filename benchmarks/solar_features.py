"""The solar feature networks (issue #26): their checks at demo scale and their cost at paper scale.

    python benchmarks/solar_features.py checks --dataset DATASET.h5 --images PNG_FOLDER --work DIR
    python benchmarks/solar_features.py steptime --dataset DATASET.h5 --net NET --configs A.yaml B.yaml
    python benchmarks/solar_features.py cost

``checks`` trains the demo config's ``feature_train`` networks (config/demo.yaml) exactly as the
workflow does (`solargen train` on the training split, then `solargen feature-export`), timing
each step in-process, then reports on the held-out frames:

- MAE: masked-patch MSE in normalised-pixel space vs the baseline filling each masked patch with
  the image's mean over its visible patches (any constant fill scores ≥ 1 there);
- VICReg: per-dimension std of the embeddings, sqrt(Var + 1e-4) as VICReg's variance term
  (its threshold γ = 1), and of the representations (the features), on the held-out frames and
  on their two training views;
- VICReg, for reference: the same std on the training frames of every run of as many consecutive
  time blocks as the held-out frames span (a held-out-sized sample of frames the network was fitted
  to), which tells a generalisation gap from an effect of the held-out sample's size or time span;
- per feature network: FID(real half A, blurred real half B) / FID(real half A, real half B) over
  the real PNG folder (random halves; Gaussian blur σ = ``--blur-sigma`` px removes the fine-scale
  texture), the seconds its features of one half take, and what the ratio is made of
  (`blur_shift_over_spread`: how far the blur moves the features' mean, against how far the real
  frames' features spread).

``steptime`` compares the per-step cost of one network's recipes in several configs, in one
process, their steps interleaved.

``cost`` counts the FLOPs of one training step of the paper networks (config/config.yaml) on the
meta device, as benchmarks/scaling.py does, and turns them into A100 time with its assumptions.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _model_json(cfg: dict) -> str:
    return json.dumps({k: v for k, v in cfg.items() if k not in ("family", "image_size", "nodes", "seed")},
                      sort_keys=True)


def _train(name: str, cfg: dict, dataset: str, work: Path, test_fraction: float) -> dict:
    from solargen.cli import main

    ckpt = work / name / "checkpoints"
    t0 = time.perf_counter()
    main(["train", "--family", cfg["family"], "--model-json", _model_json(cfg), "--dataset", dataset,
          "--image-size", str(cfg["image_size"]), "--steps", str(cfg["train_steps"]), "--ckpt-dir", str(ckpt),
          "--log-csv", str(work / name / "train_log.csv"), "--seed", "0", "--threads", "1", "--split", "train",
          "--test-fraction", str(test_fraction)])
    wall = time.perf_counter() - t0
    main(["feature-export", "--family", cfg["family"], "--model-json", _model_json(cfg), "--image-size",
          str(cfg["image_size"]), "--checkpoint", str(ckpt / f"step{cfg['train_steps']:07d}.pt"),
          "--out", str(work / name / "encoder.pt")])
    rows = list(csv.DictReader(open(work / name / "train_log.csv")))
    return {"train_wall_s": wall, "steps": cfg["train_steps"], "s_per_step": wall / cfg["train_steps"],
            "first_loss": float(rows[0]["loss"]), "last_loss": float(rows[-1]["loss"])}


def _blurred_copy(files: list[Path], out: Path, sigma: float) -> list[Path]:
    from PIL import Image, ImageFilter

    out.mkdir(parents=True, exist_ok=True)
    res = []
    for f in files:
        with Image.open(f) as im:
            im.convert("L").filter(ImageFilter.GaussianBlur(sigma)).save(out / f.name)
        res.append(out / f.name)
    return res


def blur_shift_over_spread(f_sharp: np.ndarray, f_blurred: np.ndarray, f_other: np.ndarray) -> float:
    """‖mean(f_blurred) − mean(f_sharp)‖² / tr Cov(f_sharp ∪ f_other): the squared shift of the
    features' mean that blurring the same frames causes, in units of the real frames' total
    feature variance. FID(A, B) of two real halves grows with that variance; FID(A, blurred B) adds
    this shift (and the blur's change of the covariance), so a small value means the blur barely
    moves the features compared with how much real frames differ. Independent of the features'
    scale, as the ratio."""
    both = np.concatenate([f_sharp, f_other]).astype(np.float64)
    shift = f_blurred.astype(np.float64).mean(0) - f_sharp.astype(np.float64).mean(0)
    return float(shift @ shift / np.trace(np.atleast_2d(np.cov(both, rowvar=False))))


def block_windows(blocks: np.ndarray, train: np.ndarray, width: int) -> list[np.ndarray]:
    """Training frames of every run of ``width`` consecutive time blocks that all hold training
    frames (indices into the data set, one array per run)."""
    tb = np.unique(blocks[train])
    out = []
    for i in range(len(tb) - width + 1):
        w = tb[i:i + width]
        if w[-1] - w[0] == width - 1:
            out.append(train[np.isin(blocks[train], w)])
    return out


def checks(a):
    from solargen.dataset import H5Images, dataset_split, open_dataset
    from solargen.evaluate import features
    from solargen.evaluate.distances import frechet_distance
    from solargen.models import family
    from solargen.models.mae_solar import reconstruction_check
    from solargen.models.vicreg_solar import collapse_check
    from solargen.train import load_checkpoint

    torch.set_num_threads(1)
    cfg = yaml.safe_load(Path(a.config).read_text())
    trained = cfg["feature_train"]
    if a.nets:
        unknown = set(a.nets) - set(trained)
        if unknown:
            raise SystemExit(f"--nets: {sorted(unknown)} not in {a.config}'s feature_train ({sorted(trained)})")
        trained = {k: v for k, v in trained.items() if k in a.nets}
    work = Path(a.work)
    test_fraction = cfg["data"].get("test_fraction", 0.1)
    report = {}
    for name, c in trained.items():
        report[name] = _train(name, c, a.dataset, work, test_fraction)
    with open_dataset(a.dataset) as f:
        split = dataset_split(f, test_fraction)
        held_out = split["test"]
        blocks = f["frames"]["block"][()] if "frames" in f and "block" in f["frames"] else None
    for name, c in trained.items():
        data = H5Images(a.dataset, size=c["image_size"], indices=held_out)
        x = torch.stack([data[i] for i in range(len(data))])[:, :1]
        t = family(c["family"]).trainer(json.loads(_model_json(c)), c["image_size"])
        state = load_checkpoint(work / name / "checkpoints" / f"step{c['train_steps']:07d}.pt")
        t.model.load_state_dict(state["modules"][next(iter(t.modules))])
        x = torch.nn.functional.interpolate(x, size=(c["input_size"],) * 2, mode="bicubic", antialias=True) \
            if x.shape[-1] != c["input_size"] else x
        if c["family"] == "mae_solar":
            report[name].update(reconstruction_check(t.model, x, float(c.get("mask_ratio", 0.75))))
        else:
            report[name].update(collapse_check(t.model, x))
            # The same on the two training views of each held-out frame: the batch VICReg's own
            # variance term sees (frames alone vary less than views do).
            v1, v2 = t.views(x, torch.Generator().manual_seed(0))
            report[name].update({f"views/{k}": v for k, v in collapse_check(t.model, torch.cat([v1, v2])).items()})
            if blocks is not None:
                train_data = H5Images(a.dataset, size=c["image_size"], indices=split["train"])
                xt = torch.stack([train_data[i] for i in range(len(train_data))])[:, :1]
                xt = torch.nn.functional.interpolate(xt, size=(c["input_size"],) * 2, mode="bicubic", antialias=True) \
                    if xt.shape[-1] != c["input_size"] else xt
                pos = {int(j): k for k, j in enumerate(split["train"])}
                report[name]["train/embedding_std_mean"] = collapse_check(t.model, xt)["embedding_std_mean"]
                width = len(np.unique(blocks[held_out]))
                report[name][f"train_windows_{width}_blocks/embedding_std_mean"] = [
                    collapse_check(t.model, xt[[pos[int(j)] for j in w]])["embedding_std_mean"]
                    for w in block_windows(blocks, split["train"], width)]
        report[name]["held_out_frames"] = len(x)
    # Texture sensitivity: FID(A, blurred B) / FID(A, B) on random halves of the real frames.
    files = sorted(Path(a.images).glob("*.png"))
    order = np.random.default_rng(0).permutation(len(files))
    half_a = [files[i] for i in order[: len(files) // 2]]
    half_b = [files[i] for i in order[len(files) // 2: 2 * (len(files) // 2)]]
    blurred_b = _blurred_copy(half_b, work / "blurred", a.blur_sigma)
    features.configure(features.solar_specs(trained, str(work)))
    nets = [*a.reference_nets, *trained]
    for net in nets:
        try:
            features.build_extractor(net)
        except features.FeatureNetUnavailable as e:
            report[f"ratio/{net}"] = f"not run: {e}"
            continue
        t0 = time.perf_counter()
        fa = features.folder_features([str(p) for p in half_a], net)
        per_half = time.perf_counter() - t0
        fb = features.folder_features([str(p) for p in half_b], net)
        fblur = features.folder_features([str(p) for p in blurred_b], net)
        fid_ab, fid_blur = frechet_distance(fa, fb)[0], frechet_distance(fa, fblur)[0]
        report[f"ratio/{net}"] = {"fid_half_a_half_b": fid_ab, "fid_half_a_blurred_b": fid_blur,
                                  "ratio": fid_blur / fid_ab,
                                  "blur_shift_over_spread": blur_shift_over_spread(fb, fblur, fa),
                                  "features_s_per_half": per_half,
                                  "images_per_half": len(half_a)}
    print(json.dumps(report, indent=1))


def steptime(a):
    """Per-step cost of one feature network under several configs, in one process, the configs'
    steps interleaved (3 at a time) so that they share the machine's load: CPU time (what a quiet
    core needs) and wall, ``--steps`` steps each after one warm-up round."""
    from solargen.dataset import H5Images, dataset_split, open_dataset
    from solargen.models import family

    torch.set_num_threads(1)
    with open_dataset(a.dataset) as f:
        test_fraction = yaml.safe_load(Path(a.configs[0]).read_text())["data"].get("test_fraction", 0.1)
        train = dataset_split(f, test_fraction)["train"]
    trainers = {}
    for path in a.configs:
        c = (yaml.safe_load(Path(path).read_text()).get("feature_train") or {}).get(a.net)
        if c is None:
            raise SystemExit(f"{path}: feature_train has no {a.net!r}")
        data = H5Images(a.dataset, size=c["image_size"], indices=train)
        x = torch.stack([data[i] for i in range(len(data))])
        trainers[path] = (family(c["family"]).trainer(json.loads(_model_json(c)), c["image_size"]), x, c["batch_size"])
    g = torch.Generator().manual_seed(0)
    cpu = {p: 0.0 for p in trainers}
    wall = {p: 0.0 for p in trainers}
    rounds = -(-a.steps // 3)
    for r in range(rounds + 1):
        for p, (t, x, b) in trainers.items():
            c0, w0 = time.process_time(), time.perf_counter()
            for k in range(3):
                t.training_step(x[torch.randint(0, len(x), (b,), generator=g)], r * 3 + k, g)
            if r:  # round 0 is the warm-up
                cpu[p] += time.process_time() - c0
                wall[p] += time.perf_counter() - w0
    first = a.configs[0]
    for p in trainers:
        print(f"{a.net} {p}: CPU {cpu[p] / (3 * rounds):.4f} s/step ({cpu[p] / cpu[first]:.2f}× the first), "
              f"wall {wall[p] / (3 * rounds):.4f} s/step")


def cost(a):
    from scaling import A100_PEAK_BF16, MFU, _count, allreduce_s

    from solargen.models.mae_solar import MAE
    from solargen.models.vicreg_solar import VICReg

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())["feature_train"]
    dev = torch.device("meta")
    print(f"assumptions (benchmarks/scaling.md): A100 bf16 {A100_PEAK_BF16 / 1e12:.0f} TFLOP/s × MFU {MFU}; "
          "fwd + bwd = 3 × fwd; gradients all-reduced in fp32 once per step")
    for name, c in cfg.items():
        s = c["input_size"]
        with dev:
            m = (MAE(c) if c["family"] == "mae_solar" else VICReg(c)).to(dev)  # sin-cos tables are built on the CPU
        x = torch.zeros(8, 1, s, s, device=dev)
        if c["family"] == "mae_solar":
            noise = torch.zeros(8, (s // c["patch_size"]) ** 2, device=dev)
            fwd = _count(lambda: m(x, noise, c["mask_ratio"])) / 8
            per_img = 3 * fwd
        else:
            fwd = _count(lambda: m(x)) / 8
            per_img = 2 * 3 * fwd  # two views
        params = sum(p.numel() for p in m.parameters() if p.requires_grad)
        gpus = 4 * c.get("nodes", 1)
        b = c["batch_size"] / gpus
        t_comp = b * per_img / (A100_PEAK_BF16 * MFU)
        t_step = t_comp + allreduce_s(4 * params, gpus)
        hours = c["train_steps"] * t_step / 3600
        print(f"{name}: fwd {fwd / 1e9:.1f} GFLOP/image, {per_img / 1e9:.1f} GFLOP per image-step, "
              f"{params / 1e6:.1f} M params; {gpus} GPUs × {b:.0f} images: {t_step * 1e3:.0f} ms/step "
              f"(all-reduce {allreduce_s(4 * params, gpus) * 1e3:.1f} ms); {c['train_steps']} steps = "
              f"{hours:.1f} h wall = {hours * gpus:.0f} GPU-h")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("checks")
    s.add_argument("--dataset", required=True)
    s.add_argument("--images", required=True, help="the real PNG folder (results/<name>/data/<data.name>)")
    s.add_argument("--work", required=True)
    s.add_argument("--config", default=str(ROOT / "config/demo.yaml"))
    s.add_argument("--blur-sigma", type=float, default=1.5)
    s.add_argument("--nets", nargs="*", help="train and check only these feature_train networks (default: all)")
    s.add_argument("--reference-nets", nargs="*", default=["random_inception_v3", "efficientnet_lite0"],
                   help="networks whose blur ratios are reported for comparison")
    s.set_defaults(func=checks)
    s = sub.add_parser("steptime")
    s.add_argument("--dataset", required=True)
    s.add_argument("--net", required=True, help="a feature_train network name")
    s.add_argument("--configs", nargs="+", required=True, help="config files whose recipes for --net are compared")
    s.add_argument("--steps", type=int, default=30)
    s.set_defaults(func=steptime)
    s = sub.add_parser("cost")
    s.set_defaults(func=cost)
    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
