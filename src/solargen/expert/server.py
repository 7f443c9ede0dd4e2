"""The expert form: a small local web app over one packet (standard library only, works offline).

Routes (everything else is 404; no URL is ever mapped onto the file system):

- ``GET /``                      the form: one self-contained page, inline CSS and JS
- ``GET /api/next?expert=ID``    the expert's next unanswered item, and progress
- ``GET /img/<item>.png``        an image, looked up by item id among the packet's items
- ``POST /api/answer``           JSON ``{expert, item, answer: real|generated, confidence: 1-5, ms}``

Each expert sees every item once, in an order of their own (the packet's secret shuffle, permuted
by the expert id, so order effects average out). Every answer is appended as a JSON line to
``<answers>/<expert>.jsonl`` and fsynced before the reply: closing the tab or killing the server
loses nothing, and entering the same id again resumes at the first unanswered item.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..io import InputError
from .packet import read_items

log = logging.getLogger(__name__)

# Used with fullmatch only: `re.match` with "$" also accepts a trailing newline ("alice\n"), which
# became a second expert in the analysis.
EXPERT_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
ITEM_RE = re.compile(r"[0-9a-f]{32}")
ANSWERS = ("real", "generated")
CONFIDENCE = range(1, 6)
MAX_BODY = 4096
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def expert_order(packet_id: str, items: list[str], expert: str) -> list[str]:
    """The order ``expert`` sees the items in: a permutation seeded by (packet, expert)."""
    seed = int.from_bytes(hashlib.sha256(f"{packet_id}/{expert}".encode()).digest()[:8], "little")
    return [items[i] for i in np.random.default_rng(seed).permutation(len(items))]


def read_answers(path: str | Path, packet_id: str | None = None) -> list[dict]:
    """The answer lines of one expert's file, first answer per item kept.

    A torn line (the process died mid-write: the start of one of our lines that does not parse) is
    skipped with a warning; any other malformed line, or an answer to another packet, is an
    `InputError` naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_bytes().split(b"\n")
    out, seen = [], set()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            a = json.loads(line)
            a["item"], a["answer"], a["expert"]
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as e:
            if line.startswith(b'{"packet": ') and isinstance(e, (json.JSONDecodeError, UnicodeDecodeError)):
                log.warning("%s:%d: torn line skipped (%s)", path, n, e)
                continue
            raise InputError(f"{path}:{n}: not an answer line ({e})") from None
        if not isinstance(a["expert"], str) or not EXPERT_RE.fullmatch(a["expert"]):
            raise InputError(f"{path}:{n}: expert id {a['expert']!r} is not 1-40 letters, digits, '-' or '_'")
        if packet_id is not None and a.get("packet") != packet_id:
            raise InputError(f"{path}:{n}: answer to packet {a.get('packet')!r}, not this packet ({packet_id})")
        if a["item"] not in seen:
            seen.add(a["item"])
            out.append(a)
    return out


class Form:
    """The state behind the form: the packet's items and the answer files (one lock for writes)."""

    def __init__(self, packet_dir: str | Path, answers_dir: str | Path):
        self.packet_dir = Path(packet_dir).resolve()
        self.images = self.packet_dir / "images"
        self.packet_id, items = read_items(self.packet_dir)
        bad = [i for i in items if not ITEM_RE.fullmatch(i) or not (self.images / f"{i}.png").is_file()]
        if bad:
            raise InputError(f"{self.packet_dir}: {len(bad)} item(s) without a valid id or image, e.g. {bad[0]!r}")
        # Refuse to serve a packet that carries its own key: a packet is meant to be handed out.
        for p in self.packet_dir.rglob("*"):
            if p.suffix == ".csv" or "key" in p.name.lower():
                raise InputError(f"{p}: a key-like file inside the served packet; move it out before serving")
        self.items = set(items)
        self.item_list = items
        self.answers_dir = Path(answers_dir)
        self.answers_dir.mkdir(parents=True, exist_ok=True)
        self.lock = threading.Lock()

    def answers_path(self, expert: str) -> Path:
        return self.answers_dir / f"{expert}.jsonl"

    def answered(self, expert: str) -> set[str]:
        return {a["item"] for a in read_answers(self.answers_path(expert), self.packet_id)}

    def next_item(self, expert: str) -> dict:
        done = self.answered(expert)
        todo = [i for i in expert_order(self.packet_id, self.item_list, expert) if i not in done]
        return {"expert": expert, "done": len(self.items) - len(todo), "total": len(self.items),
                "item": todo[0] if todo else None}

    def record(self, a: dict) -> dict:
        """Validate one answer and append it durably; returns the next item. Raises ValueError."""
        expert, item, answer, confidence = a.get("expert"), a.get("item"), a.get("answer"), a.get("confidence")
        ms = a.get("ms", None)
        if not isinstance(expert, str) or not EXPERT_RE.fullmatch(expert):
            raise ValueError("expert: 1-40 letters, digits, '-' or '_'")
        if not isinstance(item, str) or item not in self.items:
            raise ValueError("item: not an item of this packet")
        if answer not in ANSWERS:
            raise ValueError("answer: 'real' or 'generated'")
        if isinstance(confidence, bool) or not isinstance(confidence, int) or confidence not in CONFIDENCE:
            raise ValueError("confidence: an integer from 1 to 5")
        if ms is not None and (isinstance(ms, bool) or not isinstance(ms, (int, float)) or not 0 <= ms < 1e9):
            raise ValueError("ms: response time in milliseconds")
        line = {"packet": self.packet_id, "expert": expert, "item": item, "answer": answer,
                "confidence": confidence, "ms": ms, "time": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        with self.lock:
            if item in self.answered(expert):
                raise FileExistsError("item already answered")
            path = self.answers_path(expert)
            # After a torn write the file ends mid-line: start a fresh line, keep the fragment.
            torn = path.exists() and path.stat().st_size and _last_byte(path) != b"\n"
            with open(path, "ab") as f:
                f.write((("\n" if torn else "") + json.dumps(line) + "\n").encode())
                f.flush()
                os.fsync(f.fileno())
        return self.next_item(expert)


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)


