"""Compiled inner loops of the fused level-1.5 path (`solargen.calibrate.fused.fused_level15`).

Loops that numpy/scipy/OpenCV cannot do in one pass over the data:

* `spline_fir_rows`: the spline prefilter (a separable symmetric FIR) on a band of rows,
  streamed through a ring of rows in cache;
* `block_means`: the mean of each target pixel's f × f cubic-spline samples straight from the
  spline coefficients, with an exact per-block kernel of 2h taps per axis (8 at f = 4) read from
  phase tables; at f = 4 in explicit 8-wide vector code (`_dot8x8`, a numba intrinsic);
* `block_extrema`: per-block maximum and minimum of the level-1 image in one pass (the clip
  emulation's screening);
* `block_curvature`: per-block maximum second differences (the screening of the clip at the
  minimum), and `low_blocks`, that screen's test;
* `exact_clipped_tiles` / `exact_clipped_means`: the exact, clipped recomputation of the
  screened pixels (`mark_neighbourhoods` collects them).

Single-threaded and GIL-free: the pipeline parallelises by frame across processes. Compiled on
first use and cached on disk (numba ``cache=True``).
"""

from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@numba.njit(cache=True, inline="always")
def _mirror(i: int, n: int) -> int:
    """Index i reflected into 0 … n-1 without repeating the edge (scipy 'mirror', OpenCV REFLECT_101)."""
    period = 2 * n - 2
    i = abs(i) % period if period else 0
    return period - i if i >= n else i


@numba.njit(cache=True, nogil=True, fastmath=True)
def block_means(coeffs: np.ndarray, row0: int, height: int, m: np.ndarray, q0: int, tx: np.ndarray,
                ty: np.ndarray, steps: np.ndarray, f: int, out: np.ndarray) -> None:
    """out[k, qx] = the mean of the f × f cubic-spline samples of the block of target pixel
    (qx, q0 + k): ``register`` + block mean without the clip, for a sample lattice along the
    level-1 axes (`solargen.calibrate.fused.fused_level15`).

    ``coeffs`` (rows, N) float32: the spline coefficients of level-1 rows row0 … (the image
    through the prefilter); ``height`` the image's N. With the block centre (c, r) =
    m @ [qx, qy, 1], the f samples c + o·s_x (o = −(f−1)/2 … (f−1)/2, s_x = ``steps[0]``) of a
    row average to Σ_j coeffs[·, j] B_x(c − j), B_x(t) = (1/f) Σ_o β³(t + o·s_x): an exact
    kernel of 2h taps, not a fit; likewise along y. ``tx``/``ty`` (P + 1, 2h): the kernels' tap
    weights at P + 1 phases of c and r (`solargen.calibrate.fused.block_kernels`), interpolated
    linearly. Blocks whose taps all lie inside the image take the tabled path; the rest are
    computed directly (`_block_mean_edge`). Positions in float64, weights and sums in float32
    like the data (scipy sums in float64: ~1e-7 relative apart).
    """
    n1 = coeffs.shape[1]
    n_x, n_y = tx.shape[1], ty.shape[1]
    hx, hy = n_x // 2, n_y // 2
    phases = tx.shape[0] - 1
    size = out.shape[1]
    wx = np.empty(n_x, np.float32)
    lo_row, hi_row = max(row0, 0), min(row0 + coeffs.shape[0], height)
    cs, rs = np.empty(size), np.empty(size)  # a target row's block centres: one vectorised pass
    m00, m01, m02, m10, m11, m12 = m[0, 0], m[0, 1], m[0, 2], m[1, 0], m[1, 1], m[1, 2]
    for k in range(out.shape[0]):
        qy = q0 + k
        for qx in range(size):
            cs[qx] = m00 * qx + m01 * qy + m02
            rs[qx] = m10 * qx + m11 * qy + m12
        for qx in range(size):
            c, r = cs[qx], rs[qx]
            jc, ic = int(np.floor(c)), int(np.floor(r))
            j0, i0 = jc - hx + 1, ic - hy + 1
            if not (j0 >= 0 and j0 + n_x <= n1 and i0 >= lo_row and i0 + n_y <= hi_row):
                out[k, qx] = _block_mean_edge(coeffs, row0, height, c, r, steps, f)
                continue
            px, py = (c - jc) * phases, (r - ic) * phases
            kx, ky = min(int(px), phases - 1), min(int(py), phases - 1)
            ax, ay = np.float32(px - kx), np.float32(py - ky)
            if n_x == 8 and n_y == 8:  # f = 4 at a plate scale near 0.6″: the hot loop
                out[k, qx] = _dot8x8(coeffs, i0 - row0, j0, tx, kx, ax, ty, ky, ay)
                continue
            x0, x1 = tx[kx], tx[kx + 1]
            y0, y1 = ty[ky], ty[ky + 1]
            for v in range(n_x):
                wx[v] = x0[v] + ax * (x1[v] - x0[v])
            s = np.float32(0.0)
            for u in range(n_y):
                row = coeffs[i0 + u - row0, j0:j0 + n_x]
                h = np.float32(0.0)
                for v in range(n_x):
                    h += wx[v] * row[v]
                s += (y0[u] + ay * (y1[u] - y0[u])) * h
            out[k, qx] = s


