# Solar feature networks (config feature_train): MAE and VICReg trained on the training split of
# dataset.h5 by the shared training loop (checkpoints, exact resume, data parallel, --move-stale as
# the train rule), then the encoder exported for the evaluation's feature networks and for timm.


rule feature_train:
    input:
        data=DATASET,
    output:
        encoder=f"{OUT}/feature_nets/{{fnet}}/encoder.pt",
    params:
        model=lambda w: feature_net_json(w.fnet),
        image_size=lambda w: FEATURE_TRAIN[w.fnet]["image_size"],
        steps=lambda w: FEATURE_TRAIN[w.fnet]["train_steps"],
        ckpt_dir=lambda w: f"{OUT}/feature_nets/{w.fnet}/checkpoints",
        log_csv=lambda w: f"{OUT}/feature_nets/{w.fnet}/train_log.csv",
        tensorboard=lambda w: f"{OUT}/feature_nets/{w.fnet}/tensorboard",
        family=lambda w: FEATURE_TRAIN[w.fnet]["family"],
        seed=lambda w: FEATURE_TRAIN[w.fnet]["seed"],
        test_fraction=config["data"]["test_fraction"],
    threads: config["threads"]["train"]
    # Every evaluate job waits for the solar networks' real features: these before the GAN
    # trainings (priority 1, train.smk), so evaluations interleave with training on few cores.
    priority: 2
    resources:
        runtime=config["runtime_min"]["train"],
        nodes=lambda w: FEATURE_TRAIN[w.fnet]["nodes"],
        mpi="env",
    log:
        f"{OUT}/logs/feature_train/{{fnet}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "export SRUN_CPUS_PER_TASK=${{SLURM_CPUS_PER_TASK:-{threads}}};"
        " {resources.mpi} python -m solargen train --family {params.family} --model-json {params.model:q}"
        " --dataset {input.data} --image-size {params.image_size} --steps {params.steps}"
        " --ckpt-dir {params.ckpt_dir} --log-csv {params.log_csv} --tensorboard {params.tensorboard} --seed {params.seed}"
        " --threads {threads} --split train --test-fraction {params.test_fraction} --move-stale 2> {log}"
        " && python -m solargen feature-export --family {params.family} --model-json {params.model:q}"
        " --image-size {params.image_size} --checkpoint {params.ckpt_dir}/step$(printf %07d {params.steps}).pt"
        " --out {output.encoder} 2>> {log}"
