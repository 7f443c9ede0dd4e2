"""The time axis of an acquisition: JSOC time strings, cadences, chunks and record-set strings.

JSOC's prime key ``T_REC`` is a TAI time slot. Acquisition times in the config are read in the
same scale (TAI), so cadence slots line up with ``T_REC`` exactly. JSOC spells AIA times in UTC
(``2013-03-15T12:00:01Z``) in places; `parse_time` converts those to TAI. Only the standard library is used here, so
the workflow can import this module when it builds the DAG.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = ["parse_cadence", "parse_time", "jsoc_time", "iso_time", "time_chunks", "slot_times",
           "recordset"]

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_CADENCE = re.compile(r"^@?\s*(\d+(?:\.\d*)?)\s*([smhd]?)$")
# 2013.03.15_12:00:00[.5]_TAI, 2013-03-15T12:00:00[.5][Z], 2013-03-15 12:00:00
_TIME = re.compile(r"^(\d{4})[.-](\d{2})[.-](\d{2})(?:[_T ](\d{2}):(\d{2})(?::(\d{2})(\.\d*)?)?)?(?:_?(TAI|UTC|Z))?$")


def parse_cadence(text) -> float:
    """Seconds of a cadence given as ``"2h"``, ``"@720s"``, ``"12"`` (seconds) or a number."""
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        m = _CADENCE.match(str(text).strip())
        if not m:
            raise ValueError(f"cannot parse cadence {text!r}: expected e.g. '2h', '30m', '720s'")
        seconds = float(m[1]) * _UNITS[m[2] or "s"]
    if seconds <= 0:
        raise ValueError(f"cadence must be positive, got {text!r}")
    return seconds


#: TAI − UTC (s) from each date on (IERS leap seconds since 1999; SDO launched 2010).
_LEAP = [(dt.datetime(1999, 1, 1), 32), (dt.datetime(2006, 1, 1), 33), (dt.datetime(2009, 1, 1), 34),
         (dt.datetime(2012, 7, 1), 35), (dt.datetime(2015, 7, 1), 36), (dt.datetime(2017, 1, 1), 37)]


def tai_minus_utc(t: dt.datetime) -> int:
    """Leap-second offset TAI − UTC in seconds at UTC time ``t`` (1999 onwards)."""
    return next((n for since, n in reversed(_LEAP) if t >= since), 32)


def parse_time(text) -> dt.datetime:
    """A naive **TAI** datetime from a JSOC or ISO time string.

    ``2013.03.15_12:00:00_TAI`` and suffix-less ISO strings (``2013-03-15T12:00:00``, our config
    and manifests) are TAI; ``…Z`` and ``…_UTC`` (how JSOC writes AIA's ``T_REC`` and export
    record names) are UTC and get the leap-second offset added, so both spellings of one record
    compare equal.
    """
    if isinstance(text, dt.datetime):
        return text.replace(tzinfo=None)
    m = _TIME.match(str(text).strip())
    if not m:
        raise ValueError(f"cannot parse time {text!r}: expected 'YYYY-MM-DDTHH:MM:SS' or JSOC 'YYYY.MM.DD_HH:MM:SS_TAI'")
    y, mo, d, h, mi, s, frac, scale = m.groups()
    t = dt.datetime(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
    if frac and len(frac) > 1:
        t += dt.timedelta(seconds=float(frac))
    if scale in ("Z", "UTC"):
        t += dt.timedelta(seconds=tai_minus_utc(t))
    return t


def jsoc_time(t) -> str:
    """JSOC TAI time string of ``t``: ``2013.03.15_12:00:00_TAI``."""
    return parse_time(t).strftime("%Y.%m.%d_%H:%M:%S_TAI")


def iso_time(t) -> str:
    """ISO string (seconds precision) of ``t``: ``2013-03-15T12:00:00``."""
    return parse_time(t).strftime("%Y-%m-%dT%H:%M:%S")


def time_chunks(start, end, chunk_days: float) -> list[tuple[dt.datetime, dt.datetime]]:
    """Half-open intervals [t0, t1) of at most ``chunk_days`` covering [start, end).

    Each chunk is one query job and one download job of the workflow; the chunk index is the
    ``shard`` wildcard.
    """
    t0, t_end = parse_time(start), parse_time(end)
    if t_end <= t0:
        raise ValueError(f"acquisition end {end} is not after its start {start}")
    step = dt.timedelta(days=float(chunk_days))
    if step <= dt.timedelta(0):
        raise ValueError(f"chunk_days must be positive, got {chunk_days}")
    chunks = []
    while t0 < t_end:
        chunks.append((t0, min(t0 + step, t_end)))
        t0 += step
    return chunks


def slot_times(origin, t0, t1, cadence_s: float) -> list[dt.datetime]:
    """Cadence slots ``origin + k·cadence`` that fall in [t0, t1)."""
    origin, t0, t1 = parse_time(origin), parse_time(t0), parse_time(t1)
    step = dt.timedelta(seconds=cadence_s)
    k = -(-((t0 - origin) // dt.timedelta(microseconds=1)) // (step // dt.timedelta(microseconds=1)))
    out, t = [], origin + k * step
    while t < t1:
        out.append(t)
        t += step
    return out


def _seconds(td: dt.timedelta) -> str:
    s = td.total_seconds()
    return f"{int(s)}s" if s == int(s) else f"{s}s"


def recordset(series: str, t0, t1, wavelength: int | None = None, cadence_s: float | None = None,
              segment: str | None = None, where: str | None = None) -> str:
    """A DRMS record-set string for the records with T_REC in [t0, t1).

    ``aia.lev1_euv_12s[2013.03.15_12:00:00_TAI/86400s@7200s][193][? QUALITY=0 ?]{image}``: the
    start/duration form is half-open, ``@cadence`` takes every n-th slot (a missing slot is not
    replaced by a neighbour: `solargen.acquire.jsoc.query_chunk` does that).
    """
    t0, t1 = parse_time(t0), parse_time(t1)
    rs = f"{series}[{jsoc_time(t0)}/{_seconds(t1 - t0)}"
    if cadence_s:
        rs += f"@{_seconds(dt.timedelta(seconds=cadence_s))}"
    rs += "]"
    if wavelength is not None:
        rs += f"[{int(wavelength)}]"
    if where:
        rs += f"[? {where} ?]"
    if segment:
        rs += "{" + segment + "}"
    return rs
