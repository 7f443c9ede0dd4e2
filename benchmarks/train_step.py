"""CPU seconds per training step: the layout the trainers use on the CPU (channels-last
discriminators and U-Net) against the NCHW layout they used before (the reference to beat).

    python benchmarks/train_step.py [--config config/demo.yaml] [--models full_projectedgan stylegan2 ...]
                                    [--steps 20] [--repeats 3] [--threads 1]

For each model entry of the config: two trainers from the same seed, one as `solargen.train.fit`
gets it on the CPU, one whose modules are put back in NCHW (``contiguous_format``) before the
first step; random batches in [-1, 1] of the entry's batch size (a step's cost does not depend on
the pixels); a warm-up of 3 steps each, then ``--repeats`` rounds of ``--steps`` steps, the two
layouts alternating round by round; median seconds per step. Like `fit`, the process keeps freed
memory on the heap (`solargen.memory.keep_freed_memory`) for both, so only the layout differs.
The last line is key=value pairs: ``<model>_ratio`` = channels-last / NCHW seconds per step.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import yaml

from solargen.memory import keep_freed_memory
from solargen.models import family as family_of
from solargen.train import scale_lr

DEFAULT_MODELS = ["full_projectedgan", "stylegan2_discriminator", "stylegan2",
                  "diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip"]


def trainer(cfg: dict, nchw: bool):
    fam = family_of(cfg["family"])
    torch.manual_seed(0)
    tr = fam.trainer(scale_lr(cfg), int(cfg["image_size"]))
    if nchw:
        for m in tr.modules.values():
            m.to(memory_format=torch.contiguous_format)
        for e in getattr(tr, "ema", {}).values():
            e.model.to(memory_format=torch.contiguous_format)
    return tr


def seconds_per_step(tr, x, g, start: int, steps: int) -> float:
    t = time.perf_counter()
    for s in range(steps):
        tr.training_step(x, start + s, g)
    return (time.perf_counter() - t) / steps


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="config/demo.yaml")
    ap.add_argument("--models", nargs="+", default=DEFAULT_MODELS)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    keep_freed_memory()
    models = yaml.safe_load(open(a.config))["models"]
    out = {}
    for name in a.models:
        cfg = models[name]
        size, b = int(cfg["image_size"]), int(cfg["batch_size"])
        x = torch.rand((b, 1, size, size), generator=torch.Generator().manual_seed(0)) * 2 - 1
        runs = {}
        for layout in ("nchw", "channels_last"):
            tr = trainer(cfg, nchw=layout == "nchw")
            g = torch.Generator().manual_seed(0)
            seconds_per_step(tr, x, g, 0, 3)
            runs[layout] = [tr, g, []]
        for r in range(a.repeats):
            for layout, (tr, g, times) in runs.items():
                times.append(seconds_per_step(tr, x, g, 3 + r * a.steps, a.steps))
        old, new = (statistics.median(runs[k][2]) for k in ("nchw", "channels_last"))
        print(f"{name}: NCHW {old:.4f} s/step, channels-last {new:.4f} s/step (batch {b}, {size} px)", flush=True)
        out[f"{name}_ratio"] = new / old
    print(" ".join(f"{k}={v:.3f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
