# Sampling is its own job, so a sampling-steps sweep re-uses one trained checkpoint.


rule sample:
    input:
        lambda w: checkpoint(model_of(w.run), RUNS[w.run]["train_steps"]),
    output:
        directory(f"{OUT}/runs/{{family}}/{{run}}/samples"),
    params:
        model=lambda w: model_json(model_of(w.run)),
        image_size=lambda w: MODELS[model_of(w.run)]["image_size"],
        steps=lambda w: RUNS[w.run]["sampling_steps"],
        sampler=lambda w: RUNS[w.run].get("sampler", "ddpm"),
        n=config["evaluation"]["n_samples"],
        batch=config["evaluation"]["sample_batch_size"],
        seed=config["seed"],
    threads: config["threads"]["sample"]
    resources:
        runtime=config["runtime_min"]["sample"],
    log:
        f"{OUT}/logs/sample/{{family}}/{{run}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen sample --family {wildcards.family} --model-json {params.model:q}"
        " --checkpoint {input} --image-size {params.image_size} --n {params.n} --steps {params.steps}"
        " --sampler {params.sampler} --batch-size {params.batch} --seed {params.seed}"
        " --threads {threads} --out {output} 2> {log}"
