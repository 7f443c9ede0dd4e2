"""JSOC acquisition against a fake JSOC on 127.0.0.1: query → manifest → export → verified download.

The real drms 0.9.0 client and our downloader talk HTTP to `fakejsoc.FakeJsoc`; faults (503s,
dropped connections, "pending export" refusals, slow and stalled responses) are injected there.
Nothing leaves the machine. Frames are 64² so every test takes seconds.
"""

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fakejsoc import FakeJsoc
from solargen.acquire import manifest as mf
from solargen.acquire.download import VerifyError, sha256_of, verify_fits
from solargen.acquire.records import parse_cadence, parse_time, recordset, slot_times, time_chunks
from solargen.cli import main
from solargen.io import InputError

ROOT = Path(__file__).resolve().parents[1]
T0, T1 = "2011-01-01T00:00:00", "2011-01-01T10:00:00"  # 5 slots at 2 h
BAD = {
    "2011-01-01T02:00:00": {"QUALITY": 0x100},           # MISSVALS bit
    "2011-01-01T04:00:00": {"EXPTIME": 0.6},            # flare AEC frame
    "2011-01-01T03:59:48": {"IMG_TYPE": "DARK"},        # its first stand-in is a dark
    "2011-01-01T08:00:00": {"PERCENTD": 97.0},          # incomplete
}
ABSENT = {"2011-01-01T06:00:00"}                       # no record at all in this slot


@pytest.fixture
def fake():
    with FakeJsoc(size=64, pending_polls=2, records=BAD, absent=ABSENT) as f:
        yield f


def _query(fake, tmp_path, t0=T0, t1=T1, chunk="0000"):
    out = tmp_path / f"manifest_{chunk}.parquet"
    assert main(["acquire-query", "--source", "jsoc_lev1", "--server", fake.url, "--start", t0, "--end", t1,
                 "--origin", T0, "--cadence-s", "7200", "--chunk", chunk, "--window-s", "60",
                 "--backoff-s", "0.01", "--out", str(out)]) == 0
    return out


def _download(fake, manifest, store, out, t0=T0, t1=T1, email="someone@example.org", extra=()):
    env = {"JSOC_EMAIL": email} if email else {}
    old = {k: os.environ.pop(k, None) for k in ["JSOC_EMAIL"]}
    os.environ.update(env)
    try:
        return main(["acquire-download", "--source", "jsoc_lev1", "--server", fake.url, "--start", t0, "--end", t1,
                     "--manifest", str(manifest), "--store", str(store), "--out", str(out), "--poll-s", "0.01",
                     "--backoff-s", "0.01", "--timeout-s", "5", *extra])
    finally:
        os.environ.pop("JSOC_EMAIL", None)
        os.environ.update({k: v for k, v in old.items() if v is not None})


def _file_hits(fake):
    return sum(v for k, v in fake.hits.items() if k.endswith(".fits"))


# ------------------------------------------------------------------------------------------------
# Pure parts: times, record sets, filters


def test_times_cadences_and_record_sets():
    assert parse_time("2013.03.15_12:00:01_TAI") == parse_time("2013-03-15T12:00:01") == dt.datetime(2013, 3, 15, 12, 0, 1)
    # UTC spellings (AIA's T_REC, export record names) become TAI: 35 s in 2013, 37 s since 2017.
    assert parse_time("2013-03-15T11:59:26Z") == dt.datetime(2013, 3, 15, 12, 0, 1)
    assert parse_time("2019-01-01T00:00:00_UTC") == dt.datetime(2019, 1, 1, 0, 0, 37)
    assert parse_time("2013.03.15_12:00:01.5_TAI").microsecond == 500000
    assert parse_cadence("2h") == parse_cadence("@7200s") == parse_cadence(7200) == 7200.0
    with pytest.raises(ValueError):
        parse_cadence("2 weeks")
    assert recordset("aia.lev1_euv_12s", "2013-03-15T12:00:00", "2013-03-16T12:00:00", 193, 3600, "image") == \
        "aia.lev1_euv_12s[2013.03.15_12:00:00_TAI/86400s@3600s][193]{image}"
    chunks = time_chunks("2011-01-01", "2011-01-25", 10)
    assert [(a.day, b.day) for a, b in chunks] == [(1, 11), (11, 21), (21, 25)]
    assert slot_times("2011-01-01", "2011-01-01T01:00", "2011-01-01T07:00", 7200) == [
        dt.datetime(2011, 1, 1, 2), dt.datetime(2011, 1, 1, 4), dt.datetime(2011, 1, 1, 6)]


