"""How real is the synthetic Sun: issue #27's statistics on the real AIA 193 Å frame and on synthetic ones.

The real frame is sunpy's packaged Helioviewer JPEG 2000 (2013-06-24, inverted to DN/s); each
synthetic 4096² frame (DN / EXPTIME) is forward-modelled the same way (Helioviewer bytes, box
resize to 410², inverted) and measured by the same code (`solargen.acquire.realism`). The
24″–6″ spectral slope needs full resolution: it is measured on the native synthetic frame (the
real reference value, −3.37, is from a 2023 full-resolution frame not available offline).
Prints a table (real, synthetic mean ± sd over seeds, target, met?) and ends with
``targets_met=K/N`` (N counts the cost target when ``--baseline-file`` is given).

    python benchmarks/realism.py [--seeds 8] [--native-size 4096] [--figure docs/realism.png]
                                 [--baseline-file OLD_synthetic.py --timing-rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

import numpy as np

from solargen.acquire import realism
from solargen.acquire.synthetic import synthetic_frame

#: Dates spread over 2011-2015 (rising phase, cycle-24 maximum, early decline).
DATES = ["2011-02-10T03:00:00", "2011-09-21T14:00:00", "2012-05-02T08:00:00", "2012-12-13T20:00:00",
         "2013-07-25T01:00:00", "2014-03-07T11:00:00", "2014-10-17T17:00:00", "2015-06-29T23:00:00"]
ROWS = [
    ("limb_radius", "EUV limb radius / R☉"), ("disc_median", "on-disc median, DN/s"),
    ("std_log10", "std(log10 I) on disc"), ("p1", "p1 / median"), ("p5", "p5 / median"),
    ("p25", "p25 / median"), ("p75", "p75 / median"), ("p95", "p95 / median"), ("p99", "p99 / median"),
    ("bright3_pct", "area > 3× median, %"), ("bright5_pct", "area > 5× median, %"),
    ("mean_median_disc", "mean / median, disc"), ("mean_median_frame", "mean / median, frame"),
    ("dark05_pct", "area < 0.5× median, %"), ("dark035_pct", "area < 0.35× median, %"),
    ("limb_centre_err_px", "limb-fit centre error, px (max)"), ("limb_peak", "limb peak / median"),
    ("limb_peak_r", "limb peak radius / R☉"), ("profile_095", "profile(0.95) / median"),
    ("profile_120", "profile(1.20) / median"), ("efold_102_110", "e-folding 1.02–1.10, R☉"),
    ("efold_110_120", "e-folding 1.10–1.20, R☉"), ("efold_diff", "e-fold(1.10–1.20) − e-fold(1.02–1.10)"),
    ("slope_120_24", "ln I slope 120″–24″"), ("slope_24_6_native", "ln I slope 24″–6″ (native)"),
    ("native_max", "frame maximum at 4096², DN/s"), ("saturated", "pixels at the 14-bit ceiling"),
]


def synthetic_rate(seed: int, date: str, size: int):
    data, header = synthetic_frame(seed, date, native_size=size)
    return data.astype(np.float64) / header["EXPTIME"], header


def measure_synthetic(seed: int, date: str, size: int) -> tuple[dict, np.ndarray]:
    rate, header = synthetic_rate(seed, date, size)
    small = realism.helioviewer_forward(rate)
    stats = realism.frame_statistics(small, realism.reduced_disc(header, size))
    native = realism.Disc(x=header["CRPIX1"] - 1, y=header["CRPIX2"] - 1, r=header["R_SUN"], scale=header["CDELT1"])
    stats["slope_24_6_native"] = realism.spectrum_slope(rate, native, (24.0, 6.0))
    # The byte scaling clips at 2500 DN/s: the frame maximum is compared at native resolution.
    stats["native_max"] = float(rate.max())
    stats["saturated"] = float(header["NSATPIX"])
    return stats, realism.helioviewer_bytes(small)


def _fmt(x: float) -> str:
    return f"{x:.4g}" if abs(x) >= 0.01 or x == 0 else f"{x:.2e}"


def figure(path, real_rate, synth_bytes, title: str) -> None:
    """Real and synthetic side by side, both in Helioviewer's byte scaling, as a small PNG."""
    from PIL import Image, ImageDraw

    real_bytes = realism.helioviewer_bytes(real_rate)
    gap = 6
    canvas = np.full((realism.HV_SIZE + 18, 2 * realism.HV_SIZE + gap), 255, np.uint8)
    canvas[18:, :realism.HV_SIZE] = real_bytes[::-1]  # FITS rows bottom-up → image rows top-down
    canvas[18:, realism.HV_SIZE + gap:] = synth_bytes[::-1]
    img = Image.fromarray(canvas, mode="L")
    draw = ImageDraw.Draw(img)
    draw.text((4, 3), "real AIA 193 A, 2013-06-24 (Helioviewer JP2)", fill=0)
    draw.text((realism.HV_SIZE + gap + 4, 3), title, fill=0)
    img.save(path, optimize=True)


