# The human-expert test (optional config block `expert_eval`): a blinded packet of real and
# generated images, answered outside the workflow in the local form
#   python -m solargen expert-eval serve results/<name>/expert/packet
# and the statistics of whatever answers exist when the workflow runs. Answers are user data,
# collected outside the DAG: the analysis is a target only once an answer file exists, and runs
# again whenever one changes.

from pathlib import Path

from solargen.expert.packet import expert_config_runs

EXPERT = config.get("expert_eval")
EXPERT_DIR = f"{OUT}/expert"
EXPERT_PACKET = f"{EXPERT_DIR}/packet"
EXPERT_KEY = f"{EXPERT_DIR}/key.csv"
#: The packet job's output: which packet there is, and whether it was kept or built.
EXPERT_STATUS = f"{EXPERT_DIR}/status.json"
EXPERT_ANSWERS = (EXPERT or {}).get("answers_dir") or f"{EXPERT_DIR}/answers"


#: The packet's runs; a run that is not a run, or is not made here, is a config error now.
EXPERT_RUNS = expert_config_runs(config, SKIPPED) if EXPERT else []
EXPERT_ANSWER_FILES = sorted(str(p) for p in Path(EXPERT_ANSWERS).glob("*.jsonl")) if EXPERT else []
#: results.csv rows of the expert test, once there are answers (report.smk's results_csv reads them).
EXPERT_ROWS = [f"{EXPERT_DIR}/human_accuracy_rows.csv"] if EXPERT_ANSWER_FILES else []
EXPERT_TARGETS = (
    [EXPERT_STATUS]
    + ([f"{OUT}/tables/human_accuracy.csv", f"{OUT}/figures/human_accuracy.png"] if EXPERT_ANSWER_FILES else [])
    if EXPERT
    else []
)
if EXPERT and not EXPERT_ANSWER_FILES:
    logger.info(
        f"expert_eval: no answers in {EXPERT_ANSWERS} yet; after the packet is built, collect them with "
        f"python -m solargen expert-eval serve {EXPERT_PACKET}"
        + (f" --answers {EXPERT_ANSWERS}" if EXPERT.get("answers_dir") else "")
    )


rule expert_packet:
    """M real and M generated images per run and image type, shuffled, opaque names; key apart.
    Packet and key are not outputs Snakemake may delete: experts answer this very packet, and only
    its key scores them. The command keeps them while their inputs are unchanged, rebuilds them
    only while nobody has answered, and otherwise fails, saying why (config/README.md)."""
    input:
        real=f"{DATA}/{config['data']['name']}",
        runs=[f"{run_dir(r)}/samples" for r in EXPERT_RUNS],
    output:
        EXPERT_STATUS,
    params:
        runs=lambda w, input: " ".join(f"{r}={p}" for r, p in zip(EXPERT_RUNS, input.runs)),
        n=(EXPERT or {}).get("n_per_run", 0),
        crops=" ".join(map(str, (EXPERT or {}).get("crops", []))),
        full=lambda w: "" if (EXPERT or {}).get("full_disk", True) else "--no-full-disk",
        seed=(EXPERT or {}).get("seed", config["seed"]),
        packet=EXPERT_PACKET,
        key=EXPERT_KEY,
        answers=EXPERT_ANSWERS,
    log:
        f"{OUT}/logs/expert_packet.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen expert-eval packet --real {input.real} --runs {params.runs} --n-per-run {params.n}"
        " --crops {params.crops} {params.full} --seed {params.seed} --out {params.packet} --key {params.key}"
        " --answers {params.answers:q} --status {output} 2> {log}"


rule expert_analysis:
    """Accuracy per expert, run and image type against chance, from every answer file there is."""
    input:
        status=EXPERT_STATUS,
        answers=EXPERT_ANSWER_FILES,
    output:
        table=report(f"{OUT}/tables/human_accuracy.csv", caption="../report/human_accuracy_table.rst",
                     category="Human experts"),
        figure=report(f"{OUT}/figures/human_accuracy.png", caption="../report/human_accuracy.rst",
                      category="Human experts"),
        rows=f"{EXPERT_DIR}/human_accuracy_rows.csv",
    params:
        key=EXPERT_KEY,
        answers=EXPERT_ANSWERS,
        real_name=config["data"]["name"],
    log:
        f"{OUT}/logs/expert_analysis.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen expert-eval analyse --key {params.key} --answers {params.answers:q}"
        " --real-name {params.real_name} --out-table {output.table} --out-figure {output.figure}"
        " --out-rows {output.rows} 2> {log}"