FILTERS = dict(wavelength=193, nominal_exptime=2.0, min_exptime_fraction=0.8)


@pytest.mark.parametrize("change, reason", [
    ({}, ""),
    ({"quality": 1 << 30}, "QUALITY=0x40000000 (Quicklook image)"),
    ({"quality": 0x80000100}, "QUALITY=0x80000100 (Value of MISSVALS keyword is nonzero; Image is not available)"),
    ({"img_type": "DARK"}, "IMG_TYPE=DARK"),
    ({"exptime": 0.5}, "short exposure: EXPTIME=0.5 s < 0.8 × 2 s (automatic exposure control)"),
    ({"percentd": 99.0}, "incomplete frame: PERCENTD=99.000 < 99.9"),
    ({"missvals": 12}, "incomplete frame: MISSVALS=12"),
    ({"wavelnth": 171}, "WAVELNTH=171, not 193"),
])
def test_reject_reasons_name_the_filter_and_decode_quality(change, reason):
    row = {"quality": 0, "img_type": "LIGHT", "wavelnth": 193, "exptime": 2.0, "percentd": 100.0, "missvals": 0}
    assert mf.reject_reason({**row, **change}, **FILTERS) == reason


def test_nearest_good_frame_stands_in_for_a_bad_slot():
    slots = [dt.datetime(2011, 1, 1, 0), dt.datetime(2011, 1, 1, 2)]
    times = ["2011.01.01_00:00:00_TAI", "2011.01.01_01:59:24_TAI", "2011.01.01_02:00:00_TAI",
             "2011.01.01_02:00:24_TAI", "2011.01.01_02:00:48_TAI", "2011.01.01_03:00:00_TAI"]
    keys = pd.DataFrame({"T_REC": times, "WAVELNTH": 193, "FSN": range(6), "EXPTIME": 2.0,
                         "QUALITY": ["0", "0", "0x100", "0", "0", "0"], "IMG_TYPE": "LIGHT", "PERCENTD": 100.0,
                         "MISSVALS": 0})
    df = mf.select_frames(mf.from_keywords(keys, "jsoc_lev1", "0000"), slots, 60, **FILTERS)
    assert list(df["status"]) == ["selected", "unused", "rejected", "selected", "unused", "unused"]
    assert df["reject_reason"][2].startswith("QUALITY=0x00000100")
    assert df["slot"][3] == "2011-01-01T02:00:00" and df["offset_s"][3] == 24.0
    assert "more than 60 s" in df["reject_reason"][5]


def test_corrupt_manifest_is_an_input_error(tmp_path):
    p = tmp_path / "m.parquet"
    p.write_bytes(b"PAR1 not really")
    with pytest.raises(InputError, match="not a readable Parquet manifest"):
        mf.read_manifest(p)


# ------------------------------------------------------------------------------------------------
# Against the fake JSOC


