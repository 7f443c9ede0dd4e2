"""Train/test split by contiguous time blocks.

Consecutive AIA frames (minutes to hours apart) are near-duplicates, so a per-frame random split
would leak the test set into training. Time is cut into blocks of ``block_hours`` counted from a
fixed epoch (so adding frames never moves a block boundary); a ``test_fraction`` of the blocks
that hold frames is held out, either the last ones in time (``placement: last``) or blocks drawn
with the seed across the whole span (``spread``: the test set sees every phase of the solar
cycle). Training frames within ``guard_hours`` of a test block are set aside as ``guard`` (in the
dataset, in neither split), so no training frame is a near-duplicate of a test frame.

Codes in the dataset's ``frames/split`` column: 0 = train, 1 = test, 2 = guard.
"""

from __future__ import annotations

import numpy as np

from .io import InputError

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
