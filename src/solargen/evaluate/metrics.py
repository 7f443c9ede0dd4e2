"""Metrics of one run against the real set: FID and KID per feature network, power spectra.

Results are rows in the study's ``results.csv`` schema (``metric, value, real, fake, net``).
FID is clean-fid's Fréchet distance and KID its kernel distance, both on features from
`solargen.evaluate.features`; real features are computed once per network (their own rule).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..io import InputError, atomic_path, image_files, load_npz, read_json, write_json
from .bootstrap import save_generated
from .crops import CropMode, crop_images, protocol_fields, stored_protocol
from .distances import MIN_SAMPLES, frechet_distance, kernel_distance, precision_recall
from .images import load_images
from .pixel import pixel_metrics
from .registry import PROFILE_TOLERANCE  # defined torch-free: the report's tables read it too
from .spectrum import HIGH_BAND, radial_power_spectrum, relative_error, spectral_bias, spectral_distance
from .sun_criterion import criterion_from_profiles, radial_profiles, real_profiles_by_size

log = logging.getLogger(__name__)



def radial_profile(images: np.ndarray, bins: int = 32) -> np.ndarray:
    """Mean intensity against distance from the image centre, (N, H, W) → (bins,), averaged over
    the images (`sun_criterion.radial_profiles` of the mean image: the profile is linear)."""
    return radial_profiles(np.asarray(images, np.float64).mean(0, keepdims=True), bins)[0]


def check_sample_count(samples, n_found: int, n_expected: int | None, on_mismatch: str = "fail") -> str | None:
    """Compare a run's number of generated images with the number it should have: an
    `InputError` when they differ, or with ``on_mismatch="warn"`` a logged warning, returned to
    be recorded (too few for a metric: `check_enough`)."""
    note = None
    if n_expected is not None and n_found != n_expected:
        note = (f"{samples}: {n_found} generated images, but the run should have {n_expected} "
                "(evaluation.n_samples)")
        if on_mismatch != "warn":
            raise InputError(f"{note}; re-run its sampling (delete the samples folder and its sample_chunks), "
                             "or set evaluation.sample_count_mismatch: warn to score the images there are")
        log.warning("%s; scoring them anyway (evaluation.sample_count_mismatch: warn)", note)
    return note


def check_enough(n: int, what: str, metrics=MIN_SAMPLES, remedy: str = "") -> None:
    """An `InputError` if ``n`` images (``what``) are too few for one of ``metrics``, naming each
    such metric and its minimum."""
    short = [m for m in metrics if n < MIN_SAMPLES[m]]
    if short:
        mins = "".join(f", {m} {MIN_SAMPLES[m]}" for m in short[1:])
        raise InputError(f"{what} are too few: {short[0]} needs at least {MIN_SAMPLES[short[0]]} images per set"
                         f"{mins}{' (precision/recall: k = 3 nearest neighbours)' if 'precision' in short else ''}"
                         f"{'; ' + remedy if remedy else ''}")


def match_resolution(p_real: np.ndarray, p_fake: np.ndarray, error: str) -> tuple[np.ndarray, np.ndarray]:
    """Spectra (N, K) and (M, K') of real and generated images on the same footing. Equal sizes are
    returned as they are. Generated images r times smaller (K = r·K') are compared on their own
    band, k ≤ K' cycles per image (the same physical scales in both: the field of view is the
    frame), with their power multiplied by r²: `radial_power_spectrum` divides |DFT|² by the
    pixel count, which makes a block-averaged copy of an image r² times weaker at the same k."""
    nk, nf = p_real.shape[1], p_fake.shape[1]
    if nf == nk:
        return p_real, p_fake
    if nf > nk or nk % nf:
        raise InputError(error)
    return p_real[:, :nf], p_fake * (nk // nf) ** 2


def save_spectrum(folder: str | Path, out: str | Path, window: str = "none", crop: CropMode | None = None) -> None:
    """Radial power spectra of every image in a folder (or of its ``crop``s) → ``out`` (.npz: k,
    power (N, K), window, crop protocol); generated sets are later windowed and cropped alike."""
    images = load_images(folder)
    k, p = radial_power_spectrum(crop_images(images, crop) if crop else images, window)
    # Whole frames also keep their mean radial intensity profile (the convergence check's reference)
    # and per-frame profiles at each size samples may be drawn at ("draws the Sun" references).
    profile = {}
    if not crop:
        profile = {"profile": radial_profile(images),
                   **{f"sun_profiles_{s}": p for s, p in real_profiles_by_size(images).items()}}
    with atomic_path(out, suffix=".npz") as tmp:
        np.savez(tmp, k=k, power=p, window=window, **protocol_fields(crop), **profile)


def bootstrap_interval(p_real: np.ndarray, p_fake: np.ndarray, band: tuple[float, float], n_boot: int = 1000,
                       level: float = 0.95, seed: int = 0, stat=spectral_distance) -> tuple[float, float]:
    """Percentile bootstrap interval of a band statistic (``spectral_distance`` or
    ``spectral_bias``) between two sets of spectra (N, K) and (M, K): both sets resampled with
    replacement, independently, and the statistic of their means taken each time."""
    rng = np.random.default_rng(seed)
    d = [stat(p_real[rng.integers(0, len(p_real), len(p_real))].mean(0),
              p_fake[rng.integers(0, len(p_fake), len(p_fake))].mean(0), band) for _ in range(n_boot)]
    return float(np.quantile(d, (1 - level) / 2)), float(np.quantile(d, (1 + level) / 2))


def bias_rows(p_real: np.ndarray, p_fake: np.ndarray, bands: dict[str, tuple[float, float]], seed: int,
              **names) -> list[dict]:
    """``spectral_bias<name>`` rows (the signed mean log10 power ratio over each band) with their
    bootstrap 95 % interval as ``…_ci95_low``/``…_ci95_high`` rows; spectra are (N, K) per image."""
    rows = []
    for name, band in bands.items():
        lo, hi = bootstrap_interval(p_real, p_fake, band, seed=seed, stat=spectral_bias)
        metric = f"spectral_bias{name}"
        rows += [{"metric": metric, "value": spectral_bias(p_real.mean(0), p_fake.mean(0), band), **names},
                 {"metric": f"{metric}_ci95_low", "value": lo, **names},
                 {"metric": f"{metric}_ci95_high", "value": hi, **names}]
    return rows


#: The signed metric's bands: all wavenumbers and the fine-scale upper half.
BIAS_BANDS = {"": (0.0, 1.0), "_high": HIGH_BAND}


def sun_check(real_spectrum_npz, fake_images: np.ndarray, path) -> dict | None:
    """The "draws the Sun" criterion of generated images (N, H, W) against the per-frame real
    profiles stored with the real spectrum at their size; None (logged) where that file has none
    (made before the criterion, or samples at a size the real frames do not block-average to)."""
    key = f"sun_profiles_{fake_images.shape[1]}"
    if fake_images.shape[1] != fake_images.shape[2] or key not in real_spectrum_npz:
        log.warning("%s: no real radial profiles for %s-px samples; 'draws the Sun' not evaluated "
                    "(re-make the real spectrum)", path, "×".join(map(str, fake_images.shape[1:])))
        return None
    return criterion_from_profiles(real_spectrum_npz[key], fake_images)


def evaluate_run(samples: str | Path, real_features: dict[str, str], real_spectrum: str | Path,
                 out_json: str | Path, out_spectrum: str | Path, *, real_name: str, fake_name: str,
                 targets: np.ndarray | None = None, factor: int | None = None,
                 real_crop_spectra: list[str | Path] = (), n_expected: int | None = None,
                 on_count_mismatch: str = "fail", seed: int | None = None,
                 out_features: str | Path | None = None, bias_sizes: tuple[int, ...] = ()) -> dict:
    """All metrics of one run → ``out_json`` (rows + not-run list) and its spectra → ``out_spectrum``.

    Conditional runs also pass ``targets`` (N, H, W) in [0, 1], the held-out frames sample i was
    conditioned on, and the degradation ``factor``: then per-pixel L1/PSNR/SSIM and the spectral
    distance above the input's Nyquist frequency (the band that had to be generated) are added
    (the latter only with a ``factor``: channel translation has none).
    ``real_crop_spectra`` (spectra of real crops, e.g. on-disk ones) add the spectral distances of
    the run's crops, cut by the same protocol, under the crop's name suffix.
    ``n_expected``: the number of images the run should have (`check_sample_count`; a mismatch
    fails, or with ``on_count_mismatch="warn"`` is recorded in the result's ``warnings``).
    ``seed`` seeds KID's subsets and the bootstrap intervals (default: the run's first sampling
    seed, so a run's numbers are reproducible from its own files).
    ``out_features``: where the generated set's features and per-image spectra are stored
    (`bootstrap.save_generated`), so intervals can be computed later without recomputing them.
    ``bias_sizes``: image sizes s (px) whose band of physical scales (k = s/4 … s/2 cycles per
    image) gets a ``spectral_bias_high_<s>px`` row, so runs trained at different resolutions can
    be compared on the same scales. A run drawing smaller images than the real set (an integer
    factor) is scored on its own band (`match_resolution`).
    """
    # Here, not at the top: the feature networks need torch (~3 s to import), and the real
    # spectrum jobs (`save_spectrum`) import this module without needing any network.
    from .features import FeatureNetUnavailable, describe, folder_features, load_features

    rows, not_run, methods = [], [], {}
    kept_feats, kept_power = {}, {}
    fake_files = image_files(samples)
    count_note = check_sample_count(samples, len(fake_files), n_expected, on_count_mismatch)
    sampling = [read_json(p) for p in sorted(Path(samples).glob("sampling_*.json"))]
    if seed is None:
        seed = int(sampling[0]["seed"]) if sampling else 0
    for key, path in real_features.items():
        real, status, crop = load_features(path)
        net = key.partition("-")[0]  # "<net>" or "<net>-CROPPED…"
        suffix = crop.suffix if crop else ""
        if status != "ok":
            not_run.append({"net": net + suffix, "reason": status})
            continue
        scored = ["fid"] if crop else list(MIN_SAMPLES)  # crops are scored by FID only
        check_enough(len(fake_files), f"{samples}: {len(fake_files)} generated images", scored,
                     remedy="raise evaluation.n_samples")
        check_enough(len(real), f"{path}: features of {len(real)} real images", scored,
                     remedy="the real set needs more frames (data.n_frames)")
        try:
            fake = folder_features(fake_files, net, crop=crop)
        except FeatureNetUnavailable as e:
            not_run.append({"net": net + suffix, "reason": f"not run: {e}"})
            continue
        kept_feats[key] = fake
        names = {"real": real_name + suffix, "fake": fake_name + suffix}
        f, methods[net + suffix] = frechet_distance(real, fake)
        rows.append({"metric": "fid", "value": f, "net": net, **names})
        if crop is None:  # as in the study, crops are scored by FID only
            k = kernel_distance(real, fake, seed)
            p, r = precision_recall(real, fake)
            rows += [{"metric": "kid", "value": k, "net": net, **names},
                     {"metric": "precision", "value": p, "net": net, **names},
                     {"metric": "recall", "value": r, "net": net, **names}]
    z = load_npz(real_spectrum, required=("k", "power"))
    k_real, p_real = z["k"], z["power"]
    window = str(z["window"]) if "window" in z else "none"
    real_profile = z["profile"] if "profile" in z else None
    fake_images = load_images(samples)
    k_fake, p_fake = radial_power_spectrum(fake_images, window)
    convergence = {}
    if real_profile is not None:
        err = float(np.mean(np.abs(radial_profile(fake_images, len(real_profile)) - real_profile)))
        convergence = {"radial_profile_error": err, "tolerance": PROFILE_TOLERANCE,
                       "converged": bool(err <= PROFILE_TOLERANCE)}
    sun = sun_check(z, fake_images, real_spectrum) if targets is None else None
    p_real, p_fake = match_resolution(p_real, p_fake, f"{samples}: images of another size than the real set")
    k_fake = k_real[: p_fake.shape[1]]
    pr, pf = p_real.mean(0), p_fake.mean(0)
    kept_power[""] = p_fake
    lo, hi = bootstrap_interval(p_real, p_fake, HIGH_BAND, seed=seed)
    rows += [{"metric": "spectral_distance", "value": spectral_distance(pr, pf), "net": "power_spectrum"},
             {"metric": "spectral_distance_high", "value": spectral_distance(pr, pf, HIGH_BAND),
              "net": "power_spectrum"},
             {"metric": "spectral_distance_high_ci95_low", "value": lo, "net": "power_spectrum"},
             {"metric": "spectral_distance_high_ci95_high", "value": hi, "net": "power_spectrum"}]
    rows += bias_rows(p_real, p_fake, BIAS_BANDS, seed, net="power_spectrum")
    # The same band of physical scales for runs of every resolution: the upper half of an s-px
    # image's band, k = s/4 … s/2 cycles per image (claim 10 compares 1024- and 256-px StyleGAN2).
    nk = p_fake.shape[1]
    size_bands = {f"_high_{s}px": (s / 4 / nk, s / 2 / nk) for s in bias_sizes if s / 2 <= nk}
    rows += bias_rows(p_real, p_fake, size_bands, seed, net="power_spectrum")
    for path in real_crop_spectra:
        z = load_npz(path, required=("power",))
        pcr, crop = z["power"], stored_protocol(z)
        _, pcf = radial_power_spectrum(crop_images(fake_images, crop), window)
        pcr, pcf = match_resolution(pcr, pcf, f"{samples}: crops of another size than the real crops of {path}")
        kept_power[crop.suffix] = pcf
        names = {"real": real_name + crop.suffix, "fake": fake_name + crop.suffix, "net": "power_spectrum"}
        rows += [{"metric": "spectral_distance", "value": spectral_distance(pcr.mean(0), pcf.mean(0)), **names},
                 {"metric": "spectral_distance_high", "value": spectral_distance(pcr.mean(0), pcf.mean(0), HIGH_BAND),
                  **names}]
        rows += bias_rows(pcr, pcf, BIAS_BANDS, seed, **names)
    p_t = None
    if targets is not None:
        fakes = load_images(samples, by_index=True)
        rows += [{"metric": k, "value": v, "net": "pixel"} for k, v in pixel_metrics(fakes, targets).items()
                 if np.isfinite(v)]
        if factor:  # super-resolution; a channel translation's input has the full resolution
            _, p_t = radial_power_spectrum(targets, window)
            band = (1 / factor, 1.0)
            rows.append({"metric": f"spectral_distance_above_x{factor}_nyquist", "net": "power_spectrum",
                         "value": spectral_distance(p_t.mean(0), p_fake.mean(0), band)})
            rows += bias_rows(p_t, p_fake, {f"_above_x{factor}_nyquist": band}, seed, net="power_spectrum")
    for r in rows:
        r.setdefault("real", real_name)
        r.setdefault("fake", fake_name)
        if not np.isfinite(r["value"]):
            raise RuntimeError(f"metric {r['metric']}/{r['net']} of {fake_name} is not finite")
    if out_features:
        save_generated(out_features, kept_feats, kept_power, p_t if factor else None, factor, bands=size_bands)
    with atomic_path(out_spectrum, suffix=".npz") as tmp:
        np.savez(tmp, k=k_fake, power=p_fake, window=window, relative_error=relative_error(pr, pf))
    result = {"run": fake_name, "real": real_name, "n_fake": len(fake_files),
              "sampling_seeds": [m["seed"] for m in sampling],
              "checkpoint": sampling[0]["checkpoint"] if sampling else None,
              "n_real": int(p_real.shape[0]), "seed": seed, "convergence": convergence,
              # Unconditional runs: the share of samples that draw the Sun and whether the run does
              # (`sun_criterion`); None for conditional runs, which copy the Sun from their input.
              "sun_fraction": sun["fraction"] if sun else None, "sun_pass": sun["draws_the_sun"] if sun else None,
              "sun_fraction_ci": sun["fraction_ci"] if sun else None,
              "sun_criterion": sun, "rows": rows, "not_run": not_run,
              "n_expected": n_expected, "warnings": [count_note] if count_note else [],
              "nets": {n: describe(n) for n in {k.partition("-")[0] for k in real_features}}, "fid_method": methods}
    write_json(out_json, result)
    return result
