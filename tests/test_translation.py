"""Optional channel translation (171 Å + 211 Å → 193 Å): the model's input, the aligned
dataset channels, and one CI-scale run through the workflow."""

import json

import h5py
import numpy as np
import pytest
import torch

from helpers import smooth_fields
from solargen.acquire.synthetic import write_synthetic_frame
from solargen.calibrate.files import calibrate_files
from solargen.shards import read_shard
from solargen.cli import constants
from solargen.dataset import H5Images, align_channel, build_dataset, read_attrs
from solargen.split import split_record
from solargen.io import InputError, read_json
from solargen.models.msdgan.family import MSDGANTrainer, generator_input, input_wavelengths, sample
from solargen.normalise import compute_constants, normalise

TRANSLATION = {"condition": "translation", "input_wavelengths": [171, 211], "noise": True, "base_channels": 8,
               "lr": 2e-3, "lambda_l1": 10.0, "lambda_gan": 1.0, "ema_rate": 0.9, "batch_size": 8,
               "save_every": 1000}


def _batch(n=8, size=16):
    """(n, 3, size, size) = [193 target, 171, 211]: the target a fixed function of both inputs."""
    a, b = smooth_fields(n, size, 1), smooth_fields(n, size, 2)
    return torch.cat([(0.7 * a - 0.5 * b).clamp(-1, 1), a, b], 1)


# --- model ------------------------------------------------------------------------------------

def test_translation_input_is_the_extra_channels_plus_noise():
    x = _batch(2, 16)
    g = torch.Generator().manual_seed(0)
    inp = generator_input(x, 4, True, g, translation=True)
    assert inp.shape == (2, 3, 16, 16) and torch.equal(inp[:, :2], x[:, 1:])  # [171, 211, noise]
    assert generator_input(x, 4, False, g, translation=True).shape == (2, 2, 16, 16)
    t = MSDGANTrainer(TRANSLATION, 16)
    assert t.G.down[0][0].in_channels == 3  # 2 channels + noise
    assert {d.blocks[0][0].in_channels for d in t.D.discs.values()} == {3}  # condition (2) + image
    with pytest.raises(ValueError, match=r"expects \(B, 3, H, W\) batches \[193, 171, 211\]"):
        t.training_step(x[:, :1], 0, g)


def test_translation_config_is_checked():
    assert input_wavelengths({}) == [] and input_wavelengths(TRANSLATION) == [171, 211]
    with pytest.raises(ValueError, match="needs input_wavelengths"):
        input_wavelengths({"condition": "translation"})
    with pytest.raises(ValueError, match="only read with condition: translation"):
        input_wavelengths({"input_wavelengths": [171]})


def test_conditioning_channels_matter_and_sampling_reads_them():
    y = _batch()
    torch.manual_seed(0)
    t = MSDGANTrainer(TRANSLATION, 16)
    g = torch.Generator().manual_seed(0)
    losses = [t.training_step(y, i, g) for i in range(40)]
    assert losses[-1]["l1"] < 0.6 * losses[0]["l1"]
    t.G.eval()
    inp = generator_input(y, 4, True, torch.Generator().manual_seed(5), translation=True)
    shuffled = torch.cat([inp[:, :2].roll(1, 0), inp[:, 2:]], 1)  # each target gets another's channels
    swapped = torch.cat([inp[:, 1:2], inp[:, :1], inp[:, 2:]], 1)  # 171 and 211 exchanged
    with torch.no_grad():
        right = (t.G(inp) - y[:, :1]).abs().mean()
        assert right < 0.6 * (t.G(shuffled) - y[:, :1]).abs().mean()
        assert right < 0.8 * (t.G(swapped) - y[:, :1]).abs().mean()
    state = {"ema": {"G": t.ema["G"].state_dict()}}
    a = sample(state, TRANSLATION, 16, 4, targets=y, seed=3, batch_size=2)
    b = sample(state, TRANSLATION, 16, 4, targets=torch.cat([y[:, :1] * 0, y[:, 1:]], 1), seed=3)
    assert a.shape == (4, 1, 16, 16) and torch.equal(a, b)  # the target channel is never read
    with pytest.raises(ValueError, match="batches"):
        sample(state, TRANSLATION, 16, 4, targets=y[:, :1])


