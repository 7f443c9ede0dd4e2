"""The expert packet's files and vocabulary, one owner for both the packet builder and the form.

- ``<packet>/items.json``: the packet id and the opaque item ids in packet order (`read_items`,
  `write_items`); ``<packet>/images/<item>.png``: 8-bit grey PNGs (`write_png`)
- ``key.csv``: item → truth, run, view, source file (`KEY_COLUMNS`, `read_key`, `write_key`);
  ``key.json`` beside it: the build record (`record_path`)
- ``<answers>/<expert>.jsonl``: one answer per line (`read_answers`, `append_answer`)
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import InputError, atomic_path

log = logging.getLogger(__name__)

#: What an image is, and what an expert answers: the key's ``truth`` and an answer's ``answer``.
ANSWERS = ("real", "generated")
#: An answer's confidence: 1 = guessing … 5 = certain.
CONFIDENCE = range(1, 6)
# Used with fullmatch only: `re.match` with "$" also accepts a trailing newline ("alice\n"), which
# became a second expert in the analysis.
EXPERT_RE = re.compile(r"[A-Za-z0-9_-]{1,40}")
ITEM_RE = re.compile(r"[0-9a-f]{32}")
#: Columns of key.csv, one row per item.
KEY_COLUMNS = ["packet", "item", "position", "truth", "run", "view", "file", "top", "left", "side", "size",
               "shuffle_seed"]


def record_path(key_path: str | Path) -> Path:
    """The build record beside the key (never served): packet id, parameters, source file hashes."""
    return Path(key_path).with_suffix(".json")


def write_items(packet_dir: str | Path, packet_id: str, items: list[str]) -> None:
    (Path(packet_dir) / "items.json").write_text(json.dumps({"packet": packet_id, "items": list(items)}, indent=1))


def read_items(packet_dir: str | Path) -> tuple[str, list[str]]:
    """(packet id, item ids in packet order) from a packet's items.json."""
    path = Path(packet_dir) / "items.json"
    try:
        d = json.loads(path.read_text())
        return str(d["packet"]), [str(i) for i in d["items"]]
    except FileNotFoundError:
        raise InputError(f"{path}: not found (is {packet_dir} an expert packet?)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise InputError(f"{path}: not a packet item list ({e})") from None


def write_png(path: Path, img: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(img, dtype=np.uint8), mode="L").save(path, format="PNG")


def write_key(key_path: str | Path, key: pd.DataFrame) -> None:
    with atomic_path(key_path) as tmp:
        key.to_csv(tmp, index=False)


def read_key(key_path: str | Path) -> pd.DataFrame:
    """The packet key; a missing or malformed key names the file."""
    try:
        key = pd.read_csv(key_path, dtype={"packet": str, "item": str})
    except FileNotFoundError:
        raise InputError(f"{key_path}: key not found") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise InputError(f"{key_path}: unreadable key ({e})") from None
    missing = set(KEY_COLUMNS) - set(key.columns)
    if missing or not key["truth"].isin(ANSWERS).all():
        raise InputError(f"{key_path}: not a packet key (missing columns {sorted(missing)} or bad truth values)")
    return key


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


def append_answer(path: Path, line: dict) -> None:
    """Append one answer line and fsync it before returning (the caller holds the writers' lock)."""
    # After a torn write the file ends mid-line: start a fresh line, keep the fragment.
    torn = path.exists() and path.stat().st_size and _last_byte(path) != b"\n"
    with open(path, "ab") as f:
        f.write((("\n" if torn else "") + json.dumps(line) + "\n").encode())
        f.flush()
        os.fsync(f.fileno())


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1)
