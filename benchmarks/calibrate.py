"""Seconds per 4096² level-1 frame: read floor vs reference calibration vs the fused path; and the
fused path's own error against the reference on ordinary, dark and rolled frames.

    python benchmarks/calibrate.py [--repeats 5] [--frames 2] [--size 1024] [--threads 1] [--cdelt 0.6001]

Writes realistic 4096² level-1 frames (the synthetic generator, stored as JSOC does: int16,
RICE_1 tile compression, checksums) to a temporary directory, then times, per frame:

* read floor: open + decompress the FITS to float32 (nothing else);
* reference: read + aiapy ``register`` (scipy, order 3, float32) + block mean to ``size``;
* fused: read + the spline prefilter (FIR) + the exact f × f block-mean kernel at the ``size`` grid;

(both calibrations include exposure normalisation), median over ``repeats`` (floor and fused alternating repeat by repeat), on an unrolled
frame (``over_read_floor``; the same ratio of median CPU seconds, ``over_read_floor_cpu``, is
printed too, as detail for shared machines). Then compares the fused path's OWN output (`fused_level15`, no
fallback) with the reference on the disk (inside 0.95 R_sun; limb and off-disk excluded), at the
generator's own plate scales and at AIA 193's 0.6001″ (``--cdelt`` picks the timed frame's), on

* ``--frames`` ordinary generator frames;
* as many dark frames: the same frames minus their on-disk 1st percentile, clipped at 0, so the
  darkest coronal-hole pixels sit at the frame's minimum, where register's clip at the minimum
  acts (the reported 1.64 % case). Relative errors are taken where the reference is ≥ 1 DN/s
  (below, a relative error of a ~0 mean says nothing; the max absolute error there is printed);
* two rolled frames per ordinary frame: roll +`MAX_FUSED_ROLL_DEG` and −½ of it (PCi_j and
  CROTA2 set), the largest rolls the fused path takes in the pipeline.

``max_rel_err`` is over all of them, both plate scales (issue #20's bound: 0.1 %). For scale, aiapy's OpenCV register
method against its scipy one on the ordinary frames. Last, the share of a realistic roll
distribution that the pipeline sends to the reference path (`roll_fallback_share`, an
assumption stated below). One thread per process (OpenCV is set to ``--threads``): the
pipeline parallelises by frame across processes. The last line is key=value pairs.
"""

from __future__ import annotations

import argparse
import math
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


def rel_errors(test: np.ndarray, ref: np.ndarray, radius: float, floor: float = 0.0) -> tuple[np.ndarray, float]:
    """|test - ref| / |ref| for pixels inside ON_DISK × radius of the centre where |ref| ≥
    ``floor``, and the max |test - ref| of the on-disk pixels below it (0 if none)."""
    from solargen.calibrate.fused import ON_DISK

    n = ref.shape[0]
    yy, xx = np.mgrid[:n, :n]
    on = np.hypot(xx - (n - 1) / 2, yy - (n - 1) / 2) < ON_DISK * radius
    diff, r = np.abs(test[on].astype(np.float64) - ref[on]), np.abs(ref[on].astype(np.float64))
    keep = r >= floor if floor > 0 else np.ones(r.shape, bool)
    return diff[keep] / r[keep], float(diff[~keep].max(initial=0.0))


#: Median CPU (process) seconds of each `timed` label: under contention the wall times above
#: include waiting for a core; the CPU time of this one-thread process does not.
CPU_S: dict[str, float] = {}


def timed(fn, repeats, label=None):
    times, cpu, out = [], [], None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        times.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    if label:
        CPU_S[label] = statistics.median(cpu)
    return statistics.median(times), out


