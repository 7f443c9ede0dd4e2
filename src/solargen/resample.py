"""Compiled inner loops of the fused level-1.5 path (`solargen.calibrate.fused_level15`).

Two loops that numpy/scipy/OpenCV cannot do in one pass over the data:

* `bspline_at_blocks`: cubic B-spline evaluation at every target pixel's block centre, with the
  fused path's 2-wide box filter folded into the spline weights (5 taps per axis instead of a
  separate pass over the 4096² level-1 grid);
* `block_extrema`: per-block maximum and minimum of the level-1 image in one pass (the clip
  emulation's screening);
* `block_curvature`: per-block maximum second differences (the screening of the clip at the
  minimum).

Single-threaded and GIL-free: the pipeline parallelises by frame across processes. Compiled on
first use and cached on disk (numba ``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, inline="always")
def _mirror(i: int, n: int) -> int:
    """Index i reflected into 0 … n-1 without repeating the edge (scipy 'mirror', OpenCV REFLECT_101)."""
    period = 2 * n - 2
    i = abs(i) % period if period else 0
    return period - i if i >= n else i


_SIXTH, _TWO_THIRDS, _HALF = np.float32(1 / 6), np.float32(2 / 3), np.float32(0.5)


@numba.njit(cache=True, inline="always")
def _bspline_weights(t: np.float32):
    """Cubic B-spline weights (float32) at fraction t ∈ [0, 1) for knots floor−1 … floor+2."""
    s = np.float32(1.0) - t
    t2, s2 = t * t, s * s
    return s2 * s * _SIXTH, _TWO_THIRDS - t2 + t2 * t * _HALF, _TWO_THIRDS - s2 + s2 * s * _HALF, t2 * t * _SIXTH


@numba.njit(cache=True, inline="always")
def _boxed_weights(t: np.float32):
    """The weights for the 2-wide box of the coefficients: 5 taps, knots floor−2 … floor+2."""
    b0, b1, b2, b3 = _bspline_weights(t)
    return b0 * _HALF, (b0 + b1) * _HALF, (b1 + b2) * _HALF, (b2 + b3) * _HALF, b3 * _HALF


@numba.njit(cache=True, nogil=True, fastmath=True)
def bspline_at_blocks(coeffs: np.ndarray, row0: int, height: int, m: np.ndarray, q0: int, pair: int,
                      out: np.ndarray) -> None:
    """out[k, qx] = Σ β³(r − i) β³(c − j) · b[i, j] at (c, r) = m @ [qx, q0 + k, 1] + (pair − 1)/2.

    ``coeffs`` (rows, N) float32: level-1 rows row0 … of the spline coefficients before the box,
    covering every row the points reach (the caller's band); ``height`` the image's N. b = the
    ``pair``-wide box of ``coeffs`` (pair 1 or 2) whose mean sits at the box's second index
    (OpenCV's anchor), mirrored at the image's edges. Points outside [0, N−1] give 0 (scipy
    ``map_coordinates(mode="constant")``). ``m`` (2, 3) float64; ``out`` (rows, size) float32.
    Positions in float64; weights and sums in float32 like the data (scipy sums in float64:
    ~1e-7 relative apart).
    """
    n0, n1 = height, coeffs.shape[1]
    shift = (pair - 1) / 2.0
    size = out.shape[1]
    for k in range(out.shape[0]):
        qy = q0 + k
        r0, c0 = m[1, 1] * qy + m[1, 2] + shift, m[0, 1] * qy + m[0, 2] + shift
        # The window is inside the image for qx in [lo, hi) (a row's points lie on a line): no
        # checks there. The box's extra tap reaches one pixel before the spline's first.
        lo, hi = _inside(r0, m[1, 0], pair, n0, 0, size)
        lo, hi = _inside(c0, m[0, 0], pair, n1, lo, hi)
        for qx in range(lo, hi):
            r, c = r0 + m[1, 0] * qx, c0 + m[0, 0] * qx
            i, j = int(r), int(c)
            tr, tc = np.float32(r - i), np.float32(c - j)
            if pair == 2:
                out[k, qx] = _dot5(coeffs, i - 2 - row0, j - 2, _boxed_weights(tr), _boxed_weights(tc))
            else:
                out[k, qx] = _dot4(coeffs, i - 1 - row0, j - 1, _bspline_weights(tr), _bspline_weights(tc))
        for qx in range(size):
            if lo <= qx < hi:
                continue
            r, c = r0 + m[1, 0] * qx, c0 + m[0, 0] * qx
            if not (0.0 <= r <= n0 - 1 and 0.0 <= c <= n1 - 1):
                out[k, qx] = 0.0
            else:
                i, j = int(r), int(c)  # floor: r, c ≥ 0 here
                out[k, qx] = _edge_value(coeffs, row0, n0, i - 1, j - 1, pair, np.float32(r - i), np.float32(c - j))


@numba.njit(cache=True, inline="always")
def _inside(p0: float, step: float, pair: int, n: int, lo: int, hi: int):
    """The qx in [lo, hi) where p = p0 + step·qx has its window floor(p) − pair … floor(p) + 2
    inside 0 … n − 1, a point narrower on each side than the bound (rounding): the rest take the
    checked path."""
    a, b = float(pair), n - 3.0  # need a ≤ p < b
    if step == 0.0:
        return (lo, hi) if a <= p0 < b else (lo, lo)
    x0, x1 = (a - p0) / step, (b - p0) / step
    if step < 0:
        x0, x1 = x1, x0
    x0, x1 = min(max(x0, lo - 1.0), hi + 1.0), min(max(x1, lo - 1.0), hi + 1.0)  # int-safe
    lo = max(lo, int(np.ceil(x0)) + 1)
    hi = min(hi, int(np.floor(x1)) - 1)
    return (lo, hi) if lo < hi else (lo, lo)


@numba.njit(cache=True, inline="always")
def _dot5(a, i, j, wr, wc):
    """Σ wr[u]·wc[v]·a[i + u, j + v] over a 5 × 5 window: five row sums, then one across them
    (weights as tuples, so they stay in registers)."""
    c0, c1, c2, c3, c4 = wc
    h0 = c0 * a[i, j] + c1 * a[i, j + 1] + c2 * a[i, j + 2] + c3 * a[i, j + 3] + c4 * a[i, j + 4]
    h1 = c0 * a[i + 1, j] + c1 * a[i + 1, j + 1] + c2 * a[i + 1, j + 2] + c3 * a[i + 1, j + 3] + c4 * a[i + 1, j + 4]
    h2 = c0 * a[i + 2, j] + c1 * a[i + 2, j + 1] + c2 * a[i + 2, j + 2] + c3 * a[i + 2, j + 3] + c4 * a[i + 2, j + 4]
    h3 = c0 * a[i + 3, j] + c1 * a[i + 3, j + 1] + c2 * a[i + 3, j + 2] + c3 * a[i + 3, j + 3] + c4 * a[i + 3, j + 4]
    h4 = c0 * a[i + 4, j] + c1 * a[i + 4, j + 1] + c2 * a[i + 4, j + 2] + c3 * a[i + 4, j + 3] + c4 * a[i + 4, j + 4]
    return wr[0] * h0 + wr[1] * h1 + wr[2] * h2 + wr[3] * h3 + wr[4] * h4


@numba.njit(cache=True, inline="always")
def _dot4(a, i, j, wr, wc):
    """Σ wr[u]·wc[v]·a[i + u, j + v] over a 4 × 4 window (as `_dot5`)."""
    c0, c1, c2, c3 = wc
    h0 = c0 * a[i, j] + c1 * a[i, j + 1] + c2 * a[i, j + 2] + c3 * a[i, j + 3]
    h1 = c0 * a[i + 1, j] + c1 * a[i + 1, j + 1] + c2 * a[i + 1, j + 2] + c3 * a[i + 1, j + 3]
    h2 = c0 * a[i + 2, j] + c1 * a[i + 2, j + 1] + c2 * a[i + 2, j + 2] + c3 * a[i + 2, j + 3]
    h3 = c0 * a[i + 3, j] + c1 * a[i + 3, j + 1] + c2 * a[i + 3, j + 2] + c3 * a[i + 3, j + 3]
    return wr[0] * h0 + wr[1] * h1 + wr[2] * h2 + wr[3] * h3


@numba.njit(cache=True)
def _edge_value(coeffs, row0, n0, i0, j0, pair, tr, tc):
    """The spline at a point within two pixels of the image's edge: the spline's knot index is
    mirrored first (scipy), then the box reads its two pixels mirrored again (OpenCV)."""
    n1 = coeffs.shape[1]
    wr = _bspline_weights(tr)
    wc = _bspline_weights(tc)
    acc = np.float32(0.0)
    for a in range(4):
        i = _mirror(i0 + a, n0)
        for b in range(4):
            j = _mirror(j0 + b, n1)
            if pair == 2:
                v = 0.0
                for di in (-1, 0):
                    for dj in (-1, 0):
                        v += coeffs[_mirror(i + di, n0) - row0, _mirror(j + dj, n1)]
                v /= 4.0
            else:
                v = coeffs[i - row0, j]
            acc += wr[a] * wc[b] * v
    return acc


@numba.njit(cache=True, nogil=True)
def block_extrema(a: np.ndarray, f: int, top: np.ndarray, bottom: np.ndarray) -> None:
    """top/bottom (rows/f, cols/f) float32 = max/min of ``a`` (rows, cols) over each f × f block."""
    hi = np.empty(a.shape[1], a.dtype)  # native dtype: int16 max/min vectorises 16-wide
    lo = np.empty(a.shape[1], a.dtype)
    for by in range(top.shape[0]):
        # column-wise extrema over the block's f rows (vectorises), then over each f columns
        for x in range(a.shape[1]):
            hi[x] = lo[x] = a[by * f, x]
        for y in range(by * f + 1, by * f + f):
            for x in range(a.shape[1]):
                v = a[y, x]
                hi[x] = max(hi[x], v)
                lo[x] = min(lo[x], v)
        for bx in range(top.shape[1]):
            h, l_ = hi[bx * f], lo[bx * f]
            for k in range(1, f):
                h = max(h, hi[bx * f + k])
                l_ = min(l_, lo[bx * f + k])
            top[by, bx] = h
            bottom[by, bx] = l_


@numba.njit(cache=True, nogil=True, fastmath=True)
def block_curvature(a: np.ndarray, f: int, dxx: np.ndarray, dyy: np.ndarray) -> None:
    """dxx/dyy (rows/f, cols/f) float32 = max over each f × f block of ``a`` of |a[y, x-1] -
    2a[y, x] + a[y, x+1]| and |a[y-1, x] - 2a[y, x] + a[y+1, x]| (0 on the first and last row
    and column). The clip emulation's bound on how far a cubic spline departs from the bilinear
    interpolant of the same pixels (`solargen.calibrate._clip_to_input_range`). Written over
    whole rows: restricting the columns made numba's loops ~7× slower."""
    ny, nx = a.shape
    hx = np.empty(nx, np.float32)  # column-wise maxima over the block's rows (vectorises)
    hy = np.empty(nx, np.float32)
    for by in range(dxx.shape[0]):
        hx[:] = 0.0
        hy[:] = 0.0
        for y in range(by * f, by * f + f):
            if 0 < y < ny - 1:
                for x in range(nx):
                    c = np.float32(a[y, x])
                    hy[x] = max(hy[x], abs(np.float32(a[y - 1, x]) + np.float32(a[y + 1, x]) - 2 * c))
            for x in range(1, nx - 1):
                c = np.float32(a[y, x])
                hx[x] = max(hx[x], abs(np.float32(a[y, x - 1]) + np.float32(a[y, x + 1]) - 2 * c))
        for bx in range(dxx.shape[1]):
            mx, my = hx[bx * f], hy[bx * f]
            for k in range(1, f):
                mx = max(mx, hx[bx * f + k])
                my = max(my, hy[bx * f + k])
            dxx[by, bx] = mx
            dyy[by, bx] = my


_POLE = np.sqrt(3.0) - 2.0


@numba.njit(cache=True, inline="always")
def _prefilter_line(c: np.ndarray, horizon: int) -> None:
    """In place: the cubic B-spline interpolation prefilter of one line (Unser's recursive filter,
    mirror boundary, as scipy's ``spline_filter1d(mode="mirror")``), float64."""
    n = c.size
    z = _POLE
    if n == 1:
        return
    for i in range(n):
        c[i] *= 6.0  # gain (1 - z)(1 - 1/z)
    # causal initialisation: Σ z^k c[k] over the horizon (mirror boundary)
    zk, s = z, c[0]
    for k in range(1, min(horizon, n)):
        s += zk * c[k]
        zk *= z
    c[0] = s
    for i in range(1, n):
        c[i] += z * c[i - 1]
    c[n - 1] = z / (z * z - 1.0) * (c[n - 1] + z * c[n - 2])
    for i in range(n - 2, -1, -1):
        c[i] = z * (c[i + 1] - c[i])


@numba.njit(cache=True, nogil=True)
def exact_clipped_means(src: np.ndarray, m: np.ndarray, f: int, ty: np.ndarray, tx: np.ndarray, r0: int,
                        r1: int, c0: int, c1: int, lo: float, hi: float, out: np.ndarray) -> None:
    """out[ty[i], tx[i]] = mean over the f × f full-resolution level-1.5 pixels of target pixel
    (tx[i], ty[i]) of the cubic spline of ``src`` (what scipy's order-3 ``map_coordinates``
    gives) clipped to [lo, hi]: ``register`` + block mean, exactly, for a few pixels.

    The spline coefficients are computed on the window src[r0:r1, c0:c1] only (mirror boundary
    at its edges: callers pad it by ≥ 10 pixels, where the prefilter's weights are < 2e-6);
    samples outside the detector are 0 (``mode="constant"``). ``m`` (2, 3) as `bspline_at_blocks`.
    """
    n0, n1 = src.shape
    h, w = r1 - r0, c1 - c0
    coef = np.empty((h, w), np.float64)
    for i in range(h):
        for j in range(w):
            coef[i, j] = src[r0 + i, c0 + j]
    horizon = 24  # |z|^24 < 1e-13
    line = np.empty(max(h, w), np.float64)
    for i in range(h):
        line[:w] = coef[i]
        _prefilter_line(line[:w], horizon)
        coef[i] = line[:w]
    for j in range(w):
        line[:h] = coef[:, j]
        _prefilter_line(line[:h], horizon)
        coef[:, j] = line[:h]
    ax, bx, ay, by = m[0, 0] / f, m[0, 1] / f, m[1, 0] / f, m[1, 1] / f
    for k in range(ty.size):
        qx, qy = tx[k], ty[k]
        cx, cy = m[0, 0] * qx + m[0, 1] * qy + m[0, 2], m[1, 0] * qx + m[1, 1] * qy + m[1, 2]
        acc = 0.0
        for u in range(f):
            oy = u - (f - 1) / 2.0
            for v in range(f):
                ox = v - (f - 1) / 2.0
                c = cx + ax * ox + bx * oy
                r = cy + ay * ox + by * oy
                if not (0.0 <= r <= n0 - 1 and 0.0 <= c <= n1 - 1):
                    val = 0.0
                else:
                    i0, j0 = int(np.floor(r)), int(np.floor(c))
                    tr, tc = r - i0, c - j0
                    sr, sc = 1.0 - tr, 1.0 - tc
                    wr = (sr * sr * sr / 6.0, 2.0 / 3.0 - tr * tr + tr * tr * tr / 2.0,
                          2.0 / 3.0 - sr * sr + sr * sr * sr / 2.0, tr * tr * tr / 6.0)
                    wc = (sc * sc * sc / 6.0, 2.0 / 3.0 - tc * tc + tc * tc * tc / 2.0,
                          2.0 / 3.0 - sc * sc + sc * sc * sc / 2.0, tc * tc * tc / 6.0)
                    val = 0.0
                    for a in range(4):
                        ii = i0 - 1 + a - r0
                        ii = -ii if ii < 0 else (2 * (h - 1) - ii if ii >= h else ii)
                        row = 0.0
                        for b in range(4):
                            jj = j0 - 1 + b - c0
                            jj = -jj if jj < 0 else (2 * (w - 1) - jj if jj >= w else jj)
                            row += wc[b] * coef[ii, jj]
                        val += wr[a] * row
                acc += min(max(val, lo), hi)
        out[qy, qx] = acc / (f * f)