@numba.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _taps13(out, mid, l1, r1, l2, r2, l3, r3, l4, r4, l5, r5, l6, r6, p) -> None:
    """out = the 13-tap symmetric FIR ``p`` over a centre line and its six neighbours each side
    (one loop over whole slices, so numba vectorises it; indexing ``buf[j - k]`` does not)."""
    p0, p1, p2, p3, p4, p5, p6 = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    for j in range(out.size):
        out[j] = (p0 * mid[j] + p1 * (l1[j] + r1[j]) + p2 * (l2[j] + r2[j]) + p3 * (l3[j] + r3[j])
                  + p4 * (l4[j] + r4[j]) + p5 * (l5[j] + r5[j]) + p6 * (l6[j] + r6[j]))


@numba.njit(cache=True, nogil=True, fastmath=True)
def _fir_line(line, p, buf, out):
    """out = the symmetric FIR p (taps p[0], p[±1] … p[±h]) along ``line`` (any real dtype),
    mirrored at its ends without repeating the edge (OpenCV BORDER_REFLECT_101), float32.
    ``buf`` (len + 2h) float32 scratch. Sums over slices, not ``buf[j + k]``: an index that can
    go negative gets numba's wraparound test, which keeps LLVM from vectorising (~10× slower)."""
    h, w = p.size - 1, line.size
    mid = buf[h:h + w]
    for j in range(w):
        mid[j] = np.float32(line[j])
    for k in range(1, h + 1):
        buf[h - k] = mid[_mirror(-k, w)]
        buf[h + w - 1 + k] = mid[_mirror(w - 1 + k, w)]
    if h == 6:  # FUSED_HALF_WIDTH: one pass, the 13 taps in registers
        _taps13(out, mid, buf[5:5 + w], buf[7:7 + w], buf[4:4 + w], buf[8:8 + w], buf[3:3 + w], buf[9:9 + w],
                buf[2:2 + w], buf[10:10 + w], buf[1:1 + w], buf[11:11 + w], buf[0:w], buf[12:12 + w], p)
        return
    for j in range(w):
        out[j] = p[0] * mid[j]
    for k in range(1, h + 1):
        pk, lo, hi = p[k], buf[h - k:h - k + w], buf[h + k:h + k + w]
        for j in range(w):
            out[j] += pk * (lo[j] + hi[j])


