"""The level-1.5 grid: plate scale, the header's rotation as sunpy reads it, the affine map from
target pixels to level-1 pixels, and block-mean binning. Shared by the fused and reference paths
(`solargen.calibrate.fused`, `solargen.calibrate.reference`), so both register to the same grid."""

from __future__ import annotations

import math

import numpy as np

from ..io import InputError

__all__ = ["LEVEL15_SCALE", "target_scale", "header_rotation_matrix", "lattice_roll_deg", "level15_affine",
           "register_padding", "bin_image"]


#: Level-1.5 plate scale (arcsec/pixel) at full resolution.
LEVEL15_SCALE = 0.6


def target_scale(meta, shape: tuple[int, int]) -> float:
    """Full-resolution level-1.5 plate scale (arcsec/px), as ``aiapy.calibrate.register`` picks it:
    0.6″, or for an already-binned frame the nearest multiple of 0.6″ to its CDELT."""
    if shape == (4096, 4096):
        return LEVEL15_SCALE
    return max(round(float(meta["cdelt1"]) / LEVEL15_SCALE), 1) * LEVEL15_SCALE


def header_rotation_matrix(meta) -> np.ndarray:
    """The level-1 header's PC matrix exactly as sunpy 7's ``GenericMap.rotation_matrix`` reads
    it, which ``register`` rotates by: PCi_j when any of them is in the header (missing ones
    default to the identity's), else CDi_j divided row-wise by CDELTi, else CROTA2 with the
    scale ratio CDELT2/CDELT1 (0° when absent). A header whose PCi_j disagree with CROTA2 is
    thus registered by PCi_j, as sunpy does."""
    m = {str(k).lower(): v for k, v in meta.items()}
    pc = ("pc1_1", "pc1_2", "pc2_1", "pc2_2")
    cd = ("cd1_1", "cd1_2", "cd2_1", "cd2_2")
    if any(k in m for k in pc):
        return np.array([[float(m.get("pc1_1", 1)), float(m.get("pc1_2", 0))],
                         [float(m.get("pc2_1", 0)), float(m.get("pc2_2", 1))]])
    cdelt1 = float(m.get("cdelt1", 1.0))
    cdelt = np.array([cdelt1, float(m.get("cdelt2", cdelt1))])
    if any(k in m for k in cd):
        return np.array([[float(m.get(k, 0)) for k in cd[:2]], [float(m.get(k, 0)) for k in cd[2:]]]) / cdelt[:, None]
    lam, p = cdelt[1] / cdelt[0], math.radians(float(m.get("crota2", 0)))
    return np.array([[math.cos(p), -lam * math.sin(p)], [math.sin(p) / lam, math.cos(p)]])


def lattice_roll_deg(meta) -> float:
    """How far (deg) the level-1.5 sample lattice is turned against the level-1 axes: the larger
    angle of the two columns of the header's PC matrix (rotation, or skew) to their axes."""
    a = np.linalg.inv(header_rotation_matrix(meta))
    return math.degrees(max(abs(math.atan2(a[1, 0], a[0, 0])), abs(math.atan2(a[0, 1], a[1, 1]))))


def level15_affine(meta, shape: tuple[int, int], size: int, rsun_arcsec: float | None = None) -> np.ndarray:
    """2×3 matrix M taking a target pixel (x, y) of the (size, size) level-1.5 image to the level-1
    pixel (x, y) at the centre of the block it averages (0-based: ``src = M @ [x, y, 1]``).

    Level 1.5 on the full N² grid puts the reference pixel at ((N-1)/2, (N-1)/2) (what
    ``register`` does) with world = s·(p' - c); level 1 has world = CDELT·PC·(p - CRPIX), PC as
    sunpy reads it (`header_rotation_matrix`: PCi_j before CDi_j before CROTA2).
    A target pixel q covers the full-grid block f·q … f·q + f - 1, centred at f·q + (f-1)/2.
    With ``rsun_arcsec`` the scale s is multiplied by RSUN_OBS/rsun_arcsec, so the disk has
    radius rsun_arcsec/0.6 full-grid pixels in every frame.
    """
    n = shape[1]
    if shape[0] != n or n % size:
        raise InputError(f"cannot register an image of shape {shape} to {size}×{size} (need a square multiple)")
    f = n // size
    s_out = target_scale(meta, shape)
    if rsun_arcsec is not None:
        s_out *= float(meta["rsun_obs"]) / rsun_arcsec
    a = np.linalg.inv(header_rotation_matrix(meta)) * (s_out / float(meta["cdelt1"]))
    c_in = np.array([float(meta["crpix1"]) - 1.0, float(meta["crpix2"]) - 1.0])
    c_out = (n - 1) / 2.0
    offset = c_in + a @ np.full(2, (f - 1) / 2.0 - c_out)
    return np.hstack([a * f, offset[:, None]])


def register_padding(meta, shape: tuple[int, int]) -> tuple[int, int]:
    """(pad_x, pad_y): the rows/columns of ``missing`` (0) that ``register`` (sunpy's
    ``GenericMap.rotate``) adds on each side of the level-1 image before the spline transform,
    so the rotated, rescaled frame fits. The spline then sees the detector's edge as a step to 0
    (then mirrored), not as a mirror: the outermost target pixels depend on it (up to ~30 %)."""
    rm = header_rotation_matrix(meta)
    scale = float(meta["cdelt1"]) / target_scale(meta, shape)
    corners = np.array([rm @ (x, y) for x in (-0.5, shape[1] - 0.5) for y in (-0.5, shape[0] - 0.5)]) * scale
    extent = corners.max(axis=0) - corners.min(axis=0)
    diff = np.ceil((extent - np.array([shape[1], shape[0]])) / 2)
    return max(int(diff[0]), 0), max(int(diff[1]), 0)


def bin_image(image: np.ndarray, size: int) -> np.ndarray:
    """Block-mean an image down to (size, size).

    Parameters
    ----------
    image : (N, N), N a multiple of ``size``.
    size : the output's side.

    Returns
    -------
    numpy.ndarray
        (size, size) float32, each pixel the float64 mean of its (N/size)² block.
    """
    n = image.shape[0]
    if image.shape != (n, n) or n % size:
        raise ValueError(f"cannot bin an image of shape {image.shape} to {size}×{size}")
    f = n // size
    return image.reshape(size, f, size, f).mean(axis=(1, 3), dtype=np.float64).astype(np.float32)
