"""The fused calibration's compiled kernels (`solargen.resample`) against plain numpy/OpenCV."""

import cv2
import numpy as np
import pytest


def _curvature_numpy(a, f):
    a = a.astype(np.float64)
    dxx, dyy = np.zeros(a.shape), np.zeros(a.shape)
    dxx[:, 1:-1] = np.abs(a[:, :-2] - 2 * a[:, 1:-1] + a[:, 2:])
    dyy[1:-1] = np.abs(a[:-2] - 2 * a[1:-1] + a[2:])
    ny, nx = a.shape
    blocks = lambda d: d.reshape(ny // f, f, nx // f, f).max(axis=(1, 3))  # noqa: E731
    return blocks(dxx), blocks(dyy)


@pytest.mark.parametrize("f", [4, 2, 8])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_block_curvature_is_the_block_max_of_the_second_differences(f, dtype):
    from solargen.resample import block_curvature

    rng = np.random.default_rng(f)
    # 16-bit data's full range (second differences up to 4 × 32767: exact in float32)
    a = (rng.integers(-32768, 32768, (48, 40)) if dtype == np.int16 else rng.normal(0, 100, (48, 40))).astype(dtype)
    dxx, dyy = np.empty((48 // f, 40 // f), np.float32), np.empty((48 // f, 40 // f), np.float32)
    block_curvature(a, f, dxx, dyy)
    ex, ey = _curvature_numpy(a, f)
    # int16: exact; float32: the float32 sum's rounding
    tol = 0 if dtype == np.int16 else 1e-4
    np.testing.assert_allclose(dxx, ex, rtol=0, atol=tol)
    np.testing.assert_allclose(dyy, ey, rtol=0, atol=tol)
    assert dyy[0].max() > 0 and dyy[-1].max() > 0  # the first and last rows' own zeros only


@pytest.mark.parametrize("shape", [(37, 29), (300, 4), (5, 64)])
@pytest.mark.parametrize("dtype", [np.int16, np.uint16, np.float32])
def test_spline_fir_rows_is_opencv_sepfilter_on_those_rows(shape, dtype):
    from solargen.calibrate.fused import spline_prefilter
    from solargen.resample import spline_fir_rows

    rng = np.random.default_rng(sum(shape))
    a = rng.integers(0, 16000, shape).astype(dtype)
    p = spline_prefilter().astype(np.float32)
    pre = np.concatenate([p[:0:-1], p])
    want = cv2.sepFilter2D(a, cv2.CV_32F, pre, pre, borderType=cv2.BORDER_REFLECT_101)
    for lo, hi in [(0, shape[0]), (3, min(shape[0], 20)), (shape[0] - 2, shape[0])]:
        got = np.empty((hi - lo, shape[1]), np.float32)
        spline_fir_rows(a, lo, hi, p, got)
        np.testing.assert_allclose(got, want[lo:hi], rtol=2e-6, atol=2e-6 * 16000)
    # the generic taps path (other half widths) too
    p4 = p[:5] / (p[0] + 2 * p[1:5].sum())
    pre4 = np.concatenate([p4[:0:-1], p4])
    got = np.empty(shape, np.float32)
    spline_fir_rows(a, 0, shape[0], p4, got)
    np.testing.assert_allclose(got, cv2.sepFilter2D(a, cv2.CV_32F, pre4, pre4, borderType=cv2.BORDER_REFLECT_101),
                               rtol=2e-6, atol=2e-6 * 16000)


@pytest.mark.parametrize("pads", [(0, 0), (2, 3)])
def test_exact_clipped_means_is_scipy_on_the_zero_padded_image(pads):
    """`exact_clipped_means` with ``pad_y``/``pad_x`` is scipy's order-3 ``map_coordinates``
    (mode="constant") on the image padded with that many rows/columns of zeros (what
    ``register`` transforms), clipped and block-averaged; odd, non-square shape, blocks that
    straddle the detector's edge and the padding."""
    import scipy.ndimage

    from solargen.resample import exact_clipped_means

    rng = np.random.default_rng(4)
    py, px = pads
    src = (rng.random((37, 45)) * 900 + 50).astype(np.float32)
    f, lo, hi = 3, 0.0, 900.0
    m = np.array([[f * 1.002, 0.02, -1.3], [-0.02, f * 0.998, -2.1]])  # target px → block centre
    ty, tx = np.mgrid[:14, :17]
    ty, tx = ty.ravel().astype(np.int64), tx.ravel().astype(np.int64)
    out = np.zeros((14, 17), np.float32)
    exact_clipped_means(src, m, f, ty, tx, -py, src.shape[0] + py, -px, src.shape[1] + px, lo, hi, out, py, px)
    padded = np.pad(src.astype(np.float64), ((py, py), (px, px)))
    o = np.arange(f) - (f - 1) / 2.0
    oy, ox = [a.ravel() for a in np.meshgrid(o, o, indexing="ij")]
    expect = np.empty((14, 17))
    for qy, qx in zip(ty, tx):
        cx, cy = m[0] @ (qx, qy, 1), m[1] @ (qx, qy, 1)
        c = cx + m[0, 0] / f * ox + m[0, 1] / f * oy
        r = cy + m[1, 0] / f * ox + m[1, 1] / f * oy
        v = scipy.ndimage.map_coordinates(padded, [r + py, c + px], order=3, mode="constant", cval=0.0)
        expect[qy, qx] = np.clip(v, lo, hi).mean()
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-3)
    if py:  # the padding matters on the outer blocks
        assert np.abs(expect - _unpadded(src, m, f, ty, tx, lo, hi)).max() > 10.0


def _unpadded(src, m, f, ty, tx, lo, hi):
    from solargen.resample import exact_clipped_means

    out = np.zeros((14, 17), np.float32)
    exact_clipped_means(src, m, f, ty, tx, 0, src.shape[0], 0, src.shape[1], lo, hi, out)
    return out


def test_dot8x8_is_the_weighted_8x8_window_sum():
    """The vector-coded hot loop of `block_means` (an LLVM intrinsic) = Σ_u wy[u] Σ_v wx[v]
    a[i + u, j + v] with the weights interpolated between table rows, in float64 by numpy; a
    strided (non-contiguous) array is refused at compile time, not read wrongly."""
    import numba

    from solargen.resample import _dot8x8

    @numba.njit
    def call(a, i, j, tx, kx, ax, ty, ky, ay):
        return _dot8x8(a, i, j, tx, kx, ax, ty, ky, ay)

    rng = np.random.default_rng(8)
    a = (rng.random((21, 33)) * 1000 - 200).astype(np.float32)
    tx, ty = rng.random((5, 8)).astype(np.float32), (rng.random((5, 8)) - 0.3).astype(np.float32)
    for i, j, kx, ax, ky, ay in [(0, 0, 0, 0.0, 0, 0.0), (13, 25, 3, 0.999, 2, 0.25), (7, 11, 1, 0.5, 3, 1.0)]:
        wx = tx[kx].astype(np.float64) + ax * (tx[kx + 1].astype(np.float64) - tx[kx])
        wy = ty[ky].astype(np.float64) + ay * (ty[ky + 1].astype(np.float64) - ty[ky])
        want = wy @ a[i:i + 8, j:j + 8].astype(np.float64) @ wx
        got = call(a, i, j, tx, kx, np.float32(ax), ty, ky, np.float32(ay))
        assert abs(got - want) <= 1e-6 * np.abs(a).max() * np.abs(wy).sum() * np.abs(wx).sum()
    with pytest.raises(numba.core.errors.TypingError):
        call(a[:, ::2], 0, 0, tx, 0, np.float32(0.0), ty, 0, np.float32(0.0))
