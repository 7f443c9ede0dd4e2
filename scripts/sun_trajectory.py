"""How soon does a recipe draw the Sun? Train one model entry in-process and score its EMA samples
with the per-sample criterion (`solargen.evaluate.sun_criterion`) every ``--every`` steps.

The tuning tool behind the tables of docs/training_recipes.md (issue #22): the family's own trainer
and sampler, batches drawn uniformly from ``dataset.h5`` (not `solargen.train.fit`'s loader, so
the trajectory is not the workflow job's step for step), ``--n`` samples at sampling seed 0
quantised to 8 bits as the sample rule's PNGs, against every frame of the data set. One thread.

    python scripts/sun_trajectory.py --dataset results/demo/data/dataset.h5 --model full_projectedgan \\
        --set '{"lr": 0.004}' --steps 600 --every 100 --seed 0

Prints one line per check: passing samples, median distance, the mean signed profile error in
four radial zones (disk centre, disk edge, limb, off-limb) and the spread of the samples'
profiles against the real frames' (a recipe whose samples vary more than the real frames fails
the criterion in its tail).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import yaml

from solargen.dataset import H5Images
from solargen.evaluate.sun_criterion import criterion_from_profiles, radial_profiles
from solargen.io import to_uint8
from solargen.models import family as family_of
from solargen.train import scale_lr

#: Radial bins (of sun_criterion.BINS = 32) of the four zones printed.
ZONES = {"centre": (0, 8), "disk": (8, 16), "limb": (16, 22), "off-limb": (22, 32)}


def grey(x: torch.Tensor) -> np.ndarray:
    """(N, 1, H, W) in [-1, 1] → (N, H, W) in [0, 1] through 8 bits, as the PNGs hold them."""
    return to_uint8(((x[:, 0] + 1) / 2).numpy()) / 255.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="config/demo.yaml")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--model", required=True, help="a key of the config's models")
    ap.add_argument("--set", default="{}", help="JSON object of keys overriding the model entry")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n", type=int, default=32)
    a = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = {**yaml.safe_load(open(a.config))["models"][a.model], **json.loads(a.set)}
    fam = family_of(cfg["family"])
    size = int(cfg["image_size"])
    data = H5Images(a.dataset, size=size, in_memory=True)
    reals = torch.stack([data[i] for i in range(len(data))])
    real_profiles = radial_profiles(grey(reals))
    torch.manual_seed(a.seed)
    trainer = fam.trainer(scale_lr(cfg), size)
    g = torch.Generator().manual_seed(a.seed)
    t0 = time.process_time()
    for step in range(1, a.steps + 1):
        trainer.training_step(reals[torch.randint(len(reals), (cfg["batch_size"],), generator=g)], step - 1, g)
        if step % a.every and step != a.steps:
            continue
        state = {"ema": {k: e.state_dict() for k, e in trainer.ema.items()}}
        y = grey(fam.sample(state, cfg, size, a.n, seed=0, batch_size=16))
        r = criterion_from_profiles(real_profiles, y)
        bias = radial_profiles(y).mean(0) - real_profiles.mean(0)
        zones = " ".join(f"{z} {bias[i:j].mean():+.3f}" for z, (i, j) in ZONES.items())
        print(f"step {step} pass {r['passed']}/{a.n} median_d {r['median_distance']:.3f} tau {r['threshold']:.4f} "
              f"| bias {zones} | profile spread {radial_profiles(y).std(0).mean():.3f} "
              f"(real {real_profiles.std(0).mean():.3f}) | cpu {time.process_time() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
