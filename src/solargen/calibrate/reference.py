"""The reference registration path: ``aiapy.calibrate.register`` (scipy, cubic spline) on
float32 data (int16 input would come back rounded), then a block mean. The fused path
(`solargen.calibrate.fused`) is measured against it, and frames the fused path does not take
(rolled, or a clip needing the exact path on too many pixels) go through it."""

from __future__ import annotations

import numpy as np

from .geometry import bin_image

__all__ = ["reference_level15"]


def reference_level15(smap, size: int, rsun_arcsec: float | None = None) -> np.ndarray:
    """``aiapy.calibrate.register`` (scipy, order 3, float32) then block mean to (size, size).

    With ``rsun_arcsec``, the registered image is rescaled about its centre (scipy cubic spline)
    before binning, as SDOML does after its own registration.

    Parameters
    ----------
    smap : a level-1 map (N, N), N a multiple of ``size``.
    size : the output's side.
    rsun_arcsec : the solar radius every frame is rescaled to (arcsec at 0.6″/px); None: none.

    Returns
    -------
    numpy.ndarray
        (size, size) float32 in the input's units (DN).
    """
    import sunpy.map
    from aiapy.calibrate import register

    data = np.asarray(smap.data, dtype=np.float32)
    smap = sunpy.map.Map(data, smap.meta)
    # missing=0: pixels rotated in from outside the detector are dark sky, not the map minimum.
    out = register(smap, missing=0.0)
    image = np.asarray(out.data, dtype=np.float32)
    if rsun_arcsec is not None:
        import scipy.ndimage

        k = float(smap.meta["rsun_obs"]) / rsun_arcsec  # output step in input pixels
        c = (np.array(image.shape) - 1) / 2.0
        image = scipy.ndimage.affine_transform(image, np.diag([k, k]), offset=c - k * c, order=3,
                                               mode="constant", cval=0.0).astype(np.float32)
    n = data.shape[0]
    return bin_image(_fit_square(image, n - n % size), size)


def _fit_square(image: np.ndarray, n: int) -> np.ndarray:
    # register() may return one pixel less or more than the input; pad/crop symmetrically.
    out = np.zeros((n, n), dtype=image.dtype)
    h, w = min(n, image.shape[0]), min(n, image.shape[1])
    y0, x0 = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    oy, ox = (n - h) // 2, (n - w) // 2
    out[oy:oy + h, ox:ox + w] = image[y0:y0 + h, x0:x0 + w]
    return out
