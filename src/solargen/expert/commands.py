"""``python -m solargen expert-eval …``: the human-expert test's packet, web form and statistics.

Kept out of `solargen.cli` like the acquisition's; `add_commands` registers them.
"""

from __future__ import annotations

from pathlib import Path


def _expert_packet(a):
    from ..io import write_json
    from .packet import ensure_packet

    runs = dict(kv.split("=", 1) for kv in a.runs)
    answers = a.answers or Path(a.out).resolve().parent / "answers"
    try:
        key, action = ensure_packet(runs, a.real, a.out, a.key, a.n_per_run, answers, full_disk=not a.no_full_disk,
                                    crops=a.crops, seed=a.seed, shuffle_seed=a.shuffle_seed)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if a.status:
        write_json(a.status, {"packet": key["packet"].iloc[0], "items": len(key), "action": action,
                              "packet_dir": str(a.out), "key": str(a.key)})


def _expert_serve(a):
    from .server import serve

    serve(a.packet, a.answers or Path(a.packet).resolve().parent / "answers", host=a.host, port=a.port)


def _expert_analyse(a):
    from .analysis import analyse

    analyse(a.key, a.answers, a.out_table, a.out_figure, a.out_rows, real_name=a.real_name)


def add_commands(sub) -> None:
    """Register ``expert-eval`` and its subcommands on an argparse subparsers object."""
    s = sub.add_parser("expert-eval", help="human-expert test: blinded packet, local web form, statistics")
    ex = s.add_subparsers(dest="expert_command", required=True)
    s = ex.add_parser("packet", help="blinded packet of M real and M generated images per run, key apart "
                      "(kept if it exists and its inputs are unchanged)")
    s.add_argument("--real", required=True, help="the real PNG folder")
    s.add_argument("--runs", nargs="+", required=True, metavar="NAME=SAMPLES_DIR")
    s.add_argument("--n-per-run", type=int, required=True, help="M: real and generated images per run and view")
    s.add_argument("--crops", type=int, nargs="*", default=[], help="crop sides in px of the real frames")
    s.add_argument("--no-full-disk", action="store_true", help="crops only")
    s.add_argument("--seed", type=int, default=0, help="picks the images and crops")
    s.add_argument("--shuffle-seed", type=int, help="presentation order (default: a fresh secret, kept in the key)")
    s.add_argument("--out", required=True, help="the packet folder (served)")
    s.add_argument("--key", required=True, help="the key (CSV); must lie outside the packet")
    s.add_argument("--answers", help="answer files folder (default: answers/ beside the packet): a packet "
                   "with answers is never rebuilt")
    s.add_argument("--status", help="JSON written on success: packet id, item count, kept or built")
    s.set_defaults(func=_expert_packet)
    s = ex.add_parser("serve", help="the local web form over a packet")
    s.add_argument("packet")
    s.add_argument("--answers", help="answer files folder (default: answers/ beside the packet)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default: this machine only)")
    s.add_argument("--port", type=int, default=8765)
    s.set_defaults(func=_expert_serve)
    s = ex.add_parser("analyse", help="accuracy per expert, run and image type, with binomial tests")
    s.add_argument("--key", required=True)
    s.add_argument("--answers", required=True, help="folder of <expert>.jsonl files")
    s.add_argument("--real-name", default="real", help="the real set's name in results.csv")
    s.add_argument("--out-table", required=True)
    s.add_argument("--out-figure")
    s.add_argument("--out-rows", help="results.csv-shaped rows (metric=human_accuracy)")
    s.set_defaults(func=_expert_analyse)