# --- data -------------------------------------------------------------------------------------

SLOTS = [f"2011-01-01T{2 * i:02d}:00:00.000" for i in range(6)]


@pytest.fixture(scope="module")
def channel_shards(tmp_path_factory):
    """Calibrated 32 px shards of 6 slots at 193, 171 and 211 Å (the Sun of slot i has seed i).
    171 Å is flagged at slot 2 (so calibration rejects it) and absent at slot 4; 211 Å is taken
    12 s after 193 Å. Each channel split into two shards, out of time order."""
    d = tmp_path_factory.mktemp("channels")
    shards = {}
    for wl in (193, 171, 211):
        (d / f"raw{wl}").mkdir()
        for i, date in enumerate(SLOTS):
            if wl == 171 and i == 4:
                continue
            if wl == 211:
                date = date.replace(":00:00.000", ":00:12.000")
            write_synthetic_frame(d / f"raw{wl}" / f"aia_lev1_{wl}a_{i:06d}.fits", seed=i, date_obs=date,
                                  native_size=128, quality=0x100 if (wl == 171 and i == 2) else 0, wavelength=wl)
        files = sorted((d / f"raw{wl}").glob("*.fits"))
        calibrate_files(files[:3], d / f"{wl}_a.h5", 32, wavelength=wl)
        calibrate_files(files[3:], d / f"{wl}_b.h5", 32, wavelength=wl)
        shards[wl] = [d / f"{wl}_b.h5", d / f"{wl}_a.h5"]
    return d, shards


def test_align_channel_by_nearest_time_within_tolerance():
    idx, off = align_channel(["2011-01-01T00:00:00", "2011-01-01T02:00:00"],
                             ["2011-01-01T02:00:30", "2011-01-01T00:00:12"], 60)
    assert idx.tolist() == [1, 0] and off.tolist() == [12, 30]
    assert align_channel(["2011-01-01T00:00:00"], ["2011-01-01T00:05:00"], 60)[0].tolist() == [-1]


def test_dataset_channels_are_aligned_by_time_and_a_missing_channel_drops_the_frame(channel_shards, tmp_path):
    d, shards = channel_shards
    split = split_record(shards[193], block_hours=4, test_fraction=0.3, placement="last", seed=0)
    constants = {wl: compute_constants([read_shard(s)[0] for s in shards[wl]]) for wl in shards}
    n = build_dataset(shards[193], constants[193], tmp_path / "d.h5", split=split,
                      channels={171: (shards[171], constants[171]), 211: (shards[211], constants[211])},
                      tolerance_s=60)
    assert n == 4  # slots 2 (171 Å rejected) and 4 (171 Å absent) dropped
    attrs = read_attrs(tmp_path / "d.h5")
    dropped = {r["file"]: r["reason"] for r in attrs["dropped_frames"]}
    assert set(dropped) == {"aia_lev1_193a_000002.fits", "aia_lev1_193a_000004.fits"}
    assert all(r.startswith("no 171 Å frame within ±60 s") for r in dropped.values())
    assert attrs["channels"]["171"]["calibration_wavelength"] == 171
    assert attrs["channels"]["211"]["constants"]["clip_max"] == constants[211]["clip_max"]
    # Each channel's image is its own slot's, normalised with its own constants.
    by_date = {}
    for wl in (171, 211):
        for s in shards[wl]:
            ims, fr = read_shard(s)
            ok = fr["status"] == "ok"
            for im, date in zip(ims, fr["date_obs"][ok]):
                by_date[wl, date[:13]] = normalise(im, constants[wl])
    with h5py.File(tmp_path / "d.h5") as f:
        assert f["images_171"].shape == f["images_211"].shape == f["images"].shape == (4, 32, 32)
        dates = [x.decode() for x in f["frames"]["date_obs"][()]]
        assert [x[11:13] for x in dates] == ["00", "02", "06", "10"]
        for wl in (171, 211):
            assert [x.decode()[:13] for x in f["frames"][f"date_obs_{wl}"][()]] == [x[:13] for x in dates]
            for i, date in enumerate(dates):
                np.testing.assert_array_equal(f[f"images_{wl}"][i], by_date[wl, date[:13]])
        assert f["frames"]["split"][()].tolist() == [0, 0, 0, 1]
    ds = H5Images(tmp_path / "d.h5", channels=[171, 211])
    assert ds[0].shape == (3, 32, 32)
    # The channels differ from one another (a translation, not an identity) but share the Sun.
    x = ds[1].numpy()
    assert np.abs(x[0] - x[1]).mean() > 0.01 and np.corrcoef(x[0].ravel(), x[2].ravel())[0, 1] > 0.8
    with pytest.raises(InputError, match="no images_304"):
        H5Images(tmp_path / "d.h5", channels=[304])


