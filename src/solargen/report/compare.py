"""This run's results beside a reference results.csv (e.g. the study authors' published one).

The values of a demo run are not expected to match the paper's (other resolution, data and
budget); what can be compared across scales is the *ranking* of the runs both contain, so each
metric gets a Spearman correlation of the two rankings beside the side-by-side values.
"""

from __future__ import annotations

import re

import pandas as pd
from scipy.stats import spearmanr

KEY = ["metric", "net", "crop", "run"]


def resolution_of(real: str) -> int | None:
    """The image size in a real-set name such as ``image_folder_1024x1024_...`` (None if absent)."""
    m = re.search(r"(\d+)x\1", real)
    return int(m[1]) if m else None


def side_by_side(ours: pd.DataFrame, ref: pd.DataFrame) -> pd.DataFrame:
    """Rows (metric, net, crop, run) that both tables contain, with ``ours`` and ``reference`` values."""
    a = ours[KEY + ["value"]].rename(columns={"value": "ours"})
    b = ref[KEY + ["value"]].rename(columns={"value": "reference"})
    return a.merge(b, on=KEY, how="inner").sort_values(KEY).reset_index(drop=True)


def ranking_agreement(both: pd.DataFrame, min_runs: int = 3) -> pd.DataFrame:
    """Per (metric, net, crop): how many shared runs, and the Spearman ρ of their two rankings.

    Fewer than ``min_runs`` shared runs, or a constant column, gives ρ = NaN (no ranking to compare).
    """
    rows = []
    for (metric, net, crop), g in both.groupby(["metric", "net", "crop"], sort=True):
        n = len(g)
        rho = p = float("nan")
        if n >= min_runs and g.ours.nunique() > 1 and g.reference.nunique() > 1:
            rho, p = spearmanr(g.ours, g.reference)
        rows.append({"metric": metric, "net": net, "crop": crop, "n_runs": n, "spearman_rho": rho, "p_value": p})
    return pd.DataFrame(rows, columns=["metric", "net", "crop", "n_runs", "spearman_rho", "p_value"])


def scale_note(ours: pd.DataFrame, ref: pd.DataFrame) -> str:
    """One sentence on whether absolute values are comparable (same real-set resolution) or not."""
    def res(df):
        sizes = {resolution_of(r) for r in df.real.str.replace(r"-CROPPED.*", "", regex=True).unique()}
        return sorted(s for s in sizes if s)

    a, b = res(ours), res(ref)
    if a and b and a != b:
        return (f"Scales differ: this run's real set is {a[0]} px, the reference's {b[0]} px (and the data "
                "and training budgets differ), so absolute values are not expected to match; compare the "
                "rankings (Spearman ρ) only.")
    if not a or not b:
        return "The real-set resolution of one table is unknown; read absolute values with care."
    return f"Both tables are at {a[0]} px; absolute values are comparable where data and budgets match."
