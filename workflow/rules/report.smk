# results.csv in the study's schema, and the figures of the Snakemake report.


rule results_csv:
    input:
        metrics=all_metrics(),
        # The expert test's human_accuracy rows, once there are answers (expert.smk).
        extra=EXPERT_ROWS,
    output:
        csv=report(f"{OUT}/results.csv", caption="../report/results.rst", category="Results"),
        not_run=report(f"{OUT}/not_run.csv", caption="../report/not_run.rst", category="Results"),
        meta=report(f"{OUT}/results_meta.csv", caption="../report/results_meta.rst", category="Results"),
    params:
        # Runs left out because their model's pretrained weights are absent, with the reason.
        skipped=json.dumps(SKIPPED),
        extra=lambda w, input: f"--extra-rows {input.extra}" if input.extra else "",
    log:
        f"{OUT}/logs/results_csv.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen collect --metrics {input.metrics} --out {output.csv} --not-run {output.not_run}"
        " {params.extra}"
        " --meta {output.meta}"
        " --skipped-json {params.skipped:q} 2> {log}"


rule results_ci:
    """Bootstrap intervals of every run's metrics from the stored features and spectra; every
    run sees the same real-set resamples, so differences between runs are paired."""
    input:
        metrics=all_metrics(),
        generated=[f"{run_dir(r)}/features.npz" for r in RUNS],
        features=list(REAL_FEATURES.values()),
        spectrum=f"{OUT}/real/spectrum.npz",
        crop_spectra=[f"{OUT}/real/spectrum-{c}.npz" for c in SPECTRUM_CROPS],
    output:
        csv=report(f"{OUT}/results_ci.csv", caption="../report/results_ci.rst", category="Results"),
        draws=f"{OUT}/bootstrap.npz",
    params:
        features=" ".join(f"{k}={p}" for k, p in REAL_FEATURES.items()),
        resamples=EV["bootstrap_resamples"],
        seed=config["seed"],
    priority: 1  # the longest report job first; the tables and plots fill the other cores
    log:
        f"{OUT}/logs/results_ci.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        # Thousands of small matrix products: BLAS threads only contend (measured 65x slower on 2 busy cores).
        "OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1"
        " python -m solargen bootstrap --metrics {input.metrics} --generated {input.generated}"
        " --real-features {params.features} --real-spectrum {input.spectrum}"
        " --real-crop-spectra {input.crop_spectra} --resamples {params.resamples} --seed {params.seed}"
        " --out {output.csv} --out-draws {output.draws} 2> {log}"


rule table_spearman:
    input:
        f"{OUT}/results.csv",
    output:
        report(f"{OUT}/tables/spearman.csv", caption="../report/spearman.rst", category="Results"),
    log:
        f"{OUT}/logs/table_spearman.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen spearman --results {input} --out {output} 2> {log}"


rule figure_samples:
    input:
        real=REAL,
        runs=[f"{run_dir(r)}/samples" for r in RUNS],
    output:
        report(f"{OUT}/figures/samples.png", caption="../report/samples.rst", category="Figures"),
    params:
        runs=lambda w, input: " ".join(f"{r}={p}" for r, p in zip(RUNS, input.runs)),
    log:
        f"{OUT}/logs/figure_samples.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen figure samples --real {input.real} --runs {params.runs} --out {output} 2> {log}"


rule figure_zoom:
    """Native-resolution crops of real frames and of each unconditional run's samples."""
    input:
        real=REAL,
        runs=[f"{run_dir(r)}/samples" for r in RUNS if not is_conditional(r)],
    output:
        report(f"{OUT}/figures/zoom.png", caption="../report/zoom.rst", category="Figures"),
    params:
        runs=lambda w, input: " ".join(f"{r}={p}" for r, p in zip([r for r in RUNS if not is_conditional(r)], input.runs)),
    log:
        f"{OUT}/logs/figure_zoom.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen figure zoom --real {input.real} --runs {params.runs} --out {output} 2> {log}"


rule figure_spectrum:
    input:
        real=f"{OUT}/real/spectrum.npz",
        runs=[f"{run_dir(r)}/spectrum.npz" for r in RUNS],
    output:
        report(f"{OUT}/figures/spectrum.png", caption="../report/spectrum.rst", category="Figures"),
    params:
        runs=lambda w, input: " ".join(f"{r}={p}" for r, p in zip(RUNS, input.runs)),
    log:
        f"{OUT}/logs/figure_spectrum.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen figure spectrum --real {input.real} --runs {params.runs} --out {output} 2> {log}"


rule figure_dft:
    """The seed's check: mean 2-D DFT log-magnitudes of held-out real frames and of each conditional run."""
    input:
        dataset=DATASET,
        runs=[f"{run_dir(r)}/samples" for r in RUNS if is_conditional(r)],
    output:
        report(f"{OUT}/figures/dft.png", caption="../report/dft.rst", category="Figures"),
    params:
        runs=lambda w, input: " ".join(f"{r}={p}" for r, p in zip([r for r in RUNS if is_conditional(r)], input.runs)),
        test_fraction=config["data"]["test_fraction"],
    log:
        f"{OUT}/logs/figure_dft.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen figure dft --real {input.dataset} --test-fraction {params.test_fraction}"
        " --runs {params.runs} --out {output} 2> {log}"


