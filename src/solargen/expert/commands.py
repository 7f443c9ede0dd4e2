"""``python -m solargen expert-eval …``: the human-expert test's packet, web form and statistics.

Steps registered with `solargen.steps.step` under the group ``expert-eval``, like the cli's.
"""

from __future__ import annotations

from pathlib import Path

from ..steps import arg, group, step

group("expert-eval", "human-expert test: blinded packet, local web form, statistics", dest="expert_command")


@step("expert-eval packet", "blinded packet of M real and M generated images per run, key apart "
      "(kept if it exists and its inputs are unchanged)",
      arg("--real", help="the real PNG folder"),
      arg("--runs", nargs="+", metavar="NAME=SAMPLES_DIR"),
      arg("--n-per-run", type=int, help="M: real and generated images per run and view"),
      arg("--crops", type=int, nargs="*", help="crop sides in px of the real frames"),
      arg("--no-full-disk", action="store_true", help="crops only"),
      arg("--seed", type=int, help="picks the images and crops"),
      arg("--shuffle-seed", type=int, help="presentation order (default: a fresh secret, kept in the key)"),
      arg("--out", help="the packet folder (served)"),
      arg("--key", help="the key (CSV); must lie outside the packet"),
      arg("--answers", help="answer files folder (default: answers/ beside the packet): a packet "
          "with answers is never rebuilt"),
      arg("--status", help="JSON written on success: packet id, item count, kept or built"))
def packet(*, real, runs, n_per_run, out, key, crops=(), no_full_disk=False, seed=0, shuffle_seed=None, answers=None,
           status=None):
    from ..io import write_json
    from .packet import ensure_packet

    try:
        table, action = ensure_packet(dict(kv.split("=", 1) for kv in runs), real, out, key, n_per_run,
                                      answers or Path(out).resolve().parent / "answers", full_disk=not no_full_disk,
                                      crops=crops, seed=seed, shuffle_seed=shuffle_seed)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    if status:
        write_json(status, {"packet": table["packet"].iloc[0], "items": len(table), "action": action,
                            "packet_dir": str(out), "key": str(key)})


@step("expert-eval serve", "the local web form over a packet",
      arg("packet"),
      arg("--answers", help="answer files folder (default: answers/ beside the packet)"),
      arg("--host", help="address to bind (default: this machine only)"),
      arg("--port", type=int),
      by_hand=True)
def serve(*, packet, answers=None, host="127.0.0.1", port=8765):
    from .server import serve as serve_form

    serve_form(packet, answers or Path(packet).resolve().parent / "answers", host=host, port=port)


@step("expert-eval analyse", "accuracy per expert, run and image type, with binomial tests",
      arg("--key"),
      arg("--answers", help="folder of <expert>.jsonl files"),
      arg("--real-name", help="the real set's name in results.csv"),
      arg("--out-table"),
      arg("--out-figure"),
      arg("--out-rows", help="results.csv-shaped rows (metric=human_accuracy)"))
def analyse(*, key, answers, out_table, real_name="real", out_figure=None, out_rows=None):
    from .analysis import analyse as analyse_answers

    analyse_answers(key, answers, out_table, out_figure, out_rows, real_name=real_name)
