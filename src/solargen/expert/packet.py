"""A blinded real-vs-generated packet for the human-expert test.

For every chosen run and every view (``full``: the whole frame; ``CROPPED<n>``: an n × n crop on
the disk, n in px of the real frames, shown enlarged by the form) the packet holds M real and M
generated images. Which files and which crops is seeded (``seed``: the same config picks the same
images); the presentation order and the file names are not derivable from the config: names are
random hex, and the order is shuffled with ``shuffle_seed``, by default a fresh secret recorded only
in the key. Every image is re-encoded from its pixels as an 8-bit grey PNG (no metadata, one
encoder), and real and generated images of a run are brought to the same size (the smaller of the
two, box-filtered), so nothing but the picture tells them apart.
"""

from __future__ import annotations

import logging
import secrets
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..io import InputError, atomic_dir, read_json, sha256_of, write_json
from .files import (ANSWERS, KEY_COLUMNS, read_answers, read_items, read_key, record_path, write_items, write_key,
                    write_png)

log = logging.getLogger(__name__)


def views(full_disk: bool, crops: list[int]) -> list[str]:
    """Image types of a packet, named like the study's crop suffixes: ``full``, ``CROPPED<n>``."""
    out = (["full"] if full_disk else []) + [f"CROPPED{int(c)}" for c in crops]
    if not out:
        raise ValueError("expert packet: no views (full_disk is false and crops is empty)")
    return out


def _pngs(folder: str | Path) -> list[Path]:
    files = sorted(Path(folder).glob("*.png"))
    if not files:
        raise InputError(f"{folder}: no PNG images")
    return files


def _grey(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: unreadable image ({e})") from None


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if img.shape == (size, size):
        return img
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BOX))


def crop_box(rng: np.random.Generator, size: int, side: int) -> tuple[int, int]:
    """(top, left) of a ``side`` crop of a ``size`` frame, centred within 0.3·size of the frame centre
    (on the disk: the study's frames are disk-centred with the limb near 0.4·size)."""
    r = 0.3 * size * np.sqrt(rng.random())
    phi = 2 * np.pi * rng.random()
    cy, cx = size / 2 + r * np.sin(phi), size / 2 + r * np.cos(phi)
    top = int(np.clip(round(cy - side / 2), 0, size - side))
    left = int(np.clip(round(cx - side / 2), 0, size - side))
    return top, left


def build_packet(runs: dict[str, str | Path], real_dir: str | Path, packet_dir: str | Path,
                 key_path: str | Path, n_per_run: int, full_disk: bool = True, crops: list[int] = (),
                 seed: int = 0, shuffle_seed: int | None = None) -> pd.DataFrame:
    """Write the packet (``packet_dir``: items.json and images/) and its key (``key_path``).

    ``runs``: run name → its samples folder; ``real_dir``: the real PNG folder; crop sides are in
    px of the real frames. Returns the key, one row per item (``KEY_COLUMNS``).
    """
    packet_dir, key_path = Path(packet_dir), Path(key_path)
    if key_path.resolve().is_relative_to(packet_dir.resolve()):
        raise ValueError(f"the key ({key_path}) must not be inside the served packet ({packet_dir})")
    if n_per_run < 1:
        raise ValueError("n_per_run must be at least 1")
    kinds = views(full_disk, list(crops))
    real_files = _pngs(real_dir)
    real_size = _grey(real_files[0]).shape[0]
    for c in crops:
        if not 1 <= int(c) <= real_size:
            raise ValueError(f"expert packet: crop CROPPED{c} does not fit the {real_size}-px real frames")
    shuffle_seed = secrets.randbits(63) if shuffle_seed is None else shuffle_seed
    packet_id = secrets.token_hex(8)
    rows, images = [], []
    for run, folder in runs.items():
        gen_files = _pngs(folder)
        for v, view in enumerate(kinds):
            # Seeded by (seed, run name, view): adding a run does not change another run's images.
            rng = np.random.default_rng([seed, zlib.crc32(run.encode()), v])
            for truth, files in zip(ANSWERS, (real_files, gen_files)):
                if len(files) < n_per_run:
                    raise InputError(f"{Path(files[0]).parent}: {len(files)} images, but expert_eval.n_per_run "
                                     f"is {n_per_run} (run {run}, {truth})")
                for i in sorted(rng.choice(len(files), n_per_run, replace=False)):
                    rows.append({"truth": truth, "run": run, "view": view, "file": str(files[i])})
                    images.append((rows[-1], rng))
    # Real and generated images of one run are shown at the same size: the smaller of the two.
    run_size = {run: min(real_size, _grey(_pngs(folder)[0]).shape[0]) for run, folder in runs.items()}
    order = np.random.default_rng(shuffle_seed).permutation(len(rows))
    with atomic_dir(packet_dir) as tmp:
        (tmp / "images").mkdir()
        for row, rng in images:
            size = run_size[row["run"]]
            img = _resize(_grey(Path(row["file"])), size)
            top = left = 0
            side = size
            if row["view"] != "full":
                side = max(1, round(int(row["view"][len("CROPPED"):]) * size / real_size))
                top, left = crop_box(rng, size, side)
                img = img[top:top + side, left:left + side]
            row.update(packet=packet_id, item=secrets.token_hex(16), top=top, left=left, side=side, size=size,
                       shuffle_seed=shuffle_seed)
            write_png(tmp / "images" / f"{row['item']}.png", img)
        for position, k in enumerate(order):
            rows[k]["position"] = position
        key = pd.DataFrame(rows, columns=KEY_COLUMNS).sort_values("position").reset_index(drop=True)
        write_items(tmp, packet_id, list(key["item"]))
        write_key(key_path, key)
        # What the packet was made from, to tell later whether it still stands (ensure_packet).
        params = _params(runs, real_dir, n_per_run, full_disk, crops, seed)
        write_json(record_path(key_path), {"packet": packet_id, "params": params, "shuffle_seed": shuffle_seed,
                                           "sources": {f: sha256_of(f) for f in sorted(set(key["file"]))}})
    log.info("expert packet %s: %d items (%d runs × %s × %d real + %d generated)", packet_id, len(key), len(runs),
             "/".join(kinds), n_per_run, n_per_run)
    return key


