"""JSOC level-1 acquisition through drms: keyword queries, serialised exports, chunk downloads.

One time chunk is one query job and one download job of the workflow:

* `query_chunk`: the keywords of the nominal cadence slots (``@cadence``), then, for every slot
  whose nominal record is bad or absent, all 12-s records within ``window_s`` of it, so the nearest
  good frame can stand in; `~solargen.acquire.manifest.select_frames` filters and chooses.
* `download_chunk`: files already in the store that verify are kept without contacting JSOC;
  for the rest, export requests (``method="url", protocol="fits"``: headers with every keyword)
  are submitted for exactly the selected records (``[? FSN IN (...) ?]``, ≤ 500 per request),
  their ids saved before waiting, and a re-run reuses them for the records they cover (JSOC
  keeps exports for about 7 days); then the files are fetched with `solargen.acquire.download`.

JSOC allows one pending export per user: an exclusive lock file in the store serialises the
submit-and-wait part across concurrent jobs, and status 7 ("pending export requests") is waited
out with back-off. The notify e-mail, which JSOC requires to be registered, is read from an
environment variable (never from a file).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import os
import re
import time
from pathlib import Path

import pandas as pd

from ..io import InputError, write_json
from . import manifest as mf
from .download import BACKOFF_S, RETRIES, DownloadError, download_all, with_retries
from .records import iso_time, parse_time, recordset, slot_times

log = logging.getLogger(__name__)

__all__ = ["client", "query_chunk", "export_records", "download_chunk", "local_name", "chunk_key"]

#: The 12-s cadence of aia.lev1_euv_12s.
RECORD_STEP_S = 12.0


def client(server_url: str, email: str | None = None):
    """A `drms.Client` for the JSOC-like server at ``server_url`` (``http://jsoc.stanford.edu/``).

    The CGI paths are JSOC's (``cgi-bin/ajax/jsoc_info`` …); files are served under the same base.
    """
    import drms
    from drms.config import ServerConfig

    base = server_url.rstrip("/") + "/"
    cfg = ServerConfig(name=f"solargen {base}", cgi_baseurl=base + "cgi-bin/ajax/", cgi_jsoc_info="jsoc_info",
                       cgi_jsoc_fetch="jsoc_fetch", cgi_check_address="checkAddress.sh",
                       cgi_show_series="show_series", http_download_baseurl=base)
    return drms.Client(server=cfg, email=email)


def _query(c, ds: str, retries: int, backoff_s: float) -> pd.DataFrame:
    # QUALITY may come as hex ("0x00000100"); drms 0.9 converts that only for object columns, which
    # pandas 3 strings are not, so we parse it ourselves (manifest.from_keywords).
    return with_retries(lambda: c.query(ds, key=mf.KEYWORDS, skip_conversion=["QUALITY"]), f"query {ds}",
                        retries=retries, backoff_s=backoff_s)


def query_chunk(c, *, series: str, wavelength: int, t0, t1, origin, cadence_s: float, window_s: float,
                chunk: str, filters: dict, retries: int = RETRIES, backoff_s: float = BACKOFF_S) -> pd.DataFrame:
    """Keywords of one time chunk [t0, t1) → a filtered manifest with one frame per cadence slot.

    Parameters
    ----------
    c : drms.Client
    series, wavelength : str, int
        ``aia.lev1_euv_12s``, 193.
    t0, t1, origin : time
        The chunk and the time the cadence slots count from (all TAI).
    cadence_s, window_s : float
        Slot spacing, and how far from its slot a stand-in frame may be.
    chunk : str
        Chunk label stored in the manifest.
    filters : dict
        Keyword arguments of `~solargen.acquire.manifest.reject_reason`.
    """
    slots = slot_times(origin, t0, t1, cadence_s)
    if not slots:
        return mf.empty()
    # Pass 1: the nominal slots only (@cadence), from the first slot so JSOC's stepping lines up.
    frames = [_query(c, recordset(series, slots[0], t1, wavelength, cadence_s), retries, backoff_s)]
    nominal = mf.select_frames(mf.from_keywords(frames[0], "jsoc_lev1", chunk), slots, RECORD_STEP_S / 2, **filters)
    filled = set(nominal.loc[nominal["status"] == "selected", "slot"].dropna())
    # Pass 2: every 12-s record around the slots without a good nominal frame (a few per cent).
    for slot in slots:
        if iso_time(slot) in filled or window_s < RECORD_STEP_S:
            continue
        lo, hi = slot - dt.timedelta(seconds=window_s), slot + dt.timedelta(seconds=window_s + 1)
        frames.append(_query(c, recordset(series, lo, hi, wavelength), retries, backoff_s))
    keys = pd.concat([f for f in frames if f is not None and len(f)], ignore_index=True) if any(
        f is not None and len(f) for f in frames) else None
    df = mf.select_frames(mf.from_keywords(keys, "jsoc_lev1", chunk), slots, window_s, **filters)
    n_sel = int((df["status"] == "selected").sum())
    log.info("chunk %s: %d records, %d of %d slots filled, %d rejected", chunk, len(df), n_sel, len(slots),
             int((df["status"] == "rejected").sum()))
    return df


def local_name(series: str, t_rec, wavelength: int, segment: str = "image") -> str:
    """Store path of a record, relative to the store: ``lev1/2013/03/15/<series>.20130315_120000.193.image.fits``."""
    t = parse_time(t_rec)
    return f"lev1/{t:%Y/%m/%d}/{series}.{t:%Y%m%d_%H%M%S}.{int(wavelength)}.{segment}.fits"


def chunk_key(series: str, wavelength: int, t0) -> str:
    """Name of a chunk's export state file: independent of the chunk's index in a config."""
    return f"{series}.{int(wavelength)}.{parse_time(t0):%Y%m%dT%H%M%S}"


@contextlib.contextmanager
def exclusive(lock_path: Path):
    """Hold an exclusive lock on ``lock_path`` (blocks while another process holds it)."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


_PENDING_ELSEWHERE = 7  # "User X has N pending export requests"
_SERVER_ERROR = 4       # e.g. "Cant save new export-request hash" (drms #56): retry later


#: Records per export request: keeps the ``[? FSN IN (...) ?]`` request URL near 6 kB (web
#: servers' limits start at 8 kB) and each export at ~7 GB.
MAX_EXPORT_RECORDS = 500


def _read_state(state_path: Path) -> list[dict]:
    try:
        state = json.loads(state_path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return []
    return state.get("exports", []) if isinstance(state, dict) else []


def _resume(c, saved: dict, retries: int, backoff_s: float):
    """The saved export as a `drms.ExportRequest` if JSOC still has it (done or pending), else None."""
    from drms import DrmsExportError

    try:
        req = with_retries(lambda: c.export_from_id(saved["request_id"]), "export status", retries=retries,
                           backoff_s=backoff_s)
    except DrmsExportError as e:
        log.warning("export %s: %s; resubmitting", saved["request_id"], e)
        return None
    if req.status not in (0, 1, 2):
        log.warning("export %s is no longer usable (status %s); resubmitting", saved["request_id"], req.status)
        return None
    log.info("resuming export request %s", saved["request_id"])
    return req


def _submit(c, ds: str, email: str, retries: int, backoff_s: float):
    """Submit an export; wait out "pending elsewhere" (7) and transient server errors (4) with back-off."""
    for attempt in range(retries + 1):
        req = with_retries(lambda: c.export(ds, method="url", protocol="fits", email=email), f"export {ds}",
                           retries=retries, backoff_s=backoff_s)
        if req.status not in (_PENDING_ELSEWHERE, _SERVER_ERROR):
            return req
        if attempt == retries:
            break
        wait = min(backoff_s * 2**attempt, 600.0)
        log.warning("export refused (status %s: %s); retry in %.0f s", req.status, req._d.get("error", ""), wait)
        time.sleep(wait)
    raise DownloadError(f"export {ds}: JSOC keeps refusing it (status {req.status}: {req._d.get('error', '')})")


def export_records(c, fsns: list[int], *, series: str, wavelength: int, segment: str, t0, t1, state_path: Path,
                   email: str, poll_s: float = 10.0, timeout_s: float = 6 * 3600, retries: int = RETRIES,
                   backoff_s: float = BACKOFF_S) -> list:
    """Finished export requests (`drms.ExportRequest`) that together cover the records ``fsns``.

    Saved requests of this chunk (``state_path``) that JSOC still knows are reused for the records
    they cover; the rest are exported in batches of `MAX_EXPORT_RECORDS`, each request id saved
    right after submission so that a killed job resumes it. Submitting and waiting happen under an
    exclusive lock, so one export is pending at a time across all jobs sharing the store.
    """
    state_path = Path(state_path)
    todo = [int(f) for f in fsns]
    done = []
    with exclusive(state_path.parent / ".export.lock"):
        saved = _read_state(state_path)
        kept = []
        for entry in saved:
            covered = set(todo) & set(entry.get("fsns", []))
            if not covered:
                kept.append(entry)  # belongs to records already in the store; harmless
                continue
            req = _resume(c, entry, retries, backoff_s)
            if req is None:
                continue
            kept.append(entry)
            done.append(_wait(req, poll_s, timeout_s, retries, backoff_s))
            todo = [f for f in todo if f not in covered]
        for k in range(0, len(todo), MAX_EXPORT_RECORDS):
            batch = todo[k:k + MAX_EXPORT_RECORDS]
            ds = recordset(series, t0, t1, wavelength, where=f"FSN IN ({','.join(map(str, batch))})", segment=segment)
            req = _submit(c, ds, email, retries, backoff_s)
            kept.append({"request_id": req.id, "recordset": ds, "fsns": batch,
                         "submitted": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")})
            write_json(state_path, {"exports": kept})
            log.info("submitted export request %s for %d records", req.id, len(batch))
            # JSOC refuses a second pending export: finish this one before the next batch.
            done.append(_wait(req, poll_s, timeout_s, retries, backoff_s))
        write_json(state_path, {"exports": kept})
    return done


def _wait(req, poll_s: float, timeout_s: float, retries: int, backoff_s: float):
    ok = with_retries(lambda: req.wait(sleep=poll_s, timeout=timeout_s), f"export {req.id}", retries=retries,
                      backoff_s=backoff_s)
    if not ok:
        raise DownloadError(f"export {req.id} still pending after {timeout_s:.0f} s; a re-run resumes it")
    return req


_RECORD_TIME = re.compile(r"\[([^\]]+)\]")


def _record_time(record: str) -> dt.datetime | None:
    m = _RECORD_TIME.search(str(record))
    try:
        return parse_time(m[1]) if m else None
    except ValueError:
        return None


def download_chunk(manifest: pd.DataFrame, store: str | os.PathLike, *, series: str, wavelength: int,
                   segment: str, c=None, email: str | None = None, t0=None, t1=None, connections: int = 1,
                   poll_s: float = 10.0, export_timeout_s: float = 6 * 3600, retries: int = RETRIES,
                   backoff_s: float = BACKOFF_S, timeout_s: float = 60.0) -> pd.DataFrame:
    """Bring every selected record of a chunk manifest into ``store``; return the done-manifest.

    Rows come back ``verified`` (with ``local_path``, ``bytes``, ``sha256``), ``missing`` (JSOC
    listed no file) or ``failed`` (with the error as reason; a re-run tries again). Rejected and
    unused rows are passed through. ``c`` (a `drms.Client`, or a function that makes one) and
    ``email`` are needed only if some file is not already in the store.
    """
    store = Path(store)
    df = manifest.copy().reset_index(drop=True)
    todo = df.index[df["status"].isin(["selected", "failed", "verified", "missing"])]
    for i in todo:
        df.loc[i, "local_path"] = str(store / local_name(series, df.at[i, "t_rec"], wavelength, segment))

    def expect(i):
        return {"t_rec": df.at[i, "t_rec"], "wavelnth": df.at[i, "wavelnth"], "fsn": df.at[i, "fsn"]}

    # What is already on disk and verifies needs no export at all (re-runs, interrupted chunks).
    from .download import VerifyError, check_on_disk

    need = []
    for i in todo:
        p = Path(df.at[i, "local_path"])
        for stale in p.parent.glob(f".{p.name}.*.part"):  # left by a killed job; never a final file
            stale.unlink(missing_ok=True)
        try:
            n_bytes, digest = check_on_disk(p, expect(i))
            df.loc[i, ["status", "reject_reason", "sha256"]] = ["verified", "", digest]
            df.loc[i, "bytes"] = n_bytes
        except (FileNotFoundError, VerifyError) as e:
            if p.exists():
                log.warning("%s; it will be fetched again", e)
            need.append(i)
    log.info("%d of %d files already verified in the store; %d to fetch", len(todo) - len(need), len(todo), len(need))
    if not need:
        return df
    if c is None or not email:
        raise InputError("files must be fetched from JSOC but no notify e-mail is set: export the variable "
                         "named by data.jsoc.email_env (a JSOC-registered address)")
    if callable(c):  # a factory: contact JSOC only when something must be fetched
        c = c()
    state = store / "exports" / f"{chunk_key(series, wavelength, t0)}.json"
    # The export's time range spans the needed records, not the chunk: a stand-in for the chunk's
    # first slot may precede the chunk by up to window_s.
    times = [parse_time(df.at[i, "t_rec"]) for i in need]
    lo, hi = min(times), max(times) + dt.timedelta(seconds=RECORD_STEP_S)
    requests = export_records(c, [int(df.at[i, "fsn"]) for i in need], series=series, wavelength=wavelength,
                              segment=segment, t0=lo, t1=hi, state_path=state, email=email, poll_s=poll_s,
                              timeout_s=export_timeout_s, retries=retries, backoff_s=backoff_s)
    by_time = {}
    for req in requests:
        urls = req.urls
        for rec, url in zip(urls["record"], urls["url"]):
            t = _record_time(rec)
            if t is not None:
                by_time[t.replace(microsecond=0)] = (url, req.id)
    jobs, rows = [], []
    for i in need:
        url, rid = by_time.get(parse_time(df.at[i, "t_rec"]).replace(microsecond=0), (None, None))
        if url is None:
            df.loc[i, ["status", "reject_reason"]] = ["missing", "no export of this chunk lists a file for this record"]
            continue
        df.loc[i, ["url", "request_id"]] = [url, rid]
        jobs.append({"url": url, "dest": df.at[i, "local_path"], "expect": expect(i)})
        rows.append(i)
    # One chunk downloads at a time per store, so parallel Snakemake jobs never open more than
    # `connections` connections to JSOC between them.
    with exclusive(store / "exports" / ".download.lock"):
        results = download_all(jobs, connections=connections, desc=f"download {df['chunk'].iloc[0]}",
                               retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
    expired = False
    for i, r in zip(rows, results):
        if "error" in r:
            # JSOC listed the file, so a 404 is not "no such record": the export expired. Failed rows
            # fail the job; the store keeps what verified, and the re-run fetches only the rest.
            df.loc[i, ["status", "reject_reason"]] = ["failed", r["error"]]
            expired |= r["missing"]
        else:
            df.loc[i, ["status", "reject_reason", "sha256"]] = ["verified", "", r["sha256"]]
            df.loc[i, "bytes"] = r["bytes"]
    if expired:
        # An export's files vanish after ~7 days while its id may still answer: start afresh next time.
        state.unlink(missing_ok=True)
    return df


# --------------------------------------------------------------------------------------------
# Pointing

#: JSOC's 3-hourly master pointing table (limb fits per channel): what ``update_pointing`` reads.
POINTING_SERIES = "aia.master_pointing3h"
_POINTING_UNITS = {"X0": "pixel", "Y0": "pixel", "IMSCALE": "arcsec / pixel", "INSTROT": "deg"}


def fetch_pointing_table(c, t0, t1, out: str | os.PathLike, *, piece_days: int = 365, retries: int = RETRIES,
                         backoff_s: float = BACKOFF_S) -> str:
    """``aia.master_pointing3h`` entries covering [t0, t1] → an ECSV table at ``out``; returns its sha256.

    The span is padded by one 3-h entry each side and queried ``piece_days`` at a time (one query
    for 9 years of entries would be ~27K rows × every keyword). Columns are converted as aiapy's
    ``get_pointing_table`` does (T_START/T_STOP as UTC times, units on X0/Y0/IMSCALE/INSTROT,
    missing values NaN), so `solargen.calibrate.corrections` hands the file to ``update_pointing`` as is.
    The file is written atomically with its sha256 beside it (``<name>.sha256``).
    """
    import astropy.units as u
    import numpy as np
    from astropy.table import QTable
    from astropy.time import Time

    from ..io import atomic_path
    from .download import _write_sidecar, sha256_of

    t0, t1 = parse_time(t0) - dt.timedelta(hours=3), parse_time(t1) + dt.timedelta(hours=3)
    pieces, a = [], t0
    while a < t1:
        b = min(a + dt.timedelta(days=piece_days), t1)
        ds = f"{POINTING_SERIES}[{a:%Y-%m-%dT%H:%M:%S}Z-{b:%Y-%m-%dT%H:%M:%S}Z]"
        pieces.append(with_retries(lambda ds=ds: c.query(ds, key="**ALL**"), f"query {ds}",
                                   retries=retries, backoff_s=backoff_s))
        a = b
    df = pd.concat([p for p in pieces if len(p)], ignore_index=True) if any(len(p) for p in pieces) else None
    if df is None or "T_START" not in df:
        raise InputError(f"{POINTING_SERIES}: no entries between {t0:%Y-%m-%d %H:%M} and {t1:%Y-%m-%d %H:%M}")
    df = df.drop_duplicates("T_START").sort_values("T_START", ignore_index=True)
    table = QTable()
    for name in df.columns:
        col = df[name]
        if name in ("T_START", "T_STOP"):
            table[name] = Time([str(v).rstrip("Z") for v in col], scale="utc")
            continue
        unit = next((v for k, v in _POINTING_UNITS.items() if name.endswith("_" + k)), None)
        if unit is None:
            table[name] = col.to_numpy()
        else:
            table[name] = np.asarray(pd.to_numeric(col, errors="coerce"), dtype=float) * u.Unit(unit)
    with atomic_path(out) as tmp:
        table.write(tmp, format="ascii.ecsv", overwrite=True)
    digest = sha256_of(out)
    _write_sidecar(Path(out), digest)
    log.info("%s: %d pointing entries %s … %s, sha256 %s", out, len(table), table["T_START"][0].isot,
             table["T_STOP"][-1].isot, digest)
    return digest
