"""``python -m solargen`` subcommands of the report stage: results.csv, the study's tables and
figures, and the comparison with a published results.csv.

Kept out of `solargen.cli` like the acquisition's; `add_commands` registers them.
Heavy imports stay inside the functions.
"""

from __future__ import annotations

import json
from pathlib import Path


def _collect(a):
    from .results import collect

    collect(a.metrics, a.out, a.not_run, skipped=json.loads(a.skipped_json), out_meta=a.meta,
            extra_rows=a.extra_rows)


def _bootstrap(a):
    import torch

    from ..evaluate.bootstrap import bootstrap_runs

    torch.set_num_threads(1)  # small k-NN distance matrices, thousands of them

    real = dict(kv.split("=", 1) for kv in a.real_features)
    bootstrap_runs(a.metrics, a.generated, real, a.real_spectrum, a.real_crop_spectra, a.out, a.out_draws,
                   n_boot=a.resamples, seed=a.seed)


def _findings(a):
    from .findings import write_findings
    from .results import not_converged

    write_findings(a.results, a.out_csv, a.out_html, draws=a.draws, published=a.published, net=a.net,
                   families=json.loads(a.families), not_converged=not_converged(a.meta) if a.meta else None)


def _spearman(a):
    import pandas as pd

    from ..io import atomic_path
    from .results import spearman_table

    with atomic_path(a.out) as tmp:
        spearman_table(pd.read_csv(a.results)).round(3).to_csv(tmp)


def _figure(a):
    from . import figures

    runs = dict(kv.split("=", 1) for kv in a.runs)
    if a.kind == "training":
        figures.training_curves(runs, a.out)
    elif a.kind == "run_samples":
        figures.run_grid(a.real, a.out)
    elif a.kind == "samples":
        figures.sample_grid(a.real, runs, a.out)
    elif a.kind == "zoom":
        figures.zoom_grid(a.real, runs, a.out)
    elif a.kind == "spectrum":
        figures.spectrum_figure(a.real, runs, a.out)
    else:
        from ..dataset import dataset_split, open_dataset, read_images

        with open_dataset(a.real) as f:
            real = read_images(f, dataset_split(f, a.test_fraction)["test"])
        figures.dft_figure(real, runs, a.out)


TABLES = ("ranking", "diffusion_sampling", "diffusion_training", "regularisation", "ablations", "crops",
          "metric_details", "spectral", "replicates")


def _table(a):
    from ..io import atomic_path
    from . import tables

    from .results import not_converged

    df = tables.read_results(a.results)
    families = json.loads(a.families)
    stale = not_converged(a.meta) if a.meta else None
    t = {"ranking": lambda: tables.ranking(df, families, stale),
         "diffusion_sampling": lambda: tables.fid_vs_sampling_steps(df),
         "diffusion_training": lambda: tables.fid_vs_training_steps(df),
         "regularisation": lambda: tables.regularisation_table(df),
         "ablations": lambda: tables.ablation_table(df),
         "crops": lambda: tables.crop_table(df),
         "metric_details": lambda: tables.metric_details(df),
         "spectral": lambda: tables.spectral_table(df),
         "replicates": lambda: tables.replicate_table(df)}[a.kind]()
    index = a.kind in ("ranking", "crops", "metric_details", "spectral")
    with atomic_path(a.out) as tmp:
        t.to_csv(tmp, index=index, float_format="%.6g")


def _plot(a):
    """Figures drawn from results.csv (or, for ``spearman``, from the Spearman table)."""
    import pandas as pd

    from . import figures, tables

    if a.kind == "spearman":
        figures.spearman_figure(pd.read_csv(a.results, index_col=0), a.out)
        return
    df = tables.read_results(a.results)
    families = json.loads(a.families)
    if a.kind == "ranking":
        figures.ranking_figure(tables.ranking(df, families), a.out)
    elif a.kind == "diffusion":
        figures.diffusion_figure(tables.fid_vs_sampling_steps(df), tables.fid_vs_training_steps(df), a.out,
                                 net=tables.primary_net(df) or "?")
    else:
        fam = {r: tables.family_of(r, families) for r in df.run.unique()}
        figures.spectral_distance_figure(tables.spectral_table(df), fam, a.out)


