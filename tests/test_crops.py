"""Crop-based evaluation: the study's crop modes, identical crops of real and fake, the same pipeline."""

import numpy as np
import pytest
from PIL import Image

from solargen.evaluate.crops import CropMode
from solargen.evaluate.features import folder_features
from solargen.evaluate.features import save_features
from solargen.evaluate.metrics import evaluate_run, save_spectrum


def test_study_suffixes_parse_and_round_trip():
    for name in ("-CROPPED64", "-CROPPED128", "-CROPPED299CS_0.1,1_CR_1,1"):
        assert CropMode.parse(name).suffix == name
    assert CropMode.parse("CROPPED299CS_0.1,1_CR_1,1").scale == (0.1, 1.0)
    for bad in ("CROPPED", "CROP64", "CROPPED64CS_0.1,1_CR_2,1", "CROPPED299CS_0.5,0.2_CR_1,1"):
        with pytest.raises(ValueError):
            CropMode.parse(bad)


def test_real_and_fake_image_i_are_cropped_at_the_same_places():
    a, b = CropMode(64, per_image=3, seed=5), CropMode(64, per_image=3, seed=5)
    assert a.boxes(7, 1024, 1024) == b.boxes(7, 1024, 1024)
    assert a.boxes(7, 1024, 1024) != a.boxes(8, 1024, 1024)
    assert CropMode(64, per_image=3, seed=6).boxes(7, 1024, 1024) != a.boxes(7, 1024, 1024)
    assert all(s == 64 and 0 <= t <= 960 and 0 <= l <= 960 for t, l, s in a.boxes(3, 1024, 1024))
    # Same field of view on a 256-px sample of 1024-px data: a quarter of the pixels per side.
    assert {s for _, _, s in CropMode(64, reference=1024).boxes(0, 256, 256)} == {16}
    # Random resized crops: area fraction within the scale range.
    sides = [s for i in range(50) for _, _, s in CropMode(299, scale=(0.1, 1.0)).boxes(i, 100, 100)]
    assert min(sides) >= round(100 * 0.1 ** 0.5) and max(sides) <= 100 and len(set(sides)) > 10


def _folder(path, n, size=32, seed=0):
    path.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path / f"out_{i}.png")
    return path


def test_crop_features_are_the_whole_image_pipeline_on_the_crop(tmp_path):
    src = _folder(tmp_path / "src", 2)
    crop = CropMode(12, per_image=2, seed=1)
    feats = folder_features([str(p) for p in sorted(src.glob("*.png"))], "efficientnet_lite0", crop=crop)
    assert feats.shape == (4, 1280)
    cut = tmp_path / "cut"
    cut.mkdir()
    for i in range(2):
        img = np.asarray(Image.open(src / f"out_{i}.png"))
        for j, (t, l, s) in enumerate(crop.boxes(i, 32, 32)):
            Image.fromarray(img[t:t + s, l:l + s]).save(cut / f"c{i}{j}.png")
    ref = folder_features([str(p) for p in sorted(cut.glob("*.png"))], "efficientnet_lite0")
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-4)


def test_crop_fid_rows_carry_the_study_suffix_on_both_names(tmp_path):
    real, fake = _folder(tmp_path / "real", 4), _folder(tmp_path / "fake", 4, seed=1)
    save_features(real, "efficientnet_lite0", tmp_path / "f.npz")
    save_features(real, "efficientnet_lite0", tmp_path / "c.npz", crop=CropMode(16, per_image=2, reference=32))
    save_spectrum(real, tmp_path / "s.npz")
    out = evaluate_run(fake, {"efficientnet_lite0": tmp_path / "f.npz",
                              "efficientnet_lite0-CROPPED16": tmp_path / "c.npz"},
                       tmp_path / "s.npz", tmp_path / "m.json", tmp_path / "ms.npz", real_name="R", fake_name="F")
    crop_rows = [r for r in out["rows"] if r["fake"].endswith("-CROPPED16")]
    assert [(r["metric"], r["real"], r["net"]) for r in crop_rows] == [("fid", "R-CROPPED16", "efficientnet_lite0")]
    assert crop_rows[0]["value"] > 0
    # Whole-image rows keep the plain names.
    assert {r["real"] for r in out["rows"] if r not in crop_rows} == {"R"}


def test_on_disk_crops_lie_inside_the_disk_and_repeat():
    mode = CropMode.parse("CROPPED64", per_image=20, seed=3, on_disk=0.4)
    for i in range(5):
        boxes = mode.boxes(i, 256, 256)
        assert boxes == mode.boxes(i, 256, 256)  # the same for real and generated image i
        r = 0.4 * 256
        for top, left, side in boxes:
            for y in (top, top + side):
                for x in (left, left + side):
                    assert (y - 128) ** 2 + (x - 128) ** 2 <= (r + 1) ** 2
    # Positions vary over the disk, not just its centre.
    assert len({b[:2] for b in mode.boxes(0, 256, 256)}) > 10
    with pytest.raises(ValueError, match="does not fit inside a disk"):
        CropMode.parse("CROPPED200", on_disk=0.4).boxes(0, 256, 256)
    # Random resized crops are capped at the largest square inside the disk.
    big = CropMode.parse("CROPPED299CS_0.9,1_CR_1,1", per_image=5, on_disk=0.4).boxes(0, 256, 256)
    assert all(side <= int(0.4 * 256 * 2 ** 0.5) for _, _, side in big)


def test_one_features_job_writes_the_crop_features_the_separate_jobs_wrote(tmp_path):
    """`features --crop-outs` (the workflow's one real_features job per network) writes, bit for
    bit, what a separate `features --crop` job writes for each crop mode; a malformed pair fails
    before anything is written."""
    from solargen import cli

    real = _folder(tmp_path / "real", 2)
    shared = ["--images", str(real), "--net", "random_inception_v3", "--crops-per-image", "1",
              "--crop-seed", "3", "--crop-reference", "32"]
    assert cli.main(["features", *shared, "--out", str(tmp_path / "w1.npz")]) == 0
    assert cli.main(["features", *shared, "--crop", "CROPPED16", "--out", str(tmp_path / "c16.npz")]) == 0
    assert cli.main(["features", *shared, "--crop", "CROPPED8", "--out", str(tmp_path / "c8.npz")]) == 0
    assert cli.main(["features", *shared, "--out", str(tmp_path / "w2.npz"), "--crop-outs",
                     f"CROPPED16={tmp_path / 'd16.npz'}", f"CROPPED8={tmp_path / 'd8.npz'}"]) == 0
    for a, b in (("w1", "w2"), ("c16", "d16"), ("c8", "d8")):
        with np.load(tmp_path / f"{a}.npz") as x, np.load(tmp_path / f"{b}.npz") as y:
            assert x.files == y.files
            for k in x.files:
                np.testing.assert_array_equal(x[k], y[k])
    with np.load(tmp_path / "d8.npz") as z:
        assert z["feats"].shape == (2, 2048)
    assert cli.main(["features", *shared, "--out", str(tmp_path / "w3.npz"), "--crop-outs", "CROPPED16"]) == 2
    assert not (tmp_path / "w3.npz").exists()
