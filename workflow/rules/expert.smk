# The human-expert test (optional config block `expert_eval`): a blinded packet of real and
# generated images, answered outside the workflow in the local form
#   python -m solargen expert-eval serve results/<name>/expert/packet
# and the statistics of whatever answers exist when the workflow runs. Answers are user data,
# collected outside the DAG: the analysis is a target only once an answer file exists, and runs
# again whenever one changes.

if EXPERT:

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
            n=EXPERT["n_per_run"],
            crops=" ".join(map(str, EXPERT["crops"])),
            full=lambda w: "" if EXPERT["full_disk"] else "--no-full-disk",
            seed=EXPERT["seed"],
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