def make_handler(form: Form):
    class Handler(BaseHTTPRequestHandler):
        server_version = "solargen-expert"
        sys_version = ""

        def log_message(self, fmt, *args):  # to the logger, not stderr noise per request
            log.debug("%s " + fmt, self.address_string(), *args)

        def _send(self, status: int, body: bytes, ctype: str):
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Content-Security-Policy",
                             "default-src 'none'; img-src 'self'; connect-src 'self'; "
                             "script-src 'unsafe-inline'; style-src 'unsafe-inline'; form-action 'none'; "
                             "frame-ancestors 'none'")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, obj):
            self._send(status, json.dumps(obj).encode(), "application/json")

        def _error(self, status: int, message: str):
            self._json(status, {"error": message})

        def _foreign(self) -> bool:
            """A request another site made the browser send (DNS rebinding, cross-site POST)?
            Bound to loopback, the Host must be this server's; an Origin, if sent, must match it."""
            host, port = self.server.server_address[:2]
            got = self.headers.get("Host", "")
            if host in LOOPBACK and got not in {f"{h}:{port}" for h in ("127.0.0.1", "localhost", "[::1]")}:
                return True
            origin = self.headers.get("Origin")
            return origin is not None and origin != f"http://{got}"

        def do_HEAD(self):
            self.do_GET()

        def do_GET(self):
            if self._foreign():
                return self._error(403, "forbidden")
            url = urlsplit(self.path)
            path = url.path
            if path == "/":
                return self._send(200, PAGE.encode(), "text/html; charset=utf-8")
            if path == "/favicon.ico":  # browsers ask; there is none
                return self._send(204, b"", "image/x-icon")
            if path == "/api/next":
                expert = parse_qs(url.query).get("expert", [""])[0]
                if not EXPERT_RE.fullmatch(expert):
                    return self._error(400, "expert: 1-40 letters, digits, '-' or '_'")
                try:
                    return self._json(200, form.next_item(expert))
                except InputError as e:
                    log.error("%s", e)
                    return self._error(500, "this expert's answer file is unreadable; see the server log")
            m = re.fullmatch(r"/img/([0-9a-f]{32})\.png", path)
            # The id is looked up among the packet's items; the URL never becomes a path.
            if m and m[1] in form.items:
                return self._send(200, (form.images / f"{m[1]}.png").read_bytes(), "image/png")
            return self._error(404, "not found")

        def do_POST(self):
            if self._foreign():
                return self._error(403, "forbidden")
            if urlsplit(self.path).path != "/api/answer":
                return self._error(404, "not found")
            # JSON only: a cross-site form or "simple" request cannot send it without a preflight.
            if self.headers.get_content_type() != "application/json":
                return self._error(415, "Content-Type must be application/json")
            try:
                n = int(self.headers.get("Content-Length", ""))
            except ValueError:
                return self._error(411, "Content-Length required")
            if not 0 < n <= MAX_BODY:
                return self._error(413, f"body must be 1-{MAX_BODY} bytes")
            try:
                a = json.loads(self.rfile.read(n))
                if not isinstance(a, dict):
                    raise ValueError("a JSON object expected")
                return self._json(200, form.record(a))
            except FileExistsError as e:
                return self._error(409, str(e))
            except (ValueError, UnicodeDecodeError) as e:
                return self._error(400, str(e))
            except InputError as e:
                log.error("%s", e)
                return self._error(500, "this expert's answer file is unreadable; see the server log")

    return Handler