def test_a_channels_constants_follow_the_target_split(channel_shards, tmp_path):
    d, shards = channel_shards
    split = split_record(shards[193], block_hours=4, test_fraction=0.3, placement="last", seed=0)
    (tmp_path / "split.json").write_text(json.dumps(split))
    # The step function the workflow's constants rule runs, with its command's defaults.
    constants(shards=shards[211], split=tmp_path / "split.json", reference_shards=shards[193], out=tmp_path / "c.json")
    c = read_json(tmp_path / "c.json")
    train = [read_shard(s)[0] for s in shards[211]]
    assert c["n_frames"] == split["n_train"] == 4  # 211 Å frames matched to 193 Å training frames
    assert c["clip_max"] != compute_constants(train)["clip_max"]  # not the all-frames constants


# --- workflow ---------------------------------------------------------------------------------

def _translation_ci(c):
    """config/ci.yaml with the extra channels and only the translation run (plus bicubic beside it)."""
    c["name"] = "translation"
    c["data"]["extra_wavelengths"] = [171, 211]
    c["models"] = {"bicubic": c["models"]["bicubic"], "msdgan_translation": {
        **c["models"]["msdgan"], "condition": "translation", "input_wavelengths": [171, 211]}}
    c["models"]["msdgan_translation"].pop("factor")
    c["runs"] = {"bicubic": {"model": "bicubic"}, "msdgan_translation": {"model": "msdgan_translation", "train_steps": 10}}
    c["evaluation"].update(nets=["random_inception_v3"], crops=[], spectrum_crops=[], feature_networks={})


def test_translation_config_errors_name_the_key(tmp_path):
    from helpers import ci_config, smk

    def no_channels(c):
        _translation_ci(c)
        c["data"].pop("extra_wavelengths")

    r = smk("-n", "--configfile", str(ci_config(tmp_path, no_channels)), check=False)
    assert r.returncode and "models.msdgan_translation.input_wavelengths asks for 171, 211 Å" in r.stdout + r.stderr

    def target_twice(c):
        _translation_ci(c)
        c["data"]["extra_wavelengths"] = [193]

    r = smk("-n", "--configfile", str(ci_config(tmp_path, target_twice)), check=False)
    assert r.returncode and "193 is not one of" in r.stdout + r.stderr


