# Optional extra channels (data.extra_wavelengths, e.g. 171 and 211 Å) for channel translation.
# Each is acquired at the target channel's slots, calibrated with its own wavelength and gets its
# own global constants over the training split, through the same commands as 193 Å; the dataset
# then holds them as images_<wl>, aligned by time. Absent: no rule here exists. (Their
# paths: sources.smk.)

if EXTRA_WAVELENGTHS:

    wildcard_constraints:
        wavelength="|".join(map(str, EXTRA_WAVELENGTHS)),

    rule acquire_synthetic_channel:
        """Synthetic level-1 frames of an extra channel: the same slots and Sun as the 193 Å shard."""
        output:
            directory(f"{DATA}/raw_{{wavelength}}/shard_{{shard}}"),
        params:
            n=lambda w: min(
                config["data"]["frames_per_shard"],
                config["data"]["n_frames"] - int(w.shard) * config["data"]["frames_per_shard"],
            ),
            first=lambda w: int(w.shard) * config["data"]["frames_per_shard"],
            syn=config["data"].get("synthetic", {}),
            start=config["data"]["start"],
            cadence=config["data"]["cadence_s"],
            seed=config["seed"],
        log:
            f"{OUT}/logs/acquire/shard_{{shard}}_{{wavelength}}.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen acquire-synthetic --out {output} --n {params.n} --first-index {params.first}"
            " --start {params.start} --cadence-s {params.cadence} --seed {params.seed}"
            " --native-size {params.syn[native_size]} --exptime {params.syn[exptime]}"
            " --bad-fraction {params.syn[bad_fraction]} --wavelength {wildcards.wavelength} 2> {log}"

    if SOURCE in JSOC_SOURCES:

        localrules:
            jsoc_query_channel,
            jsoc_download_channel,

        rule jsoc_query_channel:
            """Keywords of one time chunk of an extra channel → its manifest (the same slots)."""
            output:
                f"{DATA}/acquire_{{wavelength}}/manifest_{{shard}}.parquet",
            params:
                args=lambda w: jsoc_args(w.shard, w.wavelength),
                origin=iso_time(JSOC["start"]),
                cadence=parse_cadence(JSOC["cadence"]),
            log:
                f"{OUT}/logs/acquire/query_{{shard}}_{{wavelength}}.log",
            conda:
                "../../envs/solargen.yaml"
            shell:
                "python -m solargen acquire-query {params.args} --origin {params.origin}"
                " --cadence-s {params.cadence} --chunk {wildcards.shard} --out {output} 2> {log}"

        rule jsoc_download_channel:
            """Export and fetch one chunk of an extra channel into the same store; done-manifest out."""
            input:
                f"{DATA}/acquire_{{wavelength}}/manifest_{{shard}}.parquet",
            output:
                f"{DATA}/acquire_{{wavelength}}/done_{{shard}}.parquet",
            params:
                args=lambda w: jsoc_args(w.shard, w.wavelength),
                store=JSOC_STORE,
                email_env=JSOC.get("email_env", "JSOC_EMAIL"),
                connections=JSOC.get("connections", 1),
                poll=JSOC.get("poll_s", 10),
            log:
                f"{OUT}/logs/acquire/download_{{shard}}_{{wavelength}}.log",
            conda:
                "../../envs/solargen.yaml"
            shell:
                "python -m solargen acquire-download {params.args} --manifest {input} --store {params.store}"
                " --email-env {params.email_env} --connections {params.connections} --poll-s {params.poll}"
                " --out {output} 2> {log}"

    rule calibrate_channel:
        """Level 1 → 1.5 of an extra channel: the same calibration, with the channel's own
        wavelength (its degradation factor, its WAVELNTH check)."""
        input:
            frames=lambda w: channel_raw_input(w.wavelength, w.shard),
            pointing=pointing_input(),
        output:
            f"{DATA}/calibrated_{{wavelength}}/shard_{{shard}}.h5",
        params:
            size=config["data"]["resolution"],
            flags=calibration_flags(config["data"]["calibration"]),
        log:
            f"{OUT}/logs/calibrate/shard_{{shard}}_{{wavelength}}.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen calibrate --inputs {input.frames} --out {output} --size {params.size}"
            " --wavelength {wildcards.wavelength} {params.flags} 2> {log}"

    rule normalisation_constants_channel:
        """An extra channel's own global constants over the training split (its frames matched
        by time to the target channel's training frames)."""
        input:
            shards=lambda w: channel_shards(w.wavelength),
            reference=expand(f"{DATA}/calibrated/shard_{{shard}}.h5", shard=SHARDS),
            split=f"{DATA}/split.json",
        output:
            f"{DATA}/constants_{{wavelength}}.json",
        params:
            norm=NORM,
            tolerance=CHANNEL_TOLERANCE_S,
        log:
            f"{OUT}/logs/constants_{{wavelength}}.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen constants --shards {input.shards} --split {input.split} --out {output}"
            " --reference-shards {input.reference} --tolerance-s {params.tolerance}"
            " --low-percentile {params.norm[low_percentile]} --high-percentile {params.norm[high_percentile]}"
            " --bins-per-decade {params.norm[bins_per_decade]} 2> {log}"

    ruleorder: dataset_channels > dataset

    rule dataset_channels:
        """The dataset with the extra channels as images_<wl>, aligned by time; frames lacking a
        channel are dropped, with the reason, in the dataset's attributes and the log."""
        input:
            shards=expand(f"{DATA}/calibrated/shard_{{shard}}.h5", shard=SHARDS),
            constants=f"{DATA}/constants.json",
            split=f"{DATA}/split.json",
            channel_shards=[channel_shards(wl) for wl in EXTRA_WAVELENGTHS],
            channel_constants=[f"{DATA}/constants_{wl}.json" for wl in EXTRA_WAVELENGTHS],
        output:
            h5=DATASET,
            png=directory(f"{DATA}/{config['data']['name']}"),
        params:
            source=config["data"]["source"],
            norm=NORM,
            channels=" ".join(
                f"--channel {wl} {DATA}/constants_{wl}.json {' '.join(channel_shards(wl))}" for wl in EXTRA_WAVELENGTHS
            ),
            tolerance=CHANNEL_TOLERANCE_S,
        log:
            f"{OUT}/logs/dataset.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen dataset --shards {input.shards} --constants {input.constants}"
            " --split {input.split} --out {output.h5} --png-dir {output.png} --source {params.source}"
            " --quantisation {params.norm[quantisation]} --compression {params.norm[compression]}"
            " {params.channels} --tolerance-s {params.tolerance} 2> {log}"
