# acquire → calibrate → split (time blocks) → global constants (a streaming reduce over the
# training split) → dataset.


include: "acquire.smk"


rule acquire_synthetic:
    """Synthetic AIA 193 Å level-1 frames (the embedded default source), one shard per job."""
    output:
        directory(f"{DATA}/raw/shard_{{shard}}"),
    params:
        n=lambda w: min(
            config["data"]["frames_per_shard"],
            config["data"]["n_frames"] - int(w.shard) * config["data"]["frames_per_shard"],
        ),
        first=lambda w: int(w.shard) * config["data"]["frames_per_shard"],
        syn=config["data"].get("synthetic", {}),  # absent for the JSOC and image-folder sources
        start=config["data"]["start"],
        cadence=config["data"]["cadence_s"],
        seed=config["seed"],
    log:
        f"{OUT}/logs/acquire/shard_{{shard}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen acquire-synthetic --out {output} --n {params.n} --first-index {params.first}"
        " --start {params.start} --cadence-s {params.cadence} --seed {params.seed}"
        " --native-size {params.syn[native_size]} --exptime {params.syn[exptime]}"
        " --bad-fraction {params.syn[bad_fraction]} 2> {log}"


rule calibrate:
    """Level 1 → 1.5 (pointing, registration, degradation, DN/s; switchable in
    data.calibration), binned to the study's resolution."""
    input:
        frames=lambda w: raw_input(w.shard),
        pointing=pointing_input(),
    output:
        f"{DATA}/calibrated/shard_{{shard}}.h5",
    params:
        size=config["data"]["resolution"],
        wavelength=config["data"]["wavelength"],
        flags=calibration_flags(config["data"]["calibration"]),
    log:
        f"{OUT}/logs/calibrate/shard_{{shard}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen calibrate --inputs {input.frames} --out {output} --size {params.size}"
        " --wavelength {params.wavelength} {params.flags} 2> {log}"


rule split:
    """Train/test split of the calibrated frames by contiguous time blocks (recorded per frame)."""
    input:
        expand(f"{DATA}/calibrated/shard_{{shard}}.h5", shard=SHARDS),
    output:
        f"{DATA}/split.json",
    params:
        split=SPLIT,
        test_fraction=config["data"].get("test_fraction", 0.1),
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
    """Global log-transform clip constants: a streaming reduce over the training split."""
    input:
        shards=expand(f"{DATA}/calibrated/shard_{{shard}}.h5", shard=SHARDS),
        split=f"{DATA}/split.json",
    output:
        f"{DATA}/constants.json",
    params:
        norm=NORM,
    log:
        f"{OUT}/logs/constants.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen constants --shards {input.shards} --split {input.split} --out {output}"
        " --low-percentile {params.norm[low_percentile]} --high-percentile {params.norm[high_percentile]}"
        " --bins-per-decade {params.norm[bins_per_decade]} 2> {log}"


rule dataset:
    """Normalised HDF5 dataset (streamed, one frame per chunk) and the study's PNG image folder."""
    input:
        shards=expand(f"{DATA}/calibrated/shard_{{shard}}.h5", shard=SHARDS),
        constants=f"{DATA}/constants.json",
        split=f"{DATA}/split.json",
    output:
        h5=DATASET,
        png=directory(f"{DATA}/{config['data']['name']}"),
    params:
        source=config["data"]["source"],
        norm=NORM,
    log:
        f"{OUT}/logs/dataset.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen dataset --shards {input.shards} --constants {input.constants}"
        " --split {input.split} --out {output.h5} --png-dir {output.png} --source {params.source}"
        " --quantisation {params.norm[quantisation]} --compression {params.norm[compression]} 2> {log}"


rule dataset_qa:
    """Report: pixel histograms before/after the log transform, the constants, example frames
    raw vs calibrated vs normalised, disk centre/radius statistics."""
    input:
        dataset=DATASET,
        shards=expand(f"{DATA}/calibrated/shard_{{shard}}.h5", shard=SHARDS),
        raw=[raw_input(s) for s in SHARDS],
    output:
        png=report(f"{OUT}/figures/dataset_qa.png", caption="../report/dataset_qa.rst", category="Dataset"),
        json=report(f"{OUT}/tables/dataset_qa.json", caption="../report/dataset_qa_json.rst", category="Dataset"),
    params:
        flip="--east-west-flip" if config["data"].get("augment", {}).get("east_west_flip") else "",
    log:
        f"{OUT}/logs/dataset_qa.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen dataset-qa --dataset {input.dataset} --shards {input.shards} --raw-dirs {input.raw}"
        " {params.flip} --out {output.png} --out-json {output.json} 2> {log}"


include: "channels.smk"