def make_server(packet_dir, answers_dir, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """A ready server (``port`` 0: any free port, see ``server.server_address``)."""
    form = Form(packet_dir, answers_dir)
    server = ThreadingHTTPServer((host, port), make_handler(form))
    server.daemon_threads = True
    server.form = form
    return server


def serve(packet_dir, answers_dir, host: str = "127.0.0.1", port: int = 8765) -> None:
    server = make_server(packet_dir, answers_dir, host, port)
    h, p = server.server_address[:2]
    if host not in LOOPBACK:
        log.warning("serving on %s: anyone who can reach this address can answer", host)
    print(f"expert form for packet {server.form.packet_id} ({len(server.form.items)} images): http://{h}:{p}/ "
          f"(answers → {server.form.answers_dir}; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>solargen: real or generated?</title>
<style>
body { font-family: system-ui, sans-serif; background: #111; color: #eee; margin: 0; padding: 1em; }
main { max-width: 60em; margin: auto; text-align: center; }
button { font-size: 1.1em; padding: .5em 1.2em; margin: .3em; cursor: pointer; }
button:disabled { opacity: .4; cursor: default; }
#img { max-width: min(90vw, 512px); max-height: 60vh; image-rendering: pixelated; cursor: zoom-in;
       width: 512px; border: 1px solid #444; }
#img.zoomed { max-width: none; max-height: none; width: min(95vw, 95vh); cursor: zoom-out; }
.conf label { margin: 0 .5em; }
#error { color: #f77; min-height: 1.5em; }
[hidden] { display: none !important; }
</style></head>
<body><main>
<h1>Real or generated?</h1>
<section id="login">
 <p>Each image is either a real SDO/AIA 193 &#8491; frame (or a crop of one) or generated by a model.
 Answer whether it is real, and how confident you are (1 = guessing, 5 = certain).
 Every answer is saved at once; you can stop at any time and resume later with the same identifier.</p>
 <label>Your identifier (letters, digits, - or _): <input id="expert" maxlength="40" autocomplete="off"></label>
 <button id="start">Start / resume</button>
</section>
<section id="task" hidden>
 <p id="progress"></p>
 <p><small>Click the image to zoom. Keys: 1-5 confidence, r real, g generated, z zoom.</small></p>
 <img id="img" alt="image to judge" title="click to zoom">
 <div class="conf" id="conf">Confidence:
  <label><input type="radio" name="confidence" value="1">1</label>
  <label><input type="radio" name="confidence" value="2">2</label>
  <label><input type="radio" name="confidence" value="3">3</label>
  <label><input type="radio" name="confidence" value="4">4</label>
  <label><input type="radio" name="confidence" value="5">5</label>
 </div>
 <div><button id="real" data-answer="real">Real</button>
      <button id="generated" data-answer="generated">Generated</button></div>
 <div><button id="pause">Pause</button></div>
</section>
<section id="done" hidden><p>All images answered. Thank you!</p></section>
<section id="paused" hidden><p>Paused; your answers are saved. Enter your identifier again to resume.</p></section>
<p id="error"></p>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let expert = null, item = null, shownAt = 0, busy = false;
function show(section) {
  for (const s of ["login", "task", "done", "paused"]) $(s).hidden = s !== section && !(s === "login" && section === "paused");
}
function setError(msg) { $("error").textContent = msg || ""; }
function present(state) {
  $("progress").textContent = `Image ${Math.min(state.done + 1, state.total)} of ${state.total}`;
  $("progress").dataset.done = state.done;
  item = state.item;
  if (item === null) { show("done"); return; }
  for (const r of document.querySelectorAll("input[name=confidence]")) r.checked = false;
  $("img").classList.remove("zoomed");
  $("img").dataset.item = item;
  $("img").src = `/img/${item}.png`;
  shownAt = performance.now();
  show("task");
}
async function call(url, options) {
  const r = await fetch(url, options);
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
$("start").addEventListener("click", async () => {
  const id = $("expert").value.trim();
  if (!/^[A-Za-z0-9_-]{1,40}$/.test(id)) { setError("Identifier: 1-40 letters, digits, - or _"); return; }
  try { expert = id; setError(""); present(await call(`/api/next?expert=${encodeURIComponent(id)}`)); }
  catch (e) { setError(e.message); }
});
$("img").addEventListener("click", () => $("img").classList.toggle("zoomed"));
for (const b of [$("real"), $("generated")]) b.addEventListener("click", async () => {
  const c = document.querySelector("input[name=confidence]:checked");
  if (!c) { setError("Choose a confidence first."); return; }
  if (busy) return;
  busy = true; setError("");
  try {
    const body = JSON.stringify({expert, item, answer: b.dataset.answer, confidence: Number(c.value),
                                 ms: Math.round(performance.now() - shownAt)});
    present(await call("/api/answer", {method: "POST", headers: {"Content-Type": "application/json"}, body}));
  } catch (e) { setError(`Not saved: ${e.message}`); }
  finally { busy = false; }
});
$("pause").addEventListener("click", () => { item = null; show("paused"); });
// Keys while judging: 1-5 confidence, r real, g generated, z zoom.
document.addEventListener("keydown", (e) => {
  if ($("task").hidden || e.target.tagName === "INPUT" && e.target.type === "text") return;
  const radio = document.querySelector(`input[name=confidence][value="${e.key}"]`);
  if (radio) radio.checked = true;
  else if (e.key === "r") $("real").click();
  else if (e.key === "g") $("generated").click();
  else if (e.key === "z") $("img").click();
});
</script>
</body></html>
"""
