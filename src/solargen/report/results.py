"""``results.csv`` in the study's schema, gathered from every run's ``metrics.json``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import atomic_path, read_json

COLUMNS = ["metric", "value", "real", "fake", "net"]


def collect(metrics_files: list[str | Path], out_csv: str | Path, out_not_run: str | Path | None = None,
            skipped: dict[str, str] | None = None) -> pd.DataFrame:
    """Concatenate the rows of all runs into ``out_csv``; metrics that could not run go to ``out_not_run``,
    as do whole runs the workflow ``skipped`` (run → reason; ``net`` is empty: no metric ran)."""
    rows, not_run = [], [{"fake": run, "net": "", "reason": f"run not made: {why}"} for run, why in (skipped or {}).items()]
    for path in metrics_files:
        m = read_json(path)
        rows += m["rows"]
        not_run += [{"fake": m["run"], **r} for r in m["not_run"]]
    df = pd.DataFrame(rows, columns=COLUMNS).sort_values(["metric", "net", "fake"], kind="stable")
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    if out_not_run:
        with atomic_path(out_not_run) as tmp:
            pd.DataFrame(not_run, columns=["fake", "net", "reason"]).to_csv(tmp, index=False)
    return df
