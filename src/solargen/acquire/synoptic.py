"""JSOC's AIA synoptic product over plain HTTP: the fast route to 1024² frames (no export request).

Files live at ``<server>/data/aia/synoptic/YYYY/MM/DD/Hhh00/AIAYYYYMMDD_HHMM_0193.fits``, one
every 2 minutes, so URLs are built directly (no directory listing) and HTTP 404 means "no file".

What the product already is (JSOC's README for ``/data/aia/synoptic``): definitive level 1
processed to level 1.5 (pointing, registration: north up, disc centred) and reduced to 1024² at
2.4″/px by averaging the non-NaN pixels of each 4×4 block; values are DN per *original* 0.6″
pixel, **not** divided by the exposure time; made about a week after the observation. Degradation
correction is, to our knowledge, not applied. So with this source set
``data.calibration.register: false`` (already registered) and keep ``exposure: true``.
The near-real-time variant (3-minute cadence) is not used: it is not for science.

Quality filtering works on the downloaded header (there is no keyword query): a frame whose
header fails `~solargen.acquire.manifest.reject_reason` is recorded as rejected and the next
file of its cadence slot (±2, ±4 … min, within ``window_s``) is tried.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd

from . import manifest as mf
from .download import DownloadError, NotFound, VerifyError, ensure_file
from .records import iso_time, jsoc_time, parse_time, slot_times

log = logging.getLogger(__name__)

__all__ = ["SYNOPTIC_STEP_S", "synoptic_url", "synoptic_manifest", "download_synoptic_chunk"]

#: Cadence of the synoptic files.
SYNOPTIC_STEP_S = 120.0


def synoptic_url(server_url: str, t, wavelength: int = 193) -> str:
    """URL of the synoptic file for time ``t`` (which must be on the 2-minute grid)."""
    t = parse_time(t)
    base = server_url.rstrip("/") + "/"
    return f"{base}data/aia/synoptic/{t:%Y/%m/%d}/H{t:%H}00/AIA{t:%Y%m%d_%H%M}_{int(wavelength):04d}.fits"


def _on_grid(t: dt.datetime) -> dt.datetime:
    """The nearest 2-minute grid time."""
    midnight = t.replace(hour=0, minute=0, second=0, microsecond=0)
    k = round((t - midnight).total_seconds() / SYNOPTIC_STEP_S)
    return midnight + dt.timedelta(seconds=k * SYNOPTIC_STEP_S)


def synoptic_manifest(*, server_url: str, wavelength: int, t0, t1, origin, cadence_s: float, chunk: str) -> pd.DataFrame:
    """One ``selected`` row per cadence slot of [t0, t1), with the URL of its nominal file."""
    rows = []
    for slot in slot_times(origin, t0, t1, cadence_s):
        t = _on_grid(slot)
        rows.append({"t_rec": jsoc_time(t), "wavelnth": int(wavelength), "source": "jsoc_synoptic", "chunk": chunk,
                     "slot": iso_time(slot), "offset_s": (t - slot).total_seconds(),
                     "url": synoptic_url(server_url, t, wavelength), "status": "selected", "reject_reason": ""})
    return mf._typed(pd.DataFrame(rows)) if rows else mf.empty()


def local_name(t, wavelength: int) -> str:
    t = parse_time(t)
    return f"synoptic/{t:%Y/%m/%d}/AIA{t:%Y%m%d_%H%M}_{int(wavelength):04d}.fits"


def _header_row(header: dict, base: dict) -> dict:
    row = dict(base)
    for k in mf.KEYWORDS:
        if k in header and k != "T_REC":
            row[k.lower()] = header[k]
    return row


def download_synoptic_chunk(manifest: pd.DataFrame, store: str | os.PathLike, *, server_url: str, wavelength: int,
                            window_s: float, filters: dict, connections: int = 1, **kw) -> pd.DataFrame:
    """Fetch one good synoptic file per slot into ``store``; return the done-manifest.

    Every file tried gets a row: ``verified`` (the slot's frame), ``rejected`` (header failed a
    filter; reason), ``missing`` (404) or ``failed`` (not intact after all retries).
    """
    store = Path(store)
    slots = manifest[manifest["status"].isin(["selected", "verified", "failed", "missing"])]

    def one_slot(row) -> list[dict]:
        slot = parse_time(row["slot"])
        nominal = _on_grid(slot)
        n = int(window_s // SYNOPTIC_STEP_S)
        order = [0] + [s * k for k in range(1, n + 1) for s in (-1, 1)]
        out = []
        for k in order:
            t = nominal + dt.timedelta(seconds=k * SYNOPTIC_STEP_S)
            if abs((t - slot).total_seconds()) > window_s and k:
                continue
            base = {"t_rec": jsoc_time(t), "wavelnth": int(wavelength), "source": "jsoc_synoptic",
                    "chunk": row["chunk"], "slot": row["slot"], "offset_s": (t - slot).total_seconds(),
                    "url": synoptic_url(server_url, t, wavelength), "local_path": str(store / local_name(t, wavelength))}
            try:
                n_bytes, digest, _ = ensure_file(base["url"], base["local_path"], expect={"wavelnth": wavelength}, **kw)
            except NotFound as e:
                out.append({**base, "status": "missing", "reject_reason": str(e)})
                continue
            except (DownloadError, VerifyError, OSError) as e:
                out.append({**base, "status": "failed", "reject_reason": str(e)})
                break
            from astropy.io import fits

            with fits.open(base["local_path"]) as hdul:
                header = next(h.header for h in hdul if h.header.get("NAXIS", 0) == 2)
            r = _header_row(dict(header), {**base, "bytes": n_bytes, "sha256": digest})
            reason = mf.reject_reason(r, **filters)
            if reason:
                out.append({**r, "status": "rejected", "reject_reason": reason})
                continue
            out.append({**r, "status": "verified", "reject_reason": ""})
            break
        return out

    from tqdm import tqdm

    from .jsoc import exclusive

    with exclusive(store / ".download.lock"), ThreadPoolExecutor(max(1, min(int(connections), 2))) as pool:
        results = list(tqdm(pool.map(one_slot, slots.to_dict("records")), total=len(slots),
                            desc="synoptic", unit="slot"))
    rows = [r for rs in results for r in rs]
    return mf._typed(pd.DataFrame(rows)) if rows else mf.empty()
