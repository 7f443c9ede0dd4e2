"""A stand-in for the SLURM commands snakemake-executor-plugin-slurm calls, for tests without a cluster.

Installed as symlinks named sbatch, srun, squeue, sacctmgr, scontrol, sinfo (`install`), it
behaves by the name it is called under:

- ``sbatch``: records its argv in ``$FAKE_SLURM_DIR/sbatch.jsonl``, prints a job id and runs
  the ``--wrap`` command in the background as the batch script would, with the allocation's
  SLURM_* variables (nodes × tasks per node, cpus per task) set;
- ``srun``: starts the step's tasks (``-n``, ``--ntasks-per-node``, or SLURM_NTASKS) with
  SLURM_PROCID/SLURM_LOCALID, like one task per GPU on one node; the first failing task
  stops the others;
- ``squeue``: ``jobid|STATE`` lines for the plugin's status query;
- ``sacctmgr``: the account ``$FAKE_SLURM_ACCOUNT``; ``scontrol``: ``show hostnames`` and
  ``show config`` (MinJobAge); ``sinfo``: nothing.

Only what the plugin uses is implemented; the real thing is tested by tests/test_slurm_cluster.py.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

#: sbatch/srun options that take a separate value (the plugin writes `-t 60`, `-A 'x'`, ...).
VALUED = {"-A", "-p", "-t", "-C", "-D", "-J", "-o", "-e", "-n", "-N", "-c", "--job-name", "--output",
          "--comment", "--ntasks", "--nodes", "--mem", "--mem-per-cpu", "--cpus-per-task", "--partition",
          "--account", "--time", "--clusters"}


def state_dir() -> Path:
    d = Path(os.environ["FAKE_SLURM_DIR"])
    d.mkdir(parents=True, exist_ok=True)
    return d


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """Options (long names, without dashes; short ones as given) and the remaining command."""
    opts, i = {}, 0
    while i < len(argv):
        a = argv[i]
        if not a.startswith("-"):
            break
        if "=" in a and a.startswith("--"):
            k, v = a[2:].split("=", 1)
        elif a in VALUED:
            k, v = a.lstrip("-"), argv[i + 1]
            i += 1
        elif len(a) > 2 and a[:2] in ("-n", "-N", "-c", "-t", "-p", "-A") and not a.startswith("--"):
            k, v = a[1], a[2:]
        else:
            k, v = a.lstrip("-"), True
        opts[k] = v
        i += 1
    return opts, argv[i:]


def _write(path: Path, text: str) -> None:
    """Replace ``path`` atomically: squeue and other sbatch calls read these files concurrently."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def sbatch(argv):
    d = state_dir()
    opts, _ = parse(argv)
    # Snakemake submits several jobs at once: one sbatch at a time takes an id and logs its call.
    with open(d / "sbatch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with open(d / "sbatch.jsonl", "a") as f:
            f.write(json.dumps(argv) + "\n")
        counter = d / "next_id"
        job = int(counter.read_text()) if counter.exists() else 1000 + os.getpid() % 5000 * 4
        _write(counter, str(job + 1))
    nodes = int(opts.get("nodes", opts.get("N", 1)))
    per_node = opts.get("ntasks-per-node")
    ntasks = nodes * int(per_node) if per_node else int(opts.get("ntasks", opts.get("n", 1)))
    env = {**os.environ, "SLURM_JOB_ID": str(job), "SLURM_JOBID": str(job), "SLURM_NNODES": str(nodes),
           "SLURM_NTASKS": str(ntasks), "SLURM_NPROCS": str(ntasks), "SLURM_JOB_NODELIST": "localhost",
           "SLURM_CPUS_PER_TASK": str(opts.get("cpus-per-task", 1)), "SLURM_PROCID": "0", "SLURM_LOCALID": "0"}
    if per_node:
        env["SLURM_NTASKS_PER_NODE"] = str(per_node)
    _write(d / f"{job}.state", "RUNNING")
    _write(d / f"{job}.name", str(opts.get("job-name", "")))
    log = str(opts.get("output", d / f"{job}.log")).replace("%j", str(job))
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    # The batch script runs detached, like a job on a cluster; --run marks it done when it ends.
    subprocess.Popen([sys.executable, __file__, "--run", str(job), str(opts["wrap"]), log],
                     env=env, cwd=opts.get("D", opts.get("chdir", os.getcwd())), start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(job)


def run_batch(job, script, log):
    with open(log, "w") as out:
        rc = subprocess.run(["bash", "-c", script], stdout=out, stderr=subprocess.STDOUT).returncode
    _write(state_dir() / f"{job}.state", "COMPLETED" if rc == 0 else "FAILED")


def srun(argv):
    opts, cmd = parse(argv)
    # Like srun: -n, else --ntasks-per-node × nodes, else the allocation's SLURM_NTASKS (which the
    # plugin's job step removes before running a rule), else one task.
    per_node = opts.get("ntasks-per-node")
    nodes = int(opts.get("nodes", opts.get("N", os.environ.get("SLURM_NNODES", 1))))
    ntasks = int(opts.get("ntasks", opts.get("n", int(per_node) * nodes if per_node else
                                                 os.environ.get("SLURM_NTASKS", 1))))
    if len(cmd) == 1:  # the jobstep passes one shell string
        cmd = ["bash", "-c", cmd[0]]
    procs = []
    for r in range(ntasks):
        env = {**os.environ, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r), "SLURM_NTASKS": str(ntasks),
               "SLURM_STEP_NUM_TASKS": str(ntasks)}
        procs.append(subprocess.Popen(cmd, env=env))
    rc = 0
    while procs:
        for p in list(procs):
            if p.poll() is not None:
                procs.remove(p)
                if p.returncode and not rc:
                    rc = p.returncode
                    for q in procs:  # --kill-on-bad-exit
                        q.terminate()
        time.sleep(0.05)
    sys.exit(rc)


def squeue(argv):
    d = state_dir()
    for f in sorted(d.glob("*.state")):
        print(f"{f.stem}|{f.read_text().strip()}")


def scontrol(argv):
    if argv[:2] == ["show", "hostnames"]:
        print("localhost")
    elif argv[:2] == ["show", "config"]:
        print("MinJobAge               = 600 sec")


def install(bin_dir: str | Path, record_dir: str | Path) -> dict:
    """Symlink the fake commands into ``bin_dir``; returns the environment to run under."""
    bin_dir = Path(bin_dir)
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "fake_slurm"
    script.write_text(f"#!{sys.executable}\n" + Path(__file__).read_text())
    script.chmod(0o755)
    for name in ("sbatch", "srun", "squeue", "sacctmgr", "scontrol", "sinfo"):
        (bin_dir / name).unlink(missing_ok=True)
        (bin_dir / name).symlink_to(script)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_SLURM_DIR": str(record_dir)}


def recorded(record_dir: str | Path) -> list[list[str]]:
    """Every sbatch argv recorded so far."""
    p = Path(record_dir) / "sbatch.jsonl"
    return [json.loads(line) for line in p.read_text().splitlines()] if p.exists() else []


def main():
    name = Path(sys.argv[0]).name
    args = sys.argv[1:]
    if args[:1] == ["--run"]:
        run_batch(*args[1:4])
    elif name == "sbatch":
        sbatch(args)
    elif name == "srun":
        srun(args)
    elif name == "squeue":
        squeue(args)
    elif name == "sacctmgr":
        print(os.environ.get("FAKE_SLURM_ACCOUNT", "testproject"))
    elif name == "scontrol":
        scontrol(args)
    # sinfo and anything else: nothing to report


if __name__ == "__main__":
    main()
