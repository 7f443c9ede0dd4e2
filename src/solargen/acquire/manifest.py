"""The acquisition manifest: one row per queried record, the source of truth for downloads.

A manifest is a pandas DataFrame stored as Parquet (written atomically). Columns:

* keywords as JSOC returns them (lower-case): ``t_rec, t_obs, wavelnth, fsn, exptime, quality,
  img_type, percentd, missvals, aectype, nsatpix, datamedn, rsun_obs, cdelt1, crota2``;
* acquisition bookkeeping: ``source`` (jsoc_lev1 | jsoc_synoptic), ``chunk``, ``slot`` (the
  cadence slot the row was considered for, ISO TAI), ``offset_s`` (T_REC − slot), ``url``,
  ``request_id`` (JSOC export), ``local_path``, ``bytes``, ``sha256``;
* ``status`` and ``reject_reason``.

Status values: ``selected`` (the frame chosen for its slot, to download), ``rejected`` (a filter
said no; the reason names the filter), ``unused`` (good, but another good frame is nearer the slot
time), ``verified`` (downloaded and verified), ``missing`` (the server has no file for it) and
``failed`` (could not be downloaded intact after all retries; a re-run tries again).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import InputError, atomic_path
from .records import iso_time, parse_time

__all__ = ["KEYWORDS", "COLUMNS", "from_keywords", "quality_reason", "reject_reason", "select_frames",
           "write_manifest", "read_manifest", "kept", "summary", "paths_of", "stored_records"]

#: Keywords queried per record (JSOC names). Everything the filters, the verification and the
#: data summary need, and nothing heavy (no ``**ALL**``).
KEYWORDS = ["T_REC", "T_OBS", "WAVELNTH", "FSN", "EXPTIME", "QUALITY", "IMG_TYPE", "PERCENTD",
            "MISSVALS", "AECTYPE", "NSATPIX", "DATAMEDN", "RSUN_OBS", "CDELT1", "CROTA2"]

#: Column → dtype of a manifest (pandas extension dtypes so missing values survive Parquet).
COLUMNS = {
    "t_rec": "string", "t_obs": "string", "wavelnth": "Int64", "fsn": "Int64", "exptime": "Float64",
    "quality": "Int64", "img_type": "string", "percentd": "Float64", "missvals": "Int64",
    "aectype": "Int64", "nsatpix": "Int64", "datamedn": "Float64", "rsun_obs": "Float64",
    "cdelt1": "Float64", "crota2": "Float64",
    "source": "string", "chunk": "string", "slot": "string", "offset_s": "Float64", "url": "string",
    "request_id": "string", "local_path": "string", "bytes": "Int64", "sha256": "string",
    "status": "string", "reject_reason": "string",
}

STATUSES = ("selected", "rejected", "unused", "verified", "missing", "failed")


#: Nominal EXPTIME (s) of the AIA EUV channels, for the short-exposure filter of an extra channel
#: (data.jsoc.nominal_exptime is the target channel's).
NOMINAL_EXPTIME_S = {94: 2.9, 131: 2.9, 171: 2.0, 193: 2.0, 211: 2.9, 304: 2.9, 335: 2.9}


def empty() -> pd.DataFrame:
    """A manifest with no rows and every column."""
    return pd.DataFrame({k: pd.Series([], dtype=v) for k, v in COLUMNS.items()})


def from_keywords(keys: pd.DataFrame, source: str, chunk: str) -> pd.DataFrame:
    """Manifest rows from a drms keyword query (columns named as `KEYWORDS`)."""
    df = empty() if keys is None or len(keys) == 0 else pd.DataFrame(index=range(len(keys)))
    if len(df):
        for k, dtype in COLUMNS.items():
            src = k.upper()
            if src in keys.columns:
                col = keys[src].reset_index(drop=True)
                if k == "quality":
                    col = col.map(_parse_int)
                if dtype in ("Int64", "Float64"):
                    col = pd.to_numeric(col, errors="coerce")
                    if dtype == "Int64":
                        col = col.round()
                df[k] = col.astype(dtype)
            else:
                df[k] = pd.Series([pd.NA] * len(df), dtype=dtype)
        df["source"] = source
        df["chunk"] = chunk
    return _typed(df)


def _parse_int(v):
    """``"0x00000100"``, ``"256"``, 256 → 256; anything unparsable → NA."""
    if v is None or v is pd.NA:
        return pd.NA
    try:
        return int(v) if not isinstance(v, str) else int(v.strip(), 0)
    except (ValueError, TypeError):
        try:
            return int(float(v))
        except (ValueError, TypeError):
            return pd.NA


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    for k, dtype in COLUMNS.items():
        if k not in df:
            df[k] = pd.Series([pd.NA] * len(df), dtype=dtype, index=df.index)
        else:
            df[k] = df[k].astype(dtype)
    return df[list(COLUMNS)]


def quality_reason(quality: int) -> str:
    """``QUALITY=0x00000100 (Value of MISSVALS keyword is nonzero)``: the bits, decoded by aiapy."""
    from aiapy.util import check_quality_flag

    quality = int(quality) & 0xFFFFFFFF
    try:
        bits = "; ".join(check_quality_flag(quality))
    except Exception:  # an unknown bit: keep the hex value, which says everything
        bits = "undocumented bits"
    return f"QUALITY=0x{quality:08x} ({bits})"


def reject_reason(row, *, wavelength: int, nominal_exptime: float, min_exptime_fraction: float,
                  min_percentd: float = 99.9) -> str:
    """Why a record is not usable for the study, or ``""``. The first failing filter wins.

    * ``QUALITY`` ≠ 0 (bits decoded), which includes "image not available" and quick-look data;
    * ``IMG_TYPE`` ≠ LIGHT (darks, calibration frames);
    * wavelength other than the study's;
    * short exposures: ``EXPTIME`` < ``min_exptime_fraction`` × nominal, the automatic-exposure
      frames of flares, whose noise and saturation differ from the rest of the set;
    * incomplete frames: ``PERCENTD`` < ``min_percentd`` or ``MISSVALS`` > 0.
    """
    def val(k):
        v = row.get(k) if hasattr(row, "get") else row[k]
        return None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v

    quality = val("quality")
    if quality is None:
        return "QUALITY missing"
    if int(quality) != 0:
        return quality_reason(int(quality))
    img_type = str(val("img_type") or "").strip().upper()
    if img_type != "LIGHT":
        return f"IMG_TYPE={img_type or 'missing'}"
    w = val("wavelnth")
    if w is None or int(w) != int(wavelength):
        return f"WAVELNTH={w}, not {wavelength}"
    exptime = val("exptime")
    if exptime is None or float(exptime) < min_exptime_fraction * nominal_exptime:
        return (f"short exposure: EXPTIME={exptime} s < {min_exptime_fraction:g} × {nominal_exptime:g} s"
                " (automatic exposure control)")
    percentd = val("percentd")
    if percentd is not None and float(percentd) < min_percentd:
        return f"incomplete frame: PERCENTD={float(percentd):.3f} < {min_percentd:g}"
    missvals = val("missvals")
    if missvals is not None and int(missvals) > 0:
        return f"incomplete frame: MISSVALS={int(missvals)}"
    return ""


def select_frames(df: pd.DataFrame, slots, window_s: float, **filters) -> pd.DataFrame:
    """Filter every row and choose at most one frame per cadence slot.

    Parameters
    ----------
    df : DataFrame
        Manifest rows (any status); duplicates of a ``t_rec`` are dropped.
    slots : list of datetime
        Nominal times (TAI) of the cadence slots.
    window_s : float
        A record may stand in for a slot if |T_REC − slot| ≤ ``window_s``.
    **filters
        Passed to `reject_reason`.

    Returns
    -------
    DataFrame
        The rows, each with ``status`` selected / rejected / unused, ``reject_reason``, ``slot``
        and ``offset_s``; in T_REC order. Per slot the good frame nearest the slot time is
        selected, so a bad nominal frame is replaced by its nearest good neighbour.
    """
    df = _typed(df.drop_duplicates("t_rec").reset_index(drop=True).copy())
    if not len(df):
        return df
    times = np.array([parse_time(t) for t in df["t_rec"]], dtype="datetime64[us]")
    slot_arr = np.array(slots, dtype="datetime64[us]")
    reasons = [reject_reason(r, **filters) for r in df.to_dict("records")]
    df["reject_reason"] = pd.array(reasons, dtype="string")
    df["status"] = pd.array(["rejected" if r else "unused" for r in reasons], dtype="string")
    if len(slot_arr):
        # Nearest slot of every record.
        pos = np.clip(np.searchsorted(slot_arr, times), 1, len(slot_arr) - 1) if len(slot_arr) > 1 else np.zeros(len(times), int)
        if len(slot_arr) > 1:
            left = slot_arr[pos - 1]
            pos = np.where(np.abs(times - left) <= np.abs(slot_arr[pos] - times), pos - 1, pos)
        offset = (times - slot_arr[pos]) / np.timedelta64(1, "s")
        near = np.abs(offset) <= window_s
        df["slot"] = pd.array([iso_time(slot_arr[p].astype(object)) if n else pd.NA for p, n in zip(pos, near)],
                              dtype="string")
        df["offset_s"] = pd.array(np.where(near, offset, np.nan), dtype="Float64")
        good = near & (df["status"] == "unused").to_numpy()
        for p in np.unique(pos[good]):
            idx = np.flatnonzero(good & (pos == p))
            best = idx[np.argmin(np.abs(offset[idx]) + 1e-6 * (offset[idx] > 0))]  # tie: the earlier
            df.loc[best, "status"] = "selected"
        unused = (df["status"] == "unused").to_numpy()
        df.loc[unused & near, "reject_reason"] = "another good frame is nearer the slot time"
        df.loc[unused & ~near, "reject_reason"] = f"more than {window_s:g} s from every cadence slot"
    order = np.argsort(times, kind="stable")
    return df.iloc[order].reset_index(drop=True)


def kept(df: pd.DataFrame) -> pd.DataFrame:
    """The rows a chunk will deliver (or has delivered): selected or verified."""
    return df[df["status"].isin(["selected", "verified"])]


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a manifest atomically as Parquet (and nothing if ``df`` lacks columns)."""
    df = _typed(df.copy())
    with atomic_path(path, suffix=".parquet") as tmp:
        df.to_parquet(tmp, index=False)


