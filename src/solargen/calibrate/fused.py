"""The fused registration path (the default, the hot loop): ONE resampling from the level-1 grid
straight to the target grid with the reference's own kernel.

The spline coefficients by a symmetric FIR on the level-1 grid (`spline_prefilter`, compiled, band by
band), then at each target pixel the exact mean of its f × f cubic-spline samples as one 8 × 8
kernel (at f = 4) whose weights depend on the block centre's phase (`block_kernels`, compiled in
`solargen.resample`), through the full affine (`solargen.calibrate.geometry.level15_affine`).
sunpy's clip of every sample to the input's range is reproduced at both ends (exactly, where the
spline could cross it: `_clip_to_input_range`), and so is the zero padding ``register`` puts around
the detector before its transform (exactly, on the outermost target pixels: `_edge_targets`),
however many pixels that takes: even with every
pixel recomputed exactly the fused path costs a fifth or less of the reference's time. Frames
rolled beyond `MAX_FUSED_ROLL_DEG` take the reference path instead
(`solargen.calibrate.frame.calibrate_frame` decides, per frame). On the
disk (`ON_DISK`) it agrees with the reference to ≤ 0.1 % max relative error on ordinary, dark and
rolled frames (benchmarks/calibrate.py).
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .geometry import level15_affine, register_padding

__all__ = ["ON_DISK", "MAX_FUSED_ROLL_DEG", "FUSED_HALF_WIDTH", "FUSED_PHASES", "FUSED_BAND",
           "spline_prefilter", "block_kernels", "fused_level15"]


#: On-disk radius (in R_sun) inside which the fused and reference paths are compared; the limb
#: and off-disk corona are excluded (steep gradients there make any two kernels differ most).
ON_DISK = 0.95


#: Largest roll (deg) the fused path takes; frames rolled further go through the reference path
#: (``register``), per frame, recorded in the frame table's ``register_path``. The fused kernel
#: takes each block's sample lattice along the level-1 axes; rolled, the reference's f × f samples
#: lie on a rotated lattice, and the fused path's error grows ~0.13 % per degree (max on the disk,
#: synthetic 1024² frame at AIA 193's plate scale: 0.010 % at 0°, 0.033 % at 0.25°, 0.069 % at
#: 0.5°, 0.13 % at 1°; 4096² frames, benchmarks/calibrate.py: 0.021 % unrolled, 0.055 % at 0.25°).
#: At 0.25° it stays within ~half the 0.1 % bound. Nominal AIA 193 rolls are INST_ROT ≈ 0.058° plus
#: SAT_ROT ~1e-4°; only SDO's roll manoeuvres (calibration rolls through 360°, a few hours twice a
#: year) and off-nominal pointing exceed it.
MAX_FUSED_ROLL_DEG = 0.25


#: Pole of the cubic B-spline's interpolation prefilter (Unser 1999); the reference path
#: interpolates with scipy's order-3 spline, which is this prefilter + cubic B-spline evaluation.
_SPLINE_POLE = math.sqrt(3.0) - 2.0
#: Half-width of the fused path's spline prefilter (2·6+1 taps): the exact prefilter's weights
#: decay as |pole|^k; fitted at 6 (`spline_prefilter`) it leaves 0.013 % max relative error on
#: the disk (synthetic 1024² frame at 0.6001″), 0.010 % at 8 or more; each step of 1 costs
#: ~7 ms per 4096² frame.
FUSED_HALF_WIDTH = 6
#: sup Σ|weights| of 2-D cubic-spline interpolation (the 1-D Lebesgue constant 1.549, squared):
#: an interpolated pixel exceeds its neighbourhood's max by at most (L − 1)/2 of the range.
_SPLINE_OVERSHOOT = (1.549038**2 - 1) / 2


#: sup over positions of Σ|h_k|, where the cubic spline minus the linear interpolant of the same
#: samples is Σ h_k·Δ²d_k (1-D; computed from `_cardinal_cubic`, 0.2165 at the cell centre).
_SPLINE_VS_BILINEAR = 0.2166
#: Pixels (from a sample) over which `_SPLINE_VS_BILINEAR`'s second differences are taken.
_CURVATURE_REACH = 8


def _bspline3(t: np.ndarray) -> np.ndarray:
    """Centred cubic B-spline β³(t)."""
    t = np.abs(t)
    return np.where(t < 1, 2 / 3 - t * t + t ** 3 / 2, np.where(t < 2, (2 - t) ** 3 / 6, 0.0))


def _cardinal_cubic(t: np.ndarray) -> np.ndarray:
    """The cardinal cubic spline C(t) = Σ_k p_k β³(t − k), p_k = −6z/(1 − z²)·z^|k| (z the pole):
    the kernel scipy's order-3 interpolation applies to the samples. Only 4 terms are non-zero."""
    z = _SPLINE_POLE
    k0 = np.floor(t)
    out = np.zeros_like(t)
    for dk in (-1.0, 0.0, 1.0, 2.0):
        k = k0 + dk
        out += -6 * z / (1 - z * z) * z ** np.abs(k) * _bspline3(t - k)
    return out


