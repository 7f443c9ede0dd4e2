"""Figures for the report: sample grids beside real images, power spectra, and the study's
quantitative figures rebuilt from a results.csv (rankings, diffusion sweeps, metric correlations,
spectral distances, training curves)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..io import atomic_path, image_files  # noqa: E402


#: sunpy's ``sdoaia193`` colour map as its 256 RGBA entries (float64, exactly as sunpy builds
#: them; `tests/test_report.py` checks them against sunpy). Importing sunpy's colour maps pulls
#: in astropy.wcs and sunpy.coordinates: over half the CPU time (~2 of 4 s) of the demo's grid jobs.
AIA193_LUT = "sdoaia193.npy"


def _aia_cmap():
    """The AIA 193 Å colour map (sunpy's ``sdoaia193``), from `AIA193_LUT`: the same colours
    for every pixel (a lookup table of the same N entries), without importing sunpy."""
    from importlib import resources

    from matplotlib.colors import ListedColormap

    with resources.files(__package__).joinpath(AIA193_LUT).open("rb") as f:
        return ListedColormap(np.load(f), name="sdoaia193")


def sample_grid(real_dir: str | Path, run_dirs: dict[str, str | Path], out: str | Path, n: int = 6) -> None:
    """One row of real images, then one row per run, in grey and in the AIA 193 colour map."""
    from PIL import Image

    rows = {"real": real_dir, **run_dirs}
    cmaps = ["gray", _aia_cmap()]
    fig, axes = plt.subplots(len(rows), 2 * n, figsize=(2 * n * 1.1, len(rows) * 1.25), squeeze=False)
    for r, (name, folder) in enumerate(rows.items()):
        files = image_files(folder)[:n]
        for c in range(2 * n):
            ax = axes[r, c]
            ax.set_axis_off()
            if c % n < len(files):
                img = np.asarray(Image.open(files[c % n]).convert("L"))
                ax.imshow(img, cmap=cmaps[c // n], vmin=0, vmax=255, interpolation="nearest")
        axes[r, 0].text(-0.1, 0.5, _short(name), transform=axes[r, 0].transAxes, ha="right", va="center",
                        fontsize=7)
    fig.subplots_adjust(left=0.2, right=0.99, top=0.97, bottom=0.02, wspace=0.03, hspace=0.05)
    _save(fig, out)


def run_grid(folder: str | Path, out: str | Path, side: int = 4) -> None:
    """One run's first ``side``² samples as a grid, in grey (left) and the AIA 193 map (right)."""
    from PIL import Image

    files = image_files(folder)[: side * side]
    fig, axes = plt.subplots(side, 2 * side, figsize=(2 * side * 1.2, side * 1.2), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for i, f in enumerate(files):
        img = np.asarray(Image.open(f).convert("L"))
        for half, cmap in enumerate(("gray", _aia_cmap())):
            axes[i // side, half * side + i % side].imshow(img, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
    fig.subplots_adjust(left=0.01, right=0.99, top=0.99, bottom=0.01, wspace=0.03, hspace=0.03)
    _save(fig, out)


def zoom_grid(real_dir: str | Path, run_dirs: dict[str, str | Path], out: str | Path, n: int = 3,
              crop: float = 0.25) -> None:
    """Fine scale by eye: per row (real, then each run) ``n`` whole images, then a native-resolution
    crop (side ``crop`` × S, nearest-neighbour, on the disk off-centre) of each, in the AIA 193 map.

    The study's StyleGAN2 failure is at these scales, where a whole-image view hides it.
    """
    from PIL import Image

    rows = {"real": real_dir, **run_dirs}
    cmap = _aia_cmap()
    fig, axes = plt.subplots(len(rows), 2 * n, figsize=(2 * n * 1.2, len(rows) * 1.3), squeeze=False)
    for r, (name, folder) in enumerate(rows.items()):
        for c, f in enumerate(image_files(folder)[:n]):
            img = np.asarray(Image.open(f).convert("L"))
            s = img.shape[0]
            w, y0, x0 = max(4, int(crop * s)), int(0.30 * s), int(0.52 * s)
            axes[r, c].imshow(img, cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
            axes[r, c].add_patch(matplotlib.patches.Rectangle((x0 - 0.5, y0 - 0.5), w, w, fill=False,
                                                              edgecolor="w", lw=0.8))
            axes[r, n + c].imshow(img[y0:y0 + w, x0:x0 + w], cmap=cmap, vmin=0, vmax=255, interpolation="nearest")
        for ax in axes[r]:
            ax.set_axis_off()
        axes[r, 0].text(-0.1, 0.5, _short(name), transform=axes[r, 0].transAxes, ha="right", va="center",
                        fontsize=7)
    fig.subplots_adjust(left=0.2, right=0.99, top=0.97, bottom=0.02, wspace=0.04, hspace=0.06)
    _save(fig, out)


def spectrum_figure(real_npz: str | Path, run_npz: dict[str, str | Path], out: str | Path) -> None:
    """Mean radial power spectrum of real images and of each run (log-log), with 16–84 % bands;
    each run's legend entry gives, in the upper half of k, its signed bias (mean log10 P_fake/P_real:
    negative = missing fine-scale power) and its unsigned spectral distance to the real spectrum."""
    from ..evaluate.spectrum import HIGH_BAND, relative_error, spectral_bias, spectral_distance

    fig, (ax, axr) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    with np.load(real_npz) as z:
        k, pr = z["k"], z["power"]
    ref = pr.mean(0)
    _band(ax, k, pr, "real", color="k", lw=1.5)
    for (name, path), style in zip(run_npz.items(), line_styles(len(run_npz))):
        with np.load(path) as z:
            p = z["power"]
        # A run of smaller images is stored on its own band (k ≤ its Nyquist), power rescaled.
        kr, rr = k[: p.shape[1]], ref[: p.shape[1]]
        d = spectral_distance(rr, p.mean(0), HIGH_BAND)
        b = spectral_bias(rr, p.mean(0), HIGH_BAND)
        _band(ax, kr, p, f"{_short(name)}  (bias_high {b:+.2f}, d_high {d:.2f})", **style)
        axr.plot(kr, relative_error(rr, p.mean(0)), **style)
    ax.set(xscale="log", yscale="log", ylabel="power")
    ax.legend(fontsize=7)
    axr.axhline(0, color="k", lw=0.8)
    axr.set_yscale("symlog", linthresh=0.1)
    axr.set(xscale="log", xlabel="wavenumber k (cycles per image)",
            ylabel="relative error\n(fake − real) / real")
    axr.axvspan(k[len(k) // 2], k[-1], color="0.9", zorder=0, label="high band")
    axr.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out)


def dft_figure(real: np.ndarray, run_dirs: dict[str, str | Path], out: str | Path) -> None:
    """The seed's DFT comparison: mean log10 |DFT| of held-out real frames beside each run's."""
    from ..evaluate.images import load_images
    from ..evaluate.pixel import dft_magnitude

    panels = {"real (held out)": dft_magnitude(real)}
    panels |= {_short(name, 30): dft_magnitude(load_images(d)) for name, d in run_dirs.items()}
    vmin, vmax = np.percentile(panels["real (held out)"], [1, 99.9])
    fig, axes = plt.subplots(1, len(panels), figsize=(2.6 * len(panels), 2.9), squeeze=False)
    for ax, (name, mag) in zip(axes[0], panels.items()):
        im = ax.imshow(mag, cmap="magma", vmin=vmin, vmax=vmax)
        ax.set_title(name, fontsize=7)
        ax.set_axis_off()
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="mean log10 |DFT|")
    _save(fig, out)


#: One colour per family in every figure (tab10 entries), so a family reads the same everywhere.
FAMILY_COLOURS = {"diffusion": "#1f77b4", "projectedgan": "#ff7f0e", "stylegan2": "#2ca02c",
                  "msdgan": "#d62728", "bicubic": "#7f7f7f"}


def _log_if_wide(ax, values, axis="x"):
    """Log axis when the (positive) values span more than a decade, as FIDs across runs often do."""
    v = np.asarray([x for x in values if np.isfinite(x)])
    if len(v) and (v > 0).all() and v.max() / v.min() > 10:
        (ax.set_xscale if axis == "x" else ax.set_yscale)("log")


def _family_legend(ax, families):
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=FAMILY_COLOURS.get(f, "k"), label=f) for f in sorted(set(families))],
              fontsize=7, loc="best")


def ranking_figure(rank, out: str | Path) -> None:
    """Horizontal bars: every run's FID (best at the top), coloured by family.

    ``rank``: the DataFrame of `tables.ranking` (index run; columns family, fid, net).
    """
    fig, ax = plt.subplots(figsize=(8.5, 0.28 * len(rank) + 1.2))
    y = np.arange(len(rank))[::-1]
    ax.barh(y, rank.fid, color=[FAMILY_COLOURS.get(f, "k") for f in rank.family])
    ax.set_yticks(y, [_short(r, 64) for r in rank.index], fontsize=7)
    _log_if_wide(ax, rank.fid)
    net = rank.net.iloc[0] if len(rank) else "?"
    ax.set_xlabel(f"FID ({net} features; lower is better)")
    _family_legend(ax, rank.family)
    fig.tight_layout()
    _save(fig, out)


def diffusion_figure(by_s, by_t, out: str | Path, net: str) -> None:
    """The study's two bar charts: FID vs sampling steps S (T = 1000) and best FID vs training
    diffusion steps T. Inputs are `tables.fid_vs_sampling_steps` / `fid_vs_training_steps`."""
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, d, col, title in ((axes[0], by_s, "S", "FID vs sampling steps (T = 1000)"),
                              (axes[1], by_t, "T", "best FID vs training steps")):
        if len(d):
            ax.bar([str(v) for v in d[col]], d.fid, color=FAMILY_COLOURS["diffusion"])
            for i, v in enumerate(d.fid):
                ax.text(i, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
        else:
            ax.text(0.5, 0.5, "no runs of this sweep", transform=ax.transAxes, ha="center")
        ax.set(title=title, xlabel=f"{col} (diffusion steps)", ylabel=f"FID ({net})")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    _save(fig, out)


def spearman_figure(corr, out: str | Path) -> None:
    """Heat map of the Spearman ρ between metrics across runs (`results.spearman_table`)."""
    n = len(corr)
    fig, ax = plt.subplots(figsize=(3.5 + 0.45 * max(n, 2), 2.5 + 0.45 * max(n, 2)))
    im = ax.imshow(corr.to_numpy(dtype=float), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_xticks(range(n), corr.columns, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(n), corr.index, fontsize=7)
    for i in range(n):
        for j in range(len(corr.columns)):
            v = corr.iat[i, j]
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=6,
                        color="w" if abs(v) > 0.6 else "k")
    fig.colorbar(im, ax=ax, shrink=0.8, label="Spearman ρ")
    fig.tight_layout()
    _save(fig, out)


def spectral_distance_figure(table, families: dict[str, str], out: str | Path) -> None:
    """Per run the high-band spectral distance with its 95 % bootstrap interval (`tables.spectral_table`)."""
    if "spectral_distance_high" not in table.columns:
        raise ValueError("results.csv has no spectral_distance_high rows (power spectra were not evaluated)")
    t = table.sort_values("spectral_distance_high")
    fig, ax = plt.subplots(figsize=(8.5, 0.28 * len(t) + 1.2))
    y = np.arange(len(t))[::-1]
    fam = [families.get(r, "projectedgan") for r in t.index]
    err = None
    if {"spectral_distance_high_ci95_low", "spectral_distance_high_ci95_high"} <= set(t.columns):
        err = np.vstack([t.spectral_distance_high - t.spectral_distance_high_ci95_low,
                         t.spectral_distance_high_ci95_high - t.spectral_distance_high]).clip(min=0)
    ax.barh(y, t.spectral_distance_high, xerr=err, color=[FAMILY_COLOURS.get(f, "k") for f in fam],
            error_kw={"lw": 0.8, "capsize": 2})
    ax.set_yticks(y, [_short(r, 64) for r in t.index], fontsize=7)
    ax.set_xlabel("high-band spectral distance (mean |Δ log10 P|, upper half of k; 95 % CI)")
    _family_legend(ax, fam)
    fig.tight_layout()
    _save(fig, out)


def training_curves(logs: dict[str, str | Path], out: str | Path) -> None:
    """One panel per trained model: every logged loss against step (images/s left out) and, on a
    second axis, the periodic spectral check of EMA samples where the log has it."""
    import pandas as pd

    n = len(logs)
    cols = min(3, max(n, 1))
    rows = -(-max(n, 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax, (name, path) in zip(axes.flat, logs.items()):
        d = pd.read_csv(path)
        for c in d.columns:
            if c not in ("step", "images_per_s", "gpu_mem_gb") and not c.startswith("check_") and d[c].abs().sum() > 0:
                ax.plot(d.step, d[c], label=c, lw=1)
        ax.set(title=_short(name, 40), xlabel="training step", ylabel="loss / logit")
        ax.title.set_fontsize(8)
        ax.legend(fontsize=6, loc="upper left")
        checks = [c for c in d.columns if c.startswith("check_")]
        if checks:  # the periodic spectral check of EMA samples, on its own axis
            ax2 = ax.twinx()
            for c, style in zip(checks, ("ko--", "ks:")):
                m = d[c].notna()
                ax2.plot(d.step[m], d[c][m], style, ms=3, lw=0.8, label=c.removeprefix("check_"))
            ax2.set_ylabel("spectral distance (EMA samples)", fontsize=7)
            ax2.legend(fontsize=6, loc="upper right")
    for ax in axes.flat[n:]:
        ax.set_axis_off()
    fig.tight_layout()
    _save(fig, out)


def line_styles(n: int) -> list[dict]:
    """n distinct (colour, line style) pairs: tab10 has ten colours, so past ten runs the style
    changes and no two runs of a figure look alike."""
    return [{"color": f"C{i % 10}", "ls": ("-", "--", ":", "-.")[i // 10 % 4]} for i in range(n)]


def _band(ax, k, p, label, color, ls="-", lw=1.0):
    lo, hi = np.percentile(p, [16, 84], axis=0)
    ax.plot(k, p.mean(0), label=label, color=color, ls=ls, lw=lw)
    ax.fill_between(k, lo, hi, color=color, alpha=0.15, lw=0)


def _short(name: str, width: int = 38) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _save(fig, out):
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(out).suffix[1:])
    plt.close(fig)
