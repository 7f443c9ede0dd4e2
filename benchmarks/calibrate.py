"""Seconds per 4096² level-1 frame: read floor vs reference calibration vs the fused path.

    python benchmarks/calibrate.py [--repeats 3] [--frames 2] [--size 1024] [--threads 1] [--cdelt 0.6001]

Writes realistic 4096² level-1 frames (the synthetic generator, stored as JSOC does: int16,
RICE_1 tile compression, checksums) to a temporary directory, then times, per frame:

* read floor: open + decompress the FITS to float32 (nothing else);
* reference: read + aiapy ``register`` (scipy, order 3, float32) + block mean to ``size``;
* fused: read + the spline-matched FIR filter + cubic B-spline evaluation at the ``size`` grid;

(both calibrations include exposure normalisation), median over ``repeats``. Then compares the
fused and reference images on the disk (inside 0.95 R_sun; limb and off-disk excluded) and, for
scale, aiapy's own OpenCV register method against its scipy one. One thread per process (OpenCV
is set to ``--threads``): the pipeline parallelises by frame across processes. The last line is
key=value pairs.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def write_rice(path: Path, seed: int, date: str, cdelt: float | None = None) -> None:
    from astropy.io import fits

    from solargen.acquire.synthetic import synthetic_frame

    data, header = synthetic_frame(seed, date, native_size=4096)
    if cdelt is not None:  # the generator draws 0.5995–0.6055″ (a stress range); AIA 193 is ≈0.6001″
        header["CDELT1"] = header["CDELT2"] = cdelt
    hdus = fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data=data, header=header, compression_type="RICE_1")])
    hdus.writeto(path, checksum=True)


def read_floor(path: Path) -> np.ndarray:
    from astropy.io import fits

    with fits.open(path, memmap=False) as hdul:
        return np.asarray(hdul[1].data, dtype=np.float32)


def rel_errors(test: np.ndarray, ref: np.ndarray, radius: float) -> np.ndarray:
    """|test - ref| / |ref| for pixels inside ON_DISK × radius of the centre."""
    from solargen.calibrate import ON_DISK

    n = ref.shape[0]
    yy, xx = np.mgrid[:n, :n]
    on = np.hypot(xx - (n - 1) / 2, yy - (n - 1) / 2) < ON_DISK * radius
    return np.abs(test[on].astype(np.float64) - ref[on]) / np.abs(ref[on].astype(np.float64))


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--frames", type=int, default=2, help="frames (seeds/dates) for the agreement check")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (the fused path)")
    ap.add_argument("--cdelt", type=float, default=None,
                    help="set every frame's level-1 plate scale (arcsec/px), e.g. 0.6001 (AIA 193)")
    a = ap.parse_args()

    import cv2
    import sunpy.map
    from aiapy.calibrate import register

    from solargen.calibrate import Options, bin_image, calibrate_frame, read_level1

    cv2.setNumThreads(a.threads)
    fused_opts, ref_opts = Options(method="fused"), Options(method="reference")
    dates = ["2011-03-01T00:00:00.000", "2014-06-01T12:00:00.000", "2018-09-15T06:00:00.000"]
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for i in range(a.frames):
            p = Path(d) / f"aia_lev1_193a_{i}.fits"
            t = time.perf_counter()
            write_rice(p, seed=1000 + i, date=dates[i % len(dates)], cdelt=a.cdelt)
            print(f"wrote {p.name}: {p.stat().st_size / 2**20:.1f} MiB RICE_1 in {time.perf_counter() - t:.1f} s")
            paths.append(p)

        floor_s, _ = timed(lambda: read_floor(paths[0]), a.repeats)
        fused_s, _ = timed(lambda: calibrate_frame(read_level1(paths[0]), a.size, fused_opts), a.repeats)
        ref_s, _ = timed(lambda: calibrate_frame(read_level1(paths[0]), a.size, ref_opts), a.repeats)

        errs, ctx = [], []
        for p in paths:
            smap = read_level1(p)
            fused, info = calibrate_frame(smap, a.size, fused_opts)
            ref, _ = calibrate_frame(smap, a.size, ref_opts)
            errs.append(rel_errors(fused, ref, info["disk_radius"]))
            print(f"{p.name}: CDELT {info['cdelt1']:.5f}″ CROTA2 {info['crota2']:+.3f}°  fused vs reference "
                  f"mean {errs[-1].mean():.4%} max {errs[-1].max():.4%}")
            # For scale: aiapy's two register methods (OpenCV bicubic vs scipy spline) disagree by this.
            m32 = sunpy.map.Map(np.asarray(smap.data, np.float32), smap.meta)
            alt = bin_image(register(m32, missing=0.0, method="opencv").data.astype(np.float32), a.size)
            ctx.append(rel_errors(alt / np.float32(info["exptime"]), ref, info["disk_radius"]))
    e, c = np.concatenate(errs), np.concatenate(ctx)

    print(f"\nseconds per 4096² frame → {a.size}² (median of {a.repeats}; 2-core shared machine, expect ±20 %)")
    print(f"{'path':<34}{'s/frame':>10}{'× read floor':>14}")
    for name, s in [("read + decompress (floor)", floor_s), ("fused (read + one warp)", fused_s),
                    ("reference (read + register + bin)", ref_s)]:
        print(f"{name:<34}{s:>10.3f}{s / floor_s:>14.2f}")
    print(f"\non-disk (< 0.95 R_sun) relative error vs reference, {len(paths)} frames, {e.size} pixels:")
    print(f"  fused:                       mean {e.mean():.4%}  median {np.median(e):.4%}  "
          f"p99 {np.percentile(e, 99):.4%}  max {e.max():.4%}")
    print(f"  aiapy register opencv/scipy: mean {c.mean():.4%}  median {np.median(c):.4%}  "
          f"p99 {np.percentile(c, 99):.4%}  max {c.max():.4%}")
    print(f"fused_s={fused_s:.3f} reference_s={ref_s:.3f} read_floor_s={floor_s:.3f} "
          f"speedup_vs_reference={ref_s / fused_s:.2f} over_read_floor={fused_s / floor_s:.2f} "
          f"max_rel_err={e.max():.5f} mean_rel_err={e.mean():.6f} p99_rel_err={np.percentile(e, 99):.5f}")


if __name__ == "__main__":
    main()
