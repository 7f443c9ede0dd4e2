"""Does every family train, checkpoint, resume, sample and evaluate on this machine, how fast, in how much memory?

Driven by scripts/gpu_check.sh (see there for the modes). Each (family, precision) runs in a
child process of its own so that its peak memory is its own: the child builds the family's
trainer from the config (`config/config.yaml` + the overlay `config/smoke_paper.yaml` at paper
scale, `config/ci.yaml` at the tiny size), writes a synthetic uint8 ``dataset.h5``, trains one
step through `solargen.train.fit` (saving a checkpoint), resumes from it for ``--steps`` more
(timed: images/s per GPU), then samples two images from the EMA weights and scores their power
spectrum against two real frames (`solargen.evaluate.training_check.TrainingCheck`, diffusion
with 2 sampling steps). Data parallel: msdgan without noise or dropout (a step is then a
deterministic function of the batch) on 2 ranks through torchrun (NCCL on GPUs, gloo on the CPU)
against 1 rank on the same global batch, and against 1 rank on half of it (what a missing
all-reduce would train): the 2-rank weights must be > 100× closer to the 1-rank ones than the
half batch's are.

The child's memory is watched: one that passes ``--rss-limit-gib`` resident (CPU) is killed and
reported as needing more, so a paper-scale family never takes a shared machine down.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
sys.path.insert(0, str(SRC))

#: The model of each family the check trains (names in the config files).
MODELS = {"diffusion": "diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip", "projectedgan": "full_projectedgan",
          "stylegan2": "stylegan2", "msdgan": "msdgan"}
#: Address space of a torch process beyond its resident memory (libraries, thread stacks; ~2.9 GiB
#: measured here): the cap is the resident limit plus this.
AS_OVERHEAD_GIB = 3.0
#: msdgan as a deterministic function of its batch, for the rank comparison.
DETERMINISTIC = {"noise": False, "dropout": 0.0}


def model_configs(scale: str) -> dict:
    """{family: (cfg, image_size, per-GPU batch)} of the check's models at ``scale`` (paper | tiny)."""
    import yaml

    if scale == "tiny":
        models = yaml.safe_load((ROOT / "config/ci.yaml").read_text())["models"]
        overlay = {}
    else:
        models = yaml.safe_load((ROOT / "config/config.yaml").read_text())["models"]
        overlay = yaml.safe_load((ROOT / "config/smoke_paper.yaml").read_text())["models"]
    out = {}
    for fam, name in MODELS.items():
        cfg = {**models[name], **overlay.get(name, {})}
        size = int(cfg.pop("image_size"))
        cfg.pop("family", None)
        cfg.pop("nodes", None)
        # The per-GPU batch: the paper's global batch over its GPUs (overlay), tiny: the CI batch.
        out[fam] = (cfg, size, int(cfg.get("per_gpu_batch", cfg["batch_size"])))
        cfg.pop("per_gpu_batch", None)
    return out


def write_dataset(path: Path, size: int, n: int, channels=()) -> None:
    """``n`` uint8 frames of a limb-darkened disc with structure (the study's storage)."""
    import h5py
    import numpy as np

    from solargen.dataset import channel_key

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    r = np.hypot(xx, yy) / 0.4
    disc = np.where(r < 1, 0.6, 0.25 * np.exp(-(np.clip(r, 1, None) - 1) * 6))
    with h5py.File(path, "w") as f:
        for key in ["images"] + [channel_key(w) for w in channels]:
            y = disc * (1 + 0.2 * rng.standard_normal((n, size, size)))
            f.create_dataset(key, data=np.clip(np.rint(y * 255), 0, 255).astype(np.uint8), chunks=(1, size, size))
        f.attrs["quantisation"] = "uint8"


