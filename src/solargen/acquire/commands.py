"""``python -m solargen`` subcommands of the acquisition stage (JSOC, synoptic, image folder).

Steps registered with `solargen.steps.step`, like the cli's. Heavy imports stay inside the functions.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..steps import arg, step
from .download import BACKOFF_S, RETRIES

log = logging.getLogger(__name__)


def input_frames(inputs: str | os.PathLike) -> list[Path]:
    """Level-1 FITS files of a calibrate job: a folder's ``*.fits`` or a done-manifest's verified rows."""
    from ..io import InputError

    inputs = Path(inputs)
    if inputs.is_dir():
        paths = sorted(inputs.glob("*.fits"))
    else:
        from .manifest import paths_of, read_manifest

        paths = paths_of(read_manifest(inputs))
        gone = [p for p in paths if not p.exists()]
        if gone:
            raise InputError(f"{inputs}: {len(gone)} verified file(s) are no longer in the store, e.g. {gone[0]}; "
                             "re-run the chunk's download job (snakemake -R jsoc_download)")
    if not paths:
        raise InputError(f"{inputs}: no FITS files")
    return paths


def input_records(inputs: str | os.PathLike) -> dict | None:
    """For a done-manifest: what each stored file must be (`manifest.stored_records`), which the
    calibration checks; None for a folder of FITS files."""
    if Path(inputs).is_dir():
        return None
    from .manifest import read_manifest, stored_records

    return stored_records(read_manifest(inputs))


def _filters(wavelength, nominal_exptime, exptime_min_fraction, min_percentd) -> dict:
    return {"wavelength": wavelength, "nominal_exptime": nominal_exptime,
            "min_exptime_fraction": exptime_min_fraction, "min_percentd": min_percentd}


@step("acquire-synthetic", "write synthetic AIA 193 Å level-1 FITS frames",
      arg("--out"),
      arg("--n", type=int),
      arg("--first-index", type=int),
      arg("--start"),
      arg("--cadence-s", type=float),
      arg("--seed", type=int),
      arg("--native-size", type=int),
      arg("--exptime", type=float),
      arg("--bad-fraction", type=float),
      arg("--wavelength", type=int, help="WAVELNTH (Å): 193, or an extra channel (171, 211)"))
def acquire_synthetic(*, out, n, first_index=0, start="2011-01-01T00:00:00", cadence_s=7200.0, seed=0,
                      native_size=4096, exptime=2.0, bad_fraction=0.0, wavelength=193):
    from ..io import atomic_dir
    from .synthetic import write_synthetic_series

    with atomic_dir(out) as tmp:
        write_synthetic_series(tmp, n, start, cadence_s, seed, native_size=native_size, exptime=exptime,
                               first_index=first_index, wavelength=wavelength, bad_fraction=bad_fraction)


#: Defaults of the options the JSOC steps share, written once for their signatures.
JSOC_URL, SERIES, SEGMENT = "http://jsoc.stanford.edu/", "aia.lev1_euv_12s", "image"
WINDOW_S, NOMINAL_EXPTIME, EXPTIME_MIN_FRACTION, MIN_PERCENTD = 60.0, 2.0, 0.8, 99.9

#: The options acquire-query and acquire-download share (both steps take them all).
CHUNK_ARGS = (
    arg("--source", choices=["jsoc_lev1", "jsoc_synoptic"]),
    arg("--server", help="JSOC base URL (tests: the fake one)"),
    arg("--series"),
    arg("--segment"),
    arg("--wavelength", type=int),
    arg("--start", help="chunk start (TAI, ISO)"),
    arg("--end", help="chunk end, exclusive (TAI, ISO)"),
    arg("--window-s", type=float, help="how far from its slot a stand-in frame may be"),
    arg("--nominal-exptime", type=float),
    arg("--exptime-min-fraction", type=float),
    arg("--min-percentd", type=float),
    arg("--retries", type=int),
    arg("--backoff-s", type=float),
)


@step("acquire-query", "query one time chunk's keywords into a filtered Parquet manifest",
      *CHUNK_ARGS,
      arg("--origin", help="time the cadence slots count from (TAI, ISO)"),
      arg("--cadence-s", type=float),
      arg("--chunk"),
      arg("--out"))
def acquire_query(*, source, start, end, origin, cadence_s, chunk, out, server=JSOC_URL, series=SERIES,
                  segment=SEGMENT, wavelength=193, window_s=WINDOW_S, nominal_exptime=NOMINAL_EXPTIME,
                  exptime_min_fraction=EXPTIME_MIN_FRACTION, min_percentd=MIN_PERCENTD, retries=RETRIES,
                  backoff_s=BACKOFF_S):
    from .manifest import write_manifest

    if source == "jsoc_lev1":
        from .jsoc import client, query_chunk

        df = query_chunk(client(server), series=series, wavelength=wavelength, t0=start, t1=end, origin=origin,
                         cadence_s=cadence_s, window_s=window_s, chunk=chunk,
                         filters=_filters(wavelength, nominal_exptime, exptime_min_fraction, min_percentd),
                         retries=retries, backoff_s=backoff_s)
    else:
        from .synoptic import synoptic_manifest

        df = synoptic_manifest(server_url=server, wavelength=wavelength, t0=start, t1=end, origin=origin,
                               cadence_s=cadence_s, chunk=chunk)
    write_manifest(df, out)
    log.info("%s: %d rows (%d selected)", out, len(df), int((df["status"] == "selected").sum()))


@step("acquire-download", "fetch and verify one chunk's frames; write its done-manifest",
      *CHUNK_ARGS,
      arg("--manifest"),
      arg("--store", help="persistent folder of the downloaded FITS files"),
      arg("--email-env", help="environment variable holding the JSOC notify e-mail"),
      arg("--connections", type=int, choices=[1, 2]),
      arg("--poll-s", type=float, help="seconds between export status calls"),
      arg("--timeout-s", type=float, help="socket timeout per HTTP request"),
      arg("--out"))
def acquire_download(*, source, start, end, manifest, store, out, server=JSOC_URL, series=SERIES, segment=SEGMENT,
                     wavelength=193, window_s=WINDOW_S, nominal_exptime=NOMINAL_EXPTIME,
                     exptime_min_fraction=EXPTIME_MIN_FRACTION, min_percentd=MIN_PERCENTD, retries=RETRIES,
                     backoff_s=BACKOFF_S, email_env="JSOC_EMAIL", connections=1, poll_s=10.0, timeout_s=60.0):
    from ..io import InputError
    from .manifest import read_manifest, write_manifest

    df = read_manifest(manifest)
    kw = {"retries": retries, "backoff_s": backoff_s, "timeout_s": timeout_s}
    if source == "jsoc_lev1":
        from .jsoc import client, download_chunk

        email = os.environ.get(email_env, "").strip() or None
        done = download_chunk(df, store, series=series, wavelength=wavelength, segment=segment,
                              c=(lambda: client(server, email=email)) if email else None, email=email, t0=start,
                              t1=end, connections=connections, poll_s=poll_s, **kw)
    else:
        from .synoptic import download_synoptic_chunk

        done = download_synoptic_chunk(df, store, server_url=server, wavelength=wavelength, window_s=window_s,
                                       filters=_filters(wavelength, nominal_exptime, exptime_min_fraction,
                                                        min_percentd),
                                       connections=connections, **kw)
    failed = done[done["status"] == "failed"]
    counts = done["status"].value_counts().to_dict()
    log.info("chunk %s: %s", manifest, counts)
    if len(failed):
        # No done-manifest: Snakemake sees the job failed; the store keeps every verified file, so
        # the re-run fetches only these.
        raise InputError(f"{len(failed)} file(s) of {manifest} could not be fetched intact "
                         f"(first: {failed['reject_reason'].iloc[0]}); re-run to resume")
    write_manifest(done, out)


@step("acquire-pointing", "fetch aia.master_pointing3h for a span into an ECSV table (+ sha256)",
      arg("--server"),
      arg("--start", help="span start (ISO)"),
      arg("--end", help="span end (ISO)"),
      arg("--retries", type=int),
      arg("--backoff-s", type=float),
      arg("--out"))
def acquire_pointing(*, start, end, out, server=JSOC_URL, retries=RETRIES, backoff_s=BACKOFF_S):
    from .jsoc import client, fetch_pointing_table

    fetch_pointing_table(client(server), start, end, out, retries=retries, backoff_s=backoff_s)


@step("acquire-summary", "frames kept/rejected per reason and time coverage (table, figure)",
      arg("--manifests", nargs="+"),
      arg("--out-table"),
      arg("--out-figure"),
      arg("--out-coverage"))
def acquire_summary(*, manifests, out_table, out_figure, out_coverage=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from ..io import atomic_path, write_json
    from .manifest import read_manifest, summary

    frames = [read_manifest(p) for p in manifests]
    table, coverage = summary(frames)
    with atomic_path(out_table) as tmp:
        table.to_csv(tmp, index=False)
    if out_coverage:
        write_json(out_coverage, coverage)
    df = pd.concat(frames, ignore_index=True)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [1.2, 1]})
    t = table[table["status"] != "unused"].copy()
    t["label"] = [f"{s}: {r[:60]}" if r else s for s, r in zip(t["status"], t["reason"])]
    colours = {"verified": "tab:green", "rejected": "tab:red", "missing": "tab:grey", "failed": "black",
               "selected": "tab:blue"}
    ax0.barh(t["label"][::-1], t["frames"][::-1], color=[colours.get(s, "tab:blue") for s in t["status"][::-1]])
    ax0.set_xlabel("frames")
    ax0.set_title("frames kept and rejected, by reason")
    ax0.tick_params(axis="y", labelsize=7)
    ok = df[df["status"] == "verified"]
    if len(ok):
        from .records import parse_time

        days = pd.Series(1, index=pd.DatetimeIndex([parse_time(x) for x in ok["t_rec"]])).resample("1D").sum()
        ax1.plot(days.index, days.values, drawstyle="steps-mid")
    ax1.set_ylabel("verified frames per day")
    ax1.set_title(f"coverage: {coverage['slots_filled']} of {coverage['slots']} cadence slots filled")
    fig.autofmt_xdate()
    fig.tight_layout()
    with atomic_path(out_figure) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


@step("dataset-images", "dataset.h5 and PNG folder straight from a folder of normalised images",
      arg("--folder"),
      arg("--out"),
      arg("--png-dir"),
      arg("--size", type=int),
      arg("--source"))
def dataset_images(*, folder, out, size, png_dir=None, source="image_folder"):
    from .image_folder import build_dataset_from_images

    n = build_dataset_from_images(folder, out, size, png_dir=png_dir, source=source)
    log.info("dataset: %d frames from %s", n, folder)
