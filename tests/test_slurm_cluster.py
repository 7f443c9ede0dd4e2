"""The workflow on a real one-node SLURM cluster (Debian slurm-wlm + munge, scripts/slurm_local_cluster.sh).

The test starts the cluster itself (installing the packages first when it runs as root and they
are missing; ~10 s) and stops the daemons it started by PID. It is skipped, saying why, where
that is impossible (not root, no apt, no packages). The profile is profiles/juwels with the
site parts swapped for this machine: CPU partition `cpu`, no account (no accounting here, so
the plugin queries squeue), 2 ranks per node instead of 4 GPUs.

What it shows: a training job submitted by the SLURM executor runs as 2 srun tasks (gloo); a
USR1 sent to the job's steps (what `--signal=USR1@300` does before the time limit) makes it
save and fail; Snakemake re-submits it, the new job resumes, and the final weights equal those
of an uninterrupted 2-rank run.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "slurm_local_cluster.sh"
NAME = "pytest_slurm_cluster"
MODEL = "diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip"
STEPS = 120

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _free_port_pair() -> int:
    for port in range(6900, 7000, 2):
        with socket.socket() as a, socket.socket() as b:
            try:
                a.bind(("", port))
                b.bind(("", port + 1))
                return port
            except OSError:
                continue
    pytest.skip("no free port pair for slurmctld/slurmd")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("a local SLURM cluster needs root (slurmd runs jobs as their users)")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("slurm-wlm is not installed and there is no apt-get to install it")
    d = tmp_path_factory.mktemp("slurm")
    env = {**os.environ, "SOLARGEN_SLURM_DIR": str(d), "SOLARGEN_SLURM_PORT": str(_free_port_pair())}
    r = subprocess.run([str(SCRIPT), "install"], env=env, capture_output=True, text=True, timeout=600)
    if r.returncode:
        pytest.skip(f"could not install slurm-wlm + munge: {r.stderr.strip()[-500:]}")
    r = subprocess.run([str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=120)
    if r.returncode:
        subprocess.run([str(SCRIPT), "stop"], env=env)
        pytest.fail(f"the local SLURM cluster did not start: {r.stderr}\n{(d / 'slurmctld.log').read_text()[-2000:]}")
    yield {**env, "SLURM_CONF": str(d / "slurm.conf")}
    subprocess.run([str(SCRIPT), "stop"], env=env, timeout=60)


def _profile(tmp_path) -> Path:
    """profiles/juwels with this machine's site settings (what a user changes for another cluster)."""
    p = yaml.safe_load((ROOT / "profiles/juwels/config.yaml").read_text())
    p.pop("configfile")
    p.update({"jobs": 4, "retries": 1, "latency-wait": 5, "slurm-logdir": str(tmp_path / "slurm_logs"),
              "slurm-status-command": "squeue", "slurm-init-seconds-before-status-checks": 1,
              "seconds-between-status-checks": 1, "slurm-keep-successful-logs": True})
    p["default-resources"] = {"slurm_partition": "cpu", "nodes": 1, "mem_mb": 1000, "runtime": 10,
                              "cpus_per_task": 1}
    p["set-threads"] = {"train": 1}
    train = p["set-resources"]["train"]
    del train["gres"]
    train.update(tasks_per_node=2, cpus_per_task=1, runtime=10,
                 mpi=train["mpi"].replace("--ntasks-per-node=4", "--ntasks-per-node=2"))
    assert "--ntasks-per-node=2" in train["mpi"]
    p["set-resources"] = {"train": train}
    out = tmp_path / "profile" / "config.yaml"
    out.parent.mkdir()
    out.write_text(yaml.safe_dump(p))
    return out.parent