def test_round_trip_query_manifest_export_download(fake, tmp_path):
    fake.json_503 = 2          # the first keyword queries meet a busy server
    fake.status7 = 1           # the first export is refused: "pending export requests"
    fake.file_503 = {"*": 1}   # every file answers 503 once
    manifest = _query(fake, tmp_path)
    df = mf.read_manifest(manifest)
    sel = df[df["status"] == "selected"]
    assert list(sel["slot"]) == [f"2011-01-01T{h:02d}:00:00" for h in (0, 2, 4, 6, 8)]
    # Bad nominal frames are replaced by their nearest good neighbours, and say why they were not used.
    assert list(sel["t_rec"]) == ["2011.01.01_00:00:00_TAI", "2011.01.01_01:59:48_TAI", "2011.01.01_04:00:12_TAI",
                                  "2011.01.01_05:59:48_TAI", "2011.01.01_07:59:48_TAI"]
    rej = df[df["status"] == "rejected"].set_index("t_rec")["reject_reason"]
    assert rej["2011.01.01_02:00:00_TAI"] == "QUALITY=0x00000100 (Value of MISSVALS keyword is nonzero)"
    assert rej["2011.01.01_04:00:00_TAI"].startswith("short exposure: EXPTIME=0.6 s")
    assert rej["2011.01.01_03:59:48_TAI"] == "IMG_TYPE=DARK"
    assert rej["2011.01.01_08:00:00_TAI"] == "incomplete frame: PERCENTD=97.000 < 99.9"

    store, done = tmp_path / "store", tmp_path / "done.parquet"
    assert _download(fake, manifest, store, done) == 0
    out = mf.read_manifest(done)
    ok = out[out["status"] == "verified"]
    assert len(ok) == 5 and fake.max_pending == 1 and fake.ops["exp_request"] == 2  # one refusal, one export
    for _, r in ok.iterrows():
        p = Path(r["local_path"])
        assert p.stat().st_size == r["bytes"] and sha256_of(p) == r["sha256"]
        verify_fits(p, {"t_rec": r["t_rec"], "wavelnth": 193, "fsn": r["fsn"]})
    assert set(ok["request_id"]) == {"JSOC_20260101_001"}
    assert (store / "exports" / "aia.lev1_euv_12s.193.20110101T000000.json").exists()
    # Rejected frames keep their reasons in the done-manifest too.
    assert (out["status"] == "rejected").sum() == 4

    # The calibrate step reads the done-manifest directly.
    assert main(["calibrate", "--inputs", str(done), "--out", str(tmp_path / "shard.h5"), "--size", "32"]) == 0
    from solargen.shards import read_shard

    images, frames = read_shard(tmp_path / "shard.h5")
    assert images.shape == (5, 32, 32) and list(frames["status"]) == ["ok"] * 5

    # data_summary: table, figure, coverage.
    assert main(["acquire-summary", "--manifests", str(done), "--out-table", str(tmp_path / "s.csv"),
                 "--out-figure", str(tmp_path / "s.png"), "--out-coverage", str(tmp_path / "c.json")]) == 0
    table = pd.read_csv(tmp_path / "s.csv").fillna("")
    assert table.query("status == 'verified'")["frames"].sum() == 5
    assert "IMG_TYPE=DARK" in set(table["reason"])
    assert (tmp_path / "s.png").stat().st_size > 10_000


def test_stand_in_before_the_chunk_start_is_exported_too(fake, tmp_path):
    fake.records["2011-01-01T00:00:00"] = {"QUALITY": 1 << 30}  # the chunk's first nominal frame is bad
    manifest = _query(fake, tmp_path)
    assert _download(fake, manifest, tmp_path / "store", tmp_path / "d.parquet") == 0
    ok = mf.read_manifest(tmp_path / "d.parquet").query("status == 'verified'")
    assert ok["t_rec"].iloc[0] == "2010.12.31_23:59:48_TAI" and len(ok) == 5


def test_rerun_downloads_nothing_and_needs_no_jsoc(fake, tmp_path):
    manifest = _query(fake, tmp_path)
    store = tmp_path / "store"
    assert _download(fake, manifest, store, tmp_path / "a.parquet") == 0
    hits, ops = _file_hits(fake), dict(fake.ops)
    mtimes = {p: p.stat().st_mtime_ns for p in store.rglob("*.fits")}
    assert _download(fake, manifest, store, tmp_path / "b.parquet", email=None) == 0  # no e-mail: no export
    assert _file_hits(fake) == hits and dict(fake.ops) == ops
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*.fits")} == mtimes
    a, b = mf.read_manifest(tmp_path / "a.parquet"), mf.read_manifest(tmp_path / "b.parquet")
    pd.testing.assert_series_equal(a["sha256"], b["sha256"])