@functools.lru_cache(maxsize=4)
def spline_prefilter(half: int | None = None) -> np.ndarray:
    """Taps p_0 … p_half of the fused path's spline prefilter, a symmetric FIR on the level-1
    grid: Σ_k p_k β³(t − k) fitted (least squares, gain held at 1) to the cardinal cubic spline
    C(t) (`_cardinal_cubic`), the kernel scipy's order-3 interpolation applies to the samples.
    The exact prefilter's taps decay as |z|^k (z the pole); plainly truncated at ``half`` = 6
    (`FUSED_HALF_WIDTH`) they left 0.035 % max relative error on the disk (synthetic 1024²
    frame, 0.6001″), fitted 0.013 % (0.010 % at half = 8, 10 and 14: the float32 floor)."""
    half = FUSED_HALF_WIDTH if half is None else half
    reach = half + 6
    t = np.linspace(-reach, reach, 64 * reach + 1)
    basis = np.stack([_bspline3(t)] + [_bspline3(t - j) + _bspline3(t + j) for j in range(1, half + 1)], 1)
    # Least squares with the gain fixed at 1 (p_0 + 2Σp_j): a smooth image sees the gain error.
    ones = np.concatenate([[1.0], np.full(half, 2.0)])
    normal = basis.T @ basis
    w = np.linalg.solve(normal, basis.T @ _cardinal_cubic(t))
    v = np.linalg.solve(normal, ones)
    return w + (1.0 - ones @ w) / (ones @ v) * v


#: Phases per level-1 pixel of the fused path's kernel tables; linear interpolation between
#: them leaves ≤ (1/P)²/8 · max|K''| ≈ 2e-7 per weight.
FUSED_PHASES = 1024


@functools.lru_cache(maxsize=16)
def block_kernels(f: int, step_x: float, step_y: float, phases: int = FUSED_PHASES):
    """The fused path's kernels as tables of tap weights by phase (`solargen.resample.block_means`).

    Along one axis the reference averages f cubic-spline samples spaced ``step`` level-1 pixels
    apart around a block centre x: Σ_n c_n B(x − n), c the spline coefficients, with
    B(t) = (1/f) Σ_o β³(t + o·step), o = −(f−1)/2 … (f−1)/2 — piecewise cubic with support
    |t| < 2 + (f−1)/2·step, so 2h taps (h = ⌈2 + (f−1)/2·step⌉, 8 at f = 4 for steps up to 4/3;
    n = ⌊x⌋ − h + 1 … ⌊x⌋ + h) for any plate scale, exactly. (The previous fused path fitted
    this kernel by B-splines on the integer grid, exact only at step 1; at the generator's
    0.603–0.6055″ it left up to 0.12 % on 4096² frames.) Returns (tx, ty):
    t[k, v] = B(k/P + h − 1 − v), the weight of tap v at phase k/P of x; P = ``phases``.
    """
    t = np.arange(phases + 1) / phases
    offsets = np.arange(f) - (f - 1) / 2.0

    def kernel(d, step):
        return np.mean([_bspline3(d + o * step) for o in offsets], axis=0)

    def taps(step):
        return math.ceil(2 + (f - 1) / 2.0 * step)

    tx = kernel(t[:, None] + taps(step_x) - 1 - np.arange(2 * taps(step_x))[None, :], step_x)
    ty = kernel(t[:, None] + taps(step_y) - 1 - np.arange(2 * taps(step_y))[None, :], step_y)
    return tx.astype(np.float32), ty.astype(np.float32)


