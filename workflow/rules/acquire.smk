# Data acquisition from JSOC (level 1 through drms exports, or the synoptic 1k files over HTTP) and
# ingestion of a published image folder. Included from data.smk, before its rules.
#
# JSOC sources: one query job and one download job per time chunk (the `shard` wildcard), both
# localrules — cluster compute nodes are offline, so they run where Snakemake runs (the login
# node). Downloaded FITS live in a persistent store (data.jsoc.store), NOT as Snakemake outputs:
# a re-run never deletes them, and each download job's output is a small done-manifest listing
# the verified files of its chunk, which the chunk's calibrate job reads.

SOURCE = config["data"]["source"]
JSOC_SOURCES = ("jsoc_lev1", "jsoc_synoptic")

if SOURCE in JSOC_SOURCES:
    from solargen.acquire.records import iso_time, parse_cadence, time_chunks

    JSOC = config["data"]["jsoc"]
    JSOC_STORE = JSOC.get("store") or f"{DATA}/store"
    CHUNK_TIMES = time_chunks(JSOC["start"], JSOC["end"], JSOC.get("chunk_days", 30))
    # One shard per time chunk (replaces the synthetic n_frames / frames_per_shard split).
    SHARDS = [f"{i:04d}" for i in range(len(CHUNK_TIMES))]


def calibrate_input(wildcards):
    """A synthetic shard's FITS folder, or a JSOC chunk's done-manifest."""
    if SOURCE in JSOC_SOURCES:
        return f"{DATA}/acquire/done_{wildcards.shard}.parquet"
    return f"{DATA}/raw/shard_{wildcards.shard}"


def jsoc_args(shard):
    """CLI arguments shared by the query and download commands of one chunk."""
    t0, t1 = CHUNK_TIMES[int(shard)]
    j = JSOC
    return (
        f"--source {SOURCE} --server {j.get('server', 'http://jsoc.stanford.edu/')}"
        f" --series {j.get('series', 'aia.lev1_euv_12s')} --segment {j.get('segment', 'image')}"
        f" --wavelength {config['data']['wavelength']} --start {iso_time(t0)} --end {iso_time(t1)}"
        f" --window-s {j.get('window_s', 60)} --nominal-exptime {j.get('nominal_exptime', 2.0)}"
        f" --exptime-min-fraction {j.get('exptime_min_fraction', 0.8)}"
        f" --min-percentd {j.get('min_percentd', 99.9)} --retries {j.get('retries', 6)}"
        f" --backoff-s {j.get('backoff_s', 2.0)}"
    )


if SOURCE in JSOC_SOURCES:

    localrules:
        jsoc_query,
        jsoc_download,
        data_summary,

    rule jsoc_query:
        """Keywords of one time chunk → Parquet manifest: filters with reasons, one frame per slot."""
        output:
            f"{DATA}/acquire/manifest_{{shard}}.parquet",
        params:
            args=lambda w: jsoc_args(w.shard),
            origin=iso_time(JSOC["start"]),
            cadence=parse_cadence(JSOC["cadence"]),
        log:
            f"{OUT}/logs/acquire/query_{{shard}}.log",
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
            f"{DATA}/acquire/manifest_{{shard}}.parquet",
        output:
            f"{DATA}/acquire/done_{{shard}}.parquet",
        params:
            args=lambda w: jsoc_args(w.shard),
            store=JSOC_STORE,
            email_env=JSOC.get("email_env", "JSOC_EMAIL"),
            connections=JSOC.get("connections", 1),
            poll=JSOC.get("poll_s", 10),
        log:
            f"{OUT}/logs/acquire/download_{{shard}}.log",
        conda:
            "../../envs/solargen.yaml"
        shell:
            "python -m solargen acquire-download {params.args} --manifest {input} --store {params.store}"
            " --email-env {params.email_env} --connections {params.connections} --poll-s {params.poll}"
            " --out {output} 2> {log}"

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