def _compare(a):
    from ..io import atomic_path
    from . import compare, tables

    ours, ref = tables.read_results(a.results), tables.read_results(a.reference)
    both = compare.side_by_side(ours, ref)
    agree = compare.ranking_agreement(both)
    note = compare.scale_note(ours, ref)
    with atomic_path(a.out_csv) as tmp:
        both.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(a.out_ranking) as tmp:
        agree.to_csv(tmp, index=False, float_format="%.4g")
    html = (f"<h3>Comparison with {a.reference_label or a.reference}</h3><p>{note}</p>"
            f"<p>{both.run.nunique()} runs and {len(both)} metric values in common.</p>"
            "<h4>Agreement of the run rankings</h4>" + agree.to_html(index=False, float_format="%.3g", na_rep="–")
            + "<h4>Values side by side</h4>" + both.to_html(index=False, float_format="%.4g"))
    with atomic_path(a.out_html) as tmp:
        Path(tmp).write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{html}</body></html>")


def add_commands(sub) -> None:
    """Register the report subcommands on an argparse subparsers object."""
    s = sub.add_parser("collect", help="gather metrics.json files into results.csv")
    s.add_argument("--metrics", nargs="+", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--not-run")
    s.add_argument("--skipped-json", default="{}", help='{"run": "reason"} for runs the workflow left out')
    s.add_argument("--meta", help="sidecar CSV: per run n_samples, n_real, sampling seeds, checkpoint")
    s.add_argument("--extra-rows", nargs="*", default=[], help="CSVs of results.csv rows made elsewhere (human_accuracy)")
    s.set_defaults(func=_collect)

    s = sub.add_parser("bootstrap", help="bootstrap intervals of every run's metrics from stored features → results_ci.csv")
    s.add_argument("--metrics", nargs="+", required=True, help="the runs' metrics.json")
    s.add_argument("--generated", nargs="+", required=True, help="the runs' features.npz, in the same order")
    s.add_argument("--real-features", nargs="*", default=[], metavar="KEY=NPZ")
    s.add_argument("--real-spectrum", required=True)
    s.add_argument("--real-crop-spectra", nargs="*", default=[])
    s.add_argument("--resamples", type=int, default=1000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--out", required=True, help="results_ci.csv")
    s.add_argument("--out-draws", required=True, help="bootstrap.npz: every resample's values, for paired differences")
    s.set_defaults(func=_bootstrap)

    s = sub.add_parser("findings", help="the study's claims, each with a verdict → findings.csv and .html")
    s.add_argument("--results", required=True)
    s.add_argument("--draws", help="bootstrap.npz (else verdicts rest on point values, and say so)")
    s.add_argument("--meta", help="results_meta.csv (runs marked not converged)")
    s.add_argument("--published", help="a published results.csv whose values are shown beside")
    s.add_argument("--net", help="the feature network whose metrics decide (default: first Inception-type present)")
    s.add_argument("--families", default="{}", help='{"run": "family"} (else inferred from the run names)')
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-html", required=True)
    s.set_defaults(func=_findings)

    s = sub.add_parser("spearman", help="Spearman rank correlation between metrics across runs")
    s.add_argument("--results", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_spearman)

    s = sub.add_parser("figure", help="report figures")
    s.add_argument("kind", choices=["samples", "zoom", "spectrum", "dft", "training", "run_samples"])
    s.add_argument("--test-fraction", type=float, help="data.test_fraction (datasets without a recorded split)")
    s.add_argument("--real", help="real images (run_samples: the run's sample folder)")
    s.add_argument("--runs", nargs="*", default=[], metavar="NAME=PATH",
                   help="per run its samples/spectrum (training: per model its train_log.csv)")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_figure)

    s = sub.add_parser("table", help="one of the study's tables from a results.csv")
    s.add_argument("kind", choices=TABLES)
    s.add_argument("--results", required=True)
    s.add_argument("--meta", help="results_meta.csv: marks runs the convergence check found not converged")
    s.add_argument("--families", default="{}", help='{"run": "family"} (else inferred from the run names)')
    s.add_argument("--out", required=True)
    s.set_defaults(func=_table)

    s = sub.add_parser("plot", help="one of the study's figures from a results.csv")
    s.add_argument("kind", choices=["ranking", "diffusion", "spearman", "spectral_distance"])
    s.add_argument("--results", required=True, help="results.csv (spearman: the Spearman table)")
    s.add_argument("--families", default="{}", help='{"run": "family"} (else inferred from the run names)')
    s.add_argument("--out", required=True)
    s.set_defaults(func=_plot)

    s = sub.add_parser("compare", help="this run's results.csv beside a reference one (e.g. the published study)")
    s.add_argument("--results", required=True)
    s.add_argument("--reference", required=True)
    s.add_argument("--reference-label", default="")
    s.add_argument("--out-csv", required=True)
    s.add_argument("--out-ranking", required=True)
    s.add_argument("--out-html", required=True)
    s.set_defaults(func=_compare)
