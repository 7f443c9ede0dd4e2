"""Calibration under bad input and awkward geometry (issue 20): non-physical frames are rejected
with their reason, a done-manifest's stored files are checked, the fused path follows sunpy's
header precedence, emulates both of register's clips and hands rolled frames to the reference
path, saying so per frame."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from solargen.acquire.manifest import stored_records, write_manifest
from solargen.acquire.synthetic import synthetic_frame
from solargen.calibrate.files import calibrate_files
from solargen.calibrate.frame import calibrate_frame
from solargen.calibrate.fused import MAX_FUSED_ROLL_DEG, fused_level15
from solargen.calibrate.geometry import header_rotation_matrix, level15_affine, register_padding, target_scale
from solargen.calibrate.level1 import frame_status, read_level1
from solargen.calibrate.options import Options, Plausibility
from solargen.calibrate.reference import reference_level15
from solargen.cli import main as cli_main
from solargen.io import InputError
from solargen.shards import read_shard

DATES = ["2011-03-01T00:00:00.000", "2014-06-01T12:00:00.000", "2018-09-15T06:00:00.000", "2024-05-10T18:00:00.000"]


def _write(path, data, header, checksum=False):
    fits.PrimaryHDU(data=data, header=header).writeto(path, overwrite=True, checksum=checksum)
    return path


def _frame(seed=7, date=DATES[1], size=256, **kw):
    return synthetic_frame(seed, date, native_size=size, **kw)


def _flare(data, header, peak_xy=None, scatter=0.05):
    """A flare painted onto a generator frame: a saturated kernel (16383 DN) with blooming along
    its column, a bright halo, and scattered light over the whole detector (the PSF's wings
    carry a few % of the disk's brightness everywhere), i.e. what an X-class flare looks like."""
    n = data.shape[0]
    out = data.astype(np.float64)
    cx, cy = header["CRPIX1"] - 1, header["CRPIX2"] - 1
    r = header["RSUN_OBS"] / header["CDELT1"]
    px, py = peak_xy or (cx + 0.5 * r, cy - 0.3 * r)
    yy, xx = np.mgrid[:n, :n]
    d2 = ((xx - px) ** 2 + (yy - py) ** 2) / (0.01 * r) ** 2
    out += 16383 * np.exp(-d2) + 3000 / (1 + d2 / 25)  # core and halo
    disk_median = np.median(data[(xx - cx) ** 2 + (yy - cy) ** 2 < (0.9 * r) ** 2])
    out += scatter * disk_median  # scattered light everywhere
    out[:, int(px) - 1:int(px) + 2][np.abs(yy[:, 0] - py) < 0.1 * r] = 16383  # blooming column
    return np.clip(np.rint(out), 0, 16383).astype(np.int16)


# --------------------------------------------------------------------------------------------
# Non-physical frames (item 2)


def test_nonphysical_frames_are_rejected_with_their_reason(tmp_path):
    data, header = _frame()
    good = _write(tmp_path / "a_good.fits", data, header)
    h = header.copy()
    h["EXPTIME"] = 0.0
    zero = _write(tmp_path / "b_exptime0.fits", data, h)
    h = header.copy()
    del h["EXPTIME"]
    missing = _write(tmp_path / "c_noexptime.fits", data, h)
    # All negative, within the detector's range (a sign flip, say) and far below it:
    negative = _write(tmp_path / "d_negative.fits", (-(data // 200) - 1).astype(np.int16), header)
    far = _write(tmp_path / "h_negative.fits", (data.astype(np.int32) - 17000).astype(np.int16), header)
    rng = np.random.default_rng(0)
    garbage = rng.integers(-32768, 32767, data.shape, dtype=np.int16)  # garbage bytes, no CHECKSUM
    garbage_f = _write(tmp_path / "e_garbage.fits", garbage, header)
    # Garbage that happens to lie in the detector's range (e.g. a shuffled or misaligned read):
    in_range = _write(tmp_path / "f_inrange.fits", rng.integers(0, 16383, data.shape, dtype=np.int16), header)
    blank = _write(tmp_path / "g_blank.fits", np.zeros_like(data), header)
    counts = calibrate_files([good, zero, missing, negative, garbage_f, in_range, blank, far], tmp_path / "s.h5", 32)
    assert counts == {"n_ok": 1, "n_rejected": 7}
    images, frames = read_shard(tmp_path / "s.h5")
    status = dict(zip(frames["file"], frames["status"]))
    reason = dict(zip(frames["file"], frames["reason"]))
    assert status["a_good.fits"] == "ok" and np.isfinite(images).all()
    assert reason["b_exptime0.fits"].startswith("EXPTIME=0")
    assert reason["c_noexptime.fits"] == "EXPTIME missing or not a number"
    assert np.isnan(frames["exptime"][list(frames["file"]).index("c_noexptime.fits")])
    assert reason["d_negative.fits"].startswith("implausible: disk/background")
    assert reason["e_garbage.fits"].startswith("implausible:") and "outside the detector range" in reason["e_garbage.fits"]
    assert reason["f_inrange.fits"].startswith("implausible: disk/background")
    assert reason["g_blank.fits"].startswith("implausible: disk/background")
    assert "outside the detector range" in reason["h_negative.fits"]
    with h5py_file(tmp_path / "s.h5") as f:
        assert f.attrs["plausibility_min_disk_to_background"] == Plausibility().min_disk_to_background
    # A direct calibrate_frame of a frame without EXPTIME is a clear error, not an AttributeError.
    with pytest.raises(InputError, match="EXPTIME"):
        calibrate_frame(read_level1(missing), 32)


def h5py_file(path):
    import h5py

    return h5py.File(path, "r")


@pytest.mark.parametrize("size", [256, 1024])
def test_plausibility_rejects_no_good_frame_and_no_flare(size):
    """Frames from the generator's API (any seed, date, channel, exposure, including short AEC
    exposures) and the same frames with a flare pass; the check's thresholds are physical, not
    fitted to the generator's current statistics."""
    check = Plausibility()
    n_checked = 0
    for seed in range(4 if size == 1024 else 12):
        date = DATES[seed % len(DATES)]
        for kw in ({}, {"exptime": 0.6}, {"exptime": 2.9, "wavelength": 211}, {"exptime": 2.0, "wavelength": 171}):
            data, header = synthetic_frame(seed, date, native_size=size, **kw)
            smap = _map(data, header)
            assert frame_status(smap, plausibility=check) == ("ok", ""), (seed, kw)
            flare = _flare(data, header)
            assert frame_status(_map(flare, header), plausibility=check) == ("ok", ""), (seed, kw, "flare")
            # The flare at the limb, with twice the scattered light.
            r = header["RSUN_OBS"] / header["CDELT1"]
            limb = _flare(data, header, (header["CRPIX1"] - 1 + 0.98 * r, header["CRPIX2"] - 1), scatter=0.10)
            assert frame_status(_map(limb, header), plausibility=check) == ("ok", ""), (seed, kw, "limb flare")
            n_checked += 3
    assert n_checked >= 48


def _map(data, header):
    import sunpy.map

    return sunpy.map.Map(data, header)


def test_plausibility_thresholds_come_from_the_config(tmp_path):
    data, header = _frame()
    good = _write(tmp_path / "a.fits", data, header)
    assert cli_main(["calibrate", "--inputs", str(tmp_path), "--out", str(tmp_path / "s.h5"), "--size", "32"]) == 0
    assert read_shard(tmp_path / "s.h5", images=False)[1]["status"].tolist() == ["ok"]
    assert cli_main(["calibrate", "--inputs", str(tmp_path), "--out", str(tmp_path / "t.h5"), "--size", "32",
                     "--min-disk-to-background", "1e6"]) == 0
    reason = read_shard(tmp_path / "t.h5", images=False)[1]["reason"][0]
    assert reason.startswith("implausible: disk/background") and "< 1e+06" in reason
    assert good.exists()
    # The workflow passes data.calibration.plausibility (schema defaults) to the command.
    import yaml

    schema = yaml.safe_load(open("workflow/schemas/config.schema.yaml"))
    cal = schema["properties"]["data"]["properties"]["calibration"]["properties"]["plausibility"]["properties"]
    assert cal["min_disk_to_background"]["default"] == Plausibility().min_disk_to_background
    assert cal["max_outside_range_fraction"]["default"] == Plausibility().max_outside_range_fraction
    assert tuple(cal["detector_range_dn"]["default"]) == Plausibility().detector_range_dn


def test_dataset_qa_counts_rejections_by_kind(tmp_path):
    from solargen.report.dataqa import calibration_counts

    data, header = _frame()
    files = [_write(tmp_path / "a.fits", data, header)]
    h = header.copy()
    h["QUALITY"] = 256
    files.append(_write(tmp_path / "b.fits", data, h))
    files.append(_write(tmp_path / "c.fits", np.zeros_like(data), header))
    files.append(_write(tmp_path / "d.fits", np.zeros_like(data), header))
    calibrate_files(files[:2], tmp_path / "s1.h5", 32)
    calibrate_files(files[2:], tmp_path / "s2.h5", 32)
    counts = calibration_counts([tmp_path / "s1.h5", tmp_path / "s2.h5"])
    assert counts["frames"] == 4 and counts["ok"] == 1
    assert counts["rejected"] == {"QUALITY": 1, "implausible": 2}
    assert counts["register_path"] == {read_shard(tmp_path / "s1.h5", images=False)[1]["register_path"][0]: 1}


# --------------------------------------------------------------------------------------------
# Stored files against the done-manifest (item 5)


def test_calibrating_from_a_manifest_checks_each_stored_file(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    frames = [synthetic_frame(s, d, native_size=128) for s, d in ((1, DATES[0]), (2, DATES[1]))]
    paths = [store / f"aia_{i}.fits" for i in range(2)]
    for p, (data, header) in zip(paths, frames):
        _write(p, data, header, checksum=True)
    from solargen.io import sha256_of

    df = pd.DataFrame({"t_rec": [h["T_REC"] for _, h in frames], "fsn": [h["FSN"] for _, h in frames],
                       "status": ["verified", "verified"], "local_path": [str(p) for p in paths],
                       "sha256": [sha256_of(p) for p in paths]})
    manifest = tmp_path / "done.parquet"
    write_manifest(df, manifest)
    args = ["calibrate", "--inputs", str(manifest), "--size", "32"]
    assert cli_main(args + ["--out", str(tmp_path / "ok.h5")]) == 0

    # The store's first file replaced by the other (valid, intact) frame: T_REC/FSN differ.
    paths[0].write_bytes(paths[1].read_bytes())
    with pytest.raises(InputError, match=r"aia_0.fits: header FSN=.*the manifest says .*jsoc_download"):
        calibrate_files(paths, tmp_path / "x.h5", 32, expect=stored_records(pd.read_parquet(manifest)))
    assert cli_main(args + ["--out", str(tmp_path / "bad.h5")]) == 2
    assert not (tmp_path / "bad.h5").exists()

    # Same record (header unchanged), other bytes: only the recorded sha256 can tell.
    data, header = frames[0]
    _write(paths[0], np.flipud(data), header, checksum=True)
    with pytest.raises(InputError, match=r"aia_0.fits: sha256 .* differs from the manifest's"):
        calibrate_files(paths, tmp_path / "y.h5", 32, expect=stored_records(pd.read_parquet(manifest)))
    # Where the store records no sha256, T_REC/FSN are still checked and the file is used.
    df["sha256"] = pd.NA
    write_manifest(df, manifest)
    assert cli_main(args + ["--out", str(tmp_path / "z.h5")]) == 0


# --------------------------------------------------------------------------------------------
# The fused path's geometry: sunpy's header precedence and the roll fallback


def test_rotation_matrix_follows_sunpy_precedence():
    import sunpy.map

    _, header = _frame(size=64)
    t = math.radians(0.2)
    variants = []
    h = header.copy()
    h["CROTA2"] = 0.0  # PCi_j (0.2° here) win over CROTA2, as in sunpy
    h["PC1_1"], h["PC1_2"], h["PC2_1"], h["PC2_2"] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    variants.append(h)
    h = header.copy()
    for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2"):
        del h[k]
    h["CROTA2"], h["CDELT2"] = 0.3, h["CDELT1"] * 1.001  # CROTA2 with unequal CDELTs
    variants.append(h)
    h = h.copy()
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = 0.6, -0.002, 0.002, 0.6  # CDi_j before CROTA2
    variants.append(h)
    for h in variants:
        smap = sunpy.map.Map(np.zeros((64, 64), np.float32), h)
        np.testing.assert_allclose(header_rotation_matrix(smap.meta), smap.rotation_matrix, rtol=0, atol=1e-12)
    m_pc = level15_affine(variants[0], (64, 64), 16)
    h = variants[0].copy()
    for k in ("PC1_1", "PC1_2", "PC2_1", "PC2_2"):
        del h[k]
    h["CROTA2"] = 0.2
    np.testing.assert_allclose(m_pc, level15_affine(h, (64, 64), 16), atol=1e-12)


def test_fused_path_follows_pc_when_it_disagrees_with_crota2():
    data, header = _frame(seed=11, size=2048)
    t = math.radians(0.2)
    header["PC1_1"], header["PC1_2"], header["PC2_1"], header["PC2_2"] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    header["CROTA2"] = -0.2  # disagrees: sunpy (and so register) rotates by PCi_j
    smap = _map(data, header)
    fused, info = calibrate_frame(smap, 256, Options(method="fused"))
    assert info["register_path"] == "fused"
    ref = reference_level15(_map(data.astype(np.float32), header), 256) / np.float32(header["EXPTIME"])
    on = _on_disk(256, info["disk_radius"])
    err = np.abs(fused[on] - ref[on]) / np.abs(ref[on])
    assert err.max() < 2e-3 and err.mean() < 2e-4


def _on_disk(size, radius):
    yy, xx = np.mgrid[:size, :size]
    return np.hypot(xx - (size - 1) / 2, yy - (size - 1) / 2) < 0.95 * radius


def test_rolled_frames_take_the_reference_path_and_say_so(tmp_path):
    files = []
    for i, roll in enumerate((0.1, MAX_FUSED_ROLL_DEG * 1.2, 90.0)):
        data, header = _frame(seed=20 + i, size=2048)
        t = math.radians(roll)
        header["CROTA2"] = roll
        header["PC1_1"], header["PC1_2"], header["PC2_1"], header["PC2_2"] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
        files.append(_write(tmp_path / f"aia_{i}.fits", data, header))
    calibrate_files(files, tmp_path / "s.h5", 256)
    images, frames = read_shard(tmp_path / "s.h5")
    assert frames["register_path"].tolist() == ["fused", "reference (roll fallback)", "reference (roll fallback)"]
    for i, f in enumerate(files[1:], 1):
        ref, info = calibrate_frame(read_level1(f), 256, Options(method="reference"))
        np.testing.assert_array_equal(images[i], ref)
        assert info["register_path"] == "reference"
    import json

    with h5py_file(tmp_path / "s.h5") as h:
        assert json.loads(h["frames"].attrs["register_paths"]) == {"fused": 1, "reference (roll fallback)": 2}


# --------------------------------------------------------------------------------------------
# The clip at the minimum


def _exact_block_mean(img, meta, size):
    """register + block mean, computed directly: every full-resolution sample by scipy's cubic
    spline, clipped to [min(input min, 0), max(input max, 0)] as sunpy does with missing=0."""
    import scipy.ndimage

    from solargen.calibrate.geometry import bin_image

    n = img.shape[0]
    m = level15_affine(meta, img.shape, n)
    y, x = np.mgrid[:n, :n].astype(np.float64)
    fine = scipy.ndimage.map_coordinates(img.astype(np.float64), [m[1, 0] * x + m[1, 1] * y + m[1, 2],
                                                                  m[0, 0] * x + m[0, 1] * y + m[0, 2]],
                                         order=3, mode="constant", cval=0.0)
    return bin_image(np.clip(fine, min(img.min(), 0.0), max(img.max(), 0.0)).astype(np.float32), size)


@pytest.mark.parametrize("offset", [0.0, -5.0])
def test_fused_path_emulates_the_clip_at_the_minimum(offset):
    """A dark coronal hole at the frame's minimum next to bright structure: the spline undershoots
    the minimum there and register clips it; the fused path must too (it was up to 1.6 % off)."""
    rng = np.random.default_rng(5)
    import scipy.ndimage

    img = scipy.ndimage.gaussian_filter(rng.random((256, 256)), 1.0) * 600.0 + 80.0
    yy, xx = np.mgrid[:256, :256]
    hole = (xx - 120) ** 2 / 30 ** 2 + (yy - 130) ** 2 / 18 ** 2 < 1
    img[hole] = 0.0
    img[hole & (rng.random((256, 256)) < 0.5)] = 4.0  # noise in the hole
    img = (img + offset).astype(np.float32)
    meta = {"crpix1": 129.3, "crpix2": 127.9, "cdelt1": 0.6001 * 16, "cdelt2": 0.6001 * 16, "crota2": 0.1,
            "crval1": 0.0, "crval2": 0.0, "rsun_obs": 0.6001 * 16 * 110}
    exact = _exact_block_mean(img, meta, 64)
    fused = fused_level15(img, meta, 64)
    sl = np.s_[8:-8, 8:-8]
    floor = 1.0  # relative errors of near-0 means say nothing; compare absolute there
    e, f = exact[sl], fused[sl]
    big = np.abs(e) > floor
    assert (np.abs(f - e)[big] / np.abs(e[big])).max() < 1e-4
    assert np.abs(f - e)[~big].max(initial=0.0) < 1e-3


def _fused_against_reference(smap, size):
    """calibrate_frame's fused result, its register_path, and its max relative error against the
    reference on the disk where the reference is ≥ 1 DN/s (and the max |Δ| on the disk below)."""
    fused, info = calibrate_frame(smap, size, Options(method="fused"))
    ref, _ = calibrate_frame(smap, size, Options(method="reference"))
    on = _on_disk(size, info["disk_radius"])
    big = on & (np.abs(ref) >= 1.0)
    rel = np.abs(fused[big] - ref[big]) / np.abs(ref[big])
    return info["register_path"], rel.max(), np.abs(fused - ref)[on & ~big].max(initial=0.0)


def test_a_frame_whose_disk_sits_at_the_minimum_stays_fused_within_the_bound():
    """Half the disk at 0 DN: the clip's screen sends most blocks to the exact recomputation,
    which is still cheaper than the reference path; it used to fall back to it (> 5 %)."""
    data, header = _frame(seed=3, size=512)
    dark = np.clip(data.astype(np.int32) - int(np.percentile(data, 60)), 0, None).astype(np.int16)
    path, rel, below = _fused_against_reference(_map(dark, header), 128)
    assert path == "fused"
    assert rel < 1e-3 and below < 1e-3  # measured 7.8e-5 and 1.1e-6 DN/s


@pytest.mark.parametrize("native, size", [(512, 64), (128, 32)])  # config/demo.yaml, config/ci.yaml
def test_the_workflows_generator_frames_take_the_fused_path(native, size):
    """The demo's and CI's synthetic frames: every one took "reference (clip fallback)" (their
    clip screen flags ~50 % of the blocks) although the fused path holds the bound on them."""
    for seed, date in ((3, DATES[0]), (8, DATES[2])):
        data, header = _frame(seed=seed, date=date, size=native)
        path, rel, below = _fused_against_reference(_map(data, header), size)
        assert path == "fused"
        assert rel < 1e-3 and below < 1e-3  # measured ≤ 1.4e-4


@pytest.mark.parametrize("native, size, unpadded", [(512, 64, False), (128, 32, False), (512, 64, True)])
def test_the_fused_path_sees_registers_zero_padding_at_the_detector_edge(native, size, unpadded):
    """register pads the level-1 image with zeros before its spline transform, so the frame's
    outermost target pixels see a step to 0 (and samples just beyond the edge are interpolated),
    not a mirrored detector: the fused path's outer ring was 26 % / 24 % off the reference.
    Unpadded (CDELT below the target's multiple of 0.6″) and rolled, blocks straddling the edge
    lose samples along a tilted line: was 6 % off (a demo frame, 0.04°)."""
    data, header = _frame(seed=3, date=DATES[0], size=native)
    if unpadded:
        t = math.radians(0.04)
        header["CDELT1"] = header["CDELT2"] = 0.5994 * 8  # 512² at 8 × 0.6″: extent < N, no padding
        header["CROTA2"] = 0.04
        header["PC1_1"], header["PC1_2"], header["PC2_1"], header["PC2_2"] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    smap = _map(data, header)
    assert (max(register_padding(smap.meta, data.shape)) == 0) == unpadded
    fused, _ = calibrate_frame(smap, size, Options(method="fused"))
    ref, _ = calibrate_frame(smap, size, Options(method="reference"))
    yy, xx = np.mgrid[:size, :size]
    ring = np.minimum(np.minimum(yy, xx), np.minimum(size - 1 - yy, size - 1 - xx)) == 0
    big = ring & (np.abs(ref) >= 1.0)
    assert big.sum() > size
    assert (np.abs(fused[big] - ref[big]) / np.abs(ref[big])).max() < 1e-3  # measured 1.2e-7


@pytest.mark.parametrize("roll, cdelt", [(0.0, 0.6001 * 8), (0.2, 0.6055 * 8), (-3.0, 0.5995 * 8), (90.0, 0.6001 * 8)])
def test_register_padding_is_sunpys(roll, cdelt):
    _, header = _frame(size=128)
    t = math.radians(roll)
    header["CROTA2"], header["CDELT1"], header["CDELT2"] = roll, cdelt, cdelt
    header["PC1_1"], header["PC1_2"], header["PC2_1"], header["PC2_2"] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    smap = _map(np.zeros((128, 128), np.float32), header)
    px, py = register_padding(smap.meta, (128, 128))
    rotated = smap.rotate(recenter=True, scale=cdelt / target_scale(smap.meta, (128, 128)), order=3, missing=0.0)
    if px or py:  # sunpy pads, rotates and keeps the padded shape
        assert rotated.data.shape == (128 + 2 * py, 128 + 2 * px)
    else:
        assert rotated.data.shape[0] <= 128 and rotated.data.shape[1] <= 128



@pytest.mark.parametrize("shift, roll", [(0.0, 0.0), (40.3, 0.0), (-25.0, 0.25), (3.0, -0.2)])
def test_edge_targets_are_every_pixel_near_the_detector_edge(shift, roll):
    """`_edge_targets` searches only the outer rings of the target grid; they must hold every
    pixel a full search finds, also for a detector centre far off the frame's (CRPIX) and rolled."""
    from solargen.calibrate.fused import _EDGE_REACH, _edge_targets

    _, header = _frame(size=512)
    t = math.radians(roll)
    header["CRPIX1"] += shift
    header["CRPIX2"] -= shift / 2
    header["CROTA2"] = roll
    header["PC1_1"], header["PC1_2"], header["PC2_1"], header["PC2_2"] = math.cos(t), -math.sin(t), math.sin(t), math.cos(t)
    meta = _map(np.zeros((512, 512), np.int16), header).meta
    for size in (128, 64):
        f = 512 // size
        m = level15_affine(meta, (512, 512), size)
        got = np.sort(_edge_targets(m, size, 512, f, register_padding(meta, (512, 512))))
        qy, qx = np.mgrid[:size, :size]
        c = m[0, 0] * qx + m[0, 1] * qy + m[0, 2]
        r = m[1, 0] * qx + m[1, 1] * qy + m[1, 2]
        lim = _EDGE_REACH + (f - 1) / 2.0 * np.abs(m[:, :2] / f).sum(axis=0).max() + 2.0
        full = np.flatnonzero((np.minimum(c, r) < lim) | (np.maximum(c, r) > 511 - lim))
        np.testing.assert_array_equal(got, full)
