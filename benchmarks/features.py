"""Feature extraction: our image pipeline vs clean-fid's own folder pipeline, same extractor.

Both read the same folder of 8-bit grey PNGs (log-normalised synthetic frames, as the study's
image folder) and resize them with clean-fid's "clean" PIL-bicubic resize to the network's input,
then run the same frozen network (``efficientnet_lite0``, offline weights) on the CPU. clean-fid
converts each grey image to RGB and resizes all three identical channels; ours resizes once and
repeats. Last line: ``ours_img_s=… cleanfid_img_s=… ratio=… max_abs_diff=…``.

    python benchmarks/features.py [--n 64] [--size 1024] [--net efficientnet_lite0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--net", default="efficientnet_lite0")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)

    from cleanfid import fid
    from cleanfid.resize import make_resizer
    from PIL import Image

    from solargen.acquire.synthetic import synthetic_frame
    from solargen.evaluate.features import build_extractor, folder_features, input_size

    with tempfile.TemporaryDirectory() as d:
        for s in range(a.n):
            img = np.log1p(synthetic_frame(s % 8, "2011-01-01T00:00:00.000", native_size=a.size)[0].astype(np.float64))
            Image.fromarray((255 * img / img.max()).astype(np.uint8)).save(Path(d) / f"{s:05d}.png")
        files = sorted(str(p) for p in Path(d).glob("*.png"))
        model = build_extractor(a.net)
        size = input_size(a.net)
        resize = make_resizer("PIL", False, "bicubic", (size, size))

        def cleanfid():
            return fid.get_files_features(files, model=model, num_workers=0, batch_size=32,
                                          device=torch.device("cpu"), mode="clean", custom_fn_resize=resize,
                                          verbose=False)

        # Interleaved repeats, best of each: the machine's other load hits both alike.
        t_ours, t_ref = [], []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            ours = folder_features(files, a.net)
            t_ours.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            ref = cleanfid()
            t_ref.append(time.perf_counter() - t0)
        t_ours, t_ref = min(t_ours), min(t_ref)
    diff = float(np.max(np.abs(ours - ref)))
    print(f"{a.n} images of {a.size}² → {a.net} ({size}²), {a.threads} threads")
    print(f"  ours      {t_ours:8.2f} s  {a.n / t_ours:7.2f} img/s")
    print(f"  clean-fid {t_ref:8.2f} s  {a.n / t_ref:7.2f} img/s")
    print(f"ours_img_s={a.n / t_ours:.3f} cleanfid_img_s={a.n / t_ref:.3f} ratio={t_ref / t_ours:.3f} "
          f"max_abs_diff={diff:.3g}")


if __name__ == "__main__":
    main()