def time_generators(baseline_file: str, rounds: int, size: int = 4096) -> tuple[float, float]:
    """Best-of-``rounds`` seconds per ``size``² frame for the baseline module and ours, alternated
    (the machine is shared, so interleaving keeps both under the same load)."""
    spec = importlib.util.spec_from_file_location("synthetic_baseline", baseline_file)
    old = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = old  # dataclasses look their module up there
    spec.loader.exec_module(old)
    t_old, t_new = [], []
    for i in range(rounds):
        for fn, out in ((old.synthetic_frame, t_old), (synthetic_frame, t_new)):
            t0 = time.perf_counter()
            fn(100 + i, DATES[i % len(DATES)], native_size=size)
            out.append(time.perf_counter() - t0)
    return min(t_old), min(t_new)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=8, help="synthetic frames (seed i on DATES[i %% 8])")
    ap.add_argument("--native-size", type=int, default=4096)
    ap.add_argument("--real", default=None, help="Helioviewer AIA 193 JP2 (default: sunpy's test file)")
    ap.add_argument("--figure", default=None, help="write real vs synthetic PNG here")
    ap.add_argument("--baseline-file", default=None, help="another synthetic.py to time against ours")
    ap.add_argument("--timing-rounds", type=int, default=3)
    a = ap.parse_args()

    real_rate, real_disc, meta = realism.load_helioviewer_jp2(a.real)
    real = realism.frame_statistics(real_rate, real_disc)
    real["native_max"] = meta["DATAMAX"] / meta["EXPTIME"]  # the original header's maximum
    runs, first_bytes = [], None
    t0 = time.perf_counter()
    for i in range(a.seeds):
        stats, small_bytes = measure_synthetic(i, DATES[i % len(DATES)], a.native_size)
        runs.append(stats)
        if i == 4:  # 2013-07-25: the real frame's epoch
            first_bytes = small_bytes
    elapsed = time.perf_counter() - t0
    if first_bytes is None:
        first_bytes = small_bytes

    print(f"real: {realism.REAL_JP2_NAME}  synthetic: {a.seeds} seeds at {a.native_size}², "
          f"dates {DATES[0][:10]} … {DATES[min(a.seeds, len(DATES)) - 1][:10]} ({elapsed:.0f} s)")
    print("| statistic | real | synthetic mean ± sd | target | met? |")
    print("|---|---|---|---|---|")
    met = total = 0
    for key, label in ROWS:
        vals = np.array([r[key] for r in runs])
        rv = real.get(key)
        target = realism.TARGETS.get(key)
        if key == "limb_centre_err_px":  # every seed, not the mean
            ok = bool((vals <= target[1]).all())
            synth = f"{_fmt(vals.mean())} ± {_fmt(vals.std())} (max {_fmt(vals.max())})"
        else:
            ok = target is not None and target[0] <= vals.mean() <= target[1]
            synth = f"{_fmt(vals.mean())} ± {_fmt(vals.std())}"
        if target is not None:
            total += 1
            met += ok
        print(f"| {label} | {'—' if rv is None else _fmt(rv)} | {synth} | "
              f"{'' if target is None else f'[{_fmt(target[0])}, {_fmt(target[1])}]'} | "
              f"{'' if target is None else ('yes' if ok else 'NO')} |")
    if a.figure:
        figure(a.figure, real_rate, first_bytes, f"synthetic, seed 4, {DATES[4][:10]} (same scaling)")
        print(f"figure: {a.figure}")
    if a.baseline_file:
        t_old, t_new = time_generators(a.baseline_file, a.timing_rounds)
        ok = t_new <= 1.5 * t_old
        total += 1
        met += ok
        print(f"4096² generation, best of {a.timing_rounds} (alternated): baseline {t_old:.2f} s, "
              f"ours {t_new:.2f} s, ratio {t_new / t_old:.2f} (target ≤ 1.5: {'yes' if ok else 'NO'})")
    print(f"targets_met={met}/{total}")


if __name__ == "__main__":
    main()
