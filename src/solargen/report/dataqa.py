"""Dataset QA for the report: what calibration and normalisation did to the frames.

One figure (`dataset_qa`) with

* pixel histograms of the calibrated training frames (DN/s, log axis, with the clip constants)
  and of the normalised dataset (y ∈ [0, 1]) — both accumulated frame by frame;
* example frames: raw level 1 (binned to the dataset size for display), calibrated (level 1.5,
  DN/s) and normalised, for up to three frames spread over the time range;
* disk centre offsets and radius (output pixels) of every frame against time,

and a JSON summary beside it (the constants, the split counts, the calibration steps and tables,
the disk statistics and whether the east–west flip augmentation was on).
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import atomic_path, write_json  # noqa: E402


def _stats(x) -> dict:
    x = np.asarray(x, np.float64)
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}


def dataset_qa(dataset: str | Path, shards: list[str | Path], out_png: str | Path, out_json: str | Path,
               raw_dirs: list[str | Path] = (), east_west_flip: bool = False, n_examples: int = 3) -> dict:
    """Write the QA figure and summary; return the summary. ``raw_dirs`` are searched for the
    example frames' level-1 files (the panel says so when one is not there)."""
    from ..calibrate import bin_image, read_level1
    from ..dataset import dataset_split, frame_table, iter_images, open_dataset, read_attrs, read_images
    from ..normalise import LogHistogram

    attrs = read_attrs(dataset)
    constants = attrs["constants"]
    with open_dataset(dataset) as f:
        frames = {k: f["frames"][k][()] for k in f["frames"]}
        split = dataset_split(f)
        n, size = len(f["images"]), f["images"].shape[1]
        y_counts = np.zeros(100, np.int64)
        for i in range(n):  # one frame at a time
            y_counts += np.histogram(read_images(f, [i]), bins=100, range=(0, 1))[0]
        ex = np.unique(np.linspace(0, n - 1, min(n_examples, n)).round().astype(int))
        examples_y = read_images(f, ex)
    files = [x.decode() if isinstance(x, bytes) else str(x) for x in frames["file"]]
    dates = np.array([x.decode() if isinstance(x, bytes) else str(x) for x in frames["date_obs"]],
                     dtype="datetime64[s]")

    # Calibrated pixels of the training split, streamed.
    table = frame_table(shards)
    train_files = {files[i] for i in split["train"]}
    rows = [r for r, fn in enumerate(table["file"]) if fn in train_files]
    hist = LogHistogram(constants.get("bins_per_decade", 1000))
    for image in iter_images(shards, table, rows):
        hist.add(image)
    by_file = {fn: r for r, fn in enumerate(table["file"])}
    examples_cal = list(iter_images(shards, table, [by_file[files[i]] for i in ex]))
    examples_raw = []
    for i in ex:
        path = next((Path(d) / files[i] for d in raw_dirs if (Path(d) / files[i]).exists()), None)
        if path is not None:
            data = np.asarray(read_level1(path).data, np.float32)
            examples_raw.append(bin_image(data, size) if data.shape[0] % size == 0 else data)
        else:
            examples_raw.append(None)

    fig = plt.figure(figsize=(12, 3.2 * (2 + len(ex)) / 1.6))
    gs = fig.add_gridspec(2 + len(ex), 3, height_ratios=[1.0, 1.0] + [1.2] * len(ex))
    ax = fig.add_subplot(gs[0, :2])
    edges, counts = hist.log_counts(decimate=10)
    ax.stairs(counts, edges, fill=True, alpha=0.6)
    for k, p, ls in (("clip_min", "low_percentile", "--"), ("clip_max", "high_percentile", ":")):
        ax.axvline(np.log10(constants[k]), color="k", ls=ls, lw=1,
                   label=f"{k} = {constants[k]:.3g} DN/s (percentile {constants.get(p, '?')})")
    lo, hi = np.log10(constants["clip_min"]) - 1, np.log10(constants["clip_max"]) + 0.5
    ax.set_xlim(lo, hi)
    ax.set_yscale("log")
    ax.set_xlabel("log10 calibrated intensity (DN/s), training split")
    ax.set_ylabel("pixels")
    ax.legend(fontsize=7)
    ax = fig.add_subplot(gs[1, :2])
    ax.stairs(y_counts, np.linspace(0, 1, 101), fill=True, alpha=0.6, color="C1")
    ax.set_yscale("log")
    ax.set_xlabel("normalised y = log-scaled, clipped intensity (all frames of dataset.h5)")
    ax.set_ylabel("pixels")

    ax = fig.add_subplot(gs[0, 2])
    mid = (size - 1) / 2
    for k, c in (("disk_x0", "C0"), ("disk_y0", "C3")):
        ax.plot(dates, frames[k] - mid, ".", ms=3, color=c, label=f"{k} − image centre")
    ax.set_ylabel("disk centre offset (px)")
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax = fig.add_subplot(gs[1, 2])
    for name, c in (("train", "C2"), ("test", "C1")):
        idx = split[name]
        ax.plot(dates[idx], frames["disk_radius"][idx], ".", ms=3, color=c, label=f"{name} ({len(idx)})")
    ax.set_ylabel("disk radius (px)")
    ax.legend(fontsize=7)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)

    for r, i in enumerate(ex):
        panels = [(examples_raw[r], "raw level 1 (DN, binned)"), (examples_cal[r], "calibrated (DN/s)"),
                  (examples_y[r], "normalised y")]
        for c, (img, title) in enumerate(panels):
            ax = fig.add_subplot(gs[2 + r, c])
            ax.set_axis_off()
            if img is None:
                ax.text(0.5, 0.5, "raw frame not available", ha="center", va="center", transform=ax.transAxes)
                continue
            if c < 2:
                img = np.log10(np.clip(img, constants["clip_min"] * (2 if c == 0 else 1), None))
            ax.imshow(img, cmap="gray", origin="lower", interpolation="nearest")
            ax.set_title(f"{title}\n{files[i]}", fontsize=7)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)

    summary = {
        "n_frames": int(n), "size": int(size),
        "split": {k: int(len(v)) for k, v in split.items()} | {"record": attrs.get("split", {})},
        "constants": constants,
        "calibration": {k[len("calibration_"):]: (v.item() if hasattr(v, "item") else v)
                        for k, v in attrs.items() if k.startswith("calibration_")},
        "quantisation": attrs.get("quantisation", "float32"),
        "east_west_flip_augmentation": bool(east_west_flip),
        "disk": {k: _stats(frames[k]) for k in ("disk_x0", "disk_y0", "disk_radius") if k in frames},
        "calibrated_train_pixels": {"positive": hist.n_positive, "nonpositive": hist.nonpositive,
                                    "nonfinite": hist.nonfinite},
    }
    write_json(out_json, json.loads(json.dumps(summary, default=str)))
    return summary
