"""Peak memory of the data stages against the number of frames: split, constants, dataset.

    python benchmarks/dataset_rss.py [--frames 200 2000] [--size 256] [--per-shard 100]

Writes calibrated shards (the layout `solargen.calibrate.files.calibrate_files` writes: images plus the
frames table) of log-normal "Sun-like" frames, then runs the workflow's own commands
(``python -m solargen split|constants|dataset``) as child processes and reads each one's peak
resident memory (``ru_maxrss`` from ``os.wait4``). Streaming means the peak does not grow with the
number of frames; the frames themselves total N × size² × 4 bytes (512 MiB for 2,000 at 256²).
The last line is key=value pairs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def write_shards(d: Path, n: int, size: int, per_shard: int) -> list[Path]:
    from solargen.shards import FRAME_COLUMNS
    from solargen.io import write_table

    rng = np.random.default_rng(0)
    t0 = np.datetime64("2012-01-01T00:00:00", "s")
    paths = []
    for s, first in enumerate(range(0, n, per_shard)):
        m = min(per_shard, n - first)
        path = d / f"shard_{s}.h5"
        with h5py.File(path, "w") as f:
            dset = f.create_dataset("images", shape=(m, size, size), dtype="f4", chunks=(1, size, size))
            for i in range(m):
                dset[i] = rng.lognormal(5.0, 1.0, size=(size, size)).astype(np.float32)
            idx = np.arange(first, first + m)
            cols = {"file": [f"aia_{i:06d}.fits" for i in idx],
                    "date_obs": [str(t0 + np.timedelta64(int(i) * 7200, "s")) for i in idx],
                    "exptime": [2.0] * m, "quality": [0] * m, "status": ["ok"] * m, "reason": [""] * m}
            for k in FRAME_COLUMNS[6:]:
                cols[k] = [1.0] * m
            write_table(f.create_group("frames"), cols)
            f.attrs.update(size=size, wavelength=193, method="fused", units="DN/s")
        paths.append(path)
    return paths


def run(cmd: list[str]) -> tuple[float, float]:
    """Run a command; return (peak RSS in MiB, wall seconds)."""
    t = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    err = p.stderr.read().decode()
    p.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:]}")
    return usage.ru_maxrss / 1024, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[200, 2000])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--per-shard", type=int, default=100)
    a = ap.parse_args()
    py = [sys.executable, "-m", "solargen"]
    results = {}
    print(f"{'frames':>7}{'data MiB':>10}{'split MiB':>11}{'constants MiB':>15}{'dataset MiB':>13}{'dataset s':>11}")
    for n in a.frames:
        with tempfile.TemporaryDirectory() as d:
            d = Path(d)
            shards = [str(p) for p in write_shards(d, n, a.size, a.per_shard)]
            rss_split, _ = run(py + ["split", "--shards", *shards, "--out", str(d / "split.json"),
                                     "--block-hours", "24", "--test-fraction", "0.1"])
            rss_const, _ = run(py + ["constants", "--shards", *shards, "--split", str(d / "split.json"),
                                     "--out", str(d / "constants.json")])
            rss_ds, t_ds = run(py + ["dataset", "--shards", *shards, "--constants", str(d / "constants.json"),
                                     "--split", str(d / "split.json"), "--out", str(d / "dataset.h5"),
                                     "--quantisation", "float16"])
        results[n] = (rss_split, rss_const, rss_ds)
        data_mib = n * a.size * a.size * 4 / 2**20
        print(f"{n:>7}{data_mib:>10.0f}{rss_split:>11.0f}{rss_const:>15.0f}{rss_ds:>13.0f}{t_ds:>11.1f}")
    keys = " ".join(f"peak_rss_mib_{n}={max(r):.0f}" for n, r in results.items())
    lo, hi = min(results), max(results)
    print(f"{keys} size={a.size} growth_ratio={max(results[hi]) / max(results[lo]):.2f}")


if __name__ == "__main__":
    main()
