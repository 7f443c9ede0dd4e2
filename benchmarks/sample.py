"""Sampling cost vs quality of a trained diffusion checkpoint: DDPM-250, DDIM-50, DDIM-25.

Sampling dominates diffusion evaluation, so users choose a sampler by what it costs and what it
reaches. For each sampler this draws N images from the same checkpoint, times them, and scores
them against the real set (FID/KID on the configured feature networks, spectral distances).

    python benchmarks/sample.py                       # uses the demo's trained model (make demo)
    python benchmarks/sample.py --checkpoint ... --model-json ... --real ...

Last line: ``ddpm250_img_s=… ddim50_img_s=… ddim25_img_s=…`` plus the FID/spectral distance each reached.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from PIL import Image

from solargen.dataset import to_uint8
from solargen.evaluate.distances import frechet_distance
from solargen.evaluate.features import folder_features
from solargen.evaluate.images import load_images
from solargen.evaluate.spectrum import radial_power_spectrum, spectral_distance
from solargen.io import image_files
from solargen.models.diffusion.family import sample
from solargen.train import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
SAMPLERS = [("ddpm", 250), ("ddim", 50), ("ddim", 25)]


def demo_defaults():
    cfg = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    model = "diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip"
    m = cfg["models"][model]
    steps = max(r["train_steps"] for r in cfg["runs"].values() if r["model"] == model)
    out = ROOT / "results" / cfg["name"]
    return {"checkpoint": out / f"models/diffusion/{model}/checkpoints/step{steps:07d}.pt",
            "model": {k: v for k, v in m.items() if k not in ("family", "image_size")},
            "image_size": m["image_size"], "real": out / "data" / cfg["data"]["name"]}


def main():
    d = demo_defaults()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=d["checkpoint"])
    p.add_argument("--model-json", default=json.dumps(d["model"]))
    p.add_argument("--image-size", type=int, default=d["image_size"])
    p.add_argument("--real", default=d["real"])
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--net", default="efficientnet_lite0")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    a = p.parse_args()
    if not Path(a.checkpoint).exists():
        raise SystemExit(f"{a.checkpoint}: no checkpoint; run `make demo` first or pass --checkpoint")
    torch.set_num_threads(a.threads)
    cfg = json.loads(a.model_json)
    state = load_checkpoint(a.checkpoint)
    real_feats = folder_features(image_files(a.real), a.net)
    _, p_real = radial_power_spectrum(load_images(a.real))
    results = {}
    for sampler, steps in SAMPLERS:
        t0 = time.perf_counter()
        x = sample(state, cfg, a.image_size, a.n, steps=steps, sampler=sampler, seed=0, batch_size=a.n)
        dt = time.perf_counter() - t0
        y = ((x[:, 0] + 1) / 2).numpy()
        with tempfile.TemporaryDirectory() as tmp:
            for i, im in enumerate(y):
                Image.fromarray(to_uint8(im)).save(Path(tmp) / f"out_{i}.png")
            fid, _ = frechet_distance(real_feats, folder_features(image_files(tmp), a.net))
            _, p_fake = radial_power_spectrum(load_images(tmp))
        key = f"{sampler}{steps}"
        results[key] = {"img_s": a.n / dt, "fid": fid,
                        "sd": spectral_distance(p_real.mean(0), p_fake.mean(0)),
                        "sd_high": spectral_distance(p_real.mean(0), p_fake.mean(0), (0.5, 1.0))}
        r = results[key]
        print(f"{key:8s} {dt:7.1f} s  {r['img_s']:.3f} img/s  FID({a.net})={fid:.2f}  "
              f"spectral={r['sd']:.3f}  spectral_high={r['sd_high']:.3f}", flush=True)
    print(" ".join(f"{k}_img_s={v['img_s']:.4g}" for k, v in results.items()) + " " +
          " ".join(f"{k}_fid={v['fid']:.4g} {k}_spectral={v['sd']:.4g}" for k, v in results.items()))


if __name__ == "__main__":
    main()
