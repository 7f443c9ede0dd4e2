# Real-set features and spectra once per network; then every run against them.

rule real_features:
    """Features of the real frames and of their random crops (the study's crop FIDs) through one
    network, in one job (the network is built once); generated images are cropped at the same
    positions, image by image, from the protocol stored with the crop features."""
    input:
        images=REAL,
        weights=lambda w: net_weights(w.net),
    output:
        whole=f"{OUT}/real/features_{{net}}.npz",
        crops=[f"{OUT}/real/features_{{net}}-{c}.npz" for c in CROPS],
    params:
        crops=lambda w, output: (
            f"--crop-outs {' '.join(shlex.quote(f'{c}={p}') for c, p in zip(CROPS, output.crops))}"
            f" {crop_options(EV['crop_on_disk'])}"
            if CROPS
            else ""
        ),
        specs=NET_SPECS,
        weights=lambda w: weights_identity(w.net),
    threads: config["threads"]["evaluate"]
    priority: 2  # every evaluate job waits for them (feature_train.smk)
    log:
        f"{OUT}/logs/real_features_{{net}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen features --images {input.images} --net {wildcards.net} --out {output.whole}"
        " {params.crops} --net-specs {params.specs:q} --threads {threads} 2> {log}"


rule real_crop_spectrum:
    """Power spectra of random on-disk crops of the real frames."""
    input:
        REAL,
    output:
        f"{OUT}/real/spectrum-{{spectrum_crop}}.npz",
    params:
        window=EV["spectrum_window"],
        # Spectra of crops are on-disk crops: solar structure at one scale, no limb or sky.
        crop=lambda w: crop_args(w.spectrum_crop, on_disk=True),
    log:
        f"{OUT}/logs/real_spectrum-{{spectrum_crop}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen spectrum --images {input} --window {params.window} {params.crop} --out {output} 2> {log}"


rule real_spectrum:
    input:
        REAL,
    output:
        f"{OUT}/real/spectrum.npz",
    params:
        # Generated sets are windowed like this (the choice is stored with the real spectra).
        window=EV["spectrum_window"],
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
        crop_spectra=[f"{OUT}/real/spectrum-{c}.npz" for c in SPECTRUM_CROPS],
        dataset=lambda w: [DATASET] if is_conditional(w.run) else [],
        nets=[e for n in NETS for e in net_weights(n)],
    output:
        metrics=f"{OUT}/runs/{{family}}/{{run}}/metrics.json",
        spectrum=f"{OUT}/runs/{{family}}/{{run}}/spectrum.npz",
        # The generated set's features and spectra, for bootstrap intervals without recomputing.
        features=f"{OUT}/runs/{{family}}/{{run}}/features.npz",
    params:
        features=" ".join(f"{k}={p}" for k, p in REAL_FEATURES.items()),
        real_name=config["data"]["name"],
        conditional=lambda w: conditional_args(w.run),
        specs=NET_SPECS,
        # The run's fake features come from the same weights files as the real ones.
        weights=lambda w: " ".join(f"{n}={weights_identity(n)}" for n in NETS),
        sample_count=f"--n-samples {N_SAMPLES} --sample-count-mismatch {EV['sample_count_mismatch']}",
        # Runs trained below data.resolution: every run also gets the signed bias on their band of
        # physical scales, so resolutions can be compared on the same scales (findings claim 10).
        bias_sizes=" ".join(map(str, BIAS_SIZES)),
    threads: config["threads"]["evaluate"]
    priority: 1  # a finished run is scored as soon as it can be, not all runs at the end
    log:
        f"{OUT}/logs/evaluate/{{family}}/{{run}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen evaluate --samples {input.samples} --real-features {params.features}"
        " --real-spectrum {input.spectrum} --real-name {params.real_name} --fake-name {wildcards.run}"
        " --out {output.metrics} --out-spectrum {output.spectrum} --out-features {output.features}"
        " --bias-sizes {params.bias_sizes} {params.conditional}"
        " --real-crop-spectra {input.crop_spectra} --net-specs {params.specs:q} {params.sample_count} --threads {threads} 2> {log}"


if FETCHABLE:

    localrules:
        fetch_weights,

    rule fetch_weights:
        output:
            [s["weights"] for s in FETCHABLE.values()],
        params:
            specs=json.dumps(FETCHABLE),
        log:
            f"{OUT}/logs/fetch_weights.log",
        shell:
            "python -m solargen fetch-weights --specs {params.specs:q} 2> {log}"
