# acquire → calibrate → global constants (a reduce over all shards) → dataset.


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
    """Level 1 → 1.5 (aiapy register), DN/s, binned to the study's resolution."""
    input:
        calibrate_input,
    output:
        f"{DATA}/calibrated/shard_{{shard}}.h5",
    params:
        size=config["data"]["resolution"],
        wavelength=config["data"]["wavelength"],
        flags=" ".join(
            [
                "" if config["data"]["calibration"]["register"] else "--no-register",
                "" if config["data"]["calibration"]["exposure"] else "--no-exposure",
            ]
        ),
    log:
        f"{OUT}/logs/calibrate/shard_{{shard}}.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen calibrate --inputs {input} --out {output} --size {params.size}"
        " --wavelength {params.wavelength} {params.flags} 2> {log}"


rule normalisation_constants:
    """Global log-transform clip constants over the whole training set."""
    input:
        expand(f"{DATA}/calibrated/shard_{{shard}}.h5", shard=SHARDS),
    output:
        f"{DATA}/constants.json",
    params:
        norm=config["data"]["normalisation"],
        seed=config["seed"],
    log:
        f"{OUT}/logs/constants.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen constants --shards {input} --out {output}"
        " --low-percentile {params.norm[low_percentile]} --high-percentile {params.norm[high_percentile]}"
        " --seed {params.seed} 2> {log}"


rule dataset:
    """Normalised HDF5 dataset and the study's PNG image folder (the real set for the metrics)."""
    input:
        shards=expand(f"{DATA}/calibrated/shard_{{shard}}.h5", shard=SHARDS),
        constants=f"{DATA}/constants.json",
    output:
        h5=DATASET,
        png=directory(f"{DATA}/{config['data']['name']}"),
    params:
        source=config["data"]["source"],
    log:
        f"{OUT}/logs/dataset.log",
    conda:
        "../../envs/solargen.yaml"
    shell:
        "python -m solargen dataset --shards {input.shards} --constants {input.constants}"
        " --out {output.h5} --png-dir {output.png} --source {params.source} 2> {log}"