def test_stored_files_are_rechecked_by_hash_without_a_full_verification(fake, tmp_path, monkeypatch):
    import solargen.acquire.download as download

    manifest = _query(fake, tmp_path)
    store = tmp_path / "store"
    assert _download(fake, manifest, store, tmp_path / "a.parquet") == 0
    sidecars = sorted(store.rglob("*.fits.sha256"))
    assert len(sidecars) == 5 and all(p.read_text().strip() == sha256_of(p.with_suffix("")) for p in sidecars)
    calls = []
    monkeypatch.setattr(download, "verify_fits", lambda *a, **k: calls.append(a))
    assert _download(fake, manifest, store, tmp_path / "b.parquet", email=None) == 0
    assert calls == []  # unchanged bytes: the hash against the sidecar sufficed
    sidecars[0].write_text("0" * 64 + "\n")  # a stale sidecar means a full verification again
    assert _download(fake, manifest, store, tmp_path / "c.parquet", email=None) == 0
    assert len(calls) == 1


def test_dropped_connections_are_refetched_never_kept_truncated(fake, tmp_path):
    fake.drop = {"*": 2}  # every file: two dropped connections mid-body before a full one
    manifest = _query(fake, tmp_path)
    store = tmp_path / "store"
    assert _download(fake, manifest, store, tmp_path / "done.parquet") == 0
    ok = mf.read_manifest(tmp_path / "done.parquet").query("status == 'verified'")
    assert len(ok) == 5 and _file_hits(fake) == 15
    assert not list(store.rglob("*.part"))


def test_dropped_connections_beyond_the_retries_fail_the_job_and_keep_nothing(fake, tmp_path):
    fake.drop = {"*": 100}
    manifest = _query(fake, tmp_path)
    store, done = tmp_path / "store", tmp_path / "done.parquet"
    assert _download(fake, manifest, store, done, extra=["--retries", "1"]) == 2
    assert not done.exists()                         # no done-manifest: the job failed
    assert not list(store.rglob("*.fits")) and not list(store.rglob("*.part"))
    fake.drop = {}
    assert _download(fake, manifest, store, done) == 0  # the re-run resumes the same export
    assert fake.ops["exp_request"] == 1 and len(list(store.rglob("*.fits"))) == 5