@numba.njit(cache=True, nogil=True, fastmath=True)
def spline_fir_rows(src: np.ndarray, a: int, b: int, p: np.ndarray, out: np.ndarray) -> None:
    """out[i − a] = rows a … b − 1 of ``src`` (N, M) through the separable symmetric FIR ``p``
    (float32 taps p_0 … p_h, the fused path's spline prefilter) along both axes, mirrored at
    the image's edges (BORDER_REFLECT_101): what ``cv2.sepFilter2D`` gives on the whole image,
    to float32 rounding, for those rows only.

    Streams the rows: each source row is converted and filtered along x once, into a ring of
    the rows the y taps need (2h + 1, or 16 at h = 6: ~260 KiB at 4096 columns, in L2), and the
    y filter runs from there; ~45 % less CPU than OpenCV on the bands of `fused_level15`."""
    n, w = src.shape
    h = p.size - 1
    # The ring's rows one cache line apart beyond their 16 KiB: at a power-of-two stride the
    # rows the y taps read fall in the same L1 sets and evict each other (same output, ~7 ms
    # less CPU per 4096² frame).
    stride = w + _RING_PAD
    buf = np.empty(w + 2 * h, np.float32)
    if h == 6:  # FUSED_HALF_WIDTH
        _fir_rows13(src, a, b, p, out, buf, stride)
        return
    ring_n = 2 * h + 1
    ring = np.empty(ring_n * stride, np.float32)
    for r in range(a - h, a + h):
        _fir_line(src[_mirror(r, n)], p, buf, _ring_row(ring, r % ring_n, stride, w))
    for i in range(a, b):
        r = i + h
        _fir_line(src[_mirror(r, n)], p, buf, _ring_row(ring, r % ring_n, stride, w))
        o = out[i - a]
        mid = _ring_row(ring, i % ring_n, stride, w)
        for j in range(w):
            o[j] = p[0] * mid[j]
        for k in range(1, h + 1):
            pk = p[k]
            lo, hi = _ring_row(ring, (i - k) % ring_n, stride, w), _ring_row(ring, (i + k) % ring_n, stride, w)
            for j in range(w):
                o[j] += pk * (lo[j] + hi[j])


@numba.njit(cache=True, nogil=True, fastmath=True)
def _fir_rows13(src, a, b, p, out, buf, stride):
    """`spline_fir_rows` at h = 6: the y taps four output rows at a time from the 16 x-filtered
    rows they read (`_taps13x4`: each row loaded once for four outputs; ~13 % less CPU than
    row by row, same arithmetic), the last rows of the band one by one (`_taps13`)."""
    n, w = src.shape
    ring = np.empty(16 * stride, np.float32)  # x-filtered row r at slot r % 16
    done = a - 6  # next row to filter along x
    i = a
    while i < b:
        quad = i + 4 <= b
        while done <= i + (9 if quad else 6):
            _fir_line(src[_mirror(done, n)], p, buf, _ring_row(ring, done % 16, stride, w))
            done += 1
        if quad:
            _taps13x4(out[i - a], out[i + 1 - a], out[i + 2 - a], out[i + 3 - a],
                      _ring_row(ring, (i - 6) % 16, stride, w), _ring_row(ring, (i - 5) % 16, stride, w),
                      _ring_row(ring, (i - 4) % 16, stride, w), _ring_row(ring, (i - 3) % 16, stride, w),
                      _ring_row(ring, (i - 2) % 16, stride, w), _ring_row(ring, (i - 1) % 16, stride, w),
                      _ring_row(ring, i % 16, stride, w), _ring_row(ring, (i + 1) % 16, stride, w),
                      _ring_row(ring, (i + 2) % 16, stride, w), _ring_row(ring, (i + 3) % 16, stride, w),
                      _ring_row(ring, (i + 4) % 16, stride, w), _ring_row(ring, (i + 5) % 16, stride, w),
                      _ring_row(ring, (i + 6) % 16, stride, w), _ring_row(ring, (i + 7) % 16, stride, w),
                      _ring_row(ring, (i + 8) % 16, stride, w), _ring_row(ring, (i + 9) % 16, stride, w), p)
            i += 4
        else:
            _taps13(out[i - a], _ring_row(ring, i % 16, stride, w),
                    _ring_row(ring, (i - 1) % 16, stride, w), _ring_row(ring, (i + 1) % 16, stride, w),
                    _ring_row(ring, (i - 2) % 16, stride, w), _ring_row(ring, (i + 2) % 16, stride, w),
                    _ring_row(ring, (i - 3) % 16, stride, w), _ring_row(ring, (i + 3) % 16, stride, w),
                    _ring_row(ring, (i - 4) % 16, stride, w), _ring_row(ring, (i + 4) % 16, stride, w),
                    _ring_row(ring, (i - 5) % 16, stride, w), _ring_row(ring, (i + 5) % 16, stride, w),
                    _ring_row(ring, (i - 6) % 16, stride, w), _ring_row(ring, (i + 6) % 16, stride, w), p)
            i += 1