def timed_alternating(fns: dict, repeats: int) -> dict:
    """`timed` for several functions whose repeats alternate (a b a b …): label → (median wall
    seconds, last output); their median CPU seconds go to `CPU_S`."""
    times = {k: [] for k in fns}
    cpu = {k: [] for k in fns}
    out = {}
    for _ in range(repeats):
        for k, fn in fns.items():
            t, c = time.perf_counter(), time.process_time()
            out[k] = fn()
            times[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    CPU_S.update({k: statistics.median(v) for k, v in cpu.items()})
    return {k: (statistics.median(times[k]), out[k]) for k in fns}


#: Assumed AIA 193 roll distribution (no archive statistics offline): nominal science
#: operations hold CROTA2 = INST_ROT + SAT_ROT ≈ 0.058° (INST_ROT of 193 Å in JSOC headers;
#: SAT_ROT ~1e-4°); SDO's roll calibration manoeuvres (twice a year, assumed ~6 h each off the
#: nominal roll) are the only frames beyond MAX_FUSED_ROLL_DEG.
ROLL_MANOEUVRE_HOURS_PER_YEAR = 2 * 6.0


def roll_fallback_share(threshold_deg: float, n: int = 1_000_000, seed: int = 0) -> float:
    """Share of frames of the assumed roll distribution that take the reference path."""
    rng = np.random.default_rng(seed)
    manoeuvre = rng.random(n) < ROLL_MANOEUVRE_HOURS_PER_YEAR / (365.25 * 24)
    roll = np.where(manoeuvre, rng.uniform(-180, 180, n), 0.058 + rng.normal(0, 0.005, n))
    return float(np.mean(np.abs(roll) > threshold_deg))


def _rolled(header, roll_deg: float):
    h = header.copy()
    t = math.radians(roll_deg)
    h["CROTA2"] = roll_deg
    h["PC1_1"], h["PC1_2"], h["PC2_1"], h["PC2_2"] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    return h


def _dark(data, header):
    n = data.shape[0]
    yy, xx = np.ogrid[:n, :n]
    r = np.hypot(xx - header["CRPIX1"] + 1, yy - header["CRPIX2"] + 1) * header["CDELT1"] / header["RSUN_OBS"]
    q = int(np.percentile(data[r < 0.95], 1.0))
    return np.clip(data.astype(np.int32) - q, 0, None).astype(np.int16)


def agreement(frames, size, dates):
    """Fused (own, no fallback) vs reference relative errors per kind of frame."""
    import sunpy.map
    from aiapy.calibrate import register

    from solargen.acquire.synthetic import synthetic_frame
    from solargen.calibrate.frame import calibrate_frame
    from solargen.calibrate.fused import MAX_FUSED_ROLL_DEG, fused_level15
    from solargen.calibrate.geometry import bin_image, lattice_roll_deg
    from solargen.calibrate.options import Options

    ref_opts = Options(method="reference")
    errs, ctx, dark_abs = {}, [], []
    for scale in (None, 0.6001):
        for i in range(frames):
            data, header = synthetic_frame(1000 + i, dates[i % len(dates)], native_size=4096)
            if scale is not None:
                header["CDELT1"] = header["CDELT2"] = scale
            if lattice_roll_deg(header) > MAX_FUSED_ROLL_DEG:  # a generator drawing larger rolls
                print(f"seed {1000 + i}: CROTA2 {header['CROTA2']:+.3f}° is beyond the fused path's "
                      f"{MAX_FUSED_ROLL_DEG:g}°; its ordinary and dark frames are rolled to the threshold")
                header = _rolled(header, math.copysign(MAX_FUSED_ROLL_DEG, header["CROTA2"]))
            cases = [("ordinary", data, header), ("dark", _dark(data, header), header),
                     (f"roll +{MAX_FUSED_ROLL_DEG:g}°", data, _rolled(header, MAX_FUSED_ROLL_DEG)),
                     (f"roll -{MAX_FUSED_ROLL_DEG / 2:g}°", data, _rolled(header, -MAX_FUSED_ROLL_DEG / 2))]
            for kind, d, h in cases:
                smap = sunpy.map.Map(d, h)
                ref, info = calibrate_frame(smap, size, ref_opts)
                fused = fused_level15(np.asarray(smap.data), smap.meta, size) / np.float32(info["exptime"])
                e, absolute = rel_errors(fused, ref, info["disk_radius"], floor=1.0)
                errs.setdefault(kind, []).append(e)
                if kind == "dark":
                    dark_abs.append(absolute)
                label = "own" if scale is None else f"{scale}"
                print(f"seed {1000 + i} CDELT {h['CDELT1']:.4f}″ ({label}) {kind:<12} fused vs reference on the disk: "
                      f"mean {e.mean():.4%} max {e.max():.4%}" + (f"; below 1 DN/s max |Δ| {absolute:.3g} DN/s" if kind == "dark" else ""))
                if kind == "ordinary":
                    m32 = sunpy.map.Map(np.asarray(d, np.float32), h)
                    alt = bin_image(register(m32, missing=0.0, method="opencv").data.astype(np.float32), size)
                    ctx.append(rel_errors(alt / np.float32(info["exptime"]), ref, info["disk_radius"])[0])
    return errs, np.concatenate(ctx), max(dark_abs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--frames", type=int, default=2, help="ordinary frames (seeds/dates) for the agreement check; "
                    "as many dark and twice as many rolled frames are added, each at both plate scales")
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1, help="OpenCV threads (the fused path)")
    ap.add_argument("--cdelt", type=float, default=None,
                    help="the timed frame's level-1 plate scale (arcsec/px), e.g. 0.6001 (AIA 193); "
                         "the agreement check runs at the generator's own and at 0.6001 regardless")
    a = ap.parse_args()

    import cv2

    from solargen.calibrate.frame import calibrate_frame
    from solargen.calibrate.fused import MAX_FUSED_ROLL_DEG
    from solargen.calibrate.level1 import read_level1
    from solargen.calibrate.options import Options

    cv2.setNumThreads(a.threads)
    fused_opts, ref_opts = Options(method="fused"), Options(method="reference")
    dates = ["2011-03-01T00:00:00.000", "2014-06-01T12:00:00.000", "2018-09-15T06:00:00.000"]
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "aia_lev1_193a_0.fits"
        t = time.perf_counter()
        write_rice(p, seed=1000, date=dates[0], cdelt=a.cdelt)  # unrolled: the generator's |CROTA2| ≤ 0.1°
        print(f"wrote {p.name}: {p.stat().st_size / 2**20:.1f} MiB RICE_1 in {time.perf_counter() - t:.1f} s")
        # Floor and fused alternate repeat by repeat, so a machine whose speed drifts (a shared VM)
        # moves both medians alike instead of the ratio.
        (floor_s, _), (fused_s, (_, info)) = timed_alternating(
            {"floor": lambda: read_floor(p), "fused": lambda: calibrate_frame(read_level1(p), a.size, fused_opts)},
            a.repeats).values()
        ref_s, _ = timed(lambda: calibrate_frame(read_level1(p), a.size, ref_opts), a.repeats, "reference")
        if info["register_path"] != "fused":
            print(f"note: the timed frame took the {info['register_path']} path")
    errs, c, dark_abs = agreement(a.frames, a.size, dates)
    e = np.concatenate([x for v in errs.values() for x in v])
    share = roll_fallback_share(MAX_FUSED_ROLL_DEG)

    print(f"\nseconds per 4096² frame → {a.size}² (median of {a.repeats}; 2-core shared machine, expect ±20 %)")
    print(f"{'path':<34}{'s/frame':>10}{'× read floor':>14}")
    for name, s in [("read + decompress (floor)", floor_s), ("fused (read + one warp)", fused_s),
                    ("reference (read + register + bin)", ref_s)]:
        print(f"{name:<34}{s:>10.3f}{s / floor_s:>14.2f}")
    print(f"\non-disk (< 0.95 R_sun) relative error of the fused path's own output vs reference, "
          f"{a.frames} seeds × 2 plate scales:")
    for kind, v in errs.items():
        v = np.concatenate(v)
        print(f"  {kind:<12} mean {v.mean():.4%}  p99 {np.percentile(v, 99):.4%}  max {v.max():.4%}")
    print(f"  {'all':<12} mean {e.mean():.4%}  p99 {np.percentile(e, 99):.4%}  max {e.max():.4%}")
    print(f"  aiapy register opencv/scipy (ordinary): mean {c.mean():.4%}  p99 {np.percentile(c, 99):.4%}  max {c.max():.4%}")
    print(f"\nrolls beyond {MAX_FUSED_ROLL_DEG:g}° take the reference path: {share:.3%} of frames under the assumed "
          f"roll distribution (nominal 0.058°, {ROLL_MANOEUVRE_HOURS_PER_YEAR:g} h/yr of roll manoeuvres)")
    print(f"fused_s={fused_s:.3f} reference_s={ref_s:.3f} read_floor_s={floor_s:.3f} "
          f"speedup_vs_reference={ref_s / fused_s:.2f} over_read_floor={fused_s / floor_s:.2f} "
          f"max_rel_err={e.max():.5f} mean_rel_err={e.mean():.6f} p99_rel_err={np.percentile(e, 99):.5f} "
          f"dark_max_abs_err_below_1dn_s={dark_abs:.3g} max_fused_roll_deg={MAX_FUSED_ROLL_DEG:g} "
          f"roll_fallback_share={share:.5f} fused_cpu_s={CPU_S['fused']:.3f} read_floor_cpu_s={CPU_S['floor']:.3f} "
          f"over_read_floor_cpu={CPU_S['fused'] / CPU_S['floor']:.2f}")


if __name__ == "__main__":
    main()