def _config(tmp_path) -> Path:
    cfg = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    cfg["name"] = NAME
    for r in cfg["runs"].values():
        if r["model"] == MODEL:
            r["train_steps"] = STEPS  # long enough to be interrupted
    cfg["models"][MODEL]["save_every"] = 1000  # the only checkpoint before the end is the signal's
    p = tmp_path / "config.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def _train_job(env) -> str | None:
    out = subprocess.run(["squeue", "-h", "-o", "%i|%T|%k"], env=env, capture_output=True, text=True).stdout
    for line in out.splitlines():
        job, state, comment = line.split("|", 2)
        if comment.startswith("rule_train") and state == "RUNNING":
            return job
    return None


def test_training_job_is_interrupted_resubmitted_and_resumes_exactly(cluster, tmp_path):
    out = ROOT / "results" / NAME
    shutil.rmtree(out, ignore_errors=True)
    model_dir = out / "models" / "diffusion" / MODEL
    target = model_dir / "checkpoints" / f"step{STEPS:07d}.pt"
    log_csv = model_dir / "train_log.csv"
    # Jobs inherit this environment (--export=ALL): no rendezvous settings from the caller.
    env = {k: v for k, v in cluster.items() if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env |= {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    smk = subprocess.Popen([sys.executable, "-m", "snakemake", "--profile", str(_profile(tmp_path)),
                            "--configfile", str(_config(tmp_path)), "--", str(target.relative_to(ROOT))],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           start_new_session=True)
    try:
        signalled, deadline = None, time.time() + 600
        while signalled is None and time.time() < deadline and smk.poll() is None:
            if log_csv.exists() and len(log_csv.read_text().splitlines()) >= 2:  # past step 10
                signalled = _train_job(env)
                if signalled:
                    # What --signal=USR1@300 does before the time limit: USR1 to the job's steps.
                    subprocess.run(["scancel", "--signal=USR1", signalled], env=env, check=True)
            time.sleep(0.2)
        log, _ = smk.communicate(timeout=600)
    finally:
        if smk.poll() is None:
            os.killpg(smk.pid, 9)
    assert smk.returncode == 0, log[-6000:]
    assert signalled, "the training job was never seen running"
    assert "stopped by signal 10" in log, log[-4000:]  # the failed attempt's log, shown by Snakemake
    submitted = [line for line in log.splitlines() if "has been submitted" in line and "rule_train" in line]
    assert len(submitted) == 2, submitted  # the interrupted job and its re-submission
    saved = sorted(int(p.stem[4:]) for p in target.parent.glob("step*.pt"))
    assert len(saved) == 2 and 10 <= saved[0] < STEPS and saved[1] == STEPS, saved
    logged = [int(line.split(",")[0]) for line in log_csv.read_text().splitlines()[1:]]
    assert logged == list(range(10, STEPS + 1, 10)), logged  # no lost, no repeated steps

    from solargen.train import load_checkpoint

    final = load_checkpoint(target)
    assert final["extra"]["world_size"] == 2 and len(final["rng"]["ranks"]) == 2
    # The same training, 2 ranks, never interrupted.
    cfg = yaml.safe_load(_config(tmp_path).read_text())
    model = {k: v for k, v in cfg["models"][MODEL].items() if k not in ("family", "image_size", "nodes")}
    args = [sys.executable, "-m", "solargen", "train", "--family", "diffusion", "--model-json",
            json.dumps(model, sort_keys=True), "--dataset", str(out / "data" / "dataset.h5"),
            "--image-size", str(cfg["models"][MODEL]["image_size"]), "--steps", str(STEPS),
            "--ckpt-dir", str(tmp_path / "straight"), "--seed", str(cfg["seed"]), "--device", "cpu"]
    procs = [subprocess.Popen(args, env={**env, "RANK": str(r), "WORLD_SIZE": "2", "LOCAL_RANK": str(r),
                                         "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29733"},
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err[-3000:]
    straight = load_checkpoint(tmp_path / "straight" / target.name)
    for part in ("modules", "ema"):
        for k, v in straight[part]["unet"].items():
            assert torch.equal(v, final[part]["unet"][k]), (part, k)
    shutil.rmtree(out, ignore_errors=True)