@numba.njit(cache=True, nogil=True, fastmath=True, inline="always")
def _taps13x4(o0, o1, o2, o3, s0, s1, s2, s3, s4, s5, s6, s7, s8, s9, s10, s11, s12, s13, s14, s15, p):
    """`_taps13` for four consecutive centre lines (s6 … s9) from the 16 lines around them."""
    p0, p1, p2, p3, p4, p5, p6 = p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    for j in range(o0.size):
        a0, a1, a2, a3, a4, a5, a6, a7 = s0[j], s1[j], s2[j], s3[j], s4[j], s5[j], s6[j], s7[j]
        a8, a9, a10, a11, a12, a13, a14, a15 = s8[j], s9[j], s10[j], s11[j], s12[j], s13[j], s14[j], s15[j]
        o0[j] = (p0 * a6 + p1 * (a5 + a7) + p2 * (a4 + a8) + p3 * (a3 + a9) + p4 * (a2 + a10)
                 + p5 * (a1 + a11) + p6 * (a0 + a12))
        o1[j] = (p0 * a7 + p1 * (a6 + a8) + p2 * (a5 + a9) + p3 * (a4 + a10) + p4 * (a3 + a11)
                 + p5 * (a2 + a12) + p6 * (a1 + a13))
        o2[j] = (p0 * a8 + p1 * (a7 + a9) + p2 * (a6 + a10) + p3 * (a5 + a11) + p4 * (a4 + a12)
                 + p5 * (a3 + a13) + p6 * (a2 + a14))
        o3[j] = (p0 * a9 + p1 * (a8 + a10) + p2 * (a7 + a11) + p3 * (a6 + a12) + p4 * (a5 + a13)
                 + p5 * (a4 + a14) + p6 * (a3 + a15))


#: Padding (float32 elements, one 64-byte cache line) after each row of `spline_fir_rows`' ring.
_RING_PAD = 16


@numba.njit(cache=True, inline="always")
def _ring_row(ring, k, stride, w):
    """Row k of a ring of rows stored ``stride`` apart in the 1-D array ``ring`` (a contiguous
    slice: a 2-D view of the padded rows would not be, and would not vectorise)."""
    return ring[k * stride:k * stride + w]


