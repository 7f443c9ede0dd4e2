"""``python -m solargen`` subcommands of the acquisition stage (JSOC, synoptic, image folder).

Kept out of `solargen.cli` so that file stays a list of steps; `add_commands` registers them.
Heavy imports stay inside the functions.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

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


def _filters(a) -> dict:
    return {"wavelength": a.wavelength, "nominal_exptime": a.nominal_exptime,
            "min_exptime_fraction": a.exptime_min_fraction, "min_percentd": a.min_percentd}


def _query(a):
    from .manifest import write_manifest

    if a.source == "jsoc_lev1":
        from .jsoc import client, query_chunk

        df = query_chunk(client(a.server), series=a.series, wavelength=a.wavelength, t0=a.start, t1=a.end,
                         origin=a.origin, cadence_s=a.cadence_s, window_s=a.window_s, chunk=a.chunk,
                         filters=_filters(a), retries=a.retries, backoff_s=a.backoff_s)
    else:
        from .synoptic import synoptic_manifest

        df = synoptic_manifest(server_url=a.server, wavelength=a.wavelength, t0=a.start, t1=a.end, origin=a.origin,
                               cadence_s=a.cadence_s, chunk=a.chunk)
    write_manifest(df, a.out)
    log.info("%s: %d rows (%d selected)", a.out, len(df), int((df["status"] == "selected").sum()))


def _pointing(a):
    from .jsoc import client, fetch_pointing_table

    fetch_pointing_table(client(a.server), a.start, a.end, a.out, retries=a.retries, backoff_s=a.backoff_s)


def _download(a):
    from ..io import InputError
    from .manifest import read_manifest, write_manifest

    df = read_manifest(a.manifest)
    kw = {"retries": a.retries, "backoff_s": a.backoff_s, "timeout_s": a.timeout_s}
    if a.source == "jsoc_lev1":
        from .jsoc import client, download_chunk

        email = os.environ.get(a.email_env, "").strip() or None
        done = download_chunk(df, a.store, series=a.series, wavelength=a.wavelength, segment=a.segment,
                              c=(lambda: client(a.server, email=email)) if email else None, email=email, t0=a.start,
                              t1=a.end, connections=a.connections, poll_s=a.poll_s, **kw)
    else:
        from .synoptic import download_synoptic_chunk

        done = download_synoptic_chunk(df, a.store, server_url=a.server, wavelength=a.wavelength,
                                       window_s=a.window_s, filters=_filters(a), connections=a.connections, **kw)
    failed = done[done["status"] == "failed"]
    counts = done["status"].value_counts().to_dict()
    log.info("chunk %s: %s", a.manifest, counts)
    if len(failed):
        # No done-manifest: Snakemake sees the job failed; the store keeps every verified file, so
        # the re-run fetches only these.
        raise InputError(f"{len(failed)} file(s) of {a.manifest} could not be fetched intact "
                         f"(first: {failed['reject_reason'].iloc[0]}); re-run to resume")
    write_manifest(done, a.out)


def _summary(a):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    from ..io import atomic_path, write_json
    from .manifest import read_manifest, summary

    frames = [read_manifest(p) for p in a.manifests]
    table, coverage = summary(frames)
    with atomic_path(a.out_table) as tmp:
        table.to_csv(tmp, index=False)
    if a.out_coverage:
        write_json(a.out_coverage, coverage)
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
    with atomic_path(a.out_figure) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)


def _dataset_images(a):
    from .image_folder import build_dataset_from_images

    n = build_dataset_from_images(a.folder, a.out, a.size, png_dir=a.png_dir, source=a.source)
    log.info("dataset: %d frames from %s", n, a.folder)


def _common(s, download: bool):
    s.add_argument("--source", choices=["jsoc_lev1", "jsoc_synoptic"], required=True)
    s.add_argument("--server", default="http://jsoc.stanford.edu/", help="JSOC base URL (tests: the fake one)")
    s.add_argument("--series", default="aia.lev1_euv_12s")
    s.add_argument("--segment", default="image")
    s.add_argument("--wavelength", type=int, default=193)
    s.add_argument("--start", required=True, help="chunk start (TAI, ISO)")
    s.add_argument("--end", required=True, help="chunk end, exclusive (TAI, ISO)")
    s.add_argument("--window-s", type=float, default=60.0, help="how far from its slot a stand-in frame may be")
    s.add_argument("--nominal-exptime", type=float, default=2.0)
    s.add_argument("--exptime-min-fraction", type=float, default=0.8)
    s.add_argument("--min-percentd", type=float, default=99.9)
    s.add_argument("--retries", type=int, default=6)
    s.add_argument("--backoff-s", type=float, default=2.0)


def add_commands(sub) -> None:
    """Register the acquisition subcommands on an argparse subparsers object."""
    s = sub.add_parser("acquire-query", help="query one time chunk's keywords into a filtered Parquet manifest")
    _common(s, download=False)
    s.add_argument("--origin", required=True, help="time the cadence slots count from (TAI, ISO)")
    s.add_argument("--cadence-s", type=float, required=True)
    s.add_argument("--chunk", required=True)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_query)

    s = sub.add_parser("acquire-download", help="fetch and verify one chunk's frames; write its done-manifest")
    _common(s, download=True)
    s.add_argument("--manifest", required=True)
    s.add_argument("--store", required=True, help="persistent folder of the downloaded FITS files")
    s.add_argument("--email-env", default="JSOC_EMAIL", help="environment variable holding the JSOC notify e-mail")
    s.add_argument("--connections", type=int, default=1, choices=[1, 2])
    s.add_argument("--poll-s", type=float, default=10.0, help="seconds between export status calls")
    s.add_argument("--timeout-s", type=float, default=60.0, help="socket timeout per HTTP request")
    s.add_argument("--out", required=True)
    s.set_defaults(func=_download)

    s = sub.add_parser("acquire-pointing", help="fetch aia.master_pointing3h for a span into an ECSV table (+ sha256)")
    s.add_argument("--server", default="http://jsoc.stanford.edu/")
    s.add_argument("--start", required=True, help="span start (ISO)")
    s.add_argument("--end", required=True, help="span end (ISO)")
    s.add_argument("--retries", type=int, default=6)
    s.add_argument("--backoff-s", type=float, default=2.0)
    s.add_argument("--out", required=True)
    s.set_defaults(func=_pointing)

    s = sub.add_parser("acquire-summary", help="frames kept/rejected per reason and time coverage (table, figure)")
    s.add_argument("--manifests", nargs="+", required=True)
    s.add_argument("--out-table", required=True)
    s.add_argument("--out-figure", required=True)
    s.add_argument("--out-coverage")
    s.set_defaults(func=_summary)

    s = sub.add_parser("dataset-images", help="dataset.h5 and PNG folder straight from a folder of normalised images")
    s.add_argument("--folder", required=True)
    s.add_argument("--out", required=True)
    s.add_argument("--png-dir")
    s.add_argument("--size", type=int, required=True)
    s.add_argument("--source", default="image_folder")
    s.set_defaults(func=_dataset_images)