def fused_level15(data: np.ndarray, meta, size: int, rsun_arcsec: float | None = None) -> np.ndarray:
    """Level-1 image (N, N) → registered, binned level-1.5 image (size, size) float32, resampled once.

    The reference's block mean of f × f cubic-spline samples, computed at the target pixels
    only: the spline coefficients by a symmetric FIR on the level-1 grid (`spline_prefilter`,
    `solargen.resample.spline_fir_rows`), then at each target pixel's block centre (see
    `level15_affine`) the exact mean of its f × f samples, one 2h × 2h kernel (8 × 8 at f = 4) per block whose weights depend on the
    centre's phase (`block_kernels`, `solargen.resample.block_means`) — exact for any plate
    scale. The sample lattice is taken along the level-1 axes: under a roll θ the reference's
    lattice is turned by θ, an error ∝ θ (over the symmetric block the terms in the first to
    third derivatives cancel; 0.033 % max at 0.25° against 0.010 % at 0° on a synthetic 1024²
    frame; see `MAX_FUSED_ROLL_DEG`). CPU time per 4096² int16 frame on one shared core (load
    ~2.5 on 2 cores, old and new kernels alternated in one process): the filter ~24 ms (~34
    before its ring rows were padded apart and its y taps made 4 rows at a time; OpenCV's
    sepFilter2D: ~44), the 1M 8 × 8 evaluations ~23 ms (~43 before their explicit vector code),
    block extrema 5 ms (~9), the clip's second differences ~9 ms plus the rest of its screen and
    the exact recomputation of 4.3 % of the pixels (~21, edge rings included); ~93 ms in all
    against ~132 ms before these changes (dark frame: 141 against 184; ~164 ms before the
    compiled FIR, ~175 ms before the clip's compiled screen).
    Pixels mapped from outside the detector (and ``register``'s zero padding) are 0; the outermost
    pixels are recomputed exactly on the padded image (`_edge_targets`). Like the reference, values are kept within the
    input's range (and 0) where the spline could overshoot it, at the top and at the bottom
    (`_clip_to_input_range`; ~+10 ms for the second differences its bottom screen needs). The
    roll is not checked here (`calibrate_frame` does: `MAX_FUSED_ROLL_DEG`).
    """
    from solargen.resample import block_extrema, block_means, spline_fir_rows

    m = level15_affine(meta, data.shape, size, rsun_arcsec)
    f = data.shape[1] // size
    # The FIR converts int16/uint16 row by row; converting 16M pixels first costs ~15 ms.
    src = data if data.dtype in (np.float32, np.int16, np.uint16) else np.asarray(data, np.float32)
    # Level-1 pixels per full-resolution level-1.5 pixel along each lattice axis.
    steps = np.hypot(m[0, :2], m[1, :2]) / f
    tx, ty = block_kernels(f, round(float(steps[0]), 9), round(float(steps[1]), 9))
    p = spline_prefilter()
    pre = np.concatenate([p[:0:-1], p]).astype(np.float32)
    out = np.empty((size, size), np.float32)
    # Per-block max/min of the input (for the clip's screening), band by band with the filter.
    top, bottom = np.empty((size, size), np.float32), np.empty((size, size), np.float32)
    done = 0  # block rows of top/bottom filled
    # Filter and evaluate band by band of target rows, so each band's coefficients (float32,
    # ~f·FUSED_BAND level-1 rows) are still in cache when evaluated instead of a 64 MiB round
    # trip through memory.
    n = data.shape[0]
    half = p.size - 1
    for q0, q1, lo, hi in _bands(m, size, n, ty.shape[1] // 2):
        a, b = max(lo - half, 0), min(hi + half, n)  # + the prefilter's reach: exact rows lo … hi
        coeffs = np.empty((hi - lo, data.shape[1]), np.float32)  # = sepFilter2D(pre, pre) rows lo … hi
        spline_fir_rows(src, lo, hi, pre[half:], coeffs)
        if b // f > done:
            block_extrema(src[done * f:b // f * f], f, top[done:b // f], bottom[done:b // f])
            done = b // f
        block_means(coeffs, lo, n, m, q0, tx, ty, steps, f, out[q0:q1])
    if done < size:
        block_extrema(src[done * f:], f, top[done:], bottom[done:])
    disk = None
    try:  # the disk in level-1 pixels (0-based), for the clip at the minimum
        cdelt = float(meta["cdelt1"])
        disk = (float(meta["crpix1"]) - 1 - float(meta.get("crval1", 0.0)) / cdelt,
                float(meta["crpix2"]) - 1 - float(meta.get("crval2", 0.0)) / cdelt, float(meta["rsun_obs"]) / cdelt)
    except (KeyError, TypeError, ValueError):
        pass
    _clip_to_input_range(out, src, m, top, bottom, disk, register_padding(meta, data.shape))
    return out


#: Target rows per band of the fused path (see `fused_level15`).
FUSED_BAND = 128


def _bands(m: np.ndarray, size: int, n: int, reach: int) -> list[tuple[int, int, int, int]]:
    """(target rows q0 … q1, level-1 rows lo … hi) of each band of FUSED_BAND target rows: the
    level-1 rows its blocks' y kernels (``reach`` taps either side of a block centre) read, and
    the mirrored rows of blocks at the image's top and bottom edges. Under a large rotation a
    band reaches most of the frame; then one band, the whole frame, is cheaper."""
    bands = []
    for q0 in range(0, size, FUSED_BAND):
        q1 = min(q0 + FUSED_BAND, size)
        rows = [m[1, 0] * x + m[1, 1] * y + m[1, 2] for x in (0, size - 1) for y in (q0, q1 - 1)]
        lo, hi = math.floor(min(rows)) - reach - 1, math.ceil(max(rows)) + reach + 2
        # mirrored at the edges: rows −k are rows k, rows n − 1 + k are n − 1 − k
        lo, hi = (0 if lo < reach + 2 else min(lo, n)), (n if hi > n - reach - 2 else max(hi, 0))
        bands.append((q0, q1, min(lo, hi), hi))
    if sum(hi - lo for *_, lo, hi in bands) > 1.5 * n:
        return [(0, size, 0, n)]
    return bands


def _clip_to_input_range(out: np.ndarray, src: np.ndarray, m: np.ndarray, top: np.ndarray,
                         bottom: np.ndarray, disk: tuple[float, float, float] | None = None,
                         pads: tuple[int, int] = (0, 0)) -> None:
    """Redo exactly, in place, the blocks where the reference clips (sunpy's ``clip=True``), and
    the outermost ones, where its zero padding acts (``pads``: `register_padding`, see `_edge_targets`).

    ``register`` (``missing=0``) clips every full-resolution interpolated pixel to
    [min(input min, 0), max(input max, 0)] (sunpy's rule with the missing value taken into the
    range), which changes block means where the spline overshoots: next to saturated pixels at
    the top, next to the darkest pixels (a coronal hole at the frame's minimum, dark sky) at the
    bottom. Blocks whose neighbourhood could cross either bound (`_SPLINE_OVERSHOOT` of the
    neighbourhood's range) are recomputed from their f² exact spline samples, clipped, then
    averaged. The maximum is screened everywhere; the minimum within 1.05 R_sun of ``disk``
    ((x0, y0, radius) in level-1 pixels; None: everywhere): off the disk the darkest pixels are
    dark-sky noise around 0 DN, where nearly every block would need the exact path and a
    relative error means nothing. ``top``/``bottom``: max/min of ``src`` over each f × f block.

    The screens are loose on small or noisy frames (the generator's 512² frames binned to 64²:
    ~50 % of the pixels), but the exact recomputation stays cheaper than the reference path at
    any share: with every pixel recomputed, 0.04–0.12 µs per level-1 pixel against the
    reference's 0.3–5 µs (128² … 2048² frames, 1 thread, shared machine), so no share sends a
    frame to the reference path (the former 5 % cap sent every demo and CI frame there).
    """
    import cv2

    from solargen.resample import exact_clipped_tiles, mark_neighbourhoods

    size, n = out.shape[0], src.shape[0]
    f = n // size
    data_lo, data_hi = float(bottom.min()), float(top.max())
    lo, hi = min(data_lo, 0.0), max(data_hi, 0.0)
    # A block's samples reach f/2 from its centre, and each depends on pixels FUSED_HALF_WIDTH + 2 away.
    r = -(-(FUSED_HALF_WIDTH + 2 + f // 2) // f) + 1
    k = _SPLINE_OVERSHOOT
    reach = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * r + 1, 2 * r + 1))
    risky = []
    # Top: a risky block needs a neighbourhood max above (hi + k·lo)/(1 + k), i.e. a block above
    # it within r: the test runs only on the window around those (usually a few).
    above = top > (data_hi + k * data_lo) / (1 + k)
    if above.any() and data_hi > data_lo:  # a flat frame has nothing to overshoot
        by, bx = np.flatnonzero(above.any(axis=1)), np.flatnonzero(above.any(axis=0))
        y0, x0 = max(by[0] - 2 * r, 0), max(bx[0] - 2 * r, 0)
        win = np.s_[y0:by[-1] + 2 * r + 1, x0:bx[-1] + 2 * r + 1]
        near_top, near_bottom = cv2.dilate(top[win], reach), cv2.erode(bottom[win], reach)
        ry, rx = np.nonzero(near_top + k * (near_top - near_bottom) > hi)
        risky.append((ry + y0, rx + x0))
    # Bottom, on the disk's window. The range bound above is far too loose here (textured disk
    # pixels a few times above a minimum of 0 would all be risky): instead, a cubic spline lies
    # within _SPLINE_VS_BILINEAR·(1.549·|Δxx| + |Δyy|) (max second differences around it) of
    # the bilinear interpolant, which is ≥ the least of the 4 pixels around the sample.
    if data_hi > data_lo:
        from solargen.resample import block_curvature, low_blocks

        y0 = x0 = 0
        y1 = x1 = size
        if disk is not None:
            cx, cy, rad = (v / f for v in disk)
            y0, y1 = max(int(cy - 1.05 * rad) - 1, 0), min(int(cy + 1.05 * rad) + 2, size)
            x0, x1 = max(int(cx - 1.05 * rad) - 1, 0), min(int(cx + 1.05 * rad) + 2, size)
        if y0 < y1 and x0 < x1:
            rd = -(-_CURVATURE_REACH // f) + 1  # blocks whose second differences reach a sample
            cy0, cy1, cx0, cx1 = max(y0 - rd, 0), min(y1 + rd, size), 0, size  # whole rows (fast)
            dxx, dyy = np.empty((cy1 - cy0, size), np.float32), np.empty((cy1 - cy0, size), np.float32)
            block_curvature(src[cy0 * f:cy1 * f], f, dxx, dyy)  # a row slice stays C-contiguous
            wide = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * rd + 1, 2 * rd + 1))
            near = cv2.erode(bottom[cy0:cy1, cx0:cx1], cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3)))
            tail = 1e-4 * (hi - lo)  # the weights beyond _CURVATURE_REACH (|pole|^8 ≈ 4e-5)
            # near − K·(1.549·max|Δxx| + max|Δyy|) − tail < lo, within 1.05 R_sun: one compiled pass
            ry, rx = np.empty((y1 - y0) * (x1 - x0), np.int64), np.empty((y1 - y0) * (x1 - x0), np.int64)
            count = low_blocks(near, cv2.dilate(dxx, wide), cv2.dilate(dyy, wide), cy0, y0, y1, x0, x1,
                               np.float32(1.549038), np.float32(_SPLINE_VS_BILINEAR), np.float32(tail), np.float32(lo),
                               *((cx, cy, (1.05 * rad) ** 2) if disk is not None else (0.0, 0.0, -1.0)), f, ry, rx)
            ry, rx = ry[:count], rx[:count]
            risky.append((ry, rx))
    edge = _edge_targets(m, size, n, f, pads)
    ry = rx = np.empty(0, np.int64)
    if risky:
        ry, rx = np.concatenate([a for a, _ in risky]), np.concatenate([b for _, b in risky])
    if ry.size == 0 and edge.size == 0:
        return
    mark = np.zeros(size * size, bool)  # the distinct pixels, sorted (np.unique sorts: ~10× slower)
    if ry.size:
        # The target pixels whose block centre (m @ [x, y, 1]) falls in a risky level-1 block: map the
        # few risky blocks back (a block is about one target pixel) and take the 3 × 3 around each.
        centres = np.stack([rx, ry]) * f + (f - 1) / 2.0 - m[:, 2:]
        qx, qy = np.rint(np.linalg.solve(m[:, :2], centres)).astype(np.int64)
        mark_neighbourhoods(qy, qx, size, mark)
    mark[edge] = True
    redo = np.flatnonzero(mark)
    if redo.size == 0:  # every risky block maps outside the target grid
        return
    a = m[:, :2] / f  # one full-res level-1.5 pixel in level-1 pixels
    o = np.arange(f) - (f - 1) / 2.0
    fine = np.stack(np.meshgrid(o, o, indexing="ij"), -1).reshape(-1, 2)  # (f², (dy, dx))
    dy = a[1, 0] * fine[:, 1] + a[1, 1] * fine[:, 0]
    dx = a[0, 0] * fine[:, 1] + a[0, 1] * fine[:, 0]
    # In tiles of _EXACT_TILE² target pixels: one local spline prefilter per tile (compiled).
    y, x = np.divmod(redo, size)
    tile = (y // _EXACT_TILE) * size + x // _EXACT_TILE
    order = np.argsort(tile, kind="stable")
    y, x, tile = y[order], x[order], tile[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(tile)) + 1, [tile.size]])
    exact_clipped_tiles(src, m, f, y, x, starts, dy, dx, FUSED_HALF_WIDTH + 4, lo, hi, out, pads[1], pads[0])


