"""``results.csv`` in the study's schema, gathered from every run's ``metrics.json``."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io import InputError, atomic_path, read_json

COLUMNS = ["metric", "value", "real", "fake", "net"]
#: results_meta.csv: what every run's numbers rest on, the convergence check's outcome, and the
#: "draws the Sun" criterion's (`evaluate.sun_criterion`: share of samples passing with its 95 %
#: binomial interval, run passes).
META_COLUMNS = ["fake", "n_samples", "n_real", "sampling_seeds", "checkpoint", "radial_profile_error", "converged",
                "sun_fraction", "sun_fraction_lo", "sun_fraction_hi", "sun_pass"]


def not_converged(meta_csv: str | Path) -> dict[str, str]:
    """Runs the convergence check marked "not converged" (results_meta.csv), with the number that decided it."""
    meta = pd.read_csv(meta_csv, dtype={"converged": str}).fillna({"converged": ""})
    if "converged" not in meta.columns:
        return {}
    # From the torch-free registry: a table job need not load the evaluation's networks.
    from ..evaluate.registry import PROFILE_TOLERANCE

    return {r.fake: f"radial intensity profile error {r.radial_profile_error:.3f} > {PROFILE_TOLERANCE}"
            for r in meta.itertuples() if r.converged == "no"}


def collect(metrics_files: list[str | Path], out_csv: str | Path, out_not_run: str | Path | None = None,
            skipped: dict[str, str] | None = None, out_meta: str | Path | None = None,
            extra_rows: list[str | Path] = ()) -> pd.DataFrame:
    """Concatenate the rows of all runs into ``out_csv``; metrics that could not run go to ``out_not_run``,
    as do whole runs the workflow ``skipped`` (run → reason; ``net`` is empty: no metric ran).
    ``extra_rows``: CSVs of rows in the same columns made outside the runs' metrics (the expert
    test's ``human_accuracy``).

    ``out_meta`` is the sidecar that results.csv's fixed columns cannot hold: per run, the number
    of generated and real images every number rests on, the sampling seeds and the checkpoint.
    """
    rows, not_run = [], [{"fake": run, "net": "", "reason": f"run not made: {why}"} for run, why in (skipped or {}).items()]
    meta = []
    for path in metrics_files:
        m = read_json(path)
        rows += m["rows"]
        not_run += [{"fake": m["run"], **r} for r in m["not_run"]]
        conv = m.get("convergence") or {}
        meta.append({"fake": m["run"], "n_samples": m["n_fake"], "n_real": m["n_real"],
                     "sampling_seeds": " ".join(map(str, m.get("sampling_seeds", []))),
                     "checkpoint": m.get("checkpoint") or "",
                     "radial_profile_error": conv.get("radial_profile_error", float("nan")),
                     # Empty where the check could not run (a real spectrum without the profile).
                     "converged": {True: "yes", False: "no"}.get(conv.get("converged"), ""),
                     # Empty for conditional runs and where the real spectrum lacks the profiles.
                     "sun_fraction": m.get("sun_fraction") if m.get("sun_fraction") is not None else float("nan"),
                     # metrics.json files written before the interval: empty, the run's share still shown.
                     **dict(zip(("sun_fraction_lo", "sun_fraction_hi"), m.get("sun_fraction_ci") or (float("nan"),) * 2)),
                     "sun_pass": {True: "yes", False: "no"}.get(m.get("sun_pass"), "")})
    if out_meta:
        with atomic_path(out_meta) as tmp:
            pd.DataFrame(meta, columns=META_COLUMNS).to_csv(tmp, index=False)
    for path in extra_rows:
        extra = pd.read_csv(path)
        if list(extra.columns) != COLUMNS:
            raise InputError(f"{path}: columns {list(extra.columns)}, expected {COLUMNS}")
        rows += extra.to_dict("records")
    df = pd.DataFrame(rows, columns=COLUMNS).sort_values(["metric", "net", "fake"], kind="stable")
    with atomic_path(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    if out_not_run:
        with atomic_path(out_not_run) as tmp:
            pd.DataFrame(not_run, columns=["fake", "net", "reason"]).to_csv(tmp, index=False)
    return df


def spearman_table(results: pd.DataFrame) -> pd.DataFrame:
    """Spearman rank correlation between metrics across runs (the study's table), whole images only.

    Each metric/network pair is a column, each run a row; pairs are correlated only over the runs
    that have both (pandas' pairwise-complete ``corr``). Constant columns give NaN.
    """
    # Bootstrap interval bounds are not metrics of their own.
    whole = results[~results.fake.str.contains("-CROPPED", regex=False) & ~results.metric.str.contains("_ci95_")]
    wide = whole.assign(column=whole.metric + "/" + whole.net).pivot_table(index="fake", columns="column",
                                                                           values="value", aggfunc="first")
    corr = wide.corr(method="spearman", min_periods=3)
    return corr.dropna(how="all").dropna(axis=1, how="all")
