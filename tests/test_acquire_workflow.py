"""The acquisition as the workflow drives it: chunked localrule jobs, and a real run against the fake JSOC."""

import numpy as np
import pandas as pd
import pytest
import yaml

from fakejsoc import FakeJsoc
from helpers import ROOT, ci_config, smk


def _stats(stdout):
    return {line.split()[0]: int(line.split()[1]) for line in stdout.split("Job stats:")[1].splitlines()[3:]
            if len(line.split()) == 2 and line.split()[1].isdigit()}


def test_jsoc_config_dry_run_shows_chunked_localrule_downloads():
    r = smk("-n", "--configfile", "config/jsoc_lev1.yaml")
    stats = _stats(r.stdout)
    # 2011-01-01 … 2011-03-01 in 10-day chunks: 6 query jobs, 6 download jobs, one calibrate each.
    assert stats["jsoc_query"] == stats["jsoc_download"] == stats["calibrate"] == 6
    assert stats["data_summary"] == 1 and "acquire_synthetic" not in stats
    # Compute nodes are offline: the JSOC jobs must be localrules. (A dry run executes everything
    # locally, so it cannot show this; the directive is checked instead.)
    smk_text = (ROOT / "workflow/rules/acquire.smk").read_text()
    block = smk_text.split("localrules:")[1].split("rule ")[0]
    assert {"jsoc_query", "jsoc_download", "data_summary"} <= {w.strip(" ,") for w in block.split()}
    assert "results/jsoc_lev1/data/acquire/done_0005.parquet" in r.stdout


def test_synoptic_config_dry_run_has_the_same_chunks_and_no_registration():
    r = smk("-n", "-p", "--configfile", "config/jsoc_synoptic.yaml")
    stats = _stats(r.stdout)
    assert stats["jsoc_query"] == stats["jsoc_download"] == stats["calibrate"] == 6
    assert "acquire-query --source jsoc_synoptic" in r.stdout and "--no-register" in r.stdout




def test_jsoc_source_without_its_block_fails_validation(tmp_path):
    r = smk("-n", "--configfile", str(ci_config(tmp_path, lambda c: c["data"].update(source="jsoc_lev1"))), check=False)
    assert r.returncode and "'jsoc' is a required property" in r.stdout + r.stderr


def test_image_folder_source_skips_calibration(tmp_path):
    (tmp_path / "pngs").mkdir()
    cfg = ci_config(tmp_path, lambda c: c["data"].update(source="image_folder", image_folder={"path": str(tmp_path / "pngs")}))
    stats = _stats(smk("-n", "--configfile", str(cfg)).stdout)
    assert stats["dataset_image_folder"] == 1
    assert not {"calibrate", "acquire_synthetic", "normalisation_constants", "dataset"} & set(stats)


@pytest.mark.slow
def test_workflow_acquires_from_the_fake_jsoc_and_calibrates(tmp_path):
    """query → download → calibrate → data_summary through Snakemake itself; then nothing to do."""
    def edit(c):
        c["name"] = "acq"
        c["data"].update(source="jsoc_lev1", resolution=32)
        c["data"]["jsoc"] = {"start": "2011-01-01T00:00:00", "end": "2011-01-01T12:00:00", "cadence": "2h",
                             "chunk_days": 0.25, "window_s": 60, "poll_s": 0.01, "backoff_s": 0.01}
        c["data"]["calibration"]["pointing_table"] = "jsoc"

    with FakeJsoc(size=64, pending_polls=1, records={"2011-01-01T02:00:00": {"QUALITY": 1 << 30}}) as fake:
        cfg = ci_config(tmp_path, edit)
        c = yaml.safe_load(cfg.read_text())
        c["data"]["jsoc"]["server"] = fake.url
        cfg.write_text(yaml.safe_dump(c))
        env = {"JSOC_EMAIL": "someone@example.org"}
        targets = ["results/acq/figures/data_summary.png", "results/acq/data/calibrated/shard_0000.h5",
                   "results/acq/data/calibrated/shard_0001.h5"]
        smk("--configfile", str(cfg), "--cores", "1", *targets, cwd=tmp_path, env=env)
        out = tmp_path / "results/acq"
        table = pd.read_csv(out / "tables/data_summary.csv").fillna("")
        assert table.query("status == 'verified'")["frames"].sum() == 6
        assert "QUALITY=0x40000000 (Quicklook image)" in set(table["reason"])
        assert len(list((out / "data/store/lev1").rglob("*.fits"))) == 6
        import h5py

        with h5py.File(out / "data/calibrated/shard_0000.h5") as f:
            assert f["images"].shape == (3, 32, 32) and np.isfinite(f["images"][()]).all()
            # The pointing came from the table the acquisition stage fetched, and says which one.
            table = out / "data/acquire/pointing_table.ecsv"
            assert f.attrs["pointing"] == "table pointing_table.ecsv"
            assert f.attrs["pointing_table_sha256"] == (table.parent / (table.name + ".sha256")).read_text().strip()
        assert fake.ops["rs_list"] >= 3
        assert fake.ops["exp_request"] == 2  # one export per chunk
        hits = dict(fake.hits)
        # Forcing the downloads again re-verifies the store and fetches nothing.
        r = smk(*targets, "--configfile", str(cfg), "--cores", "1", "--forcerun", "jsoc_download", cwd=tmp_path, env=env)
        assert "jsoc_download" in r.stdout + r.stderr
        assert dict(fake.hits) == hits, r.stderr[-2000:]  # not even a status call


@pytest.mark.slow
def test_extra_channels_are_fetched_from_the_fake_jsoc_and_aligned_in_the_dataset(tmp_path):
    """data.extra_wavelengths with the JSOC source: each channel's own query/export/download,
    calibrated with its wavelength; a slot whose 171 Å frame is flagged is dropped from the dataset."""
    import h5py

    def edit(c):
        c["name"] = "chan"
        c["data"].update(source="jsoc_lev1", resolution=32, extra_wavelengths=[171], test_fraction=0.25)
        c["data"]["jsoc"] = {"start": "2011-01-01T00:00:00", "end": "2011-01-01T16:00:00", "cadence": "2h",
                             "chunk_days": 0.5, "window_s": 0, "poll_s": 0.01, "backoff_s": 0.01}
        c["data"]["split"] = {"block_hours": 2, "placement": "last", "guard_hours": 0}

    with FakeJsoc(size=64, pending_polls=1, records={"2011-01-01T04:00:00|171": {"QUALITY": 1 << 30}}) as fake:
        cfg = ci_config(tmp_path, edit)
        c = yaml.safe_load(cfg.read_text())
        c["data"]["jsoc"]["server"] = fake.url
        cfg.write_text(yaml.safe_dump(c))
        smk("--configfile", str(cfg), "--cores", "2", "results/chan/data/dataset.h5", cwd=tmp_path,
            env={"JSOC_EMAIL": "someone@example.org"})
        out = tmp_path / "results/chan/data"
        assert len(list((out / "store").rglob("*.171.image.fits"))) == 7  # 8 slots, one flagged
        with h5py.File(out / "dataset.h5") as f:
            assert f["images"].shape[0] == f["images_171"].shape[0] == 7
            kept = " ".join(d.decode() if isinstance(d, bytes) else str(d) for d in f["frames/date_obs"][()])
            assert "2011-01-01T04:00" not in kept and "2011-01-01T06:00" in kept
        with h5py.File(out / "calibrated_171/shard_0000.h5") as f:
            assert int(f.attrs["wavelength"]) == 171