@intrinsic
def _dot8x8(typingctx, a, i, j, tx, kx, ax, ty, ky, ay):
    """Σ_u wy[u] Σ_v wx[v] a[i + u, j + v] over an 8 × 8 window (f = 4 at a plate scale near
    0.6″), wx = tx[kx] + ax·(tx[kx + 1] − tx[kx]) and wy likewise from ``ty``, in 8-wide vector
    code: the window's rows and the table rows as <8 × float32> loads, the column sums as 8
    vector multiply-adds, one horizontal sum. numba's scalar code (column sums over row slices,
    weights as tuples) was not vectorised by LLVM and took ~2× the CPU (4096² frame, both in one
    process). ``a``, ``tx``, ``ty``: C-contiguous float32, 2-D; the caller keeps the window and
    the table rows kx, kx + 1, ky, ky + 1 (8 columns) inside them (no bounds checks)."""
    def c_f32_2d(t):
        return isinstance(t, types.Array) and t.ndim == 2 and t.dtype == types.float32 and t.layout == "C"

    if not (c_f32_2d(a) and c_f32_2d(tx) and c_f32_2d(ty)):
        return None
    sig = types.float32(a, i, j, tx, kx, ax, ty, ky, ay)

    def codegen(context, builder, signature, args):
        st = signature.args
        i32, i64 = ir.IntType(32), ir.IntType(64)
        vt = ir.VectorType(ir.FloatType(), 8)
        fast = ("fast",)

        def lanes(*idx):
            return ir.Constant(ir.VectorType(i32, len(idx)), list(idx))

        def row8(arr, aty, r, c):  # <8 × float32> at arr[r, c:c + 8]
            ary = context.make_array(aty)(context, builder, arr)
            idx = builder.add(builder.mul(r, builder.extract_value(ary.shape, 1)), c)
            return builder.load(builder.bitcast(builder.gep(ary.data, [idx], inbounds=True), vt.as_pointer()), align=4)

        def weights(tab, tty, k, kty, w, wty):  # tab[k] + w·(tab[k + 1] − tab[k])
            k = context.cast(builder, k, kty, types.int64)
            w = context.cast(builder, w, wty, types.float32)
            lo = row8(tab, tty, k, ir.Constant(i64, 0))
            hi = row8(tab, tty, builder.add(k, ir.Constant(i64, 1)), ir.Constant(i64, 0))
            w = builder.insert_element(ir.Constant(vt, ir.Undefined), w, ir.Constant(i32, 0))
            w = builder.shuffle_vector(w, w, lanes(*[0] * 8))
            return builder.fadd(lo, builder.fmul(w, builder.fsub(hi, lo, flags=fast), flags=fast), flags=fast)

        av, iv, jv, txv, kxv, axv, tyv, kyv, ayv = args
        wx = weights(txv, st[3], kxv, st[4], axv, st[5])
        wy = weights(tyv, st[6], kyv, st[7], ayv, st[8])
        iv, jv = context.cast(builder, iv, st[1], types.int64), context.cast(builder, jv, st[2], types.int64)
        col = None
        for u in range(8):  # column sums: Σ_u wy[u]·a[i + u, j:j + 8]
            term = builder.fmul(builder.shuffle_vector(wy, wy, lanes(*[u] * 8)),
                                row8(av, st[0], builder.add(iv, ir.Constant(i64, u)), jv), flags=fast)
            col = term if col is None else builder.fadd(col, term, flags=fast)
        x = builder.fmul(col, wx, flags=fast)
        for n in (4, 2, 1):  # pairwise horizontal sum
            x = builder.fadd(builder.shuffle_vector(x, x, lanes(*range(n))),
                             builder.shuffle_vector(x, x, lanes(*range(n, 2 * n))), flags=fast)
        return builder.extract_element(x, ir.Constant(i32, 0))

    return sig, codegen


@numba.njit(cache=True)
def _block_mean_edge(coeffs, row0, height, c, r, steps, f):
    """`block_means` for one block near or beyond the image's edge, directly: each of the f
    samples per axis inside [0, N − 1] adds its 4 cubic B-spline weights at mirrored knots (scipy
    mirrors the coefficients), samples outside add nothing (0, ``mode="constant"``). Per axis:
    under a roll the lattice's samples leave the image along a tilted line, which this ignores
    (only the outermost target pixels, off the disk)."""
    n1 = coeffs.shape[1]
    ext = int(2 + (f - 1) * max(steps[0], steps[1]) / 2.0) + 3
    width = 2 * ext + 1
    wx = np.zeros(width, np.float64)  # knots jc − ext … jc + ext
    wy = np.zeros(width, np.float64)
    jc, ic = int(np.floor(c)), int(np.floor(r))
    for o in range(f):
        off = o - (f - 1) / 2.0
        for axis in range(2):
            p = (c if axis == 0 else r) + off * steps[axis]
            if not (0.0 <= p <= (n1 if axis == 0 else height) - 1):
                continue
            base = int(np.floor(p))
            t = p - base
            s = 1.0 - t
            b = (s * s * s / 6.0, 2.0 / 3.0 - t * t + t * t * t / 2.0, 2.0 / 3.0 - s * s + s * s * s / 2.0,
                 t * t * t / 6.0)
            w = wx if axis == 0 else wy
            ref = jc if axis == 0 else ic
            for a in range(4):
                w[base - 1 + a - ref + ext] += b[a] / f
    total = 0.0
    for a in range(width):
        if wy[a] == 0.0:
            continue
        row = _mirror(ic - ext + a, height) - row0
        line = 0.0
        for b in range(width):
            if wx[b] != 0.0:
                line += wx[b] * coeffs[row, _mirror(jc - ext + b, n1)]
        total += wy[a] * line
    return np.float32(total)


@numba.njit(cache=True, inline="always")
def _max(a, b):
    return a if a > b else b


@numba.njit(cache=True, inline="always")
def _min(a, b):
    return a if a < b else b


