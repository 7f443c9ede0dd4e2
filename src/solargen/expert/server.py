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

import functools
import hashlib
import json
import logging
import re
import threading
from datetime import datetime, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from ..io import InputError
from .files import ANSWERS, CONFIDENCE, EXPERT_RE, ITEM_RE, append_answer, read_answers, read_items

log = logging.getLogger(__name__)

MAX_BODY = 4096
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def expert_order(packet_id: str, items: list[str], expert: str) -> list[str]:
    """The order ``expert`` sees the items in: a permutation seeded by (packet, expert)."""
    seed = int.from_bytes(hashlib.sha256(f"{packet_id}/{expert}".encode()).digest()[:8], "little")
    return [items[i] for i in np.random.default_rng(seed).permutation(len(items))]


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
            append_answer(self.answers_path(expert), line)
        return self.next_item(expert)


@functools.cache
def page() -> bytes:
    """The form: one self-contained page (inline CSS and JS), a package file."""
    return resources.files(__package__).joinpath("form.html").read_bytes()


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
                return self._send(200, page(), "text/html; charset=utf-8")
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
