"""What the workflow tests share: running Snakemake as a user would, and edited CI configs."""

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def smk(*args, cwd=ROOT, env=None, check=True):
    """``snakemake <args>`` on this repository's Snakefile (from any working directory) with this
    interpreter's environment; with ``check`` a failure raises with the end of its output."""
    e = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HF_HUB_OFFLINE": "1",
         "PYTHONPATH": str(ROOT / "src"), **(env or {})}
    r = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), *args], cwd=cwd,
                       capture_output=True, text=True, env=e)
    if check and r.returncode:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{r.stdout[-4000:]}\n{r.stderr[-4000:]}")
    return r


def ci_config(tmp_path, edit, name="cfg.yaml"):
    """config/ci.yaml with ``edit(cfg)`` applied, written under ``tmp_path``."""
    cfg = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    edit(cfg)
    p = tmp_path / name
    p.write_text(yaml.safe_dump(cfg))
    return p


def smooth_fields(n=8, size=32, seed=0):
    """(n, 1, size, size) smooth random torch fields in [-0.9, 0.9], structure at all scales down to ~4 px."""
    import torch
    import torch.nn.functional as F

    z = torch.randn(n, 1, size, size, generator=torch.Generator().manual_seed(seed))
    k = torch.tensor([1.0, 4, 6, 4, 1])
    k = (k[:, None] * k[None]) / 256
    for _ in range(2):
        z = F.conv2d(z, k[None, None], padding=2)
    return 0.9 * z / z.abs().amax(dim=(1, 2, 3), keepdim=True)


def png_folder(path, imgs):
    """Images in [0, 1] as the study's 8-bit ``out_<i>.png`` folder at ``path``."""
    import numpy as np
    from PIL import Image

    path.mkdir()
    for i, im in enumerate(imgs):
        Image.fromarray((np.clip(im, 0, 1) * 255).astype(np.uint8)).save(path / f"out_{i}.png")
    return path


class Toy:
    """A minimal trainable for the training loop: a linear model regressing seeded noise.
    ``touch_global_rng``: also draw from torch's global RNG, which a resume must restore too."""

    def __init__(self, n_in=4, touch_global_rng=False):
        import torch

        from solargen.models.ema import EMA

        torch.manual_seed(0)
        self.net = torch.nn.Linear(n_in, 1)
        self.modules = {"net": self.net}
        self.optimizers = {"adam": torch.optim.Adam(self.net.parameters(), lr=1e-2)}
        self.ema = {"net": EMA(self.net, 0.9)}
        self.touch_global_rng = touch_global_rng
        self.device = torch.device("cpu")

    def training_step(self, batch, step, generator):
        import torch

        noise = torch.randn(batch.shape[0], 1, generator=generator)
        if self.touch_global_rng:
            noise = noise + torch.rand(()) * 0
        loss = ((self.net(batch.flatten(1)) - noise) ** 2).mean()
        self.optimizers["adam"].zero_grad()
        loss.backward()
        self.optimizers["adam"].step()
        self.ema["net"].update(self.net)
        return {"loss": loss.item()}