def _peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def child(a) -> None:
    """One family at one precision (possibly as one rank of a torchrun job); prints a JSON line."""
    import torch

    from solargen import distributed
    from solargen.dataset import H5Images
    from solargen.evaluate.training_check import TrainingCheck
    from solargen.models import family
    from solargen.train import fit, load_checkpoint

    torch.set_num_threads(a.threads)
    cfg, size, batch = model_configs(a.scale)[a.family]
    if a.deterministic:
        cfg.update(DETERMINISTIC)
    cfg["precision"] = a.precision
    fam = family(a.family)
    work = Path(a.work)
    data_path = work / f"dataset_{size}.h5"
    data = H5Images(data_path, size=size, east_west_flip=True, channels=fam.channels(cfg))
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ctx, device = distributed.init(device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = a.tf32
        torch.cuda.reset_peak_memory_stats(device)
    torch.manual_seed(0)
    trainer = fam.trainer(cfg, size, device=device)
    global_batch = a.global_batch or (a.batch or batch) * ctx.world_size
    ckpt = Path(a.ckpt)
    kw = dict(batch_size=global_batch, ckpt_dir=ckpt, save_every=1, seed=0, log_csv=ckpt / "log.csv", log_every=1,
              dist=ctx, precision=a.precision, compile=a.compile, workers=0)
    t = time.perf_counter()
    fit(trainer, data, total_steps=1, **kw)  # warm-up (and compilation), saves step 1
    first = time.perf_counter() - t
    del trainer  # only one model in memory at a time: what a resumed job holds
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    resumed = fam.trainer(cfg, size, device=device)  # a fresh process's view: weights from the file
    t = time.perf_counter()
    fit(resumed, data, total_steps=1 + a.steps, **{**kw, "save_every": 1 + a.steps})
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    dt = time.perf_counter() - t
    if ctx.rank:
        distributed.shutdown()
        return
    import csv

    rows = list(csv.DictReader(open(ckpt / "log.csv")))
    skip = ("step", "images_per_s", "gpu_mem_gb")
    loss = {k: float(v) for k, v in rows[-1].items() if k not in skip and not k.startswith("check_") and v}
    out = {"family": a.family, "precision": a.precision, "compile": a.compile, "size": size, "device": str(device),
           "ranks": ctx.world_size, "batch_per_gpu": global_batch // ctx.world_size, "steps": a.steps,
           "first_step_s": first, "s_per_step": dt / a.steps,
           "images_per_s_per_gpu": a.steps * global_batch / ctx.world_size / dt, "loss": loss,
           "checkpoint": str(ckpt / f"step{1 + a.steps:07d}.pt")}
    if device.type == "cuda":
        out["peak_gpu_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if a.sample:
        real = torch.stack([data[i] for i in range(2)])
        # On a CPU one image per sampler call: at 1024 px two at once put the diffusion UNet's decoder
        # past 21 GiB of address space (2 GiB activations per 256-channel full-size tensor).
        check = TrainingCheck(fam.sample, cfg, size, real, conditional=fam.conditional, steps=2, seed=0, device=device,
                              batch_size=None if device.type == "cuda" else 1)
        out.update(check(resumed))
        out["sampled"] = 2
    assert load_checkpoint(out["checkpoint"])  # written and readable
    out["peak_rss_gib"] = _peak_rss_gib()
    distributed.shutdown()
    print("RESULT " + json.dumps(out), flush=True)


def _rss_gib(pids) -> float:
    total = 0
    for pid in pids:
        try:
            for line in open(f"/proc/{pid}/status"):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 2**20


def _children(pid: int) -> list[int]:
    out = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            for c in open(f"/proc/{pid}/task/{tid}/children").read().split():
                out += _children(int(c))
    except OSError:
        pass
    return out


def launch(a, family: str, precision: str, *, ranks: int = 1, global_batch: int = 0, compile: bool = False,
           deterministic: bool = False, sample: bool = True, tag: str = "") -> dict:
    """Run `child` (through torchrun for ``ranks`` > 1) under the memory watch; its result or the reason it has none."""
    ckpt = Path(a.work) / f"{family}_{precision}{tag}"
    args = ["--child", "--family", family, "--precision", precision, "--scale", a.scale, "--work", a.work,
            "--ckpt", str(ckpt), "--steps", str(a.steps), "--threads", str(a.threads),
            "--global-batch", str(global_batch), "--batch", str(a.batch)]
    args += ["--compile"] * compile + ["--deterministic"] * deterministic + ["--sample"] * sample
    args += ["--tf32"] * a.tf32
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}",
               str(Path(__file__).resolve())] + args
    else:
        cmd = [sys.executable, str(Path(__file__).resolve())] + args
    env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": str(a.threads), "HF_HUB_OFFLINE": "1"}
    t = time.perf_counter()
    limit = int((a.rss_limit_gib + AS_OVERHEAD_GIB) * 2**30)

    def cap():  # a hard cap the polling below cannot overshoot: allocations beyond it fail
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    gpu = bool(a.gpus)  # CUDA reserves huge virtual ranges: no address-space cap there
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=None if gpu else cap)
    peak, killed = 0.0, False
    while p.poll() is None:
        rss = _rss_gib(_children(p.pid))
        peak = max(peak, rss)
        if rss > a.rss_limit_gib:
            killed = True
            for pid in reversed(_children(p.pid)):
                try:
                    os.kill(pid, 9)
                except OSError:
                    pass
            break
        if time.perf_counter() - t > a.timeout:
            p.kill()
            break
        time.sleep(0.2)
    stdout, stderr = p.communicate()
    res = {"family": family, "precision": precision, "ranks": ranks, "compile": compile, "wall_s": time.perf_counter() - t,
           "watched_peak_rss_gib": peak, "role": tag.strip("_") or "train"}
    lines = [ln for ln in stdout.splitlines() if ln.startswith("RESULT ")]
    if killed:
        res["error"] = f"killed: resident memory passed the {a.rss_limit_gib:g} GiB limit"
    elif p.returncode or not lines:
        last = (stderr.strip().splitlines() or ["no output"])[-1][:300]
        if not gpu and ("memory" in last.lower() or "MemoryError" in last):
            res["error"] = f"killed: an allocation passed the address-space cap ({a.rss_limit_gib:g} GiB resident limit): {last}"
        else:
            res["error"] = f"exit {p.returncode}: {last}"
        if a.verbose:
            print(stderr[-4000:], file=sys.stderr)
    else:
        res.update(json.loads(lines[-1][7:]))
    return res


