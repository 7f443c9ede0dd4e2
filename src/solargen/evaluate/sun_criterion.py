"""Does each generated sample draw the Sun? A per-sample check, fixed before any tuning (issue #22).

A sample draws the Sun when its own radial intensity profile (mean grey level against distance
from the frame centre) lies as close to the real frames' mean profile as the real frames
themselves do:

    d(x) = mean over radius of |profile(x) − mean real profile|      (grey levels in [0, 1])
    τ    = max over real frames of d(real frame i vs the mean of the others)   (leave-one-out)
    x draws the Sun  ⇔  d(x) ≤ τ
    a run draws the Sun  ⇔  at least RUN_FRACTION of its samples do

The run's share comes with its exact (Clopper–Pearson) 95 % binomial interval, ``fraction_ci``:
at the demo's 32 samples a run whose samples pass at a rate of 0.9 fails the verdict 4 times in 10
(26/32 = 0.81 has the interval 0.64–0.93), so the interval says when a verdict is a draw of the
samples rather than a property of the model. It is reported beside the verdict, never used for it.

So τ is the spread among real frames (the worst real frame just passes), not a chosen number: a
disk of the right size and brightness with a limb and a corona passes, a saturated blob, a blank
or a noise frame does not. It complements the run-level convergence check (mean profile of all
samples vs the real mean, fixed tolerance 0.1, branch `findings`): a run whose samples average to
the right profile while each one is a blob or half of them are blank passes that check and fails
this one. Binning is the same (radius 0 to the corner, in ``BINS`` steps of the half-side).

Command: ``python -m solargen.evaluate.sun_criterion --real DIR --samples DIR [--out JSON]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: Radial bins from the centre to the frame's corner (as the run-level convergence check).
BINS = 32
#: A run draws the Sun when at least this fraction of its samples does (set before tuning).
RUN_FRACTION = 0.9
#: Coverage of the binomial interval on a run's share of passing samples.
CI_LEVEL = 0.95


def radial_profiles(images: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Each image's mean intensity against distance from the centre: (N, H, W) → (N, bins).

    Radius runs from 0 to the corner in ``bins`` equal steps of r / (half-side·√2), so the
    profile means the same thing at any resolution.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"images must be (N, H, W), got shape {images.shape}")
    n, h, w = images.shape
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) / (min(h, w) / 2)
    idx = np.minimum((r / np.sqrt(2) * bins).astype(int), bins - 1).ravel()
    counts = np.bincount(idx, minlength=bins)
    onehot = np.zeros((h * w, bins))
    onehot[np.arange(h * w), idx] = 1.0
    return images.reshape(n, h * w) @ onehot / np.maximum(counts, 1)


def real_threshold(real_profiles: np.ndarray) -> float:
    """τ: the largest leave-one-out distance of a real frame's profile to the mean of the others."""
    n = real_profiles.shape[0]
    if n < 2:
        raise ValueError(f"the threshold needs at least 2 real frames, got {n}")
    total = real_profiles.sum(0)
    others = (total[None] - real_profiles) / (n - 1)
    return float(np.abs(real_profiles - others).mean(1).max())


