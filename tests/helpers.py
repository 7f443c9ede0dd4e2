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
