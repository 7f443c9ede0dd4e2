# One job per (model, checkpoint step). A later step of the same model resumes from the
# earlier one's checkpoint, so e.g. the 100K run continues the 58K training instead of redoing it.
# A job re-run because the model config, the seed or the data changed finds checkpoints of another
# training fingerprint: --move-stale moves them to checkpoints/stale-<time>/ (with the old training
# log; said in the job's log) and trains from scratch instead of resuming them.


rule train:
    input:
        data=DATASET,
        resume=previous_checkpoint,
    output:
        f"{OUT}/models/{{family}}/{{model}}/checkpoints/step{{step}}.pt",
    params:
        model=lambda w: model_json(w.model),
        image_size=lambda w: MODELS[w.model]["image_size"],
        ckpt_dir=lambda w: f"{OUT}/models/{w.family}/{w.model}/checkpoints",
        log_csv=lambda w: f"{OUT}/models/{w.family}/{w.model}/train_log.csv",
        tensorboard=lambda w: f"{OUT}/models/{w.family}/{w.model}/tensorboard",
        seed=lambda w: MODELS[w.model]["seed"],  # seed replicates have their own
        # Conditional families are scored on held-out frames, so they train on the rest.
        split=lambda w: (
            f"--split train --test-fraction {config['data']['test_fraction']}"
            if w.family in CONDITIONAL
            else "--split all"
        ),
        flip="--east-west-flip" if config["data"]["augment"]["east_west_flip"] else "",
        check=training_check_args(),
    threads: config["threads"]["train"]
    # Longest chains first: a model whose runs sample iteratively (diffusion: a network call per
    # step per image) trains before the one-call GANs, so on few cores its sampling and
    # evaluation do not end the workflow alone on one core.
    priority: lambda w: max((r["sampling_steps"] for r in ALL_RUNS.values() if r["model"] == w.model), default=0)
    resources:
        runtime=config["runtime_min"]["train"],
        # Data-parallel training: `mpi` launches the ranks. On a cluster it is srun (one task per
        # GPU, `nodes` × tasks_per_node of them, set in profiles/juwels); "env" runs one process.
        nodes=lambda w: MODELS[w.model]["nodes"],
        mpi="env",
    log:
        f"{OUT}/logs/train/{{family}}/{{model}}_step{{step}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        # srun does not inherit --cpus-per-task from the allocation since Slurm 22.05.
        "export SRUN_CPUS_PER_TASK=${{SLURM_CPUS_PER_TASK:-{threads}}};"
        " {resources.mpi} python -m solargen train --family {wildcards.family} --model-json {params.model:q}"
        " --dataset {input.data} --image-size {params.image_size} --steps {wildcards.step}"
        " --ckpt-dir {params.ckpt_dir} --log-csv {params.log_csv} --tensorboard {params.tensorboard} --seed {params.seed}"
        " --threads {threads} {params.split} {params.flip} {params.check} --move-stale 2> {log}"