@numba.njit(cache=True, nogil=True)
def block_extrema(a: np.ndarray, f: int, top: np.ndarray, bottom: np.ndarray) -> None:
    """top/bottom (rows/f, cols/f) float32 = max/min of ``a`` (rows, cols) over each f × f block."""
    hi = np.empty(a.shape[1], a.dtype)  # native dtype: int16 max/min vectorises 16-wide
    lo = np.empty(a.shape[1], a.dtype)
    for by in range(top.shape[0]):
        # column-wise extrema over the block's f rows (vectorises), then over each f columns
        if f == 4:
            # the 4 rows in registers, each column stored once: a running hi[x] = max(hi[x], v)
            # compiles to masked stores (as in block_curvature), ~2× the CPU on this machine
            r0, r1, r2, r3 = a[by * 4], a[by * 4 + 1], a[by * 4 + 2], a[by * 4 + 3]
            for x in range(a.shape[1]):
                hi[x] = _max(_max(r0[x], r1[x]), _max(r2[x], r3[x]))
                lo[x] = _min(_min(r0[x], r1[x]), _min(r2[x], r3[x]))
        else:
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


@numba.njit(cache=True, inline="always")
def _d2(a, b, c):
    """|a − 2b + c| in float32 (exact for 16-bit integer data)."""
    return abs(np.float32(a) + np.float32(c) - np.float32(2.0) * np.float32(b))


@numba.njit(cache=True, nogil=True, fastmath=True)
def block_curvature(a: np.ndarray, f: int, dxx: np.ndarray, dyy: np.ndarray) -> None:
    """dxx/dyy (rows/f, cols/f) float32 = max over each f × f block of ``a`` of |a[y, x-1] -
    2a[y, x] + a[y, x+1]| and |a[y-1, x] - 2a[y, x] + a[y+1, x]| (0 on the first and last row
    and column). The clip emulation's bound on how far a cubic spline departs from the bilinear
    interpolant of the same pixels (`solargen.calibrate.fused._clip_to_input_range`). Written over
    whole rows: restricting the columns made numba's loops ~7× slower.

    At f = 4 (away from the first and last row) each column's maximum over the block's rows is
    taken in registers and stored once: a running ``h[x] = max(h[x], v)`` compiles to AVX2
    masked stores (``vmaskmovps``), ~3× slower on this machine's AMD cores.
    """
    ny, nx = a.shape
    hx = np.zeros(nx, np.float32)  # column-wise maxima over the block's rows (vectorises)
    hy = np.zeros(nx, np.float32)
    for by in range(dxx.shape[0]):
        y = by * f
        if f == 4 and 0 < y and y + 4 < ny and nx > 2:
            # row views: contiguous, no negative-index wraparound, so the loops vectorise
            r_, r0, r1, r2, r3, r4 = a[y - 1], a[y], a[y + 1], a[y + 2], a[y + 3], a[y + 4]
            for x in range(nx):
                hy[x] = _max(_max(_d2(r_[x], r0[x], r1[x]), _d2(r0[x], r1[x], r2[x])),
                             _max(_d2(r1[x], r2[x], r3[x]), _d2(r2[x], r3[x], r4[x])))
            l0, c0, q0 = r0[:nx - 2], r0[1:nx - 1], r0[2:]
            l1, c1, q1 = r1[:nx - 2], r1[1:nx - 1], r1[2:]
            l2, c2, q2 = r2[:nx - 2], r2[1:nx - 1], r2[2:]
            l3, c3, q3 = r3[:nx - 2], r3[1:nx - 1], r3[2:]
            h = hx[1:nx - 1]
            for x in range(nx - 2):
                h[x] = _max(_max(_d2(l0[x], c0[x], q0[x]), _d2(l1[x], c1[x], q1[x])),
                            _max(_d2(l2[x], c2[x], q2[x]), _d2(l3[x], c3[x], q3[x])))
        else:
            hx[:] = 0.0
            hy[:] = 0.0
            for yy in range(y, y + f):
                if 0 < yy < ny - 1:
                    for x in range(nx):
                        hy[x] = max(hy[x], _d2(a[yy - 1, x], a[yy, x], a[yy + 1, x]))
                for x in range(1, nx - 1):
                    hx[x] = max(hx[x], _d2(a[yy, x - 1], a[yy, x], a[yy, x + 1]))
        for bx in range(dxx.shape[1]):
            mx, my = hx[bx * f], hy[bx * f]
            for k in range(1, f):
                mx = max(mx, hx[bx * f + k])
                my = max(my, hy[bx * f + k])
            dxx[by, bx] = mx
            dyy[by, bx] = my


