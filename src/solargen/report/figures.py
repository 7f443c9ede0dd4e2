"""Figures for the report: sample grids beside real images, and power spectra."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..evaluate.metrics import image_files  # noqa: E402
from ..io import atomic_path  # noqa: E402


def _aia_cmap():
    import sunpy.visualization.colormaps  # noqa: F401  (registers sdoaia193)

    return matplotlib.colormaps["sdoaia193"]


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
    each run's legend entry gives its spectral distance to the real spectrum in the upper half of k."""
    from ..evaluate.metrics import HIGH_BAND
    from ..evaluate.spectrum import spectral_distance

    fig, (ax, axr) = plt.subplots(2, 1, figsize=(7, 6.5), sharex=True, gridspec_kw={"height_ratios": [3, 1.3]})
    with np.load(real_npz) as z:
        k, pr = z["k"], z["power"]
    ref = pr.mean(0)
    _band(ax, k, pr, "real", "k")
    for name, path in run_npz.items():
        with np.load(path) as z:
            p = z["power"]
        d = spectral_distance(ref, p.mean(0), HIGH_BAND)
        line = _band(ax, k, p, f"{_short(name)}  (d_high {d:.2f})", None)
        axr.plot(k, p.mean(0) / ref, color=line.get_color())
    ax.set(xscale="log", yscale="log", ylabel="power")
    ax.legend(fontsize=7)
    axr.axhline(1, color="k", lw=0.8)
    axr.set(xscale="log", yscale="log", xlabel="wavenumber k (cycles per image)", ylabel="fake / real")
    axr.axvspan(k[len(k) // 2], k[-1], color="0.9", zorder=0, label="high band")
    axr.legend(fontsize=7)
    fig.tight_layout()
    _save(fig, out)


def dft_figure(real: np.ndarray, run_dirs: dict[str, str | Path], out: str | Path) -> None:
    """The seed's DFT comparison: mean log10 |DFT| of held-out real frames beside each run's."""
    from ..evaluate.metrics import load_images
    from ..models.msdgan.metrics import dft_magnitude

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


def _band(ax, k, p, label, color):
    lo, hi = np.percentile(p, [16, 84], axis=0)
    (line,) = ax.plot(k, p.mean(0), label=label, color=color, lw=1.5 if color else 1.0)
    ax.fill_between(k, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    return line


def _short(name: str, width: int = 38) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _save(fig, out):
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format=Path(out).suffix[1:])
    plt.close(fig)
