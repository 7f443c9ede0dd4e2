"""Statistics of the expert answers: could the experts tell real from generated?

Accuracy is the fraction of images judged correctly (real as real, generated as generated); a
packet holds as many real as generated images, so chance is 0.5. Per expert, per run, per image
type (and per run × image type, and over all answers): accuracy, its Wilson 95 % interval and the
two-sided exact binomial test against 0.5 (scipy). "Indistinguishable" is the claim that a run's
accuracy is not above chance; a small p with accuracy above 0.5 refutes it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from ..io import InputError, atomic_path
from .files import ANSWERS, read_answers, read_key

log = logging.getLogger(__name__)

TABLE_COLUMNS = ["group", "value", "n", "n_correct", "accuracy", "ci95_low", "ci95_high", "p_value",
                 "mean_confidence", "n_experts"]


def load_answers(answers_dir: str | Path, key: pd.DataFrame) -> pd.DataFrame:
    """All experts' answers joined with the key: one row per (expert, item) with ``correct``."""
    packet = str(key["packet"].iloc[0])
    files = sorted(Path(answers_dir).glob("*.jsonl"))
    rows = [a for f in files for a in read_answers(f, packet)]
    if not rows:
        raise InputError(f"{answers_dir}: no answers to packet {packet} (no non-empty <expert>.jsonl files)")
    df = pd.DataFrame(rows)
    if not df["answer"].isin(ANSWERS).all():
        raise InputError(f"{answers_dir}: answers other than 'real'/'generated': {sorted(set(df['answer']) - set(ANSWERS))}")
    unknown = set(df["item"]) - set(key["item"])
    if unknown:
        raise InputError(f"{answers_dir}: {len(unknown)} answered item(s) not in the key, e.g. {sorted(unknown)[0]}")
    df = df.merge(key[["item", "truth", "run", "view"]], on="item", how="left")
    df["correct"] = df["answer"] == df["truth"]
    return df


def accuracy_row(correct: pd.Series, confidence: pd.Series | None = None) -> dict:
    """n, correct, accuracy, Wilson 95 % interval, two-sided binomial p against 0.5."""
    from scipy.stats import binomtest

    n, k = int(len(correct)), int(correct.sum())
    t = binomtest(k, n, 0.5)
    ci = t.proportion_ci(confidence_level=0.95, method="wilson")
    return {"n": n, "n_correct": k, "accuracy": k / n, "ci95_low": float(ci.low), "ci95_high": float(ci.high),
            "p_value": float(t.pvalue),
            "mean_confidence": float(confidence.mean()) if confidence is not None else float("nan")}


def accuracy_table(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per group: all answers, each expert, run, image type and run × image type."""
    answers = answers.assign(run_view=answers["run"] + "/" + answers["view"])
    out = [{"group": "all", "value": "all", **accuracy_row(answers["correct"], answers["confidence"]),
            "n_experts": answers["expert"].nunique()}]
    for group, col in (("expert", "expert"), ("run", "run"), ("view", "view"), ("run_view", "run_view")):
        for value, g in answers.groupby(col, sort=True):
            out.append({"group": group, "value": value, **accuracy_row(g["correct"], g["confidence"]),
                        "n_experts": g["expert"].nunique()})
    return pd.DataFrame(out, columns=TABLE_COLUMNS)


def results_rows(table: pd.DataFrame, real_name: str) -> pd.DataFrame:
    """results.csv rows (``metric=human_accuracy``, ``net=human``): pooled over experts, per run on
    whole frames (``fake`` = run) and per crop type (``-CROPPED<n>`` on both names, as the study's
    crop FIDs)."""
    rows = []
    for _, r in table[table["group"] == "run_view"].iterrows():
        run, view = r["value"].rsplit("/", 1)
        suffix = "" if view == "full" else f"-{view}"
        rows.append({"metric": "human_accuracy", "value": r["accuracy"], "real": real_name + suffix,
                     "fake": run + suffix, "net": "human"})
    return pd.DataFrame(rows, columns=["metric", "value", "real", "fake", "net"])


def accuracy_figure(table: pd.DataFrame, out: str | Path) -> None:
    """Accuracy with Wilson 95 % intervals per run × image type and per expert; chance at 0.5."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("run_view", "run / image type"), ("expert", "expert")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 0.35 * max(4, len(table)) + 1.2), squeeze=False)
    for ax, (group, title) in zip(axes[0], panels):
        t = table[table["group"] == group].reset_index(drop=True)
        y = range(len(t))
        ax.errorbar(t["accuracy"], y, xerr=[t["accuracy"] - t["ci95_low"], t["ci95_high"] - t["accuracy"]],
                    fmt="o", color="C0", capsize=3)
        ax.axvline(0.5, color="k", ls="--", lw=0.8, label="chance")
        ax.set_yticks(list(y), [f"{v} (n={n})" for v, n in zip(t["value"], t["n"])], fontsize=7)
        ax.set_xlim(0, 1)
        ax.invert_yaxis()
        ax.set_xlabel("accuracy (real vs generated)")
        ax.set_title(title, fontsize=9)
    axes[0][0].legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, format="png")
    plt.close(fig)


def analyse(key_path, answers_dir, out_table, out_figure=None, out_rows=None, real_name: str = "real") -> pd.DataFrame:
    """Read the key and every answer file; write the table, the figure and the results.csv rows."""
    key = read_key(key_path)
    answers = load_answers(answers_dir, key)
    n_items = answers.groupby("expert")["item"].nunique()
    for expert, n in n_items.items():
        if n < len(key):
            log.warning("expert %s answered %d of %d images (partial)", expert, n, len(key))
    table = accuracy_table(answers)
    with atomic_path(out_table) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    if out_figure:
        accuracy_figure(table, out_figure)
    if out_rows:
        with atomic_path(out_rows) as tmp:
            results_rows(table, real_name).to_csv(tmp, index=False)
    return table
