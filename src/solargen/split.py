"""Train/test split by contiguous time blocks.

Consecutive AIA frames (minutes to hours apart) are near-duplicates, so a per-frame random split
would leak the test set into training. Time is cut into blocks of ``block_hours`` counted from a
fixed epoch (so adding frames never moves a block boundary); a ``test_fraction`` of the blocks
that hold frames is held out, either the last ones in time (``placement: last``) or blocks drawn
with the seed across the whole span (``spread``: the test set sees every phase of the solar
cycle). Training frames within ``guard_hours`` of a test block are set aside as ``guard`` (in the
dataset, in neither split), so no training frame is a near-duplicate of a test frame.

Codes in the dataset's ``frames/split`` column: 0 = train, 1 = test, 2 = guard.

This module owns the splitting logic: the split record the workflow's ``split`` step writes
(`split_record`, from the shards' frame tables), and the indices a dataset's split gives
(`split_indices`, from the recorded codes or, for a dataset without them, chronologically).
`solargen.dataset` stores the codes in dataset.h5 and reads them back (`dataset.dataset_split`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .io import InputError
from .shards import frame_table

__all__ = ["TRAIN", "TEST", "GUARD", "NAMES", "EPOCH", "parse_dates", "block_split", "summary", "split_record",
           "split_indices"]

TRAIN, TEST, GUARD = 0, 1, 2
NAMES = {TRAIN: "train", TEST: "test", GUARD: "guard"}
EPOCH = np.datetime64("2010-01-01T00:00:00", "s")  # before SDO's first light


def parse_dates(dates) -> np.ndarray:
    """ISO strings (optionally with a trailing Z) → datetime64[s]; a bad one is an `InputError`."""
    out = []
    for d in dates:
        text = str(d).strip().rstrip("Z")
        try:
            out.append(np.datetime64(text, "s"))
        except ValueError:
            raise InputError(f"cannot parse DATE-OBS {d!r}") from None
    return np.array(out, dtype="datetime64[s]")


def block_split(dates, *, block_hours: float, test_fraction: float, placement: str = "spread",
                seed: int = 0, guard_hours: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Split frames by time block.

    Parameters
    ----------
    dates : sequence of ISO strings or datetime64, one per frame (any order).
    block_hours : block length.
    test_fraction : fraction of the occupied blocks held out (rounded up; 0 → no test split).
    placement : ``"last"`` or ``"spread"``.
    seed : draws the ``spread`` blocks.
    guard_hours : training frames this close to a test block become guard frames.

    Returns
    -------
    codes : (n,) int8, `TRAIN`/`TEST`/`GUARD` per frame.
    blocks : (n,) int64 block number of each frame.
    """
    if not block_hours > 0:
        raise ValueError(f"block_hours must be positive, got {block_hours}")
    if placement not in ("last", "spread"):
        raise ValueError(f"placement must be 'last' or 'spread', got {placement!r}")
    t = parse_dates(dates) if not np.issubdtype(np.asarray(dates).dtype, np.datetime64) else np.asarray(dates, "datetime64[s]")
    hours = (t - EPOCH) / np.timedelta64(1, "h")
    blocks = np.floor(hours / block_hours).astype(np.int64)
    codes = np.zeros(len(t), np.int8)
    if test_fraction <= 0 or len(t) == 0:
        return codes, blocks
    occupied = np.unique(blocks)
    n_test = int(np.ceil(len(occupied) * test_fraction))
    if n_test >= len(occupied):
        raise InputError(f"split: {len(occupied)} time block(s) of {block_hours:g} h hold frames; holding out "
                         f"{test_fraction:g} of them leaves none for training (shorten data.split.block_hours)")
    if placement == "last":
        test_blocks = occupied[-n_test:]
    else:
        test_blocks = np.sort(np.random.default_rng(seed).choice(occupied, size=n_test, replace=False))
    codes[np.isin(blocks, test_blocks)] = TEST
    if guard_hours > 0:
        lo_edges, hi_edges = test_blocks * block_hours, (test_blocks + 1) * block_hours
        train = np.flatnonzero(codes == TRAIN)
        # Distance from each training frame to the nearest test block interval.
        d = np.maximum(lo_edges[None, :] - hours[train, None], hours[train, None] - hi_edges[None, :]).min(1)
        codes[train[d < guard_hours]] = GUARD
    return codes, blocks


def summary(codes: np.ndarray, blocks: np.ndarray, **params) -> dict:
    """JSON-ready record of a split: parameters, counts, the held-out blocks."""
    return {**params, "n_train": int((codes == TRAIN).sum()), "n_test": int((codes == TEST).sum()),
            "n_guard": int((codes == GUARD).sum()), "n_blocks": int(len(np.unique(blocks))),
            "test_blocks": sorted(int(b) for b in np.unique(blocks[codes == TEST])),
            "epoch": str(EPOCH), "codes": {str(k): v for k, v in NAMES.items()}}


def split_record(shard_paths: list[str | Path], **params) -> dict:
    """The time-block split of the calibrated frames of ``shard_paths``: what the ``split`` step writes.

    Parameters
    ----------
    shard_paths : calibrated shards (their frame tables are read through `solargen.shards`).
    **params : `block_split`'s keywords (``block_hours``, ``test_fraction``, ``placement``,
        ``seed``, ``guard_hours``).

    Returns
    -------
    dict
        `summary` of the split (parameters, counts, held-out blocks) plus ``frames``: one row per
        calibrated frame (``file``, ``date_obs``, ``block``, ``split``), in time order.
    """
    table = frame_table([Path(p) for p in shard_paths])
    codes, blocks = block_split(table["date_obs"], **params)
    return {**summary(codes, blocks, method="time blocks", **params),
            "frames": {"file": table["file"].tolist(), "date_obs": table["date_obs"].tolist(),
                       "block": blocks.tolist(), "split": codes.tolist()}}


def split_indices(n: int, *, codes: np.ndarray | None = None,
                  test_fraction: float | None = None) -> dict[str, np.ndarray]:
    """Indices of the ``all``, ``train`` and ``test`` frames of a dataset of ``n`` frames.

    Parameters
    ----------
    n : number of frames (stored in time order).
    codes : the recorded split, `TRAIN`/`TEST`/`GUARD` per frame (guard frames are in neither
        split). None: the dataset has no recorded split, and the last ``test_fraction`` of the
        frames are the test split (a chronological cut, for datasets built without one).
    test_fraction : required when ``codes`` is None.

    Returns
    -------
    dict of str to ndarray
        ``all``, ``train`` and ``test`` frame indices, each ascending.
    """
    if codes is not None:
        if len(codes) != n:
            raise InputError(f"split column has {len(codes)} rows for {n} frames")
        return {"all": np.arange(n), "train": np.flatnonzero(codes == TRAIN), "test": np.flatnonzero(codes == TEST)}
    if test_fraction is None:
        raise InputError("no recorded train/test split; give the test fraction (data.test_fraction)")
    n_test = int(np.ceil(n * test_fraction)) if test_fraction > 0 else 0
    if n_test >= n:
        raise ValueError(f"test_fraction {test_fraction} leaves no training frames out of {n}")
    return {"all": np.arange(n), "train": np.arange(n - n_test), "test": np.arange(n - n_test, n)}
