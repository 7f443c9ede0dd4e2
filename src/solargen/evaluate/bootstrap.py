"""Bootstrap intervals of every run's metrics from stored features and spectra (nothing recomputed).

`evaluate_run` stores the generated set's features and per-image spectra in the run's
``features.npz`` (this module owns that format); real features and spectra are already on disk.
`bootstrap_runs` then resamples images with replacement, real and generated sets independently,
and recomputes FID, KID, precision, recall and the spectral metrics on each resample.

The real set's resample ``b`` depends only on (seed, b, which real set), never on the run, so
every run sees the same real resamples: the draws of two runs are paired, and the interval of a
difference between two runs (`paired_interval`) shares the real set's variation instead of
counting it twice. Draws go to ``bootstrap.npz`` (one row per results.csv row), intervals to
``results_ci.csv``; ``results.csv`` keeps the study's schema.
"""

from __future__ import annotations

import logging
import zlib
from pathlib import Path

import numpy as np

from ..io import InputError, atomic_path, read_json
from .crops import stored_protocol
from .distances import frechet_distance, kernel_distance, manifold_coverage
from .spectrum import HIGH_BAND, spectral_bias, spectral_distance

log = logging.getLogger(__name__)

#: Largest memory for KID's precomputed kernel matrices (and precision/recall's distances), bytes.
KERNEL_BYTES = 2 * 1024 ** 3
#: Kernel entries gathered at once when summing KID's subsets (8 bytes each).
KID_GATHER = 4 * 1024 ** 2
#: Largest memory for the KID subsets kept between calls (`kid_subsets`), bytes.
KID_SUBSETS_BYTES = 256 * 1024 ** 2
_kid_subsets: dict[tuple[int, int, int, int, int], tuple[np.ndarray, np.ndarray]] = {}

#: Columns of results_ci.csv: the results.csv key, the point value, the percentile interval.
CI_COLUMNS = ["metric", "real", "fake", "net", "value", "ci95_low", "ci95_high", "resamples"]

#: Spectral statistics bootstrapped per spectrum set: metric name suffix → (function, band).
SPECTRAL = {
    "spectral_distance": (spectral_distance, (0.0, 1.0)),
    "spectral_distance_high": (spectral_distance, HIGH_BAND),
    "spectral_bias": (spectral_bias, (0.0, 1.0)),
    "spectral_bias_high": (spectral_bias, HIGH_BAND),
}


def save_generated(out: str | Path, features: dict[str, np.ndarray], spectra: dict[str, np.ndarray],
                   targets_power: np.ndarray | None = None, factor: int | None = None,
                   bands: dict[str, tuple[float, float]] | None = None) -> None:
    """A run's generated-set arrays → ``out`` (.npz): ``features`` by real-feature key (``<net>``
    or ``<net>-CROPPED…``), per-image power ``spectra`` by crop suffix ("" = whole frames), and for
    super-resolution the held-out targets' spectra and the ``factor``; ``bands``: the run's extra
    whole-frame bias bands (``_high_256px`` → fractions of its wavenumbers). Spectra of runs that
    draw smaller images are stored as compared (`metrics.match_resolution`: power scaled)."""
    arrays = {f"feats:{k}": np.asarray(v, np.float32) for k, v in features.items()}
    arrays.update({f"power:{k}": np.asarray(v, np.float64) for k, v in spectra.items()})
    arrays.update({f"band:{k}": np.asarray(v, np.float64) for k, v in (bands or {}).items()})
    if targets_power is not None and factor:
        arrays["targets_power"] = np.asarray(targets_power, np.float64)
        arrays["factor"] = np.int64(factor)
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def load_generated(path: str | Path) -> tuple[dict, dict, np.ndarray | None, int | None, dict]:
    """(features by key, spectra by crop suffix, targets' spectra, factor, extra bands) of a ``features.npz``."""
    try:
        with np.load(path) as z:
            feats = {k.partition(":")[2]: z[k].astype(np.float64) for k in z.files if k.startswith("feats:")}
            power = {k.partition(":")[2]: z[k] for k in z.files if k.startswith("power:")}
            targets = z["targets_power"] if "targets_power" in z.files else None
            factor = int(z["factor"]) if "factor" in z.files else None
            bands = {k.partition(":")[2]: tuple(z[k]) for k in z.files if k.startswith("band:")}
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: not a readable generated-features file ({e})") from None
    return feats, power, targets, factor, bands