_POLE = np.sqrt(3.0) - 2.0


@numba.njit(cache=True, inline="always")
def _prefilter_rows(c: np.ndarray, horizon: int) -> None:
    """In place, along axis 0 of c (lines × columns), every column at once: the cubic B-spline
    interpolation prefilter (Unser's recursive filter, mirror boundary, as scipy's
    ``spline_filter1d(mode="mirror")``), float64. Each recursion step is one row update across
    all columns (contiguous, so it vectorises) rather than a serial chain per column."""
    n, w = c.shape
    z = _POLE
    if n == 1:
        return
    for i in range(n):
        for j in range(w):
            c[i, j] *= 6.0  # gain (1 - z)(1 - 1/z)
    # causal initialisation: Σ z^k c[k] over the horizon (mirror boundary)
    zk = z
    for k in range(1, min(horizon, n)):
        for j in range(w):
            c[0, j] += zk * c[k, j]
        zk *= z
    for i in range(1, n):
        for j in range(w):
            c[i, j] += z * c[i - 1, j]
    for j in range(w):
        c[n - 1, j] = z / (z * z - 1.0) * (c[n - 1, j] + z * c[n - 2, j])
    for i in range(n - 2, -1, -1):
        for j in range(w):
            c[i, j] = z * (c[i + 1, j] - c[i, j])


@numba.njit(cache=True, nogil=True)
def exact_clipped_means(src: np.ndarray, m: np.ndarray, f: int, ty: np.ndarray, tx: np.ndarray, r0: int,
                        r1: int, c0: int, c1: int, lo: float, hi: float, out: np.ndarray,
                        pad_y: int = 0, pad_x: int = 0) -> None:
    """out[ty[i], tx[i]] = mean over the f × f full-resolution level-1.5 pixels of target pixel
    (tx[i], ty[i]) of the cubic spline of ``src`` (what scipy's order-3 ``map_coordinates``
    gives) clipped to [lo, hi]: ``register`` + block mean, exactly, for a few pixels.

    The spline coefficients are computed on the window src[r0:r1, c0:c1] only (mirror boundary
    at its edges: callers pad it by ≥ 10 pixels, where the prefilter's weights are < 2e-6);
    samples outside the detector are 0 (``mode="constant"``). ``m`` (2, 3) as `block_means`.
    ``pad_y``/``pad_x``: rows/columns of zeros around the detector that ``register`` adds before
    its transform (`solargen.calibrate.geometry.register_padding`): the window may reach into
    them (r0 ≥ −pad_y …), they are data (0), and samples on them are interpolated.
    """
    n0, n1 = src.shape
    h, w = r1 - r0, c1 - c0
    horizon = 24  # |z|^24 < 1e-13
    # Along the rows first (on the transposed window), then along the columns: the order and
    # the arithmetic of a line-by-line filter, each pass vectorised across lines.
    tr_ = np.empty((w, h), np.float64)
    for i in range(h):
        inside = 0 <= r0 + i < n0
        for j in range(w):
            tr_[j, i] = src[r0 + i, c0 + j] if inside and 0 <= c0 + j < n1 else 0.0
    _prefilter_rows(tr_, horizon)
    coef = np.empty((h, w), np.float64)
    for i in range(h):
        for j in range(w):
            coef[i, j] = tr_[j, i]
    _prefilter_rows(coef, horizon)
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
                if not (-pad_y <= r <= n0 - 1 + pad_y and -pad_x <= c <= n1 - 1 + pad_x):
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
                    ii0, jj0 = i0 - 1 - r0, j0 - 1 - c0
                    if ii0 >= 0 and ii0 + 3 < h and jj0 >= 0 and jj0 + 3 < w:  # no mirrored tap
                        for a in range(4):
                            val += wr[a] * (wc[0] * coef[ii0 + a, jj0] + wc[1] * coef[ii0 + a, jj0 + 1]
                                            + wc[2] * coef[ii0 + a, jj0 + 2] + wc[3] * coef[ii0 + a, jj0 + 3])
                        acc += min(max(val, lo), hi)
                        continue
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