def test_translation_layers_on_the_demo_and_the_jsoc_source_fetches_the_channels(tmp_path):
    from helpers import smk

    r = smk("-n", "--configfile", "config/demo.yaml", "config/translation.yaml")
    assert "results/demo_translation/runs/msdgan/msdgan_translation/metrics.json" in r.stdout
    # One rule per stage for every channel (the `channel` wildcard): 193 Å and 171/211 Å calibrate alike.
    assert "calibrate_channel" not in r.stdout and "channel=_171" in r.stdout and "channel=_211" in r.stdout
    # JSOC level 1: each extra channel gets its own query/download jobs per chunk, at the same
    # slots, with its own wavelength and nominal exposure, then its own calibration.
    layer = tmp_path / "channels.yaml"
    layer.write_text("data: {extra_wavelengths: [171, 211]}\n")
    r = smk("-n", "-p", "--configfile", "config/jsoc_lev1.yaml", str(layer))
    stats = {line.split()[0]: int(line.split()[1]) for line in r.stdout.split("Job stats:")[1].splitlines()
             if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert stats["jsoc_query"] == stats["jsoc_download"] == stats["calibrate"] == 18  # 6 chunks × 3 channels
    assert stats["normalisation_constants"] == 3 and stats["dataset"] == 1
    assert "--wavelength 211 --start 2011-01-01T00:00:00" in r.stdout and "--nominal-exptime 2.9" in r.stdout
    assert "calibrate --inputs results/jsoc_lev1/data/acquire_171/done_0000.parquet" in r.stdout


@pytest.mark.slow
def test_translation_trains_samples_and_evaluates_through_the_workflow(tmp_path):
    """acquire (3 channels) → calibrate → constants per channel → dataset → train → sample → evaluate
    → results.csv and the tables, at CI scale."""
    import pandas as pd

    from helpers import ci_config, smk

    cfg = ci_config(tmp_path, _translation_ci)
    out = tmp_path / "results/translation"
    targets = [f"results/translation/{t}" for t in ("results.csv", "tables/ranking.csv", "figures/dft.png")]
    r = smk("--configfile", str(cfg), "--cores", "2", *targets, cwd=tmp_path)
    assert "channel=_171" in r.stderr and "channel=_211" in r.stderr
    with h5py.File(out / "data/dataset.h5") as f:
        n = len(f["images"])
        assert f["images_171"].shape == f["images_211"].shape == f["images"].shape
        dropped = json.loads(f.attrs["dropped_frames"])
    # Some slot's 171 or 211 Å frame is flagged (bad_fraction 0.1, drawn per channel): dropped, said why.
    ok_193 = sum((read_shard(p, images=False)[1]["status"] == "ok").sum()
                 for p in (out / "data/calibrated").glob("*.h5"))
    assert len(dropped) >= 1 and n + len(dropped) == ok_193
    assert all("Å frame within" in d["reason"] for d in dropped)
    for wl in (171, 211):
        c = read_json(out / f"data/constants_{wl}.json")
        assert c["split"] == "train" and c["clip_max"] > c["clip_min"] > 0
    df = pd.read_csv(out / "results.csv")
    t = df[df.fake == "msdgan_translation"]
    assert {"l1", "psnr", "ssim"} <= set(t.metric) and {"fid", "spectral_distance"} <= set(t.metric)
    assert not t.metric.str.startswith("spectral_distance_above").any()  # no degradation factor
    assert "msdgan_translation" in set(pd.read_csv(out / "tables/ranking.csv").run)
    assert len(list((out / "runs/msdgan/msdgan_translation/samples").glob("*.png"))) == 8
    log = pd.read_csv(out / "models/msdgan/msdgan_translation/train_log.csv")
    assert log.step.max() == 10


def test_held_out_targets_cycle_over_the_test_split_and_name_an_empty_one(tmp_path):
    """The conditioning frames of a conditional run (dataset.held_out_targets, which sample and
    evaluate call): image i on test frame i, cycling; no test frames is an error, not an empty run."""
    import h5py
    import numpy as np
    import pytest

    from solargen.dataset import held_out_targets

    path = tmp_path / "d.h5"
    images = np.random.default_rng(0).random((5, 8, 8), dtype=np.float32)
    with h5py.File(path, "w") as f:
        f["images"] = images
        f.create_group("frames")["split"] = np.array([0, 1, 0, 1, 0], dtype=np.int8)
    t = held_out_targets(path, None, 8, range(3))
    assert t.shape == (3, 1, 8, 8)
    assert np.allclose(t[:, 0].numpy(), images[[1, 3, 1]] * 2 - 1)
    with h5py.File(tmp_path / "e.h5", "w") as f:
        f["images"] = images
    with pytest.raises(ValueError, match="no held-out frames"):
        held_out_targets(tmp_path / "e.h5", 0.0, 8, range(2))
