# acquire → calibrate → split (time blocks) → global constants (a streaming reduce over the
# training split) → dataset.


rule calibrate:
    """Level 1 → 1.5 (pointing, registration, degradation, DN/s; switchable in
    data.calibration), binned to the study's resolution; an extra channel (data.extra_wavelengths)
    the same way, with its own wavelength (its degradation factor, its WAVELNTH check)."""
    input:
        frames=lambda w: raw_input(w.shard, w.channel),
        pointing=pointing_input(),
    output:
        f"{DATA}/calibrated{{channel}}/shard_{{shard}}.h5",
    params:
        size=config["data"]["resolution"],
        wavelength=lambda w: channel_wavelength(w.channel),
        flags=calibration_flags(config["data"]["calibration"]),
    log:
        f"{OUT}/logs/calibrate/shard_{{shard}}{{channel}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen calibrate --inputs {input.frames} --out {output} --size {params.size}"
        " --wavelength {params.wavelength} {params.flags} 2> {log}"


rule split:
    """Train/test split of the calibrated frames by contiguous time blocks (recorded per frame)."""
    input:
        calibrated_shards(),
    output:
        f"{DATA}/split.json",
    params:
        split=SPLIT,
        test_fraction=config["data"]["test_fraction"],
        seed=config["seed"],
    log:
        f"{OUT}/logs/split.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen split --shards {input} --out {output} --test-fraction {params.test_fraction}"
        " --block-hours {params.split[block_hours]} --placement {params.split[placement]}"
        " --guard-hours {params.split[guard_hours]} --seed {params.seed} 2> {log}"


rule normalisation_constants:
    """Global log-transform clip constants: a streaming reduce over the training split. An extra
    channel gets its own, over its frames matched by time to the target's training frames."""
    input:
        shards=lambda w: calibrated_shards(w.channel),
        reference=lambda w: calibrated_shards() if w.channel else [],
        split=f"{DATA}/split.json",
    output:
        f"{DATA}/constants{{channel}}.json",
    params:
        norm=NORM,
        # Derived from the inputs (so not a recorded parameter): only an extra channel has them.
        reference=lambda w, input: (
            f"--reference-shards {input.reference} --tolerance-s {config['data']['channel_tolerance_s']}"
            if input.reference
            else ""
        ),
    log:
        f"{OUT}/logs/constants{{channel}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen constants --shards {input.shards} --split {input.split} --out {output}"
        " {params.reference}"
        " --low-percentile {params.norm[low_percentile]} --high-percentile {params.norm[high_percentile]}"
        " --bins-per-decade {params.norm[bins_per_decade]} 2> {log}"


rule dataset:
    """Normalised HDF5 dataset (streamed, one frame per chunk) and the study's PNG image folder;
    extra channels as images_<wl>, aligned by time (frames lacking a channel are dropped, with the
    reason, in the dataset's attributes and the log)."""
    input:
        shards=calibrated_shards(),
        constants=f"{DATA}/constants.json",
        split=f"{DATA}/split.json",
        channel_shards=[calibrated_shards(channel_suffix(wl)) for wl in EXTRA_WAVELENGTHS],
        channel_constants=[f"{DATA}/constants{channel_suffix(wl)}.json" for wl in EXTRA_WAVELENGTHS],
    output:
        h5=DATASET,
        png=directory(REAL),
    params:
        source=config["data"]["source"],
        norm=NORM,
        # Derived from the inputs (so not a recorded parameter): present with extra channels only.
        channels=lambda w, input: " ".join(
            f"--channel {wl} {DATA}/constants{channel_suffix(wl)}.json {' '.join(calibrated_shards(channel_suffix(wl)))}"
            for wl in EXTRA_WAVELENGTHS
        )
        + (f" --tolerance-s {config['data']['channel_tolerance_s']}" if input.channel_constants else ""),
    log:
        f"{OUT}/logs/dataset.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen dataset --shards {input.shards} --constants {input.constants}"
        " --split {input.split} --out {output.h5} --png-dir {output.png} --source {params.source}"
        " --quantisation {params.norm[quantisation]} --compression {params.norm[compression]}"
        " {params.channels} 2> {log}"


rule dataset_qa:
    """Report: pixel histograms before/after the log transform, the constants, example frames
    raw vs calibrated vs normalised, disk centre/radius statistics."""
    input:
        dataset=DATASET,
        shards=calibrated_shards(),
        raw=[raw_input(s) for s in SHARDS],
    output:
        png=report(f"{OUT}/figures/dataset_qa.png", caption="../report/dataset_qa.rst", category="Dataset"),
        json=report(f"{OUT}/tables/dataset_qa.json", caption="../report/dataset_qa_json.rst", category="Dataset"),
    params:
        flip="--east-west-flip" if config["data"]["augment"]["east_west_flip"] else "",
    log:
        f"{OUT}/logs/dataset_qa.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen dataset-qa --dataset {input.dataset} --shards {input.shards} --raw-dirs {input.raw}"
        " {params.flip} --out {output.png} --out-json {output.json} 2> {log}"