def test_download_killed_mid_file_is_refetched_and_the_export_reused(fake, tmp_path):
    manifest = _query(fake, tmp_path)
    store, done = tmp_path / "store", tmp_path / "done.parquet"
    fake.stall_s = 30.0  # every file stalls half-way: the job is killed inside the first one
    env = {**os.environ, "JSOC_EMAIL": "someone@example.org", "PYTHONPATH": str(ROOT / "src")}
    cmd = [sys.executable, "-m", "solargen", "acquire-download", "--source", "jsoc_lev1", "--server", fake.url,
           "--start", T0, "--end", T1, "--manifest", str(manifest), "--store", str(store), "--out", str(done),
           "--poll-s", "0.01"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while _file_hits(fake) == 0 and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # half the first file is written to its temporary name
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _file_hits(fake) == 1
    assert not list(store.rglob("*.fits"))   # nothing under a final name
    assert list(store.rglob("*.part"))       # only the hidden temporary, which the re-run removes
    fake.stall_s = 0.0
    assert _download(fake, manifest, store, done) == 0
    assert fake.ops["exp_request"] == 1      # the persisted request id was reused
    assert len(mf.read_manifest(done).query("status == 'verified'")) == 5
    assert not list(store.rglob("*.part"))


def test_corrupt_file_on_disk_is_detected_and_replaced(fake, tmp_path):
    manifest = _query(fake, tmp_path)
    store = tmp_path / "store"
    assert _download(fake, manifest, store, tmp_path / "a.parquet") == 0
    a = mf.read_manifest(tmp_path / "a.parquet").query("status == 'verified'")
    victim = Path(a["local_path"].iloc[2])
    raw = bytearray(victim.read_bytes())
    raw[-3000] ^= 0xFF  # one flipped byte in the compressed data
    victim.write_bytes(bytes(raw))
    with pytest.raises(VerifyError, match="not an intact FITS"):
        verify_fits(victim)
    (truncated := Path(a["local_path"].iloc[3])).write_bytes(truncated.read_bytes()[:5000])
    hits = _file_hits(fake)
    assert _download(fake, manifest, store, tmp_path / "b.parquet") == 0
    assert _file_hits(fake) == hits + 2        # exactly the two damaged files were fetched again
    assert fake.ops["exp_request"] == 1        # from the saved export, which covers them
    b = mf.read_manifest(tmp_path / "b.parquet").query("status == 'verified'")
    assert list(b["sha256"]) == list(a["sha256"])


def test_expired_export_is_resubmitted(fake, tmp_path):
    manifest = _query(fake, tmp_path)
    store = tmp_path / "store"
    assert _download(fake, manifest, store, tmp_path / "a.parquet") == 0
    for p in store.rglob("*.fits"):
        p.unlink()
    fake.expire("JSOC_20260101_001")          # JSOC forgot it (after ~7 days)
    assert _download(fake, manifest, store, tmp_path / "b.parquet") == 0
    assert fake.ops["exp_request"] == 2
    assert set(mf.read_manifest(tmp_path / "b.parquet").query("status == 'verified'")["request_id"]) == {
        "JSOC_20260101_002"}


def test_concurrent_chunks_keep_one_pending_export(fake, tmp_path):
    chunks = [("2011-01-01T00:00:00", "2011-01-01T04:00:00"), ("2011-01-01T04:00:00", "2011-01-01T10:00:00")]
    manifests = [_query(fake, tmp_path, a, b, f"{i:04d}") for i, (a, b) in enumerate(chunks)]
    fake.slow, fake.slow_s = {"*": 1}, 0.2
    from solargen.acquire.jsoc import client, download_chunk

    c = [client(fake.url, "someone@example.org") for _ in chunks]
    results = {}

    def run(i):
        results[i] = download_chunk(mf.read_manifest(manifests[i]), tmp_path / "store", series="aia.lev1_euv_12s",
                                    wavelength=193, segment="image", c=c[i], email="someone@example.org",
                                    t0=chunks[i][0], t1=chunks[i][1], poll_s=0.05, backoff_s=0.01)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert fake.max_pending == 1 and fake.ops["exp_request"] == 2  # serialised: never a status 7
    assert sum((r["status"] == "verified").sum() for r in results.values()) == 5


def test_large_chunks_are_exported_in_batches_one_pending_at_a_time(fake, tmp_path, monkeypatch):
    import solargen.acquire.jsoc as jsoc

    monkeypatch.setattr(jsoc, "MAX_EXPORT_RECORDS", 2)
    manifest = _query(fake, tmp_path)
    assert _download(fake, manifest, tmp_path / "store", tmp_path / "d.parquet") == 0
    done = mf.read_manifest(tmp_path / "d.parquet").query("status == 'verified'")
    assert fake.ops["exp_request"] == 3 and fake.max_pending == 1
    assert done["request_id"].value_counts().sort_index().tolist() == [2, 2, 1]


def test_slow_response_times_out_and_is_retried(fake, tmp_path):
    from solargen.acquire.download import fetch

    path = "/SUM1/D1/S00000/aia.lev1_euv_12s.20110101_000000_TAI.193.image_lev1.fits"
    fake.slow, fake.slow_s = {"*": 1}, 1.5  # the first request outlasts the 0.5 s socket timeout
    n, digest = fetch(fake.url + path[1:], tmp_path / "x.fits", timeout_s=0.5, backoff_s=0.01)
    assert fake.hits[path] == 2 and n == (tmp_path / "x.fits").stat().st_size and digest == sha256_of(tmp_path / "x.fits")


def test_missing_email_is_a_clear_error(fake, tmp_path):
    manifest = _query(fake, tmp_path)
    assert _download(fake, manifest, tmp_path / "store", tmp_path / "d.parquet", email=None) == 2
    assert fake.ops["exp_request"] == 0


# ------------------------------------------------------------------------------------------------
# Synoptic files and image folders


def test_synoptic_slots_take_the_nearest_good_file(fake, tmp_path):
    fake.records["2011-01-01T02:00:00"] = {"QUALITY": 1 << 30}
    fake.absent.add("2011-01-01T04:00:00")
    out = tmp_path / "m.parquet"
    assert main(["acquire-query", "--source", "jsoc_synoptic", "--server", fake.url, "--start", T0, "--end",
                 "2011-01-01T06:00:00", "--origin", T0, "--cadence-s", "7200", "--chunk", "0000",
                 "--out", str(out)]) == 0
    assert mf.read_manifest(out)["url"].iloc[1].endswith("/data/aia/synoptic/2011/01/01/H0200/AIA20110101_0200_0193.fits")
    done = tmp_path / "d.parquet"
    assert main(["acquire-download", "--source", "jsoc_synoptic", "--server", fake.url, "--start", T0, "--end",
                 "2011-01-01T06:00:00", "--manifest", str(out), "--store", str(tmp_path / "store"),
                 "--window-s", "240", "--backoff-s", "0.01", "--out", str(done)]) == 0
    d = mf.read_manifest(done)
    by = d.set_index("t_rec")
    assert by.loc["2011.01.01_02:00:00_TAI", "reject_reason"] == "QUALITY=0x40000000 (Quicklook image)"
    assert by.loc["2011.01.01_04:00:00_TAI", "status"] == "missing"
    assert list(d.query("status == 'verified'")["t_rec"]) == [
        "2011.01.01_00:00:00_TAI", "2011.01.01_01:58:00_TAI", "2011.01.01_03:58:00_TAI"]


def test_image_folder_becomes_the_dataset(tmp_path):
    from PIL import Image

    from solargen.dataset import H5Images, read_attrs

    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(3, 64, 64), dtype=np.uint8)
    for i, a in enumerate(frames):
        Image.fromarray(a).save(folder / f"out_{[0, 2, 10][i]}.png")
    out, pngs = tmp_path / "dataset.h5", tmp_path / "real"
    assert main(["dataset-images", "--folder", str(folder), "--out", str(out), "--png-dir", str(pngs), "--size", "32"]) == 0
    data = H5Images(out)
    assert len(data) == 3 and data[0].shape == (1, 32, 32)
    expected = frames[2].astype(np.float64).reshape(32, 2, 32, 2).mean((1, 3)) / 255 * 2 - 1  # out_10 is last
    np.testing.assert_allclose(data[2][0].numpy(), expected, atol=1e-6)
    assert read_attrs(out)["source"] == "image_folder" and len(list(pngs.glob("out_*.png"))) == 3
    (folder / "out_11.png").write_bytes(b"\x89PNG broken")
    assert main(["dataset-images", "--folder", str(folder), "--out", str(out), "--size", "32"]) == 2


