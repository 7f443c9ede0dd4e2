"""Distances between two sets of image features: FID, KID, improved precision and recall.

The statistics alone (arrays in, numbers out), shared by a run's evaluation (`metrics`) and the
bootstrap of its intervals (`bootstrap`), which recomputes them on resampled sets.
"""

from __future__ import annotations

import numpy as np

from .registry import MIN_SAMPLES  # noqa: F401  (defined torch- and numpy-free for the config checks)


def frechet_distance(real: np.ndarray, fake: np.ndarray) -> tuple[float, str]:
    """Fréchet distance between Gaussian fits of two feature sets, and which method computed it.

    With more samples than feature dimensions this is clean-fid's ``frechet_distance`` (the
    study's FID: scipy's sqrtm of Σ₁Σ₂). With fewer (toy scales: tens of images vs 2048 Inception
    dimensions) the covariances have rank < n and the same quantity is computed exactly in sample
    space (`frechet_distance_sample_space`): an n × m SVD instead of D × D sqrtm or eigh.
    """
    if min(len(real), len(fake)) > real.shape[1]:
        from cleanfid import fid

        mu1, s1 = real.mean(0), np.cov(real, rowvar=False)
        mu2, s2 = fake.mean(0), np.cov(fake, rowvar=False)
        return float(fid.frechet_distance(mu1, s1, mu2, s2)), "clean-fid"
    return frechet_distance_sample_space(real, fake), "sample-space svd (n <= dim)"


def frechet_distance_sample_space(real: np.ndarray, fake: np.ndarray) -> float:
    """‖μ₁−μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂) from the centred sets A (n × D), B (m × D).

    Σ₁ = AᵀA/(n−1), Σ₂ = BᵀB/(m−1), and the nonzero eigenvalues of AᵀA·BᵀB are those of
    (ABᵀ)(ABᵀ)ᵀ, the squared singular values of ABᵀ; so tr √(Σ₁Σ₂) = ‖ABᵀ‖_* / √((n−1)(m−1)),
    exactly, for any n, m, D. Cheaper than the D-space forms when n or m < D.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n, m = len(real), len(fake)
    mu1, mu2 = real.mean(0), fake.mean(0)
    a, b = real - mu1, fake - mu2
    nuclear = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.vdot(a, a) / (n - 1) + np.vdot(b, b) / (m - 1)
                 - 2 * nuclear / np.sqrt((n - 1) * (m - 1)))


def kernel_distance(real: np.ndarray, fake: np.ndarray, seed: int = 0) -> float:
    """KID: clean-fid's kernel distance (its ``compute_kid`` takes no custom feature extractor).

    clean-fid draws its subsets from NumPy's global generator (when the sets differ in size), so
    that generator is seeded with ``seed`` for the call and then put back as it was: the same
    features give the same KID every time, and nobody else's random stream is disturbed."""
    from cleanfid import fid

    state = np.random.get_state()
    try:
        np.random.seed(seed)
        return float(fid.kernel_distance(real, fake))
    finally:
        np.random.set_state(state)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3, chunk: int = 1024) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) between feature sets.

    Each sample of a set gets a ball reaching its ``k``-th nearest neighbour within that set;
    precision is the fraction of ``fake`` inside the union of the real balls, recall the
    fraction of ``real`` inside the union of the fake balls. O(N·M·D) in chunks of ``chunk`` rows.
    """
    fake_in, real_in = manifold_coverage(real, fake, k, chunk)
    return float(fake_in.mean()), float(real_in.mean())


def manifold_coverage(real: np.ndarray, fake: np.ndarray, k: int = 3, chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, whether it lies in the other set's k-NN manifold: (fake in real, real in fake)
    as boolean arrays; their means are precision and recall (the bootstrap weights them)."""
    import torch

    a, b = torch.from_numpy(np.asarray(real)).double(), torch.from_numpy(np.asarray(fake)).double()

    def radii(x):
        # k-th neighbour excluding the point itself (index 0 of the sorted distances).
        return torch.cat([torch.cdist(x[i:i + chunk], x).kthvalue(k + 1, dim=1).values
                          for i in range(0, len(x), chunk)])

    def covered(queries, centres, r):
        return torch.cat([(torch.cdist(queries[i:i + chunk], centres) <= r[None]).any(1)
                          for i in range(0, len(queries), chunk)])

    if min(len(a), len(b)) <= k:
        raise ValueError(f"precision/recall with k={k} needs more than {k} samples per set")
    return covered(b, a, radii(a)).numpy(), covered(a, b, radii(b)).numpy()


def fid_kid(real: np.ndarray, fake: np.ndarray) -> tuple[float, float]:
    return frechet_distance(real, fake)[0], kernel_distance(real, fake)
