"""Dataset QA for the report: what calibration and normalisation did to the frames.

One figure (`dataset_qa`) with

* pixel histograms of the calibrated training frames (DN/s, log axis, with the clip constants)
  and of the normalised dataset (y ∈ [0, 1]) — both accumulated frame by frame;
* example frames: raw level 1 (binned to the dataset size for display), calibrated (level 1.5,
  DN/s) and normalised, for up to three frames spread over the time range;
* disk centre offsets and radius (output pixels) of every frame against time, as the header
  says (after calibration) and as measured from the image (`measure_limb`),

and a JSON summary beside it (the constants, the split counts, the calibration steps and tables,
the frames the calibration rejected by filter (QUALITY, EXPTIME, the plausibility check, ...) and
the registration path each took, the disk statistics and whether the east–west flip augmentation
was on).
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
    x = x[np.isfinite(x)]  # frames left out of the limb fits (see max_frames)
    if not x.size:
        return {}
    return {"mean": float(x.mean()), "std": float(x.std()), "min": float(x.min()), "max": float(x.max())}


def measure_limb(image: np.ndarray, radius: float, n_rays: int = 180, band: float = 0.1) -> tuple[float, float, float]:
    """Disk centre (x0, y0, 0-based) and limb radius (pixels) measured from the image alone.

    In 193 Å (and 171 Å) the optically thin corona is brightest right at the limb. Along
    ``n_rays`` rays from the image centre, the limb is the brightest point within ±``band`` of
    the expected ``radius``; a circle is fitted to those points (least squares, three rounds
    dropping rays > 3 MAD off, e.g. across active regions), then everything is repeated from the
    fitted centre. Any monotone scaling of the image (log, normalisation) gives the same answer.
    The EUV limb lies ~1 % outside the photospheric RSUN_OBS.
    """
    import scipy.ndimage

    img = np.nan_to_num(np.asarray(image, np.float64))
    cx = cy = (img.shape[0] - 1) / 2
    theta = np.linspace(0, 2 * np.pi, n_rays, endpoint=False)
    r = np.arange((1 - band) * radius, (1 + band) * radius, 0.1)
    for _ in range(2):
        xs = cx + r[None, :] * np.cos(theta)[:, None]
        ys = cy + r[None, :] * np.sin(theta)[:, None]
        prof = scipy.ndimage.map_coordinates(img, [ys, xs], order=3, mode="nearest")
        rl = r[prof.argmax(1)]
        px, py = cx + rl * np.cos(theta), cy + rl * np.sin(theta)
        keep = np.ones(n_rays, bool)
        for _ in range(3):
            a = np.column_stack([px[keep], py[keep], np.ones(keep.sum())])
            sol = np.linalg.lstsq(a, px[keep] ** 2 + py[keep] ** 2, rcond=None)[0]
            x0, y0 = sol[0] / 2, sol[1] / 2
            rad = float(np.sqrt(sol[2] + x0 ** 2 + y0 ** 2))
            res = np.hypot(px - x0, py - y0) - rad
            med = np.median(res[keep])
            keep = np.abs(res - med) < 3 * 1.4826 * np.median(np.abs(res[keep] - med)) + 1e-6
        cx, cy = x0, y0
    return float(x0), float(y0), rad


def calibration_counts(shards: list[str | Path]) -> dict:
    """What the calibration did with every input frame, over all shards: frames, ok, rejections by
    filter (`solargen.calibrate.level1.reject_kind`: QUALITY, IMG_TYPE, EXPTIME, non-finite,
    implausible), the plausibility rejections by test, and which registration path the ok
    frames took (fused, reference, the roll fallback)."""
    from collections import Counter

    from ..calibrate.level1 import reject_kind
    from ..shards import read_shard

    frames, ok, rejected, implausible, paths = 0, 0, Counter(), Counter(), Counter()
    for shard in shards:
        _, table = read_shard(shard, images=False)
        for i, status in enumerate(table["status"]):
            frames += 1
            if status == "ok":
                ok += 1
                paths[str(table["register_path"][i]) if "register_path" in table else "unrecorded"] += 1
                continue
            reason = str(table["reason"][i])
            rejected[reject_kind(reason)] += 1
            if reason.startswith("implausible"):
                implausible[("outside detector range" if "outside the detector range" in reason else
                             "disk/background" if "disk/background" in reason else "header geometry")] += 1
    return {"frames": frames, "ok": ok, "rejected": dict(rejected), "implausible": dict(implausible),
            "register_path": dict(paths)}


def dataset_qa(dataset: str | Path, shards: list[str | Path], out_png: str | Path, out_json: str | Path,
               raw_dirs: list[str | Path] = (), east_west_flip: bool = False, n_examples: int = 3,
               max_frames: int = 2000) -> dict:
    """Write the QA figure and summary; return the summary. ``raw_dirs`` are searched for the
    example frames' level-1 files (the panel says so when one is not there). Histograms and limb
    fits use at most ``max_frames`` frames evenly spaced in time (all of them in small sets)."""
    from ..calibrate.geometry import bin_image
    from ..calibrate.level1 import read_level1
    from ..dataset import dataset_split, open_dataset, read_attrs, read_images
    from ..shards import frame_table, iter_images
    from ..normalise import LogHistogram

    attrs = read_attrs(dataset)
    constants = attrs["constants"]
    with open_dataset(dataset) as f:
        frames = {k: f["frames"][k][()] for k in f["frames"]}
        split = dataset_split(f)
        n, size = len(f["images"]), f["images"].shape[1]
        y_counts = np.zeros(100, np.int64)
        limb = np.full((n, 3), np.nan)
        used = np.unique(np.linspace(0, n - 1, min(n, max_frames)).round().astype(int))
        for i in used:  # one frame at a time
            y = read_images(f, [i])[0]
            y_counts += np.histogram(y, bins=100, range=(0, 1))[0]
            if "disk_radius" in frames:
                limb[i] = measure_limb(y, frames["disk_radius"][i])
        ex = np.unique(np.linspace(0, n - 1, min(n_examples, n)).round().astype(int))
        examples_y = read_images(f, ex)
    files = [x.decode() if isinstance(x, bytes) else str(x) for x in frames["file"]]
    dates = np.array([x.decode() if isinstance(x, bytes) else str(x) for x in frames["date_obs"]],
                     dtype="datetime64[s]")

    # Calibrated pixels of the training split, streamed.
    table = frame_table(shards)
    train_files = {files[i] for i in split["train"]}
    used_files = {files[i] for i in used}
    rows = [r for r, fn in enumerate(table["file"]) if fn in train_files and fn in used_files]
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
    for j, (k, c) in enumerate((("disk_x0", "C0"), ("disk_y0", "C3"))):
        ax.plot(dates, frames[k] - mid, "-", lw=1, color=c, label=f"{k} (header) − centre")
        ax.plot(dates, limb[:, j] - mid, ".", ms=3, color=c, label=f"{k[-2]} measured (limb fit) − centre")
    ax.set_ylabel("disk centre offset (px)")
    ax.legend(fontsize=6)
    ax.tick_params(axis="x", labelrotation=30, labelsize=7)
    ax = fig.add_subplot(gs[1, 2])
    ax.plot(dates, frames["disk_radius"], "-", lw=1, color="k", label="RSUN_OBS (header)")
    for name, c in (("train", "C2"), ("test", "C1")):
        idx = split[name]
        ax.plot(dates[idx], limb[idx, 2], ".", ms=3, color=c, label=f"EUV limb, {name} ({len(idx)})")
    ax.set_ylabel("disk radius (px)")
    ax.legend(fontsize=6)
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
        "n_frames": int(n), "size": int(size), "n_frames_in_histograms_and_limb_fits": int(len(used)),
        "split": {k: int(len(v)) for k, v in split.items()} | {"record": attrs.get("split", {})},
        "constants": constants,
        "calibration": {k[len("calibration_"):]: (v.item() if hasattr(v, "item") else v)
                        for k, v in attrs.items() if k.startswith("calibration_")},
        "quantisation": attrs.get("quantisation", "float32"),
        "east_west_flip_augmentation": bool(east_west_flip),
        "disk_header": {k: _stats(frames[k]) for k in ("disk_x0", "disk_y0", "disk_radius") if k in frames},
        "disk_measured": {"x0_minus_centre": _stats(limb[:, 0] - mid), "y0_minus_centre": _stats(limb[:, 1] - mid),
                          "limb_over_rsun_obs": _stats(limb[:, 2] / frames["disk_radius"])},
        "calibration_frames": calibration_counts(shards),
        "calibrated_train_pixels": {"positive": hist.n_positive, "nonpositive": hist.nonpositive,
                                    "nonfinite": hist.nonfinite},
    }
    write_json(out_json, json.loads(json.dumps(summary, default=str)))
    return summary
