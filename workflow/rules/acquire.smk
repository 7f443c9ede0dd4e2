# Data acquisition: synthetic level-1 frames (the embedded default), JSOC level 1 through drms
# exports or the synoptic 1k files over HTTP, or ingestion of a published image folder.
#
# JSOC sources: one query job and one download job per time chunk (the `shard` wildcard), both
# localrules — cluster compute nodes are offline, so they run where Snakemake runs (the login
# node). Downloaded FITS live in a persistent store (data.jsoc.store), NOT as Snakemake outputs:
# a re-run never deletes them, and each download job's output is a small done-manifest listing
# the verified files of its chunk, which the chunk's calibrate job reads. (Paths: common.smk.)

if SOURCE in JSOC_SOURCES:

    localrules:
        jsoc_query,
        jsoc_download,
        data_summary,

    rule jsoc_query:
        """Keywords of one time chunk → Parquet manifest: filters with reasons, one frame per slot."""
        output:
            f"{DATA}/acquire{{channel}}/manifest_{{shard}}.parquet",
        params:
            args=lambda w: jsoc_args(w.shard, channel_wavelength(w.channel)),
            origin=iso_time(JSOC["start"]),
            cadence=parse_cadence(JSOC["cadence"]),
        log:
            f"{OUT}/logs/acquire/query_{{shard}}{{channel}}.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen acquire-query {params.args} --origin {params.origin}"
            " --cadence-s {params.cadence} --chunk {wildcards.shard} --out {output} 2> {log}"

    rule jsoc_download:
        """Export (lev1) and fetch one chunk's frames into the store, verified; done-manifest out.

        Needs the JSOC-registered notify e-mail in the environment variable data.jsoc.email_env
        unless every file is already in the store."""
        input:
            f"{DATA}/acquire{{channel}}/manifest_{{shard}}.parquet",
        output:
            f"{DATA}/acquire{{channel}}/done_{{shard}}.parquet",
        params:
            args=lambda w: jsoc_args(w.shard, channel_wavelength(w.channel)),
            store=JSOC_STORE,
            email_env=JSOC["email_env"],
            connections=JSOC["connections"],
            poll=JSOC["poll_s"],
        log:
            f"{OUT}/logs/acquire/download_{{shard}}{{channel}}.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen acquire-download {params.args} --manifest {input} --store {params.store}"
            " --email-env {params.email_env} --connections {params.connections} --poll-s {params.poll}"
            " --out {output} 2> {log}"

    if POINTING == f"{DATA}/acquire/pointing_table.ecsv":

        localrules:
            pointing_table,

        rule pointing_table:
            """aia.master_pointing3h over the whole span, once: ECSV + sha256, for update_pointing."""
            output:
                POINTING,
            params:
                server=JSOC["server"],
                start=iso_time(JSOC["start"]),
                end=iso_time(JSOC["end"]),
                retries=JSOC["retries"],
                backoff=JSOC["backoff_s"],
            log:
                f"{OUT}/logs/acquire/pointing_table.log",
            conda:
                "../../envs/solargen.yaml"
            shell:
                "python -m solargen acquire-pointing --server {params.server} --start {params.start}"
                " --end {params.end} --retries {params.retries} --backoff-s {params.backoff} --out {output} 2> {log}"

    rule data_summary:
        """Frames kept and rejected per reason, and the time coverage, over all chunks."""
        input:
            expand(f"{DATA}/acquire/done_{{shard}}.parquet", shard=SHARDS),
        output:
            table=report(f"{OUT}/tables/data_summary.csv", caption="../report/data_summary.rst", category="Data"),
            figure=report(f"{OUT}/figures/data_summary.png", caption="../report/data_summary.rst", category="Data"),
            coverage=f"{OUT}/tables/data_coverage.json",
        log:
            f"{OUT}/logs/data_summary.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen acquire-summary --manifests {input} --out-table {output.table}"
            " --out-figure {output.figure} --out-coverage {output.coverage} 2> {log}"


if SOURCE == "image_folder":

    # The folder is already the normalised training set: skip calibrate/constants.
    ruleorder: dataset_image_folder > dataset

    rule dataset_image_folder:
        """dataset.h5 and the PNG folder straight from a published folder of normalised images."""
        input:
            config["data"]["image_folder"]["path"],
        output:
            h5=DATASET,
            png=directory(f"{DATA}/{config['data']['name']}"),
        params:
            size=config["data"]["resolution"],
        log:
            f"{OUT}/logs/dataset.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen dataset-images --folder {input} --out {output.h5} --png-dir {output.png}"
            " --size {params.size} --source image_folder 2> {log}"


if SOURCE == "synthetic":

    rule acquire_synthetic:
        """Synthetic AIA 193 Å level-1 frames (the embedded default source), one shard per job; an
        extra channel's at the same slots, of the same Sun."""
        output:
            directory(f"{DATA}/raw{{channel}}/shard_{{shard}}"),
        params:
            n=lambda w: min(
                config["data"]["frames_per_shard"],
                config["data"]["n_frames"] - int(w.shard) * config["data"]["frames_per_shard"],
            ),
            first=lambda w: int(w.shard) * config["data"]["frames_per_shard"],
            syn=config["data"]["synthetic"],
            start=config["data"]["start"],
            cadence=config["data"]["cadence_s"],
            seed=config["seed"],
            # Derived from the output path (so not a recorded parameter): an extra channel's frames.
            wavelength=lambda w, output: f"--wavelength {channel_wavelength(w.channel)}" if w.channel else "",
        log:
            f"{OUT}/logs/acquire/shard_{{shard}}{{channel}}.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen acquire-synthetic --out {output} --n {params.n} --first-index {params.first}"
            " --start {params.start} --cadence-s {params.cadence} --seed {params.seed}"
            " --native-size {params.syn[native_size]} --exptime {params.syn[exptime]}"
            " --bad-fraction {params.syn[bad_fraction]} {params.wavelength} 2> {log}"
