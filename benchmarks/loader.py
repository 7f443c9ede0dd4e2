"""Frames/s one training rank's input pipeline delivers at 1024², against what each family needs.

    python benchmarks/loader.py [--frames 48] [--batch 8] [--steps 12] [--workers 0 1 2]

Writes a synthetic ``dataset.h5`` in the study's storage (uint8, gzip level 4, one chunk per
1024² frame, as `solargen.dataset.build_dataset` writes it) of Sun-like frames (a limb-darkened
disc, smooth structure and noise, so gzip has the work it has on real frames), then reads
training batches through `solargen.loader.TrainBatches` (the training loop's own path) with 0, 1
and 2 worker processes, east-west flip on. Per setting:

- **frames/s**: ``--steps`` batches of ``--batch`` frames (ProjectedGAN's per-GPU batch) as fast
  as they come, after the first (worker start-up) batch;
- **ready ms**: what a training step still waits per batch when the workers are ahead (the
  loop sleeps ``--step-ms`` between batches, standing in for GPU compute, then times ``next()``):
  the input's cost *with* overlap. With 0 workers there is no overlap: the whole read is paid.

**Extrapolation to JUWELS Booster** (12 cores per GPU, 8 workers per rank by
`solargen.loader.default_workers`): wall-clock rates on this shared 2-core machine depend on the
other users, so the extrapolation uses CPU time per frame instead (the workers', summed from
their rusage once joined, and the training process's own, with the most workers measured): a
rank delivers min(8 / worker CPU s per frame, 1 / training-process CPU s per frame), assuming a
Booster core (EPYC 7402) as fast as one here. The four ranks of a node read 4 × that from disk
(MB/s printed), well below what a node's GPFS link carries. Needed rates: images/s per GPU of
each family on one GPU from ``benchmarks/scaling.md`` (TF32; bf16 roughly doubles them, reported
too). headroom = extrapolated frames/s / ProjectedGAN's bf16 need (the largest of all).

The machine is shared: numbers are lower bounds, noisy. The last line is key=value pairs.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

#: images/s per GPU on one A100 (TF32), `benchmarks/scaling.md` ("Expected images/s per GPU").
NEEDED = {"diffusion": 2.31, "stylegan2": 27.1, "projectedgan": 60.2, "msdgan": 28.4}
#: Per-GPU batch of each family's paper config (scaling.md "Per-family inputs").
PER_GPU_BATCH = {"diffusion": 1, "stylegan2": 4, "projectedgan": 8, "msdgan": 2}
BF16 = 2.0  # scaling.md: bf16 roughly halves compute time
BOOSTER_WORKERS = 8  # default_workers() with SLURM_CPUS_PER_TASK=12


def sun_frames(n: int, size: int, seed: int = 0) -> np.ndarray:
    """(n, size, size) uint8 frames that compress like AIA 193 Å ones (~25 % with gzip)."""
    import cv2

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size - 0.5
    r = np.hypot(xx, yy) / 0.4
    disc = np.where(r < 1, 0.55 + 0.15 * np.sqrt(np.clip(1 - r**2, 0, 1)), 0.25 * np.exp(-(r - 1) * 6))
    out = np.empty((n, size, size), np.uint8)
    for i in range(n):
        structure = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), 6) * 1.5
        y = disc * (1 + 0.3 * structure) + 0.02 * rng.standard_normal((size, size))
        out[i] = np.clip(np.rint(y * 255), 0, 255)
    return out


def write_dataset(path: Path, n: int, size: int) -> float:
    """The synthetic dataset; returns the mean compressed MB per frame."""
    with h5py.File(path, "w") as f:
        d = f.create_dataset("images", shape=(n, size, size), dtype="uint8", chunks=(1, size, size),
                             compression="gzip", compression_opts=4)
        for first in range(0, n, 8):
            d[first:first + 8] = sun_frames(min(8, n - first), size, seed=first)
        f.attrs["quantisation"] = "uint8"
    return path.stat().st_size / n / 1e6


def measure(path: Path, workers: int, batch: int, steps: int, step_ms: float) -> dict:
    import torch

    from solargen.dataset import H5Images
    from solargen.loader import TrainBatches

    data = H5Images(path, east_west_flip=True)
    # Throughput: batches back to back after the first. CPU seconds too (this process, and the
    # workers once they are joined): on a shared machine wall time says little, CPU time per
    # frame is what a dedicated core pays.
    tb = TrainBatches(data, start=0, stop=steps + 1, batch_size=batch, seed=0, workers=workers)
    it = iter(tb)
    next(it)
    main0, kids0 = time.process_time(), _children_cpu()
    t0 = time.perf_counter()
    n = sum(int(b.shape[0]) for b in it)
    rate = n / (time.perf_counter() - t0)
    main_cpu = time.process_time() - main0
    tb.close()
    worker_cpu = _children_cpu() - kids0  # includes the first batch's reads: an upper bound
    # Cost with overlap: the wait per batch when compute (a sleep here) gives the workers time.
    tb = TrainBatches(data, start=0, stop=steps + 1, batch_size=batch, seed=0, workers=workers)
    it = iter(tb)
    next(it)
    waits = []
    for _ in range(steps):
        time.sleep(step_ms / 1e3)
        t = time.perf_counter()
        b = next(it)
        waits.append(time.perf_counter() - t)
        assert b.dtype == torch.float32 and b.shape[1:] == (1, data.size, data.size)
    tb.close()
    return {"frames_s": rate, "ready_ms": 1e3 * float(np.median(waits)), "main_cpu_ms": 1e3 * main_cpu / n,
            "worker_cpu_ms": 1e3 * worker_cpu / n if workers else 0.0}


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--batch", type=int, default=PER_GPU_BATCH["projectedgan"])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--step-ms", type=float, default=None,
                    help="simulated compute per step (default: ProjectedGAN's A100 step, batch / images/s)")
    a = ap.parse_args(argv)
    step_ms = a.step_ms if a.step_ms is not None else 1e3 * a.batch / NEEDED["projectedgan"]
    import torch

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "dataset.h5"
        t = time.perf_counter()
        mb = write_dataset(path, a.frames, a.size)
        print(f"synthetic dataset: {a.frames} frames {a.size}² uint8 gzip-4, {mb:.2f} MB/frame compressed "
              f"({time.perf_counter() - t:.0f} s to write)")
        res = {w: measure(path, w, a.batch, a.steps, step_ms) for w in a.workers}
    print(f"\nbatch {a.batch}, simulated step {step_ms:.0f} ms (ProjectedGAN on an A100, scaling.md)")
    print("| workers | frames/s (this rank, wall) | CPU ms/frame training process | CPU ms/frame workers | "
          "wait per batch with overlap, ms | input share of a step |")
    print("|---|---|---|---|---|---|")
    for w, r in res.items():
        paid = a.batch / r["frames_s"] * 1e3 if w == 0 else r["ready_ms"]
        print(f"| {w} | {r['frames_s']:.1f} | {r['main_cpu_ms']:.1f} | {r['worker_cpu_ms']:.1f} | {r['ready_ms']:.1f} | "
              f"{paid / (paid + step_ms):.0%} |")
    # A Booster rank: its workers deliver BOOSTER_WORKERS / (worker CPU per frame), and its training
    # process must take the batches in: 1 / (its CPU per frame); the smaller is the rate. CPU time
    # per frame taken from the run with the most workers, assumed equal on the Booster's EPYC cores.
    wmax = max(w for w in res)
    r = res[wmax]
    per_frame = r["worker_cpu_ms"] if wmax else r["main_cpu_ms"]
    booster = min(BOOSTER_WORKERS * 1e3 / per_frame, 1e3 / max(r["main_cpu_ms"], 1e-3) if wmax else float("inf"))
    print(f"\nextrapolated to a Booster rank ({BOOSTER_WORKERS} workers, 12 cores): {per_frame:.1f} CPU ms per frame"
          f" per worker → {BOOSTER_WORKERS} × {1e3 / per_frame:.1f} frames/s, training process "
          f"{r['main_cpu_ms']:.1f} CPU ms per frame → {booster:.0f} frames/s; a node reads "
          f"4 × {booster:.0f} × {mb:.2f} MB = {4 * booster * mb:.0f} MB/s")
    # Input share of a Booster step (bf16 step time): without overlap the training process pays
    # the whole read (CPU time per frame with 0 workers), with overlap only taking the batch in.
    serial = res[min(res)]["main_cpu_ms"]
    print("| family | per-GPU batch | needed img/s/GPU TF32 | bf16 | input share of a bf16 step: no overlap | "
          "with workers | headroom (bf16) |")
    print("|---|---|---|---|---|---|---|")
    for fam, need in NEEDED.items():
        b, t_step = PER_GPU_BATCH[fam], 1e3 * PER_GPU_BATCH[fam] / (need * BF16)
        t_serial, t_overlap = b * serial, b * r["main_cpu_ms"]
        print(f"| {fam} | {b} | {need} | {need * BF16:.1f} | {t_serial / (t_serial + t_step):.0%} | "
              f"{t_overlap / (t_overlap + t_step):.0%} | {booster / (need * BF16):.1f} |")
    need = NEEDED["projectedgan"] * BF16
    line = {f"frames_s_{w}w": f"{r['frames_s']:.1f}" for w, r in res.items()}
    print(" ".join([f"frames_s_0w={line.get('frames_s_0w', 'nan')}", f"frames_s_2w={line.get('frames_s_2w', 'nan')}",
                    f"needed_projectedgan={need:.1f}", f"headroom={booster / need:.2f}"]))


if __name__ == "__main__":
    main()