def _max_rel_diff(path_a: str, path_b: str) -> float:
    """max over weight tensors of max|a − b| / max|a| (each tensor at its own scale)."""
    from solargen.train import load_checkpoint

    a, b = load_checkpoint(path_a)["modules"], load_checkpoint(path_b)["modules"]
    worst = 0.0
    for m in a:
        for k, t in a[m].items():
            if t.is_floating_point() and t.numel():
                worst = max(worst, float((t - b[m][k]).abs().max() / t.abs().max().clamp_min(1e-30)))
    return worst


def unet_memory(scale: str = "paper") -> dict:
    """GiB the diffusion UNet keeps for backward at batch 1, counted on the meta device (no memory used).

    Every tensor autograd saves is counted once per saving op (an upper bound: some are shared),
    without and with ``use_checkpoint``; with it the backward also recomputes one step at a time,
    so the largest step's own saved tensors come on top. Weights, gradients, Adam moments and
    EMA: 20 bytes per parameter.
    """
    import torch

    from solargen.models.diffusion import unet as U
    from solargen.models.diffusion.family import build_unet

    cfg, size, _ = model_configs(scale)["diffusion"]
    out = {}
    for ck in (False, True):
        with torch.device("meta"):
            net = build_unet({**cfg, "use_checkpoint": ck}, size)
        x, t = torch.empty(1, 1, size, size, device="meta"), torch.zeros(1, dtype=torch.long, device="meta")
        saved, per_step = [], []

        def pack(tensor):
            saved.append(tensor.numel() * tensor.element_size())
            return tensor

        def step_counted(step, h, emb):
            n = len(saved)
            o = step(h, emb)
            per_step.append(sum(saved[n:]))
            return o

        plain = U.UNet._plain
        U.UNet._plain = staticmethod(step_counted)
        try:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
                net(x, t)
        finally:
            U.UNet._plain = plain
        key = "checkpointed" if ck else "plain"
        out[f"kept_gib_{key}"] = sum(saved) / 2**30
        if not ck:
            out["largest_step_gib"] = max(per_step) / 2**30
        out["params_m"] = sum(p.numel() for p in net.parameters()) / 1e6
    out["state_gib"] = out["params_m"] * 1e6 * 20 / 2**30
    out["total_gib_plain"] = out["state_gib"] + out["kept_gib_plain"]
    out["total_gib_checkpointed"] = out["state_gib"] + out["kept_gib_checkpointed"] + out["largest_step_gib"]
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", choices=["paper", "tiny"], default=None,
                    help="paper (1024 px, default on a GPU) or tiny (the CI models, default on the CPU)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps after the first (GPU 5, CPU 2)")
    ap.add_argument("--families", nargs="+", default=list(MODELS), choices=list(MODELS))
    ap.add_argument("--precisions", nargs="+", default=None, help="default fp32 bf16 on a GPU, fp32 on the CPU")
    ap.add_argument("--compile-family", default=None, help="torch.compile this family once (GPU default: stylegan2)")
    ap.add_argument("--ranks", type=int, default=None, help="2 compares 2 ranks with 1 (default: 2 if 2 GPUs or CPU)")
    ap.add_argument("--no-sample", action="store_true", help="skip sampling and the spectral check")
    ap.add_argument("--batch", type=int, default=0, help="batch per GPU/rank (default: the config's per-GPU batch)")
    ap.add_argument("--rss-limit-gib", type=float, default=float(os.environ.get("GPU_CHECK_RSS_LIMIT_GIB", 6)))
    ap.add_argument("--timeout", type=float, default=900, help="seconds per child")
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1) or 1))
    ap.add_argument("--no-tf32", dest="tf32", action="store_false")
    ap.add_argument("--json", default=None, help="also write every result here")
    ap.add_argument("--verbose", action="store_true")
    # child mode (internal)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--family", help=argparse.SUPPRESS)
    ap.add_argument("--precision", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--ckpt", help=argparse.SUPPRESS)
    ap.add_argument("--global-batch", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--compile", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--deterministic", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--sample", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tf32", action="store_true", default=True, help=argparse.SUPPRESS)
    ap.add_argument("--unet-memory", action="store_true",
                    help="only print the diffusion UNet's activation memory at batch 1, counted on the meta device")
    a = ap.parse_args(argv)
    if a.child:
        return child(a)
    if a.unet_memory:
        m = unet_memory(a.scale or "paper")
        print(" ".join(f"{k}={v:.4g}" for k, v in m.items()))
        return 0

    import torch

    gpus = a.gpus = torch.cuda.device_count()
    a.scale = a.scale or ("paper" if gpus else "tiny")
    a.steps = a.steps or (5 if gpus else 2)
    precisions = a.precisions or (["fp32", "bf16"] if gpus else ["fp32"])
    # 2 ranks: on ≥ 2 GPUs, or on the CPU at the tiny size (paper scale × 3 runs would not fit here)
    ranks = a.ranks if a.ranks is not None else (2 if gpus >= 2 or (not gpus and a.scale == "tiny") else 1)
    compile_family = a.compile_family if a.compile_family is not None else ("stylegan2" if gpus else "")
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as work:
        a.work = work
        configs = model_configs(a.scale)
        from solargen.models import family as get_family

        for size in sorted({s for _, s, _ in configs.values()}):
            chans = sorted({w for f, (c, s, _) in configs.items() if s == size for w in get_family(f).channels(c)})
            write_dataset(Path(work) / f"dataset_{size}.h5", size, 16, chans)
        for fam in a.families:
            for prec in precisions:
                results.append(launch(a, fam, prec, sample=not a.no_sample))
                _report(results[-1])
        if compile_family:
            results.append(launch(a, compile_family, precisions[-1], compile=True, sample=False, tag="_compiled"))
            _report(results[-1])
        ddp = None
        if ranks > 1:
            _, _, b = configs["msdgan"]
            gb = 2 * b
            one = launch(a, "msdgan", "fp32", global_batch=gb, deterministic=True, sample=False, tag="_1rank")
            two = launch(a, "msdgan", "fp32", ranks=2, global_batch=gb, deterministic=True, sample=False,
                         tag="_2ranks")
            half = launch(a, "msdgan", "fp32", global_batch=gb // 2, deterministic=True, sample=False, tag="_half")
            for r in (one, two, half):
                _report(r)
            results += [one, two, half]
            if not any("error" in r for r in (one, two, half)):
                d2, dh = _max_rel_diff(one["checkpoint"], two["checkpoint"]), _max_rel_diff(one["checkpoint"],
                                                                                           half["checkpoint"])
                ddp = {"ddp_rel_diff": d2, "half_batch_rel_diff": dh, "ddp_ok": d2 * 100 < dh}
                print(f"2 ranks vs 1 ({two['device']}): max relative weight difference {d2:.2e}; "
                      f"half-batch control {dh:.2e} -> {'ok' if ddp['ddp_ok'] else 'FAILED'}")
    if a.json:
        Path(a.json).write_text(json.dumps({"results": results, "ddp": ddp}, indent=1))
    _table(results)
    trained = [r for r in results if r["role"] == "train"]
    bad = {r["family"] for r in trained if "error" in r}
    ok = [r for r in results if "error" not in r]
    line = {"device": "cuda" if gpus else "cpu", "gpus": gpus, "scale": a.scale,
            "runs_ok": f"{len(ok)}/{len(results)}",
            "families_ok": ",".join(sorted({r["family"] for r in trained} - bad)) or "none",
            "ddp_ok": "skipped" if ddp is None else str(ddp["ddp_ok"]).lower(),
            "seconds": f"{time.perf_counter() - t0:.0f}"}
    print(" ".join(f"{k}={v}" for k, v in line.items()))
    return 0 if len(ok) == len(results) and (ddp is None or ddp["ddp_ok"]) else 1


def _report(r: dict) -> None:
    what = f"{r['family']} {r['precision']}{' compiled' if r.get('compile') else ''} ×{r['ranks']}"
    if "error" in r:
        print(f"{what}: {r['error']}", flush=True)
    else:
        print(f"{what}: {r['images_per_s_per_gpu']:.2f} img/s/GPU, {r['s_per_step']:.2f} s/step, loss {r['loss']}",
              flush=True)


def _table(results) -> None:
    print("\n| family | run | precision | ranks | px | batch/GPU | s/step | img/s/GPU | peak GPU GiB | peak RSS GiB | "
          "loss after N steps | spectral distance of 2 samples |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if "error" in r:
            print(f"| {r['family']} | {r['role']} | {r['precision']} | {r['ranks']} | | | | | | "
                  f"{r['watched_peak_rss_gib']:.2f} | {r['error']} | |")
            continue
        loss = ", ".join(f"{k} {v:.4g}" for k, v in r["loss"].items())
        sd = r.get("check_spectral_distance")
        print(f"| {r['family']} | {r['role']} | {r['precision']} | {r['ranks']} | {r['size']} | "
              f"{r['batch_per_gpu']} | {r['s_per_step']:.3f} | {r['images_per_s_per_gpu']:.2f} | "
              f"{r.get('peak_gpu_gib', float('nan')):.2f} | {max(r['peak_rss_gib'], r['watched_peak_rss_gib']):.2f} | "
              f"{loss} | {'' if sd is None else f'{sd:.3g}'} |")


if __name__ == "__main__":
    sys.exit(main())