def read_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """Read a manifest; a missing, corrupt or foreign file is an `InputError` naming it."""
    try:
        df = pd.read_parquet(path)
    except FileNotFoundError:
        raise InputError(f"{path}: manifest not found") from None
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError on corrupt files
        raise InputError(f"{path}: not a readable Parquet manifest ({type(e).__name__}: {e})") from None
    missing = [c for c in ("t_rec", "status", "local_path") if c not in df]
    if missing:
        raise InputError(f"{path}: not a solargen manifest (no column {', '.join(missing)})")
    return _typed(df)


def summary(manifests: list[pd.DataFrame]) -> tuple[pd.DataFrame, dict]:
    """Frames per status and reason, and the time coverage, over done-manifests.

    Returns
    -------
    table : DataFrame
        Columns ``status, reason, frames``; one row per (status, reason) pair, reasons grouped by
        their filter (QUALITY bits keep their decoded text).
    coverage : dict
        ``first``, ``last`` (T_REC of verified frames), ``slots`` (cadence slots considered),
        ``slots_filled`` (slots with a verified frame).
    """
    df = pd.concat(manifests, ignore_index=True) if manifests else empty()
    reasons = df["reject_reason"].fillna("").astype(str)
    table = (pd.DataFrame({"status": df["status"].astype(str), "reason": reasons})
             .value_counts().rename("frames").reset_index()
             .sort_values(["status", "frames"], ascending=[True, False], kind="stable"))
    ok = df[df["status"] == "verified"]
    slots = df["slot"].dropna().unique()
    coverage = {
        "first": str(ok["t_rec"].min()) if len(ok) else "",
        "last": str(ok["t_rec"].max()) if len(ok) else "",
        "slots": int(len(slots)),
        "slots_filled": int(ok["slot"].dropna().nunique()),
        "frames_verified": int(len(ok)),
        "bytes_verified": int(ok["bytes"].fillna(0).sum()),
    }
    return table.reset_index(drop=True), coverage


def paths_of(df: pd.DataFrame, base: str | os.PathLike | None = None) -> list[Path]:
    """Local files of the verified rows, in time order (relative paths resolved against ``base``)."""
    ok = df[df["status"] == "verified"].sort_values("t_rec")
    out = []
    for p in ok["local_path"]:
        p = Path(str(p))
        out.append(p if p.is_absolute() or base is None else Path(base) / p)
    return out


def stored_records(df: pd.DataFrame, base: str | os.PathLike | None = None) -> dict[str, dict]:
    """What each verified row's stored file must be, keyed by its resolved path (as `paths_of`
    resolves it): ``t_rec``, ``fsn`` and ``sha256`` (NA where the manifest has none). The
    calibration checks every file it reads against this (`solargen.calibrate.level1.check_stored`)."""
    ok = df[df["status"] == "verified"]
    out = {}
    for row in ok[["local_path", "t_rec", "fsn", "sha256"]].to_dict("records"):
        p = Path(str(row.pop("local_path")))
        p = p if p.is_absolute() or base is None else Path(base) / p
        out[str(p.resolve())] = row
    return out
