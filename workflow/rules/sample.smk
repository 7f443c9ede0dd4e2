# Sampling is its own job, so a sampling-steps sweep re-uses one trained checkpoint. The N
# images of a run are split into `evaluation.sample_chunks` jobs (one GPU each on the cluster)
# with their own noise streams; `gather_samples` joins them into the run's image folder.


rule sample:
    input:
        unpack(sample_inputs),
    output:
        directory(f"{OUT}/runs/{{family}}/{{run}}/sample_chunks/{{chunk}}"),
    params:
        model=lambda w: model_json(model_of(w.run)),
        image_size=lambda w: MODELS[model_of(w.run)]["image_size"],
        checkpoint=lambda w, input: f"--checkpoint {input.checkpoint}" if "checkpoint" in input.keys() else "",
        conditional=lambda w, input: conditional_args(w.run, input.get("dataset")),
        steps=lambda w: ALL_RUNS[w.run]["sampling_steps"],
        sampler=lambda w: ALL_RUNS[w.run]["sampler"],
        n=lambda w: chunk_range(w.chunk)[1],
        first=lambda w: chunk_range(w.chunk)[0],
        batch=config["evaluation"]["sample_batch_size"],
        seed=lambda w: ALL_RUNS[w.run]["seed"],  # seed replicates have their own
    threads: config["threads"]["sample"]
    priority: lambda w: ALL_RUNS[w.run]["sampling_steps"]  # the long samplings first (train.smk)
    resources:
        runtime=config["runtime_min"]["sample"],
    log:
        f"{OUT}/logs/sample/{{family}}/{{run}}_{{chunk}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen sample --family {wildcards.family} --model-json {params.model:q}"
        " {params.checkpoint} {params.conditional} --image-size {params.image_size} --n {params.n}"
        " --first-index {params.first}"
        " --steps {params.steps} --sampler {params.sampler} --batch-size {params.batch} --seed {params.seed}"
        " --threads {threads} --out {output} 2> {log}"


rule gather_samples:
    input:
        expand(f"{OUT}/runs/{{{{family}}}}/{{{{run}}}}/sample_chunks/{{chunk}}", chunk=CHUNKS),
    output:
        directory(f"{OUT}/runs/{{family}}/{{run}}/samples"),
    log:
        f"{OUT}/logs/sample/{{family}}/{{run}}_gather.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "(mkdir -p {output} && for d in {input}; do cp -p $d/*.png {output}/;"
        " if [ -e $d/sampling.json ]; then cp -p $d/sampling.json {output}/sampling_$(basename $d).json; fi;"
        " done) 2> {log}"
