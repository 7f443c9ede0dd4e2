"""scripts/gpu_check.sh without a GPU: every family at the tiny size, and 2 gloo ranks against 1."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_cpu_path_trains_resumes_samples_every_family_and_compares_ranks(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    r = subprocess.run(["bash", "scripts/gpu_check.sh", "--json", str(tmp_path / "check.json")], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    last = dict(kv.split("=", 1) for kv in r.stdout.strip().splitlines()[-1].split())
    assert last["device"] == "cpu" and last["scale"] == "tiny" and last["ddp_ok"] == "true"
    assert last["families_ok"] == "diffusion,msdgan,projectedgan,stylegan2"
    out = json.loads((tmp_path / "check.json").read_text())
    trained = {r["family"]: r for r in out["results"] if r["role"] == "train"}
    for fam, res in trained.items():
        assert res["images_per_s_per_gpu"] > 0 and res["sampled"] == 2, fam
        assert 0 <= res["check_spectral_distance"] < float("inf"), fam
        assert all(v == v for v in res["loss"].values()), fam  # finite losses after the resumed steps
    # The 2-rank run equals the 1-rank run up to float rounding; the half-batch control does not.
    assert out["ddp"]["ddp_rel_diff"] < 1e-4 < out["ddp"]["half_batch_rel_diff"]


def test_memory_watch_kills_a_child_over_the_limit_and_says_so(tmp_path):
    """A paper-scale family that would not fit must be stopped and reported, not take the machine."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "scripts/gpu_check.py", "--families", "diffusion", "--ranks", "1",
                        "--rss-limit-gib", "0.05", "--no-sample"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1
    assert "killed: resident memory passed the 0.05 GiB limit" in r.stdout
    assert r.stdout.strip().splitlines()[-1].split()[4] == "families_ok=none"
    # The paper's 1024 px UNet under a 1 GiB limit: stopped by the watch or the address-space cap.
    r = subprocess.run([sys.executable, "scripts/gpu_check.py", "--scale", "paper", "--families", "diffusion",
                        "--batch", "1", "--rss-limit-gib", "1", "--no-sample", "--json", str(tmp_path / "c.json")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1
    (res,) = json.loads((tmp_path / "c.json").read_text())["results"]
    assert res["error"].startswith("killed:") and res["watched_peak_rss_gib"] < 2.5


def test_unet_memory_count_on_the_meta_device():
    r = subprocess.run([sys.executable, "scripts/gpu_check.py", "--unet-memory", "--scale", "tiny"], cwd=ROOT,
                       env={**os.environ, "CUDA_VISIBLE_DEVICES": ""}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    m = {k: float(v) for k, v in (kv.split("=") for kv in r.stdout.split())}
    assert 0 < m["kept_gib_checkpointed"] < m["kept_gib_plain"] / 2
    assert m["largest_step_gib"] < m["kept_gib_plain"]
