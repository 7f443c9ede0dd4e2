"""The JUWELS and the generic SLURM profiles through the real SLURM executor plugin, against fake SLURM commands.

snakemake-executor-plugin-slurm builds the sbatch lines; tests/slurm/fake_slurm.py records them
and runs the jobs here (srun starts one process per task, so training really runs as 4 ranks).
The exact flags of each rule are asserted: they are what JUWELS receives.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "slurm"))
import fake_slurm  # noqa: E402

NAME = "pytest_slurm_fake"
MODEL = "diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip"
#: Flags that vary per submission (run id, log path, wildcards, the job itself) and are not asserted.
VARYING = ("--job-name", "--output", "--comment", "--wrap", "-D")


def _flags(argv):
    """The asserted part of an sbatch argv: every option, values attached, varying ones dropped."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if a in ("-A", "-p", "-t", "-C", "-D", "--job-name", "--output", "--comment"):
            if a not in VARYING:
                out.append(f"{a} {argv[i + 1]}")
            i += 2
            continue
        if not a.startswith(VARYING):
            out.append(a)
        i += 1
    return sorted(out)


def _rule(argv):
    return argv[argv.index("--comment") + 1].split("_wildcards")[0].removeprefix("rule_")


@pytest.fixture
def fake_env(tmp_path):
    env = {**os.environ, **fake_slurm.install(tmp_path / "bin", tmp_path / "state"),
           "JUWELS_ACCOUNT": "testproject", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT / "src")}
    env.pop("JUWELS_PARTITION", None)  # unset: the profile's default partition, booster
    env["PATH"] = env["PATH"].replace(":", f":{Path(sys.executable).parent}:", 1)  # fakes, then the venv
    yield env
    shutil.rmtree(ROOT / "results" / NAME, ignore_errors=True)


def _submit(profile, tmp_path, env):
    """Run the CI study up to one checkpoint under `profile`; {rule: [asserted sbatch flags, ...]}."""
    target = f"results/{NAME}/models/diffusion/{MODEL}/checkpoints/step0000020.pt"
    r = subprocess.run([sys.executable, "-m", "snakemake", "--profile", profile,
                        "--configfile", "config/ci.yaml", "--config", f"name={NAME}",
                        "--retries", "0", "--latency-wait", "5", "--slurm-logdir", str(tmp_path / "logs"),
                        "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "1",
                        "--seconds-between-status-checks", "1", "--slurm-keep-successful-logs", "--", target],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    by_rule = {}
    for argv in fake_slurm.recorded(tmp_path / "state"):
        by_rule.setdefault(_rule(argv), []).append(_flags(argv))
    return by_rule, ROOT / target


@pytest.mark.slow
def test_juwels_profile_submits_exact_sbatch_flags_and_trains_on_four_ranks(tmp_path, fake_env):
    by_rule, target = _submit("profiles/juwels", tmp_path, fake_env)
    assert set(by_rule) == {"acquire_synthetic", "calibrate", "split", "normalisation_constants", "dataset", "train"}
    cpu = ["--cpus-per-task=48", "--export=ALL", "--nodes=1", "--ntasks=1", "--parsable", "-A testproject",
           "-p booster", "-t 60"]
    for rule in ("acquire_synthetic", "calibrate", "split", "normalisation_constants", "dataset"):
        for flags in by_rule[rule]:
            assert flags == sorted(cpu), (rule, flags)
    # Training: whole GPU nodes, one task per GPU started by srun (the plugin's mpi path: no
    # --ntasks-per-gpu, which made plugin < 2.7.1 run the job once per GPU), 12 cores per rank,
    # USR1 five minutes before the 24 h limit.
    assert by_rule["train"] == [sorted(["--cpus-per-task=12", "--export=ALL", "--gres=gpu:4", "--nodes=1",
                                        "--ntasks-per-node=4", "--parsable", "--signal=USR1@300",
                                        "-A testproject", "-p booster", "-t 1440"])]
    from solargen.train import load_checkpoint

    state = load_checkpoint(target)
    assert state["extra"]["world_size"] == 4 and len(state["rng"]["ranks"]) == 4


def test_unset_account_stops_a_real_run_before_any_job_and_warns_a_dry_run(tmp_path, fake_env):
    env = {k: v for k, v in fake_env.items() if k != "JUWELS_ACCOUNT"}
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/juwels"], cwd=ROOT,
                         env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]  # planning (CI) needs no account
    assert "slurm_account needs $JUWELS_ACCOUNT" in dry.stdout + dry.stderr
    r = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/juwels", "--configfile",
                        "config/ci.yaml", "--config", f"name={NAME}"], cwd=ROOT, env=env, capture_output=True,
                       text=True)
    assert r.returncode != 0
    assert "slurm_account needs $JUWELS_ACCOUNT" in r.stdout + r.stderr
    assert not fake_slurm.recorded(tmp_path / "state")  # nothing was submitted