def test_pointing_table_is_fetched_once_per_span_and_update_pointing_reads_it(fake, tmp_path, capsys):
    """aia.master_pointing3h in year-sized pieces → ECSV + sha256; aiapy's update_pointing takes it."""
    from astropy.table import QTable

    from solargen.acquire.synthetic import write_synthetic_frame
    from solargen.calibrate.corrections import apply_pointing
    from solargen.calibrate.level1 import read_level1

    fake.pointing_dx = 8.0  # native pixels: the table's 193 Å disk centre, right of the detector centre
    out = tmp_path / "pointing_table.ecsv"
    assert main(["acquire-pointing", "--server", fake.url, "--start", "2011-01-01T00:00:00",
                 "--end", "2011-01-02T00:00:00", "--backoff-s", "0.01", "--out", str(out)]) == 0
    table = QTable.read(out)
    assert table["T_START"][0] <= "2011-01-01T00:00:00" and table["T_STOP"][-1] >= "2011-01-02T00:00:00"
    assert str(table["A_193_IMSCALE"].unit) == "arcsec / pix" and len(table) == 11  # padded by 3 h
    assert (tmp_path / "pointing_table.ecsv.sha256").read_text().strip() == sha256_of(out)
    frame = tmp_path / "aia.fits"
    write_synthetic_frame(frame, seed=5, date_obs="2011-01-01T05:00:00.000", native_size=256)
    smap = apply_pointing(read_level1(frame), out)
    # X0 = 2047.5 + 8 native px is CRPIX1 = (2048.5 + 8 − 0.5)/16 + 0.5 on the 256² grid.
    assert smap.meta["crpix1"] == pytest.approx((2048.5 + 8 - 0.5) / 16 + 0.5)
    assert smap.meta["cdelt1"] == pytest.approx(0.6001 * 16)
    # A span JSOC has no entries for is a clear error, and nothing is written.
    assert main(["acquire-pointing", "--server", fake.url, "--start", "2001-01-01T00:00:00",
                 "--end", "2001-01-02T00:00:00", "--out", str(tmp_path / "none.ecsv")]) == 2
    assert "no entries" in capsys.readouterr().err and not (tmp_path / "none.ecsv").exists()