#: Side (target pixels) of the tiles of `_clip_to_input_range`'s exact recomputation, each with its
#: own local spline prefilter over its window (+ 10 level-1 pixels of margin). 32 measured no
#: faster (4096² frames, ordinary and dark, alternated in one process; output within 3.2e-7).
_EXACT_TILE = 16


#: Level-1 pixels from the detector's edge within which a sample's spline coefficients feel
#: ``register``'s zero padding instead of a mirror: the step's weight decays as |pole|^d
#: (3.7e-4 at 6).
_EDGE_REACH = 6


def _edge_targets(m: np.ndarray, size: int, n: int, f: int, pads: tuple[int, int]) -> np.ndarray:
    """Flat indices of the target pixels whose f × f samples (with the cubic spline's 2-pixel
    support) come within `_EDGE_REACH` of the detector's edge or beyond it: where ``register``,
    which pads the level-1 image with ``pads`` columns/rows of 0 before its transform (sunpy's
    ``rotate``), sees a step to 0 (and interpolates samples up to ``pads`` beyond the edge)
    while the FIR and `block_means` mirror the detector at its edge. Left as they were, these
    outermost pixels differed by up to ~30 % (the generator's 128² … 512² frames). Without
    padding too: under a roll, blocks straddling the edge lose samples along a tilted line,
    which `block_means`' per-axis edge path cannot follow (6 % on one demo pixel at 0.04°).
    Only the outer few rings of the target grid can qualify (~3 ms per 4096² frame)."""
    a = m[:, :2] / f
    e = (f - 1) / 2.0 * (np.abs(a).sum(axis=0).max()) + 2.0  # a sample's reach from its block centre
    lim = _EDGE_REACH + e
    # Rings that can qualify: up to the detector's corners moved in by lim, in target pixels (the
    # detector's edges are straight, so its sides lie no deeper in the grid than their corners).
    inner = np.array([[x, y] for x in (lim, n - 1 - lim) for y in (lim, n - 1 - lim)], float).T
    qx_, qy_ = np.linalg.solve(m[:, :2], inner - m[:, 2:])
    depth = np.maximum(np.minimum(qx_, size - 1 - qx_), np.minimum(qy_, size - 1 - qy_)).max()
    k = int(min(max(depth, 0.0) + 2, size))
    rows = np.r_[0:k, max(size - k, k):size]
    cols = np.r_[0:k, max(size - k, k):size]
    mid = np.arange(k, max(size - k, k))
    qy = np.concatenate([np.repeat(rows, size), np.repeat(mid, cols.size)])
    qx = np.concatenate([np.tile(np.arange(size), rows.size), np.tile(cols, mid.size)])
    c = m[0, 0] * qx + m[0, 1] * qy + m[0, 2]
    r = m[1, 0] * qx + m[1, 1] * qy + m[1, 2]
    near = (np.minimum(c, r) < lim) | (np.maximum(c, r) > n - 1 - lim)
    return qy[near] * size + qx[near]