def fraction_interval(passed: int, n: int, level: float = CI_LEVEL) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval for a share of ``passed`` of ``n`` samples: it covers the
    model's own rate with at least ``level`` probability whatever the rate, where a normal
    approximation undercovers near 0 and 1 (where these shares sit). Beta quantiles, from
    scipy.special (scipy.stats would add ~0.7 s of import to every evaluate job)."""
    from scipy.special import betaincinv

    if n < 1 or not 0 <= passed <= n:
        raise ValueError(f"{passed} passed of {n} samples")
    alpha = 1 - level
    lo = float(betaincinv(passed, n - passed + 1, alpha / 2)) if passed > 0 else 0.0
    hi = float(betaincinv(passed + 1, n - passed, 1 - alpha / 2)) if passed < n else 1.0
    return lo, hi


def sun_criterion(real: np.ndarray, samples: np.ndarray) -> dict:
    """The per-sample criterion for generated ``samples`` against ``real`` frames, both (N, H, W)
    grey in [0, 1] at the same size → {threshold, distances, passed, fraction, draws_the_sun, ...}."""
    if real.shape[1:] != samples.shape[1:]:
        raise ValueError(f"real frames are {real.shape[1:]}, samples {samples.shape[1:]}: sizes differ")
    return criterion_from_profiles(radial_profiles(real), samples)


def criterion_from_profiles(real_profiles: np.ndarray, samples: np.ndarray) -> dict:
    """`sun_criterion` from the real frames' per-frame profiles (N, BINS), at the samples' size,
    as `real_profiles_by_size` stores them (the evaluation does not re-read the real frames)."""
    pr, ps = np.asarray(real_profiles, np.float64), radial_profiles(samples)
    if pr.ndim != 2 or pr.shape[1] != ps.shape[1]:
        raise ValueError(f"real profiles of shape {pr.shape}, expected (N, {ps.shape[1]})")
    tau = real_threshold(pr)
    d = np.abs(ps - pr.mean(0)[None]).mean(1)
    passed = d <= tau
    return {"threshold": tau, "n_real": int(pr.shape[0]), "n_samples": int(ps.shape[0]),
            "distances": [float(v) for v in d], "median_distance": float(np.median(d)),
            "passed": int(passed.sum()), "fraction": float(passed.mean()),
            "fraction_ci": list(fraction_interval(int(passed.sum()), len(passed))), "run_fraction": RUN_FRACTION,
            "draws_the_sun": bool(passed.mean() >= RUN_FRACTION)}


def real_profiles_by_size(real: np.ndarray, min_size: int = 8) -> dict[int, np.ndarray]:
    """Per-frame profiles of the real frames (N, H, W) at their size and at every size they
    block-average to by a power of two (down to ``min_size``): the references for samples drawn
    at lower resolution, as the command line compares them (`_block_mean`)."""
    out, size = {}, real.shape[1]
    while size >= min_size and real.shape[1] % size == 0 and real.shape[2] % size == 0:
        out[size] = radial_profiles(_block_mean(real, size) if size != real.shape[1] else real)
        if size % 2:
            break
        size //= 2
    return out


def _block_mean(images: np.ndarray, size: int) -> np.ndarray:
    """Real frames larger than the model's samples, block-averaged to ``size`` (as training sees them)."""
    n, h, w = images.shape
    if h % size or w % size:
        raise ValueError(f"real frames of {h}×{w} cannot be block-averaged to {size}×{size}")
    return images.reshape(n, size, h // size, size, w // size).mean((2, 4))


def main(argv: list[str] | None = None) -> int:
    from .images import load_images

    ap = argparse.ArgumentParser(prog="python -m solargen.evaluate.sun_criterion", description=__doc__.split("\n")[0])
    ap.add_argument("--real", required=True, help="folder of the real frames (PNG)")
    ap.add_argument("--samples", required=True, help="folder of one run's generated samples (PNG)")
    ap.add_argument("--out", help="write the result here as JSON (else to stdout)")
    a = ap.parse_args(argv)
    real, fake = load_images(a.real), load_images(a.samples)
    if real.shape[1:] != fake.shape[1:]:  # real frames larger than the model: as training sees them
        real = _block_mean(real, fake.shape[1])
    res = {"samples": str(a.samples), **sun_criterion(real, fake)}
    text = json.dumps(res, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    else:
        print(text)
    lo, hi = res["fraction_ci"]
    summary = (f"{a.samples}: {res['passed']}/{res['n_samples']} samples draw the Sun "
               f"(share {res['fraction']:.2f}, {CI_LEVEL:.0%} interval {lo:.2f}–{hi:.2f}; "
               f"median d {res['median_distance']:.4f}, τ {res['threshold']:.4f}) → "
               f"{'PASS' if res['draws_the_sun'] else 'FAIL'}")
    print(summary, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
