# Real-set features and spectra once per network; then every run against them.

REAL = f"{DATA}/{config['data']['name']}"
#: The configured feature networks (where their weights are), for every command that extracts features.
NET_SPECS = json.dumps(config["evaluation"].get("feature_networks", {}))


def weights_present(net):
    """Whether a network's weights file is here: a params value, so fetching it later re-runs the
    features that were "not run" without it."""
    w = config["evaluation"].get("feature_networks", {}).get(net, {}).get("weights")
    return bool(w) and os.path.isfile(w)


rule real_features:
    input:
        REAL,
    output:
        f"{OUT}/real/features_{{net}}.npz",
    params:
        specs=NET_SPECS,
        weights_present=lambda w: weights_present(w.net),
    threads: config["threads"]["evaluate"]
    log:
        f"{OUT}/logs/real_features_{{net}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen features --images {input} --net {wildcards.net} --out {output}"
        " --net-specs {params.specs:q} --threads {threads} 2> {log}"


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
        specs=NET_SPECS,
        weights_present=lambda w: weights_present(w.net),
        on_disk=(
            f"--crop-on-disk {config['evaluation']['crop_on_disk']}" if config["evaluation"].get("crop_on_disk") else ""
        ),
    threads: config["threads"]["evaluate"]
    log:
        f"{OUT}/logs/real_features_{{net}}-{{crop}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen features --images {input} --net {wildcards.net} --crop {wildcards.crop:q}"
        " --crops-per-image {params.per_image} --crop-seed {params.seed} --crop-reference {params.reference}"
        " {params.on_disk} --out {output:q} --net-specs {params.specs:q} --threads {threads} 2> {log:q}"


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
        specs=NET_SPECS,
    threads: config["threads"]["evaluate"]
    log:
        f"{OUT}/logs/evaluate/{{family}}/{{run}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen evaluate --samples {input.samples} --real-features {params.features}"
        " --real-spectrum {input.spectrum} --real-name {params.real_name} --fake-name {wildcards.run}"
        " --out {output.metrics} --out-spectrum {output.spectrum} {params.conditional}"
        " --net-specs {params.specs:q} --threads {threads} 2> {log}"


#: Feature-network weights with a download address: fetched only when asked for
#: (``snakemake fetch_weights``, on a machine with internet, e.g. a cluster login node). Nothing
#: depends on them, so an offline run never tries; without them those metrics are "not run".
FETCHABLE = {n: s for n, s in config["evaluation"].get("feature_networks", {}).items() if s.get("url")}


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
