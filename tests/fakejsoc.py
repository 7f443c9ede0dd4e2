"""A small fake JSOC on 127.0.0.1 for offline tests: the endpoints the real drms 0.9.0 calls.

* ``cgi-bin/ajax/jsoc_info?op=series_struct`` — prime keys, keyword types, segments;
* ``cgi-bin/ajax/jsoc_info?op=rs_list`` — keywords of a record set
  (``series[<JSOC time>/<n>s[@<m>s]][<wavelength>][? FSN IN (...) ?]{segment}`` or one time);
* ``cgi-bin/ajax/checkAddress.sh`` — every address is registered;
* ``cgi-bin/ajax/jsoc_fetch?op=exp_request`` / ``op=exp_status`` — export requests that stay
  pending for ``pending_polls`` status calls (2, then 1, then 0 with ``dir`` and ``data``), one
  pending request per user (a second one gets status 7, as JSOC answers);
* ``/SUM…/<file>`` — the exported files: RICE-compressed level-1 FITS made by
  `solargen.acquire.synthetic` with CHECKSUM/DATASUM, header keywords equal to the record's;
* ``/data/aia/synoptic/YYYY/MM/DD/Hhh00/AIAYYYYMMDD_HHMM_0193.fits`` — synoptic-style files on
  the even minutes.

The archive: a record every 12 s at any time in every EUV channel (`WAVES`; FSNs distinct per
channel, the same Sun in all of them); ``records`` overrides keywords of given T_RECs (ISO
strings: 193 Å; ``"<ISO>|<wavelength>"``: that channel), ``absent`` removes records (all
channels). ``aia.master_pointing3h`` answers an entry every 3 h (`FakeJsoc.pointing`). Fault switches (attributes, changeable between calls):
``json_503`` (next n CGI calls answer 503), ``file_503`` (per file: the first n requests answer
503), ``drop`` (per file: the first n requests send half the body, then close), ``status7``
(next n export requests are refused as "pending elsewhere"), ``slow`` (per file: the first n
requests wait ``slow_s`` before answering) and ``stall_s`` (every file body pauses half-way).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

from astropy.io import fits

from solargen.acquire.manifest import NOMINAL_EXPTIME_S
from solargen.acquire.records import jsoc_time, parse_time, tai_minus_utc
from solargen.acquire.synthetic import synthetic_frame

SERIES = "aia.lev1_euv_12s"
POINTING_SERIES = "aia.master_pointing3h"
KEY_TYPES = {"T_REC": "time", "T_OBS": "time", "WAVELNTH": "int", "FSN": "int", "EXPTIME": "float",
             "QUALITY": "int", "IMG_TYPE": "string", "PERCENTD": "float", "MISSVALS": "int", "AECTYPE": "int",
             "NSATPIX": "int", "DATAMEDN": "float", "RSUN_OBS": "float", "CDELT1": "float", "CROTA2": "float"}
EPOCH = dt.datetime(2010, 1, 1)
#: Channels served; FSN = 100_000_000 × (1 + position) + 12-s index, so 193 Å keeps 1xxxxxxxx.
WAVES = (193, 171, 211, 94, 131, 304, 335)
_RS = re.compile(r"^([\w.]+)\[([^\]]*)\](?:\[(\d+)\])?(?:\[\?(.*?)\?\])?(?:\{([^}]*)\})?$")
_SPAN = re.compile(r"^([^/@]+)(?:/(\d+(?:\.\d+)?)([smhd]))?(?:@(\d+(?:\.\d+)?)([smhd]))?$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FakeJsoc:
    def __init__(self, size: int = 64, pending_polls: int = 2, records: dict | None = None, absent=()):
        self.size = size
        self.pending_polls = pending_polls
        self.records = dict(records or {})
        self.absent = set(absent)
        self.json_503 = 0
        self.file_503: dict[str, int] = {}
        self.drop: dict[str, int] = {}
        self.status7 = 0
        self.slow_s = 0.0
        self.pointing_dx = 0.0
        self.slow: dict[str, int] = {}      # per file: the first n requests wait slow_s before answering
        self.stall_s = 0.0                   # every file body: half, a pause of stall_s, the rest
        self.hits: Counter = Counter()       # path (without query) → requests
        self.ops: Counter = Counter()        # CGI op → calls
        self.exports: dict[str, dict] = {}   # request id → {records, polls, done}
        self.max_pending = 0
        self._files: dict[str, bytes] = {}
        self._n_requests = 0
        self._lock = threading.Lock()
        self._server = None

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self):
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def expire(self, request_id: str):
        """Forget an export, as JSOC does after about a week."""
        with self._lock:
            self.exports.pop(request_id, None)

    # ---------------------------------------------------------------- the archive
    def keywords(self, t: dt.datetime, wave: int = 193) -> dict:
        index = int((t - EPOCH).total_seconds() // 12)
        k = {"T_REC": jsoc_time(t), "T_OBS": (t + dt.timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.00Z"),
             "WAVELNTH": wave, "FSN": 100_000_000 * (1 + WAVES.index(wave)) + index,
             "EXPTIME": NOMINAL_EXPTIME_S[wave], "QUALITY": 0, "IMG_TYPE": "LIGHT",
             "PERCENTD": 100.0, "MISSVALS": 0, "AECTYPE": 0, "NSATPIX": 0, "DATAMEDN": 80.0, "RSUN_OBS": 975.0,
             "CDELT1": 0.6 * 4096 / self.size, "CROTA2": 0.05}
        ts = t.strftime("%Y-%m-%dT%H:%M:%S")
        k.update(self.records.get(ts, {}) if wave == 193 else {})
        k.update(self.records.get(f"{ts}|{wave}", {}))
        return k

    def select(self, ds: str) -> tuple[list[dt.datetime], int]:
        """The record set's times and its channel (193 when the set names none)."""
        m = _RS.match(ds.replace(" ", "") if "?" not in ds else ds.strip())
        if not m:
            raise ValueError(f"bad record set {ds!r}")
        series, span, wave, where, _seg = m.groups()
        wave = int(wave) if wave else 193
        if series != SERIES or wave not in WAVES:
            return [], wave
        s = _SPAN.match(span.strip())
        if not s:
            raise ValueError(f"bad time span {span!r}")
        t0 = parse_time(s[1])
        # Snap up to the 12-s grid, as T_REC slots are.
        off = (t0 - EPOCH).total_seconds() % 12
        t0 += dt.timedelta(seconds=(12 - off) % 12)
        dur = float(s[2]) * _UNIT[s[3]] if s[2] else 1.0
        step = float(s[4]) * _UNIT[s[5]] if s[4] else 12.0
        times, t = [], t0
        while t < t0 + dt.timedelta(seconds=dur) - dt.timedelta(microseconds=1) or (not s[2] and t == t0):
            if t.strftime("%Y-%m-%dT%H:%M:%S") not in self.absent:
                times.append(t)
            t += dt.timedelta(seconds=step)
            if not s[2]:
                break
        if where:
            fsn = re.search(r"FSN\s+IN\s*\(([\d,\s]+)\)", where, re.I)
            if not fsn:
                raise ValueError(f"unsupported where clause {where!r}")
            wanted = {int(x) for x in fsn[1].split(",")}
            times = [t for t in times if self.keywords(t, wave)["FSN"] in wanted]
        return times, wave

    def filename(self, t: dt.datetime, wave: int = 193) -> str:
        return f"{SERIES}.{t:%Y%m%d_%H%M%S}_TAI.{wave}.image_lev1.fits"

    def fits_bytes(self, t: dt.datetime, level: float = 1.0, wave: int = 193) -> bytes:
        key = f"{t.isoformat()}:{level}:{wave}"
        with self._lock:
            if key in self._files:
                return self._files[key]
        k = self.keywords(t, wave)
        # The 193 Å FSN seeds every channel: one Sun, seen through each channel's response.
        data, header = synthetic_frame(seed=self.keywords(t)["FSN"] % 2**31, date_obs=t.strftime("%Y-%m-%dT%H:%M:%S"),
                                       native_size=self.size, exptime=float(k["EXPTIME"]),
                                       quality=int(k["QUALITY"]), wavelength=wave)
        for name in ("T_REC", "FSN", "IMG_TYPE", "PERCENTD", "MISSVALS", "WAVELNTH"):
            header[name] = k[name]
        header["LVL_NUM"] = level
        buf = io.BytesIO()
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(data=data, header=header, compression_type="RICE_1")]
                     ).writeto(buf, checksum=True)
        with self._lock:
            self._files[key] = buf.getvalue()
        return buf.getvalue()

    # ---------------------------------------------------------------- CGI answers
    def series_struct(self, q):
        return {"status": 0, "primekeys": ["T_REC", "WAVELNTH"], "retention": 10000, "unitsize": 32, "archive": 1,
                "tapegroup": 1, "note": "fake AIA level 1, 12 s cadence", "dbindex": ["T_REC"],
                "keywords": [{"name": k, "type": v, "recscope": "variable", "defval": "", "units": "", "note": "",
                              "linkinfo": ""} for k, v in KEY_TYPES.items()],
                "links": [], "segments": [{"name": "image", "type": "int", "units": "DN", "protocol": "fits",
                                           "dims": f"{self.size}x{self.size}", "note": "AIA level 1 image"}]}

    def pointing(self, ds: str) -> list[dict]:
        """aia.master_pointing3h[<start>Z-<end>Z]: an entry every 3 h from EPOCH; the 193 Å disk
        centre sits ``pointing_dx`` pixels right of the detector centre (so an update is visible)."""
        m = re.match(rf"^{re.escape(POINTING_SERIES)}\[(\S+?)Z-(\S+?)Z\]$", ds.strip())
        if not m:
            raise ValueError(f"bad record set {ds!r}")
        t0, t1 = parse_time(m[1]), parse_time(m[2])
        step = dt.timedelta(hours=3)
        t = EPOCH + step * max(0, -(-(t0 - EPOCH) // step))
        rows = []
        while t <= t1:
            row = {"T_START": f"{t:%Y-%m-%dT%H:%M:%S}Z", "T_STOP": f"{t + step:%Y-%m-%dT%H:%M:%S}Z"}
            for wl in (171, 193, 211):
                row.update({f"A_{wl}_X0": 2047.5 + (self.pointing_dx if wl == 193 else 0.0), f"A_{wl}_Y0": 2047.5,
                            f"A_{wl}_IMSCALE": 0.6001, f"A_{wl}_INSTROT": 0.0578})
            rows.append(row)
            t += step
        return rows

    def rs_list(self, q):
        if q["ds"][0].startswith(POINTING_SERIES):
            try:
                rows = self.pointing(q["ds"][0])
            except ValueError as e:
                return {"status": 1, "error": str(e)}
            keys = [k for k in q.get("key", [""])[0].split(",") if k]
            keys = list(rows[0]) if rows and keys == ["**ALL**"] else keys
            return {"status": 0, "count": len(rows), "runtime": 0.01,
                    "keywords": [{"name": k, "values": [f"{r[k]:.6f}" if isinstance(r[k], float) else r[k]
                                                        for r in rows]} for k in keys]}
        try:
            times, wave = self.select(q["ds"][0])
        except ValueError as e:
            return {"status": 1, "error": str(e)}
        keys = [k for k in q.get("key", [""])[0].split(",") if k]
        rows = [self.keywords(t, wave) for t in times]

        def fmt(k, v):
            if k == "QUALITY":
                return f"0x{int(v) & 0xFFFFFFFF:08x}"  # JSOC writes QUALITY in hex
            return f"{v:.6f}" if isinstance(v, float) else str(v)

        out = {"status": 0, "count": len(rows), "runtime": 0.01,
               "keywords": [{"name": k, "values": [fmt(k, r.get(k, "MISSING")) for r in rows]} for k in keys]}
        if "seg" in q:
            out["segments"] = [{"name": s, "values": [f"/SUM1/D1/S00000/{s}.fits"] * len(rows), "dims": []}
                               for s in q["seg"][0].split(",")]
        return out

    def exp_request(self, q):
        with self._lock:
            if self.status7 > 0:
                self.status7 -= 1
                return {"status": 7, "error": f"User {q['notify'][0].split('@')[0]} has 1 pending export requests"}
            if any(not e["done"] for e in self.exports.values()):
                return {"status": 7, "error": "User has 1 pending export requests"}
        try:
            times, wave = self.select(q["ds"][0])
        except ValueError as e:
            return {"status": 4, "error": str(e)}
        with self._lock:
            self._n_requests += 1
            rid = f"JSOC_20260101_{self._n_requests:03d}"
            self.exports[rid] = {"times": times, "wave": wave, "polls": 0, "done": False, "ds": q["ds"][0]}
            self.max_pending = max(self.max_pending, sum(not e["done"] for e in self.exports.values()))
        return {"status": 2, "requestid": rid, "method": q["method"][0], "protocol": q["protocol"][0], "wait": 0,
                "size": 0}

    def exp_status(self, q):
        rid = q["requestid"][0]
        with self._lock:
            e = self.exports.get(rid)
            if e is None:
                return {"status": 6, "requestid": rid, "error": f"Request {rid} not found"}
            e["polls"] += 1
            if e["polls"] <= self.pending_polls:
                return {"status": 2 if e["polls"] == 1 else 1, "requestid": rid, "wait": 0}
            e["done"] = True
        n = int(rid.rsplit("_", 1)[1])
        return {"status": 0, "requestid": rid, "method": "url", "protocol": "FITS", "wait": 0,
                "dir": f"/SUM{n}/D{1000 + n}/S00000", "count": len(e["times"]), "size": 1,
                # AIA record names are in UTC ("…Z"), unlike T_REC here: the client must convert.
                "data": [{"record": f"{SERIES}[{t - dt.timedelta(seconds=tai_minus_utc(t)):%Y-%m-%dT%H:%M:%S}Z]"
                                    f"[{e['wave']}]", "filename": self.filename(t, e["wave"])}
                         for t in e["times"]]}

    def file(self, path: str) -> bytes | None:
        name = path.rsplit("/", 1)[-1]
        if path.startswith("/data/aia/synoptic/"):
            m = re.match(r"AIA(\d{8})_(\d{4})_0193\.fits$", name)
            if not m:
                return None
            t = dt.datetime.strptime(m[1] + m[2], "%Y%m%d%H%M")
            if t.minute % 2 or t.strftime("%Y-%m-%dT%H:%M:%S") in self.absent:
                return None
            return self.fits_bytes(t, level=1.5)
        m = re.match(rf"{re.escape(SERIES)}\.(\d{{8}}_\d{{6}})_TAI\.(\d+)\.image_lev1\.fits$", name)
        if not m or not re.match(r"^/SUM\d+/D\d+/S\d+/", path) or int(m[2]) not in WAVES:
            return None
        return self.fits_bytes(dt.datetime.strptime(m[1], "%Y%m%d_%H%M%S"), wave=int(m[2]))


class _Handler(BaseHTTPRequestHandler):
    fake: FakeJsoc

    def log_message(self, *args):  # quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str = "application/json", cut: bool = False, stall_s: float = 0.0):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cut or stall_s:
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if cut:  # a dropped connection: half the body, then the socket closes
                self.close_connection = True
                return
            time.sleep(stall_s)
            try:
                self.wfile.write(body[len(body) // 2:])
            except OSError:  # the client went away (killed)
                pass
            return
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
            pass

    def do_GET(self):
        f = self.fake
        u = urlparse(self.path)
        q = parse_qs(u.query, keep_blank_values=True)
        with f._lock:
            f.hits[u.path] += 1
            hit = f.hits[u.path]
        if u.path.startswith("/cgi-bin/ajax/"):
            with f._lock:
                busy = f.json_503 > 0
                f.json_503 -= busy
            if busy:
                return self._send(503, b"Service Unavailable", "text/plain")
            cgi = u.path.rsplit("/", 1)[-1]
            op = q.get("op", [cgi])[0]
            with f._lock:
                f.ops[op] += 1
            handlers = {"series_struct": f.series_struct, "rs_list": f.rs_list, "exp_request": f.exp_request,
                        "exp_status": f.exp_status, "checkAddress.sh": lambda q: {"status": 2, "msg": "registered"},
                        "rs_summary": lambda q: {"status": 0, "count": len(f.select(q["ds"][0])[0])}}
            if op not in handlers:
                return self._send(404, b"{}")
            return self._send(200, json.dumps(handlers[op](q)).encode())
        body = f.file(u.path)
        if body is None:
            return self._send(404, b"Not Found", "text/plain")
        name = u.path
        if hit <= f.slow.get(name.rsplit("/", 1)[-1], f.slow.get("*", 0)):
            time.sleep(f.slow_s)
        if hit <= f.file_503.get(name.rsplit("/", 1)[-1], f.file_503.get("*", 0)):
            return self._send(503, b"Service Unavailable", "text/plain")
        drops = f.drop.get(name.rsplit("/", 1)[-1], f.drop.get("*", 0))
        fails = f.file_503.get(name.rsplit("/", 1)[-1], f.file_503.get("*", 0))
        return self._send(200, body, "application/fits", cut=hit - fails <= drops, stall_s=f.stall_s)
