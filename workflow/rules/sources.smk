# Which data source this config uses, and what the data rules need to know about it (no rules here).
# JSOC sources replace the synthetic shards (n_frames / frames_per_shard) by time chunks.

SOURCE = config["data"]["source"]
JSOC_SOURCES = ("jsoc_lev1", "jsoc_synoptic")

if SOURCE in JSOC_SOURCES:
    from solargen.acquire.records import iso_time, parse_cadence, time_chunks

    JSOC = config["data"]["jsoc"]
    JSOC_STORE = JSOC.get("store") or f"{DATA}/store"
    CHUNK_TIMES = time_chunks(JSOC["start"], JSOC["end"], JSOC.get("chunk_days", 30))
    # One shard per time chunk (replaces the synthetic n_frames / frames_per_shard split).
    SHARDS = [f"{i:04d}" for i in range(len(CHUNK_TIMES))]


#: data.calibration.pointing_table: "jsoc" = fetched by the acquisition stage (rule pointing_table).
POINTING = config["data"].get("calibration", {}).get("pointing_table")
if POINTING == "jsoc":
    if SOURCE != "jsoc_lev1":
        raise ValueError(f"data.calibration.pointing_table: jsoc needs data.source: jsoc_lev1 (got {SOURCE}); "
                         "set a table file or null (the level-1 header's pointing)")
    POINTING = f"{DATA}/acquire/pointing_table.ecsv"


def pointing_input():
    """The calibrate jobs' pointing-table file, when one is configured (fetched or given)."""
    return [POINTING] if POINTING else []


def raw_input(shard):
    """A shard's level-1 frames: a synthetic shard's FITS folder, or a JSOC chunk's done-manifest."""
    if SOURCE in JSOC_SOURCES:
        return f"{DATA}/acquire/done_{shard}.parquet"
    return f"{DATA}/raw/shard_{shard}"


def jsoc_args(shard, wavelength=None):
    """CLI arguments shared by the query and download commands of one chunk (of the target
    channel, or of the extra channel ``wavelength``: same slots, that channel's nominal EXPTIME)."""
    t0, t1 = CHUNK_TIMES[int(shard)]
    j = JSOC
    if wavelength is None:
        wavelength, nominal = config["data"]["wavelength"], j.get("nominal_exptime", 2.0)
    else:
        from solargen.acquire.manifest import NOMINAL_EXPTIME_S

        nominal = NOMINAL_EXPTIME_S[int(wavelength)]
    return (
        f"--source {SOURCE} --server {j.get('server', 'http://jsoc.stanford.edu/')}"
        f" --series {j.get('series', 'aia.lev1_euv_12s')} --segment {j.get('segment', 'image')}"
        f" --wavelength {wavelength} --start {iso_time(t0)} --end {iso_time(t1)}"
        f" --window-s {j.get('window_s', 60)} --nominal-exptime {nominal}"
        f" --exptime-min-fraction {j.get('exptime_min_fraction', 0.8)}"
        f" --min-percentd {j.get('min_percentd', 99.9)} --retries {j.get('retries', 6)}"
        f" --backoff-s {j.get('backoff_s', 2.0)}"
    )


# Optional extra channels (data.extra_wavelengths; rules in channels.smk).
EXTRA_WAVELENGTHS = [int(w) for w in config["data"].get("extra_wavelengths", [])]
CHANNEL_TOLERANCE_S = config["data"].get("channel_tolerance_s", 120)


def channel_raw_input(wavelength, shard):
    """An extra channel's level-1 frames of one shard (synthetic folder or JSOC done-manifest)."""
    if SOURCE in JSOC_SOURCES:
        return f"{DATA}/acquire_{wavelength}/done_{shard}.parquet"
    return f"{DATA}/raw_{wavelength}/shard_{shard}"


def channel_shards(wavelength):
    return expand(f"{DATA}/calibrated_{wavelength}/shard_{{shard}}.h5", shard=SHARDS)