# ---- The study's tables and figures, rebuilt from results.csv (one job each) ----------------

rule table:
    """One of the study's tables (ranking, diffusion sweeps, regularisation, ablations, patch FIDs,
    metric details, spectral distances) from results.csv."""
    input:
        results=f"{OUT}/results.csv",
        meta=f"{OUT}/results_meta.csv",
    output:
        report(f"{OUT}/tables/{{table}}.csv", caption="../report/tables.rst", category="Tables"),
    wildcard_constraints:
        table="ranking|diffusion_sampling|diffusion_training|regularisation|ablations|crops|metric_details|spectral|replicates",
    params:
        families=FAMILIES_JSON,
    log:
        f"{OUT}/logs/table_{{table}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen table {wildcards.table} --results {input.results} --meta {input.meta}"
        " --families {params.families:q} --out {output} 2> {log}"


rule findings:
    """The study's claims, one row each, with a verdict from paired bootstrap intervals (the
    registry is solargen.report.findings); shown first in the report."""
    input:
        results=f"{OUT}/results.csv",
        draws=f"{OUT}/bootstrap.npz",
        meta=f"{OUT}/results_meta.csv",
        published=[REFERENCE] if REFERENCE else [],
    output:
        csv=report(f"{OUT}/tables/findings.csv", caption="../report/findings.rst", category="Findings"),
        html=report(f"{OUT}/tables/findings.html", caption="../report/findings.rst", category="Findings"),
    params:
        families=FAMILIES_JSON,
        net=f"--net {EV['findings_net']}" if "findings_net" in EV else "",
        published=lambda w, input: f"--published {input.published}" if input.published else "",
    log:
        f"{OUT}/logs/findings.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen findings --results {input.results} --draws {input.draws} --meta {input.meta}"
        " {params.published} {params.net} --families {params.families:q}"
        " --out-csv {output.csv} --out-html {output.html} 2> {log}"


rule plot:
    """The study's figures drawn from results.csv: FID ranking, diffusion sweeps, spectral distances."""
    input:
        f"{OUT}/results.csv",
    output:
        report(f"{OUT}/figures/{{plot}}.png", caption="../report/plots.rst", category="Figures"),
    wildcard_constraints:
        plot="ranking|diffusion|spectral_distance",
    params:
        families=FAMILIES_JSON,
    log:
        f"{OUT}/logs/plot_{{plot}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen plot {wildcards.plot} --results {input} --families {params.families:q}"
        " --out {output} 2> {log}"


rule figure_spearman:
    input:
        f"{OUT}/tables/spearman.csv",
    output:
        report(f"{OUT}/figures/spearman.png", caption="../report/spearman.rst", category="Figures"),
    log:
        f"{OUT}/logs/figure_spearman.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen plot spearman --results {input} --out {output} 2> {log}"


rule figure_run_samples:
    """One run's samples as a grid, grey and in the AIA 193 colour map."""
    input:
        lambda w: f"{run_dir(w.run)}/samples",
    output:
        report(f"{OUT}/figures/samples/{{run}}.png", caption="../report/run_samples.rst", category="Samples",
               subcategory="{run}"),
    log:
        f"{OUT}/logs/figure_samples_{{run}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen figure run_samples --real {input} --out {output} 2> {log}"


rule figure_training:
    """Training curves of every trained model (the logs are written beside the final checkpoints)."""
    input:
        [checkpoint(m, train_steps_of(m)[-1]) for m in TRAINED_MODELS],
    output:
        report(f"{OUT}/figures/training.png", caption="../report/training.rst", category="Figures"),
    params:
        logs=" ".join(f"{m}={OUT}/models/{f}/{m}/train_log.csv" for m, f in TRAINED_MODELS.items()),
    log:
        f"{OUT}/logs/figure_training.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen figure training --runs {params.logs} --out {output} 2> {log}"


if REFERENCE:

    rule compare_reference:
        """This run beside the reference results.csv (config ``reference_results``)."""
        input:
            ours=f"{OUT}/results.csv",
            reference=REFERENCE,
        output:
            csv=report(f"{OUT}/tables/comparison.csv", caption="../report/comparison.rst", category="Comparison"),
            ranking=report(f"{OUT}/tables/comparison_ranking.csv", caption="../report/comparison.rst",
                           category="Comparison"),
            html=report(f"{OUT}/tables/comparison.html", caption="../report/comparison.rst", category="Comparison"),
        log:
            f"{OUT}/logs/compare_reference.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen compare --results {input.ours} --reference {input.reference}"
            " --out-csv {output.csv} --out-ranking {output.ranking} --out-html {output.html} 2> {log}"
