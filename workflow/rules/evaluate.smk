# Real-set features and spectra once per network; then every run against them.

REAL = f"{DATA}/{config['data']['name']}"


rule real_features:
    input:
        REAL,
    output:
        f"{OUT}/real/features_{{net}}.npz",
    threads: config["threads"]["evaluate"]
    log:
        f"{OUT}/logs/real_features_{{net}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen features --images {input} --net {wildcards.net} --out {output}"
        " --threads {threads} 2> {log}"


rule real_crop_features:
    """Features of random crops of the real frames (the study's crop FIDs); generated images are
    cropped at the same positions, image by image, from the protocol stored with these."""
    input:
        REAL,
    output:
        f"{OUT}/real/features_{{net}}-{{crop}}.npz",
    params:
        per_image=config["evaluation"].get("crops_per_image", 1),
        seed=config["seed"],
        reference=config["data"]["resolution"],
    threads: config["threads"]["evaluate"]
    log:
        f"{OUT}/logs/real_features_{{net}}-{{crop}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen features --images {input} --net {wildcards.net} --crop {wildcards.crop:q}"
        " --crops-per-image {params.per_image} --crop-seed {params.seed} --crop-reference {params.reference}"
        " --out {output:q} --threads {threads} 2> {log:q}"


rule real_spectrum:
    input:
        REAL,
    output:
        f"{OUT}/real/spectrum.npz",
    params:
        # Generated sets are windowed like this (the choice is stored with the real spectra).
        window=config["evaluation"].get("spectrum_window", "none"),
    log:
        f"{OUT}/logs/real_spectrum.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen spectrum --images {input} --window {params.window} --out {output} 2> {log}"


rule evaluate:
    input:
        samples=f"{OUT}/runs/{{family}}/{{run}}/samples",
        features=list(REAL_FEATURES.values()),
        spectrum=f"{OUT}/real/spectrum.npz",
        dataset=lambda w: [DATASET] if is_conditional(w.run) else [],
    output:
        metrics=f"{OUT}/runs/{{family}}/{{run}}/metrics.json",
        spectrum=f"{OUT}/runs/{{family}}/{{run}}/spectrum.npz",
    params:
        features=" ".join(f"{k}={p}" for k, p in REAL_FEATURES.items()),
        real_name=config["data"]["name"],
        conditional=lambda w: conditional_args(w.run),
    threads: config["threads"]["evaluate"]
    log:
        f"{OUT}/logs/evaluate/{{family}}/{{run}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen evaluate --samples {input.samples} --real-features {params.features}"
        " --real-spectrum {input.spectrum} --real-name {params.real_name} --fake-name {wildcards.run}"
        " --out {output.metrics} --out-spectrum {output.spectrum} {params.conditional} --threads {threads} 2> {log}"