def resample_indices(seed: int, stream: str, n: int, n_boot: int) -> np.ndarray:
    """(n_boot, n) indices with replacement, from a stream named by ``stream``: the same name
    gives the same resamples in every job (the real set's stream does not name the run)."""
    rng = np.random.default_rng([seed, zlib.crc32(stream.encode())])
    return rng.integers(0, n, (n_boot, n))


def fid_fast(real: np.ndarray, fake: np.ndarray) -> float:
    """The Fréchet distance of one resample (`distances.frechet_distance`: for fewer samples than
    dimensions an n × m SVD in sample space, not a D × D problem per resample)."""
    return frechet_distance(real, fake)[0]


def kid_from_kernels(k_rr: np.ndarray, k_ff: np.ndarray, k_rf: np.ndarray, ri: np.ndarray, fi: np.ndarray,
                     seed: int, num_subsets: int = 100, max_subset_size: int = 1000,
                     real_sums: tuple[list[float], float] | None = None) -> float:
    """clean-fid's ``kernel_distance`` of the resample (real[ri], fake[fi]) — the same subsets
    (`distances.kernel_distance` seeds NumPy's global generator the same way) and the same sums —
    from polynomial kernel matrices (x·y/D + 1)³ of the full sets, computed once. A resample only
    re-indexes them, instead of D-dimensional products for every subset of every resample; the
    subsets are drawn first (the generator's sequence as clean-fid's loop) and summed together.

    ``real_sums``: the real set's part (`kid_real_sums` of the same k_rr, ri, seed and sizes),
    when several runs share the real resample: the same numbers, gathered once."""
    m = min(len(ri), len(fi), max_subset_size)
    xs, ys = kid_subsets(seed, len(fi), len(ri), num_subsets, m)
    if real_sums is None:
        real_sums = kid_real_sums(k_rr, ri, len(fi), seed, num_subsets, max_subset_size)
    rr_sums, rr_trace = real_sums
    xs, ys = fi[xs], ri[ys]
    # Σ over subsets of (Σ a − tr a)/(m−1) − 2 Σ b / m, a = K_ff[x, x] + K_rr[y, y], b = K_rf[y, x];
    # in chunks of subsets so the gathered (chunk, m, m) blocks stay small at m = 1000.
    off, cross = 0.0, 0.0
    step = max(1, KID_GATHER // (m * m))
    for i, s in enumerate(range(0, num_subsets, step)):
        x, y = xs[s:s + step], ys[s:s + step]
        off += k_ff[x[:, :, None], x[:, None, :]].sum() + rr_sums[i]
        cross += k_rf[y[:, :, None], x[:, None, :]].sum()
    trace = np.diagonal(k_ff)[xs].sum() + rr_trace
    return float(((off - trace) / (m - 1) - cross * 2 / m) / num_subsets / m)


def kid_real_sums(k_rr: np.ndarray, ri: np.ndarray, n_fake: int, seed: int, num_subsets: int = 100,
                  max_subset_size: int = 1000) -> tuple[list[float], float]:
    """The real set's terms of `kid_from_kernels` (its K_rr sums per chunk of subsets, and their
    trace): they depend on the real resample, the seed and the set sizes only, so every run
    against the same real set shares them (measured: a third of a demo bootstrap's KID time)."""
    m = min(len(ri), n_fake, max_subset_size)
    ys = ri[kid_subsets(seed, n_fake, len(ri), num_subsets, m)[1]]
    step = max(1, KID_GATHER // (m * m))
    sums = [k_rr[y[:, :, None], y[:, None, :]].sum() for y in (ys[s:s + step] for s in range(0, num_subsets, step))]
    return sums, np.diagonal(k_rr)[ys].sum()


def kid_subsets(seed: int, n_fake: int, n_real: int, num_subsets: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The positions (num_subsets, m) in the fake and the real resample of KID's subsets, as
    clean-fid draws them from NumPy's global generator seeded with ``seed`` (which is put back).

    They depend on the seed and the set sizes only, so resample b of every run and every feature
    network has the same ones: they are drawn once and kept (up to `KID_SUBSETS_BYTES`; read-only)
    instead of 2 × num_subsets permutations per KID draw (measured: ~45 % of a demo KID draw)."""
    key = (seed, n_fake, n_real, num_subsets, m)
    if key in _kid_subsets:
        return _kid_subsets[key]
    xs, ys = np.empty((num_subsets, m), np.int64), np.empty((num_subsets, m), np.int64)
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        for s in range(num_subsets):
            # Exactly what np.random.choice(n, m, replace=False) draws (legacy RandomState:
            # permutation(n)[:m]), without choice()'s per-call argument checks.
            xs[s] = np.random.permutation(n_fake)[:m]
            ys[s] = np.random.permutation(n_real)[:m]
    finally:
        np.random.set_state(state)
    xs.setflags(write=False)
    ys.setflags(write=False)
    if sum(a.nbytes + b.nbytes for a, b in _kid_subsets.values()) + xs.nbytes + ys.nbytes <= KID_SUBSETS_BYTES:
        _kid_subsets[key] = xs, ys
    return xs, ys


def polynomial_kernels(real: np.ndarray, fake: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """KID's kernel (x·y/D + 1)³ within the real set, within the fake set, and real × fake."""
    d = real.shape[1]
    return (real @ real.T / d + 1) ** 3, (fake @ fake.T / d + 1) ** 3, (real @ fake.T / d + 1) ** 3


def pairwise_distances(real: np.ndarray, fake: np.ndarray):
    """Euclidean distances real × real, fake × fake, real × fake (torch, float64), as
    `distances.manifold_coverage` computes them, once for all resamples."""
    import torch

    a, b = torch.from_numpy(np.asarray(real)).double(), torch.from_numpy(np.asarray(fake)).double()
    return torch.cdist(a, a), torch.cdist(b, b), torch.cdist(a, b)


def _weighted_pr(real, fake, ri, fi, k=3, distances=None, real_part=None):
    """Precision/recall of one resample. Duplicated samples would make k-NN radii zero, so the
    manifolds are built from the distinct resampled samples and each is counted as often as it
    was drawn. ``distances`` (`pairwise_distances` of the full sets): the resample's balls and
    coverage are read from them instead of recomputed. ``real_part``: a dict kept per real
    resample (shared by the runs), where the real set's k-NN radii are kept for the next run."""
    ur, cr = np.unique(ri, return_counts=True)
    uf, cf = np.unique(fi, return_counts=True)
    if min(len(ur), len(uf)) <= k:
        return np.nan, np.nan
    if distances is None:
        fake_in, real_in = manifold_coverage(real[ur], fake[uf], k)
    else:
        import torch

        d_rr, d_ff, d_rf = distances
        tr, tf = torch.from_numpy(ur), torch.from_numpy(uf)
        # k-th neighbour excluding the point itself (index 0 of the sorted distances).
        r_real = None if real_part is None else real_part.get(k)
        if r_real is None:
            r_real = d_rr[tr][:, tr].kthvalue(k + 1, dim=1).values
            if real_part is not None:
                real_part[k] = r_real
        r_fake = d_ff[tf][:, tf].kthvalue(k + 1, dim=1).values
        rf = d_rf[tr][:, tf]
        fake_in = (rf <= r_real[:, None]).any(0).numpy()
        real_in = (rf <= r_fake[None, :]).any(1).numpy()
    return float((fake_in * cf).sum() / cf.sum()), float((real_in * cr).sum() / cr.sum())


def feature_draws(real: np.ndarray, fake: np.ndarray, real_idx: np.ndarray, fake_idx: np.ndarray, seed: int,
                  whole: bool = True, real_cache: dict | None = None) -> dict[str, np.ndarray]:
    """FID (and for whole frames KID, precision, recall) of every resample, by metric name.

    ``real_cache``: a dict kept per real feature set and passed with the same ``real``,
    ``real_idx`` and ``seed`` for every run; the real resamples' KID sums and k-NN radii are kept
    there and reused (the same numbers: every run is paired with the same real resamples)."""
    metrics = ["fid", "kid", "precision", "recall"] if whole else ["fid"]
    out = {m: np.empty(len(real_idx)) for m in metrics}
    cache = {} if real_cache is None else real_cache
    # The kernel and distance matrices once, unless they would not fit (paper scale: 40K real
    # frames → 13 GB each); then each resample's KID and precision/recall are computed from its
    # features, as clean-fid and `distances.manifold_coverage` do.
    small = (len(real) + len(fake)) ** 2 * 8 <= KERNEL_BYTES
    kernels = polynomial_kernels(real, fake) if whole and small else None
    distances = pairwise_distances(real, fake) if whole and small else None
    for b, (ri, fi) in enumerate(zip(real_idx, fake_idx)):
        r, f = real[ri], fake[fi]
        out["fid"][b] = fid_fast(r, f)
        if whole:
            if kernels is not None:
                key = ("kid", b, len(fi))  # the subsets depend on the fake set's size too
                if key not in cache:
                    cache[key] = kid_real_sums(kernels[0], ri, len(fi), seed + b)
                out["kid"][b] = kid_from_kernels(*kernels, ri, fi, seed + b, real_sums=cache[key])
            else:
                out["kid"][b] = kernel_distance(r, f, seed + b)
            # The radii are kept only with the distance matrices (sets that small: ≤ 16K × 8 bytes each).
            part = cache.setdefault(("pr", b), {}) if distances is not None else None
            out["precision"][b], out["recall"][b] = _weighted_pr(real, fake, ri, fi, distances=distances,
                                                                 real_part=part)
    return out


def spectral_draws(p_real: np.ndarray, p_fake: np.ndarray, real_idx: np.ndarray, fake_idx: np.ndarray,
                   stats: dict) -> dict[str, np.ndarray]:
    """Each spectral statistic (name → (function, band)) on the means of every resample."""
    out = {m: np.empty(len(real_idx)) for m in stats}
    for b, (ri, fi) in enumerate(zip(real_idx, fake_idx)):
        pr, pf = p_real[ri].mean(0), p_fake[fi].mean(0)
        for m, (fn, band) in stats.items():
            out[m][b] = fn(pr, pf, band)
    return out


def bootstrap_runs(metrics_files: list[str | Path], generated: list[str | Path], real_features: dict[str, str | Path],
                   real_spectrum: str | Path, real_crop_spectra: list[str | Path], out_csv: str | Path,
                   out_draws: str | Path, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """Draws and intervals of every run's metrics. ``metrics_files[i]`` (metrics.json: names and
    point values) and ``generated[i]`` (features.npz) belong to the same run; ``real_features``
    maps feature keys to the real set's feature files, as in `evaluate_run`."""
    # Here, not at the top: `evaluate_run` (save_generated) and the findings (load_draws) import
    # this module, and neither needs pandas or the feature networks' torch.
    import pandas as pd

    from .features import load_features

    if len(metrics_files) != len(generated):
        raise InputError(f"{len(metrics_files)} metrics files but {len(generated)} generated-feature files")
    real_feats = {}
    for key, path in real_features.items():
        feats, status, _ = load_features(path)
        if status == "ok":
            real_feats[key] = feats
    with np.load(real_spectrum) as z:
        real_power = {"": z["power"]}
    for path in real_crop_spectra:
        with np.load(path) as z:
            real_power[stored_protocol(z).suffix] = z["power"]
    keys, draws, rows = [], [], []
    real_caches: dict[str, dict] = {}  # per real feature key: what every run's resamples share
    for mpath, gpath in zip(metrics_files, generated):
        m = read_json(mpath)
        run, real_name = m["run"], m["real"]
        point = {(r["metric"], r["real"], r["fake"], r["net"]): r["value"] for r in m["rows"]}
        feats, power, targets, factor, bands = load_generated(gpath)
        found = {}
        for key, fake in feats.items():
            if key not in real_feats:
                raise InputError(f"{gpath}: features {key!r} have no real counterpart among {sorted(real_feats)}")
            net, _, crop = key.partition("-")
            suffix = f"-{crop}" if crop else ""
            real = real_feats[key]
            ri = resample_indices(seed, f"real:{key}", len(real), n_boot)
            fi = resample_indices(seed, f"fake:{run}:{key}", len(fake), n_boot)
            draws_of = feature_draws(real, fake, ri, fi, seed, whole=not crop,
                                     real_cache=real_caches.setdefault(key, {}))
            for metric, d in draws_of.items():
                found[(metric, real_name + suffix, run + suffix, net)] = d
        for suffix, pf in power.items():
            if suffix not in real_power:
                raise InputError(f"{gpath}: spectra {suffix or 'of whole frames'} have no real counterpart")
            pr = real_power[suffix][:, : pf.shape[1]]  # a smaller-image run: its own band (stored scaled)
            ri = resample_indices(seed, f"real:spectrum{suffix}", len(pr), n_boot)
            fi = resample_indices(seed, f"fake:{run}:spectrum{suffix}", len(pf), n_boot)
            stats = dict(SPECTRAL)
            if not suffix:
                stats.update({f"spectral_bias{name}": (spectral_bias, band) for name, band in bands.items()})
            for metric, d in spectral_draws(pr, pf, ri, fi, stats).items():
                found[(metric, real_name + suffix, run + suffix, "power_spectrum")] = d
        if targets is not None:
            band = (1 / factor, 1.0)
            ri = resample_indices(seed, f"targets:x{factor}", len(targets), n_boot)  # shared by conditional runs
            fi = resample_indices(seed, f"fake:{run}:spectrum", len(power[""]), n_boot)
            stats = {f"spectral_distance_above_x{factor}_nyquist": (spectral_distance, band),
                     f"spectral_bias_above_x{factor}_nyquist": (spectral_bias, band)}
            for metric, d in spectral_draws(targets, power[""], ri, fi, stats).items():
                found[(metric, real_name, run, "power_spectrum")] = d
        for key, d in found.items():
            if key not in point:  # e.g. a metric results.csv does not carry for crops
                continue
            keys.append("|".join(key))
            draws.append(d)
            ok = d[np.isfinite(d)]
            lo, hi = (np.quantile(ok, [(1 - level) / 2, (1 + level) / 2]) if len(ok) else (np.nan, np.nan))
            rows.append({"metric": key[0], "real": key[1], "fake": key[2], "net": key[3], "value": point[key],
                         "ci95_low": float(lo), "ci95_high": float(hi), "resamples": int(len(ok))})
    df = pd.DataFrame(rows, columns=CI_COLUMNS).sort_values(["metric", "net", "fake"], kind="stable")
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    save_draws(out_draws, dict(zip((tuple(k.split("|")) for k in keys), draws)), n_boot)
    return df


def save_draws(out: str | Path, draws: dict[tuple[str, str, str, str], np.ndarray], n_boot: int) -> None:
    """Bootstrap draws by results.csv key (metric, real, fake, net) → ``bootstrap.npz``."""
    keys = ["|".join(k) for k in draws]
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez(tmp, keys=np.array(keys, dtype=str),
                 draws=np.array(list(draws.values()), dtype=np.float64).reshape(len(keys), n_boot))


def load_draws(path: str | Path) -> dict[tuple[str, str, str, str], np.ndarray]:
    """The bootstrap draws of ``bootstrap.npz`` by results.csv key (metric, real, fake, net)."""
    try:
        with np.load(path) as z:
            return {tuple(str(k).split("|")): d for k, d in zip(z["keys"], z["draws"])}
    except (OSError, KeyError, ValueError) as e:
        raise InputError(f"{path}: not a readable bootstrap draws file ({e})") from None


def paired_interval(draws_a: np.ndarray, draws_b: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a − b over paired draws (resample b of both runs used the same real
    resample). NaN draws (a resample where a metric was undefined) are left out."""
    d = np.asarray(draws_a) - np.asarray(draws_b)
    d = d[np.isfinite(d)]
    if not len(d):
        return np.nan, np.nan
    return float(np.quantile(d, (1 - level) / 2)), float(np.quantile(d, (1 + level) / 2))
