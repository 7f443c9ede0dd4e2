"""Calibration (level 1 → 1.5, DN/s, binning), normalisation and the HDF5 dataset."""

import json

import h5py
import numpy as np
import pytest
import sunpy.map

from solargen.calibrate import bin_image, calibrate_files, calibrate_map, read_level1, read_shard
from solargen.dataset import H5Images, build_dataset, read_attrs
from solargen.io import InputError
from solargen.normalise import compute_constants, denormalise, normalise


def _disk_centroid(img, frac=0.3):
    mask = img > frac * np.percentile(img, 99)
    yy, xx = np.nonzero(mask)
    return yy.mean(), xx.mean()


def test_bin_image_is_block_mean():
    a = np.arange(16, dtype=np.float32).reshape(4, 4)
    np.testing.assert_allclose(bin_image(a, 2), [[2.5, 4.5], [10.5, 12.5]])
    with pytest.raises(ValueError):
        bin_image(np.zeros((5, 5)), 2)


def _shift(a, b):
    """Integer (dy, dx) that best moves ``a`` onto ``b`` (FFT cross-correlation peak)."""
    xc = np.fft.ifft2(np.fft.fft2(b) * np.conj(np.fft.fft2(a))).real
    dy, dx = np.unravel_index(np.argmax(xc), xc.shape)
    n = a.shape[0]
    return (dy + n // 2) % n - n // 2, (dx + n // 2) % n - n // 2


def test_register_moves_the_disk_to_where_the_header_puts_it(level1_dir):
    """Registration follows the WCS: a header that puts the centre 8 px further right moves the
    registered image 8 px left. Together with the synthetic frames' disk sitting at CRPIX
    (tests/test_synthetic.py), this puts the disk at the image centre."""
    smap = read_level1(sorted(level1_dir.glob("*.fits"))[0])
    a = calibrate_map(smap, 256)
    meta = dict(smap.meta)
    meta["crpix1"] += 8
    b = calibrate_map(sunpy.map.Map(smap.data, meta), 256)
    assert _shift(a, b) == (0, -8)
    y, x = _disk_centroid(calibrate_map(smap, 64))
    assert abs(y - 31.5) < 1.5 and abs(x - 31.5) < 1.5  # loose: active regions bias a centroid


def test_register_keeps_surface_brightness_in_dn_per_s(level1_dir):
    smap = read_level1(sorted(level1_dir.glob("*.fits"))[0])
    raw = np.asarray(smap.data, np.float64)
    cy, cx = smap.meta["crpix2"] - 1, smap.meta["crpix1"] - 1
    out = calibrate_map(smap, 64)
    assert out.shape == (64, 64) and out.dtype == np.float32
    ry, rx = np.mgrid[:256, :256]
    r_pix = smap.meta["rsun_obs"] / smap.meta["cdelt1"]
    on_raw = raw[(ry - cy) ** 2 + (rx - cx) ** 2 < (0.8 * r_pix) ** 2].mean()
    oy, ox = np.mgrid[:64, :64]
    r_out = smap.meta["rsun_obs"] / (round(smap.meta["cdelt1"] / 0.6) * 0.6) / 4
    on_out = out[(oy - 31.5) ** 2 + (ox - 31.5) ** 2 < (0.8 * r_out) ** 2].mean()
    assert on_out == pytest.approx(on_raw / 2.0, rel=0.03)


def test_calibration_round_trip_without_register_is_exact(level1_dir):
    """With registration off, calibration is exposure division + block mean: invertible in the mean."""
    smap = read_level1(sorted(level1_dir.glob("*.fits"))[1])
    out = calibrate_map(smap, 64, register=False)
    expected = np.asarray(smap.data, np.float64).reshape(64, 4, 64, 4).mean((1, 3)) / smap.exposure_time.value
    np.testing.assert_allclose(out, expected, rtol=1e-5)


def test_quality_flagged_frames_are_rejected_with_reason(level1_dir, tmp_path):
    counts = calibrate_files(sorted(level1_dir.glob("*.fits")), tmp_path / "s.h5", 32)
    assert counts == {"n_ok": 3, "n_rejected": 1}
    images, frames = read_shard(tmp_path / "s.h5")
    assert images.shape == (3, 32, 32)
    assert list(frames["status"]) == ["ok", "ok", "ok", "rejected"]
    assert frames["reason"][3] == "QUALITY=0x00000100"


def test_corrupt_truncated_and_wrong_wavelength_files_name_the_file(level1_dir, tmp_path):
    good = sorted(level1_dir.glob("*.fits"))[0]
    truncated = tmp_path / "truncated.fits"
    truncated.write_bytes(good.read_bytes()[: 2880 * 3])
    garbage = tmp_path / "garbage.fits"
    garbage.write_bytes(b"not a fits file" * 100)
    for bad in (truncated, garbage):
        with pytest.raises(InputError, match=bad.name):
            read_level1(bad)
    smap = sunpy.map.Map(good)
    meta = dict(smap.meta)
    meta["wavelnth"] = 171
    wrong = tmp_path / "wrong.fits"
    sunpy.map.Map(smap.data, meta).save(wrong)
    with pytest.raises(InputError, match="171"):
        read_level1(wrong)
    # A failed shard leaves nothing behind under its final name.
    with pytest.raises(InputError):
        calibrate_files([good, truncated], tmp_path / "shard.h5", 32)
    assert not (tmp_path / "shard.h5").exists()


def test_normalisation_inverse_and_range():
    rng = np.random.default_rng(0)
    img = rng.lognormal(3, 1.5, size=(32, 32)).astype(np.float32)
    c = compute_constants([img[None]], low_percentile=1, high_percentile=99)
    y = normalise(img, c)
    assert y.min() == 0 and y.max() == 1
    inside = (img > c["clip_min"]) & (img < c["clip_max"])
    np.testing.assert_allclose(denormalise(y, c)[inside], img[inside], rtol=1e-5)


def test_constants_are_global_not_per_image():
    dim = np.full((1, 8, 8), 10.0, np.float32)
    bright = np.full((1, 8, 8), 1000.0, np.float32)
    c = compute_constants([dim, bright], low_percentile=0, high_percentile=100)
    assert (c["clip_min"], c["clip_max"]) == (10.0, 1000.0)
    # The dim frame stays dim after normalisation: relative brightness survives.
    assert normalise(dim[0], c).max() == 0 and normalise(bright[0], c).min() == 1


def test_dataset_shape_attributes_and_pngs(level1_dir, tmp_path):
    calibrate_files(sorted(level1_dir.glob("*.fits"))[:2], tmp_path / "a.h5", 32)
    calibrate_files(sorted(level1_dir.glob("*.fits"))[2:], tmp_path / "b.h5", 32)
    shards = [tmp_path / "a.h5", tmp_path / "b.h5"]
    c = compute_constants([read_shard(s)[0] for s in shards])
    n = build_dataset(shards, c, tmp_path / "dataset.h5", png_dir=tmp_path / "pngs", source="synthetic")
    assert n == 3
    with h5py.File(tmp_path / "dataset.h5") as f:
        assert f["images"].shape == (3, 32, 32) and f["images"].dtype == np.float32
        assert f["images"].chunks == (1, 32, 32)
        assert 0 <= f["images"][()].min() and f["images"][()].max() <= 1
        assert len(f["frames"]["date_obs"]) == 3
    attrs = read_attrs(tmp_path / "dataset.h5")
    assert attrs["constants"] == json.loads(json.dumps(c))
    assert {"sunpy", "aiapy", "astropy"} <= set(attrs["versions"])
    assert attrs["calibration_register"] == "aiapy.calibrate.register"
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == ["out_0.png", "out_1.png", "out_2.png"]
    ds = H5Images(tmp_path / "dataset.h5", size=16)
    x = ds[0]
    assert x.shape == (1, 16, 16) and -1 <= x.min() and x.max() <= 1


def test_truncated_dataset_is_a_clear_error(tmp_path):
    bad = tmp_path / "dataset.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    with pytest.raises(InputError, match="dataset.h5"):
        H5Images(bad)
