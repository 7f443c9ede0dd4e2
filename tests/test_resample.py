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
