"""``python -m solargen`` subcommands of the report stage: results.csv, the study's tables and
figures, and the comparison with a published results.csv.

Steps registered with `solargen.steps.step`, like the cli's. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..steps import arg, step


@step("collect", "gather metrics.json files into results.csv",
      arg("--metrics", nargs="+"),
      arg("--out"),
      arg("--not-run"),
      arg("--skipped-json", help='{"run": "reason"} for runs the workflow left out'),
      arg("--meta", help="sidecar CSV: per run n_samples, n_real, sampling seeds, checkpoint"),
      arg("--extra-rows", nargs="*", help="CSVs of results.csv rows made elsewhere (human_accuracy)"))
def collect(*, metrics, out, not_run=None, skipped_json="{}", meta=None, extra_rows=()):
    from .results import collect as collect_metrics

    collect_metrics(metrics, out, not_run, skipped=json.loads(skipped_json), out_meta=meta, extra_rows=extra_rows)


@step("bootstrap", "bootstrap intervals of every run's metrics from stored features → results_ci.csv",
      arg("--metrics", nargs="+", help="the runs' metrics.json"),
      arg("--generated", nargs="+", help="the runs' features.npz, in the same order"),
      arg("--real-features", nargs="*", metavar="KEY=NPZ"),
      arg("--real-spectrum"),
      arg("--real-crop-spectra", nargs="*"),
      arg("--resamples", type=int),
      arg("--seed", type=int),
      arg("--out", help="results_ci.csv"),
      arg("--out-draws", help="bootstrap.npz: every resample's values, for paired differences"))
def bootstrap(*, metrics, generated, real_spectrum, out, out_draws, real_features=(), real_crop_spectra=(),
              resamples=1000, seed=0):
    import torch

    from ..evaluate.bootstrap import bootstrap_runs

    torch.set_num_threads(1)  # small k-NN distance matrices, thousands of them

    real = dict(kv.split("=", 1) for kv in real_features)
    bootstrap_runs(metrics, generated, real, real_spectrum, real_crop_spectra, out, out_draws,
                   n_boot=resamples, seed=seed)


@step("findings", "the study's claims, each with a verdict → findings.csv and .html",
      arg("--results"),
      arg("--draws", help="bootstrap.npz (else verdicts rest on point values, and say so)"),
      arg("--meta", help="results_meta.csv (runs marked not converged)"),
      arg("--published", help="a published results.csv whose values are shown beside"),
      arg("--net", help="the feature network whose metrics decide (default: first Inception-type present)"),
      arg("--families", help='{"run": "family"} (else inferred from the run names)'),
      arg("--out-csv"),
      arg("--out-html"))
def findings(*, results, out_csv, out_html, draws=None, meta=None, published=None, net=None, families="{}"):
    from .findings import write_findings
    from .results import not_converged

    write_findings(results, out_csv, out_html, draws=draws, published=published, net=net,
                   families=json.loads(families), not_converged=not_converged(meta) if meta else None)


@step("spearman", "Spearman rank correlation between metrics across runs",
      arg("--results"),
      arg("--out"))
def spearman(*, results, out):
    import pandas as pd

    from ..io import atomic_path
    from .results import spearman_table

    with atomic_path(out) as tmp:
        spearman_table(pd.read_csv(results)).round(3).to_csv(tmp)


@step("figure", "report figures",
      arg("kind", choices=["samples", "zoom", "spectrum", "dft", "training", "run_samples"]),
      arg("--test-fraction", type=float, help="data.test_fraction (datasets without a recorded split)"),
      arg("--real", help="real images (run_samples: the run's sample folder)"),
      arg("--runs", nargs="*", metavar="NAME=PATH",
          help="per run its samples/spectrum (training: per model its train_log.csv)"),
      arg("--out"))
def figure(*, kind, out, test_fraction=None, real=None, runs=()):
    from . import figures

    runs = dict(kv.split("=", 1) for kv in runs)
    if kind == "training":
        figures.training_curves(runs, out)
    elif kind == "run_samples":
        figures.run_grid(real, out)
    elif kind == "samples":
        figures.sample_grid(real, runs, out)
    elif kind == "zoom":
        figures.zoom_grid(real, runs, out)
    elif kind == "spectrum":
        figures.spectrum_figure(real, runs, out)
    else:
        from ..dataset import dataset_split, open_dataset, read_images

        with open_dataset(real) as f:
            test_frames = read_images(f, dataset_split(f, test_fraction)["test"])
        figures.dft_figure(test_frames, runs, out)


TABLES = ("ranking", "diffusion_sampling", "diffusion_training", "regularisation", "ablations", "crops",
          "metric_details", "spectral", "replicates")


@step("table", "one of the study's tables from a results.csv",
      arg("kind", choices=TABLES),
      arg("--results"),
      arg("--meta", help="results_meta.csv: marks runs the convergence check found not converged"),
      arg("--families", help='{"run": "family"} (else inferred from the run names)'),
      arg("--out"))
def table(*, kind, results, out, meta=None, families="{}"):
    from ..io import atomic_path
    from . import tables

    from .results import not_converged

    df = tables.read_results(results)
    families = json.loads(families)
    stale = not_converged(meta) if meta else None
    t = {"ranking": lambda: tables.ranking(df, families, stale),
         "diffusion_sampling": lambda: tables.fid_vs_sampling_steps(df),
         "diffusion_training": lambda: tables.fid_vs_training_steps(df),
         "regularisation": lambda: tables.regularisation_table(df),
         "ablations": lambda: tables.ablation_table(df),
         "crops": lambda: tables.crop_table(df),
         "metric_details": lambda: tables.metric_details(df),
         "spectral": lambda: tables.spectral_table(df),
         "replicates": lambda: tables.replicate_table(df)}[kind]()
    index = kind in ("ranking", "crops", "metric_details", "spectral")
    with atomic_path(out) as tmp:
        t.to_csv(tmp, index=index, float_format="%.6g")


@step("plot", "one of the study's figures from a results.csv",
      arg("kind", choices=["ranking", "diffusion", "spearman", "spectral_distance"]),
      arg("--results", help="results.csv (spearman: the Spearman table)"),
      arg("--families", help='{"run": "family"} (else inferred from the run names)'),
      arg("--out"))
def plot(*, kind, results, out, families="{}"):
    """Figures drawn from results.csv (or, for ``spearman``, from the Spearman table)."""
    import pandas as pd

    from . import figures, tables

    if kind == "spearman":
        figures.spearman_figure(pd.read_csv(results, index_col=0), out)
        return
    df = tables.read_results(results)
    families = json.loads(families)
    if kind == "ranking":
        figures.ranking_figure(tables.ranking(df, families), out)
    elif kind == "diffusion":
        figures.diffusion_figure(tables.fid_vs_sampling_steps(df), tables.fid_vs_training_steps(df), out,
                                 net=tables.primary_net(df) or "?")
    else:
        fam = {r: tables.family_of(r, families) for r in df.run.unique()}
        figures.spectral_distance_figure(tables.spectral_table(df), fam, out)


@step("compare", "this run's results.csv beside a reference one (e.g. the published study)",
      arg("--results"),
      arg("--reference"),
      arg("--reference-label"),
      arg("--out-csv"),
      arg("--out-ranking"),
      arg("--out-html"))
def compare(*, results, reference, out_csv, out_ranking, out_html, reference_label=""):
    from ..io import atomic_path
    from . import compare as cmp
    from . import tables

    ours, ref = tables.read_results(results), tables.read_results(reference)
    both = cmp.side_by_side(ours, ref)
    agree = cmp.ranking_agreement(both)
    note = cmp.scale_note(ours, ref)
    with atomic_path(out_csv) as tmp:
        both.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_path(out_ranking) as tmp:
        agree.to_csv(tmp, index=False, float_format="%.4g")
    html = (f"<h3>Comparison with {reference_label or reference}</h3><p>{note}</p>"
            f"<p>{both.run.nunique()} runs and {len(both)} metric values in common.</p>"
            "<h4>Agreement of the run rankings</h4>" + agree.to_html(index=False, float_format="%.3g", na_rep="–")
            + "<h4>Values side by side</h4>" + both.to_html(index=False, float_format="%.4g"))
    with atomic_path(out_html) as tmp:
        Path(tmp).write_text(f"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>{html}</body></html>")