def test_download_rules_stay_on_the_login_node(fake_env):
    """Compute nodes have no internet: a download rule must be local under the JUWELS profile."""
    r = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/juwels"], cwd=ROOT,
                       env=fake_env, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-3000:]
    jobs = [line.split()[:2] for line in r.stdout.splitlines() if line.startswith(("rule ", "localrule "))]
    remote = {name.rstrip(":") for kind, name in jobs if kind == "rule"}
    assert "train" in remote
    bad = {n for n in remote if n.startswith(("download_", "acquire_")) and n != "acquire_synthetic"}
    assert not bad, f"download rules submitted to compute nodes: {bad}"
    # Every data-parallel training job asks for the model's nodes, four ranks each.
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert cfg["models"]["diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip"]["nodes"] == 16
    assert "nodes=16" in r.stdout and "tasks_per_node=4" in r.stdout


#: The generic profile's site variables; the tests set them explicitly.
GENERIC = ("SOLARGEN_SLURM_ACCOUNT", "SOLARGEN_SLURM_PARTITION", "SOLARGEN_SLURM_GPU_PARTITION",
           "SOLARGEN_GPUS_PER_NODE", "SOLARGEN_CPUS_PER_NODE", "SOLARGEN_SLURM_CONSTRAINT", "SOLARGEN_GPU_GRES",
           "SOLARGEN_TRAIN_RUNTIME")


@pytest.fixture
def generic_env(fake_env):
    env = {k: v for k, v in fake_env.items() if k not in GENERIC and k != "JUWELS_ACCOUNT"}
    # A site unlike JUWELS: 2 GPUs and 8 cores per node, GPU jobs on their own partition with a
    # constraint, CPU jobs on the cluster's default partition (no -p).
    env.update(SOLARGEN_SLURM_ACCOUNT="testproject", SOLARGEN_GPUS_PER_NODE="2", SOLARGEN_CPUS_PER_NODE="8",
               SOLARGEN_SLURM_GPU_PARTITION="gpu", SOLARGEN_SLURM_CONSTRAINT="a100&ib")
    return env


@pytest.mark.slow
def test_generic_slurm_profile_submits_exact_sbatch_flags_and_trains_on_two_ranks(tmp_path, generic_env):
    by_rule, target = _submit("profiles/slurm", tmp_path, generic_env)
    assert set(by_rule) == {"acquire_synthetic", "calibrate", "split", "normalisation_constants", "dataset", "train"}
    cpu = ["--cpus-per-task=8", "--export=ALL", "--nodes=1", "--ntasks=1", "--parsable", "-A testproject", "-t 60"]
    for rule in ("acquire_synthetic", "calibrate", "split", "normalisation_constants", "dataset"):
        for flags in by_rule[rule]:
            assert flags == sorted(cpu), (rule, flags)
    # One rank per GPU, the node's cores shared among them, the constraint quoted for the shell.
    assert by_rule["train"] == [sorted(["--cpus-per-task=4", "--export=ALL", "--gres=gpu:2", "--nodes=1",
                                        "--ntasks-per-node=2", "--parsable", "--signal=USR1@300", "-C a100&ib",
                                        "-A testproject", "-p gpu", "-t 1440"])]
    from solargen.train import load_checkpoint

    state = load_checkpoint(target)
    assert state["extra"]["world_size"] == 2 and len(state["rng"]["ranks"]) == 2


def test_generic_profile_defaults_and_unset_account(tmp_path, generic_env):
    """Unset optional variables fall back to defaults (never a literal $VAR); no account, no job."""
    env = {k: v for k, v in generic_env.items() if k not in GENERIC}
    dry = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/slurm"], cwd=ROOT,
                         env=env, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert "slurm_account needs $SOLARGEN_SLURM_ACCOUNT" in dry.stdout + dry.stderr
    assert "JUWELS" not in dry.stdout + dry.stderr
    train = [line for line in dry.stdout.splitlines() if "tasks_per_node=" in line]
    assert train and all("gres=gpu:4" in line and "tasks_per_node=4" in line and "cpus_per_task=12" in line
                         and "runtime=1440" in line and "-C" not in line for line in train)
    assert "$SOLARGEN" not in dry.stdout.replace("$SOLARGEN_SLURM_ACCOUNT", "")
    r = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", "--configfile",
                        "config/ci.yaml", "--config", f"name={NAME}"], cwd=ROOT, env=env, capture_output=True,
                       text=True)
    assert r.returncode != 0
    assert "slurm_account needs $SOLARGEN_SLURM_ACCOUNT" in r.stdout + r.stderr
    assert not fake_slurm.recorded(tmp_path / "state")
