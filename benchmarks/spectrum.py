"""Radially averaged power spectra: our batched implementation vs a straightforward per-image one.

Both run on the same stack of 1024² images (synthetic level-1 frames, log-normalised, as the
study's 1024-px data): the reference loops over images with a full complex FFT, fftshift and a
per-image radius map; ours is `solargen.evaluate.spectrum.radial_power_spectrum` (one batched
real FFT, one bincount). Last line: ``speedup_vs_numpy=… max_rel_err=…``.

    python benchmarks/spectrum.py [--n 16] [--size 1024]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from solargen.acquire.synthetic import synthetic_frame
from solargen.evaluate.spectrum import radial_power_spectrum


def per_image_reference(images: np.ndarray) -> np.ndarray:
    """The textbook way, one image at a time: |fftshift(fft2)|² averaged in integer-radius annuli."""
    n, h, w = images.shape
    out = np.zeros((n, h // 2))
    for i, img in enumerate(images):
        f = np.fft.fftshift(np.fft.fft2(img - img.mean()))
        p = np.abs(f) ** 2 / (h * w)
        yy, xx = np.indices((h, w))
        r = np.rint(np.hypot(yy - h // 2, xx - w // 2)).astype(int)
        for k in range(1, h // 2 + 1):
            out[i, k - 1] = p[r == k].mean()
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--size", type=int, default=1024)
    a = ap.parse_args()
    images = np.stack([np.log1p(synthetic_frame(s, "2011-01-01T00:00:00.000", native_size=a.size)[0].astype(np.float64))
                       for s in range(a.n)])
    images /= images.max()
    t0 = time.perf_counter()
    ref = per_image_reference(images)
    t_ref = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, ours = radial_power_spectrum(images)
    t_ours = time.perf_counter() - t0
    err = float(np.max(np.abs(ours - ref) / np.abs(ref)))
    print(f"{a.n} images of {a.size}²: per-image numpy {t_ref:.2f} s, batched {t_ours:.2f} s")
    print(f"speedup_vs_numpy={t_ref / t_ours:.3g} max_rel_err={err:.2e}")


if __name__ == "__main__":
    main()