@numba.njit(cache=True, nogil=True)
def exact_clipped_tiles(src: np.ndarray, m: np.ndarray, f: int, ty: np.ndarray, tx: np.ndarray, starts: np.ndarray,
                        dy: np.ndarray, dx: np.ndarray, pad: int, lo: float, hi: float, out: np.ndarray,
                        pad_y: int = 0, pad_x: int = 0) -> None:
    """`exact_clipped_means` tile by tile: target pixels (tx, ty) grouped by tile (tile t is
    starts[t] … starts[t + 1]), each tile's window the span of its blocks' fine samples
    (offsets dy/dx from the block centre, level-1 pixels) widened by ``pad``, clamped to the
    image and its ``pad_y``/``pad_x`` rows/columns of zeros (a tile mapped from wholly outside
    it is skipped: 0 already)."""
    n0, n1 = src.shape
    for t in range(starts.size - 1):
        s, e = starts[t], starts[t + 1]
        if e <= s:
            continue
        rmin = cmin = np.inf
        rmax = cmax = -np.inf
        for i in range(s, e):
            cr = m[1, 0] * tx[i] + m[1, 1] * ty[i] + m[1, 2]
            cc = m[0, 0] * tx[i] + m[0, 1] * ty[i] + m[0, 2]
            for k in range(dy.size):
                rmin, rmax = min(rmin, cr + dy[k]), max(rmax, cr + dy[k])
                cmin, cmax = min(cmin, cc + dx[k]), max(cmax, cc + dx[k])
        r0, c0 = max(int(np.floor(rmin)) - pad, -pad_y), max(int(np.floor(cmin)) - pad, -pad_x)
        r1, c1 = min(int(rmax) + pad + 2, n0 + pad_y), min(int(cmax) + pad + 2, n1 + pad_x)
        if r0 >= r1 or c0 >= c1:
            continue
        exact_clipped_means(src, m, f, ty[s:e], tx[s:e], r0, r1, c0, c1, lo, hi, out, pad_y, pad_x)


@numba.njit(cache=True, nogil=True)
def mark_neighbourhoods(qy: np.ndarray, qx: np.ndarray, size: int, mark: np.ndarray) -> None:
    """mark[y·size + x] = True for the 3 × 3 target pixels around each (qx[i], qy[i]) that lie
    inside the size × size image."""
    for i in range(qy.size):
        for y in range(max(qy[i] - 1, 0), min(qy[i] + 2, size)):
            for x in range(max(qx[i] - 1, 0), min(qx[i] + 2, size)):
                mark[y * size + x] = True


@numba.njit(cache=True, nogil=True)
def low_blocks(near: np.ndarray, bend_x: np.ndarray, bend_y: np.ndarray, row0: int, y0: int, y1: int, x0: int,
               x1: int, kx: np.float32, k: np.float32, tail: np.float32, lo: np.float32, cx: float, cy: float,
               r2: float, f: int, ry: np.ndarray, rx: np.ndarray) -> int:
    """The clip-at-the-minimum screen of `solargen.calibrate.fused._clip_to_input_range` in one pass:
    blocks (y, x), y0 ≤ y < y1, x0 ≤ x < x1, where near − k·(kx·bend_x + bend_y) − tail < lo
    (arrays indexed from block row ``row0``; float32 like the data), and, with r2 ≥ 0, whose
    centre lies within √r2 blocks of the disk centre (cx, cy). Writes them to ry/rx in row-major
    order; returns how many."""
    count = 0
    for y in range(y0, y1):
        i = y - row0
        dy2 = (y - cy + 0.5 - 0.5 / f) ** 2
        for x in range(x0, x1):
            bend = kx * bend_x[i, x] + bend_y[i, x]
            if near[i, x] - k * bend - tail < lo:
                if r2 >= 0 and not (x - cx + 0.5 - 0.5 / f) ** 2 + dy2 < r2:
                    continue
                ry[count] = y
                rx[count] = x
                count += 1
    return count