def _params(runs, real_dir, n_per_run, full_disk, crops, seed) -> dict:
    return {"runs": {r: str(p) for r, p in runs.items()}, "real": str(real_dir), "n_per_run": int(n_per_run),
            "full_disk": bool(full_disk), "crops": [int(c) for c in crops], "seed": int(seed)}


def ensure_packet(runs: dict[str, str | Path], real_dir: str | Path, packet_dir: str | Path, key_path: str | Path,
                  n_per_run: int, answers_dir: str | Path, full_disk: bool = True, crops: list[int] = (),
                  seed: int = 0, shuffle_seed: int | None = None) -> tuple[pd.DataFrame, str]:
    """Build the packet, or keep the one there: ``(key, "kept" | "built" | "rebuilt")``.

    Experts answer one packet over days, and only its key can score them, so a packet is never
    rebuilt behind their back: it is kept while its parameters and source images are unchanged;
    if they changed it is rebuilt only while nobody has answered it, otherwise this is an
    `InputError` (to start over, move the answers away, or delete packet, key and record).
    """
    packet_dir, key_path, record = Path(packet_dir), Path(key_path), record_path(key_path)
    action = "built"
    if (packet_dir / "items.json").exists():
        packet_id = read_items(packet_dir)[0]
        if key_path.exists() and record.exists():
            info = read_json(record)
            params = _params(runs, real_dir, n_per_run, full_disk, crops, seed)
            changed = [f"{k}: {info['params'].get(k)!r} → {v!r}" for k, v in params.items()
                       if info["params"].get(k) != v]
            if info.get("packet") != packet_id:
                changed.append(f"the key and record are of packet {info.get('packet')}, the packet is {packet_id}")
            changed += [f"{f} changed or is gone" for f, h in info["sources"].items()
                        if not Path(f).is_file() or sha256_of(f) != h][:3]
        else:
            changed = [f"its key ({key_path}) or build record ({record}) is missing"]
        if not changed:
            log.info("expert packet %s kept (parameters and source images unchanged)", packet_id)
            return read_key(key_path), "kept"
        experts = sorted(p.stem for p in Path(answers_dir).glob("*.jsonl")
                         if any(a.get("packet") == packet_id for a in read_answers(p)))
        if experts:
            raise InputError(
                f"{packet_dir}: packet {packet_id} has answers from {', '.join(experts)} in {answers_dir}, but what it "
                f"was made from changed ({'; '.join(changed)}). It is not rebuilt over a study in progress: restore "
                f"the inputs, or move the answers away (they stay scorable with {key_path}) and delete "
                f"{packet_dir}, {key_path} and {record} to make a new packet.")
        log.warning("expert packet %s rebuilt (nobody has answered it): %s", packet_id, "; ".join(changed))
        action = "rebuilt"
    return build_packet(runs, real_dir, packet_dir, key_path, n_per_run, full_disk, crops, seed, shuffle_seed), action
