"""The expert test at the paper's scale: building a packet of 1024-px frames, and answering it.

Builds a packet like config/config.yaml's (2 runs, M = 50, whole frames and 256-px crops: 400
images) from synthetic-noise 1024-px PNG folders, then answers every item over HTTP against the
local form, each answer validated, appended and fsynced before the reply (what an expert's click
costs), and times the statistics over the answers.

    python benchmarks/expert.py [--n-per-run 50] [--size 1024]

Last line: ``packet_s=… packet_items=… answer_ms_median=… answer_ms_p95=… analyse_s=…``
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from solargen.expert.analysis import analyse
from solargen.expert.packet import build_packet
from solargen.expert.server import make_server


def folder(path: Path, n: int, size: int, seed: int) -> Path:
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(path / f"out_{i}.png")
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n-per-run", type=int, default=50)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--crop", type=int, default=256)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        real = folder(tmp / "real", a.n_per_run * 2, a.size, 0)
        runs = {f"run{i}": folder(tmp / f"run{i}", a.n_per_run, a.size, i + 1) for i in range(2)}
        t = time.perf_counter()
        key = build_packet(runs, real, tmp / "expert/packet", tmp / "expert/key.csv", a.n_per_run, crops=[a.crop])
        packet_s = time.perf_counter() - t
        srv = make_server(tmp / "expert/packet", tmp / "expert/answers", port=0)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        port = srv.server_address[1]
        conn = http.client.HTTPConnection("127.0.0.1", port)
        truth = dict(zip(key["item"], key["truth"]))
        conn.request("GET", "/api/next?expert=bench")
        state = json.loads(conn.getresponse().read())
        ms = []
        while state["item"]:
            body = json.dumps({"expert": "bench", "item": state["item"], "answer": truth[state["item"]], "confidence": 3})
            t = time.perf_counter()
            conn.request("POST", "/api/answer", body, {"Content-Type": "application/json"})
            state = json.loads(conn.getresponse().read())
            ms.append(1000 * (time.perf_counter() - t))
        srv.shutdown()
        t = time.perf_counter()
        table = analyse(tmp / "expert/key.csv", tmp / "expert/answers", tmp / "t.csv", tmp / "f.png", tmp / "rows.csv")
        analyse_s = time.perf_counter() - t
        assert table.accuracy.iloc[0] == 1.0
    print(f"packet_s={packet_s:.2f} packet_items={len(key)} answer_ms_median={np.median(ms):.2f} "
          f"answer_ms_p95={np.percentile(ms, 95):.2f} analyse_s={analyse_s:.2f}")


if __name__ == "__main__":
    main()
