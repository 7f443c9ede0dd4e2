"""The human-expert test: the blinded packet, the local form (in a real browser where there is one),
answers that survive a crash, and the statistics."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from solargen.expert.analysis import accuracy_row, accuracy_table, analyse
from solargen.expert.files import ANSWERS, read_answers, read_items, read_key, record_path
from solargen.expert.packet import build_packet, ensure_packet
from solargen.expert.server import expert_order, make_server
from solargen.io import InputError
from solargen.report.results import collect

import helpers

ROOT = Path(__file__).resolve().parents[1]


def _folder(path, n, size, seed):
    path.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        Image.fromarray((rng.random((size, size)) * 255).astype(np.uint8)).save(path / f"out_{i}.png")
    return path


@pytest.fixture
def sets(tmp_path):
    """A 32-px real folder, a 16-px run (images are brought to one size) and a 32-px run."""
    return {"real": _folder(tmp_path / "real", 10, 32, 0),
            "runs": {"small": _folder(tmp_path / "small", 5, 16, 1), "big": _folder(tmp_path / "big", 5, 32, 2)}}


@pytest.fixture
def packet(tmp_path, sets):
    """2 runs × (full, CROPPED8) × (3 real + 3 generated) = 24 items."""
    key = build_packet(sets["runs"], sets["real"], tmp_path / "expert/packet", tmp_path / "expert/key.csv",
                       n_per_run=3, crops=[8], seed=0)
    return tmp_path / "expert/packet", tmp_path / "expert/key.csv", key


def test_packet_is_blinded_balanced_and_its_key_lies_outside(packet):
    pdir, key_path, key = packet
    assert len(key) == 24
    counts = key.groupby(["run", "view", "truth"]).size()
    assert (counts == 3).all() and len(counts) == 8
    packet_id, items = read_items(pdir)
    assert items == list(key.sort_values("position")["item"]) and packet_id == key.packet[0]
    # Names say nothing: 32 random hex digits; the packet holds no key and nothing but the images.
    files = sorted(p.name for p in (pdir / "images").iterdir())
    assert files == sorted(f"{i}.png" for i in items)
    assert all(len(f) == 36 and set(f[:32]) <= set("0123456789abcdef") for f in files)
    assert sorted(p.name for p in pdir.iterdir()) == ["images", "items.json"]
    assert key_path.parent == pdir.parent
    assert "real" not in (pdir / "items.json").read_text() and "generated" not in (pdir / "items.json").read_text()
    # Real and generated images of one run are the same size and the same kind of file.
    for (run, view), g in key.groupby(["run", "view"]):
        shapes, infos = set(), set()
        for item in g["item"]:
            with Image.open(pdir / "images" / f"{item}.png") as im:
                shapes.add(im.size)
                infos.add((im.mode, tuple(sorted(im.info))))
        assert len(shapes) == 1 and len(infos) == 1, (run, view, shapes, infos)
        side = {"full": {"small": 16, "big": 32}, "CROPPED8": {"small": 4, "big": 8}}[view][run]
        assert shapes == {(side, side)}
    # Full views show exactly the source pixels (resized where the run is smaller).
    row = key[(key.run == "big") & (key.view == "full")].iloc[0]
    assert np.array_equal(np.asarray(Image.open(pdir / "images" / f"{row['item']}.png")),
                          np.asarray(Image.open(row["file"])))
    # A crop is the stated box of its source.
    row = key[(key.run == "big") & (key.view == "CROPPED8")].iloc[0]
    src = np.asarray(Image.open(row["file"]))
    assert np.array_equal(np.asarray(Image.open(pdir / "images" / f"{row['item']}.png")),
                          src[row.top:row.top + 8, row.left:row.left + 8])


def test_packet_selection_is_seeded_but_names_and_order_are_secret(tmp_path, sets):
    def build(name, **kw):
        return build_packet(sets["runs"], sets["real"], tmp_path / name / "packet", tmp_path / name / "key.csv",
                            n_per_run=3, crops=[8], **kw)

    a, b, c = build("a", seed=0), build("b", seed=0), build("c", seed=1)
    cols = ["truth", "run", "view", "file", "top", "left"]
    order = ["run", "view", "truth", "file", "top", "left"]
    assert a[cols].sort_values(order).values.tolist() == b[cols].sort_values(order).values.tolist()
    assert a[cols].sort_values(order).values.tolist() != c[cols].sort_values(order).values.tolist()
    assert not set(a["item"]) & set(b["item"]) and a.packet[0] != b.packet[0]
    assert a.shuffle_seed[0] != b.shuffle_seed[0]
    fixed = build("d", seed=0, shuffle_seed=5), build("e", seed=0, shuffle_seed=5)
    assert fixed[0][cols].values.tolist() == fixed[1][cols].values.tolist()


def test_packet_bad_input_is_a_clear_error(tmp_path, sets):
    with pytest.raises(InputError, match="5 images, but expert_eval.n_per_run is 6"):
        build_packet(sets["runs"], sets["real"], tmp_path / "p", tmp_path / "k.csv", n_per_run=6)
    with pytest.raises(ValueError, match="must not be inside the served packet"):
        build_packet(sets["runs"], sets["real"], tmp_path / "p", tmp_path / "p/key.csv", n_per_run=2)
    with pytest.raises(ValueError, match="CROPPED64 does not fit"):
        build_packet(sets["runs"], sets["real"], tmp_path / "p", tmp_path / "k.csv", n_per_run=2, crops=[64])
    with pytest.raises(InputError, match="no PNG images"):
        build_packet({"x": tmp_path}, sets["real"], tmp_path / "p", tmp_path / "k.csv", n_per_run=2)
    (tmp_path / "big/out_3.png").write_bytes(b"\x89PNG truncated")
    with pytest.raises(InputError, match="out_3.png: unreadable image"):
        build_packet(sets["runs"], sets["real"], tmp_path / "p", tmp_path / "k.csv", n_per_run=5)
    assert not (tmp_path / "p").exists() and not (tmp_path / "k.csv").exists()


def test_a_packet_is_kept_and_never_rebuilt_once_answered(tmp_path, sets):
    args = dict(runs=sets["runs"], real_dir=sets["real"], packet_dir=tmp_path / "x/packet", key_path=tmp_path / "x/key.csv",
                answers_dir=tmp_path / "x/answers", n_per_run=2, crops=[8])
    key, action = ensure_packet(**args)
    assert action == "built" and record_path(args["key_path"]).exists()
    assert not any("key" in p.name for p in args["packet_dir"].rglob("*"))
    again, action = ensure_packet(**args)
    assert action == "kept" and again["item"].tolist() == key["item"].tolist()
    # Changed parameters, nobody has answered: a new packet.
    rebuilt, action = ensure_packet(**{**args, "n_per_run": 3})
    assert action == "rebuilt" and len(rebuilt) == 24 and rebuilt.packet[0] != key.packet[0]
    # Once answered, neither a parameter nor a changed source image rebuilds it.
    args["n_per_run"] = 3
    args["answers_dir"].mkdir()
    (args["answers_dir"] / "ann.jsonl").write_text(json.dumps(
        {"packet": rebuilt.packet[0], "expert": "ann", "item": rebuilt.item[0], "answer": "real", "confidence": 2}) + "\n")
    with pytest.raises(InputError, match="has answers from ann .* not rebuilt over a study in progress"):
        ensure_packet(**{**args, "crops": [16]})
    src = Path(rebuilt[rebuilt.truth == "generated"].file.iloc[0])
    Image.fromarray(np.zeros((16, 16) if "small" in str(src) else (32, 32), np.uint8)).save(src)
    with pytest.raises(InputError, match="changed or is gone"):
        ensure_packet(**args)
    assert read_key(args["key_path"])["item"].tolist() == rebuilt["item"].tolist()  # the key is intact
    assert read_items(args["packet_dir"])[0] == rebuilt.packet[0]


# --- the server, over HTTP ---------------------------------------------------------------------

@pytest.fixture
def server(packet, tmp_path):
    pdir, key_path, key = packet
    srv = make_server(pdir, tmp_path / "answers", port=0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv, key, tmp_path / "answers"
    srv.shutdown()
    srv.server_close()


def request(port, method, path, body=None, headers=None):
    """A raw request: http.client sends the path exactly as given (no normalisation of '..')."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    if body is not None:
        headers = {"Content-Type": "application/json", **(headers or {})}
    c.request(method, path, body=data, headers=headers or {})
    r = c.getresponse()
    out = r.status, r.read(), dict(r.getheaders())
    c.close()
    return out


def answer(port, expert, item, ans="real", confidence=3, **extra):
    return request(port, "POST", "/api/answer", {"expert": expert, "item": item, "answer": ans,
                                                  "confidence": confidence, **extra})


def test_server_never_serves_the_key_and_refuses_traversal(server, packet):
    srv, key, _ = server
    port = srv.server_address[1]
    secret = packet[1].read_bytes()
    item = key["item"][0]
    for path in ["/../key.csv", "/..%2fkey.csv", "/%2e%2e/key.csv", "/%2e%2e%2fkey.csv", "/img/../../key.csv",
                 "/img/..%2f..%2fkey.csv", "/img/%2e%2e%2f%2e%2e%2fkey.csv", "/key.csv", "/expert/key.csv",
                 f"/img/../images/{item}.png", f"/images/{item}.png", "/items.json", "/img/items.json",
                 "//etc/passwd", "/img/..%5c..%5ckey.csv", f"/img/{item}.png/../../../key.csv",
                 f"/img/{item.upper()}.png", f"/img/{'0' * 32}.png", "/img/%00.png"]:
        status, body, _ = request(port, "GET", path)
        assert status == 404, path
        assert b"generated" not in body and secret[:200] not in body
    # Nothing the form can reach says which item is which.
    bodies = [request(port, "GET", "/")[1], request(port, "GET", "/api/next?expert=eve")[1],
              *[request(port, "GET", f"/img/{i}.png")[1] for i in key["item"]]]
    for b in bodies:
        assert secret not in b and b"key.csv" not in b
        for line in secret.splitlines()[1:]:
            assert line not in b
    status, body, headers = request(port, "GET", f"/img/{item}.png")
    assert status == 200 and body.startswith(b"\x89PNG") and headers["Content-Type"] == "image/png"
    assert "default-src 'none'" in request(port, "GET", "/")[2]["Content-Security-Policy"]


def test_form_is_the_package_file_and_speaks_the_answer_vocabulary(server):
    srv, _, _ = server
    status, body, headers = request(srv.server_address[1], "GET", "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert body == resources.files("solargen.expert").joinpath("form.html").read_bytes()
    # The form's buttons post exactly the answers the server accepts and the analysis scores.
    assert tuple(re.findall(rb'data-answer="([a-z]+)"', body)) == tuple(a.encode() for a in ANSWERS)


def test_package_data_declares_every_non_python_file():
    """A resource missing from pyproject's package-data works from the source tree but not installed."""
    root = Path(__file__).resolve().parents[1]
    declared = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    src = root / "src"
    for f in (src / "solargen").rglob("*"):  # not the egg-info an editable install writes beside it
        if f.is_file() and f.suffix not in (".py", ".pyc") and "__pycache__" not in f.parts:
            package = ".".join(f.parent.relative_to(src).parts)
            assert f.name in declared.get(package, []), f"{f}: not in pyproject's package-data for {package}"


def test_server_validates_every_answer_and_writes_only_valid_ones(server):
    srv, key, answers = server
    port = srv.server_address[1]
    item = key["item"][0]
    bad = [{"expert": "../alice", "item": item, "answer": "real", "confidence": 3},
           {"expert": "a" * 41, "item": item, "answer": "real", "confidence": 3},
           {"expert": "al ice", "item": item, "answer": "real", "confidence": 3},
           {"expert": "alice", "item": "0" * 32, "answer": "real", "confidence": 3},
           {"expert": "alice", "item": "../key.csv", "answer": "real", "confidence": 3},
           {"expert": "alice", "item": item, "answer": "fake", "confidence": 3},
           {"expert": "alice", "item": item, "answer": "real", "confidence": 0},
           {"expert": "alice", "item": item, "answer": "real", "confidence": 6},
           {"expert": "alice", "item": item, "answer": "real", "confidence": "3"},
           {"expert": "alice", "item": item, "answer": "real", "confidence": True},
           {"expert": "alice", "item": item, "answer": "real", "confidence": 2.5},
           {"expert": "alice", "item": item, "answer": "real", "confidence": 3, "ms": -1},
           {"expert": "alice", "item": item, "answer": "real"},
           ["alice", item, "real", 3]]
    for body in bad:
        status, reply, _ = request(port, "POST", "/api/answer", body)
        assert status == 400, body
        assert "error" in json.loads(reply)
    assert request(port, "POST", "/api/answer", b"{not json")[0] == 400
    assert request(port, "POST", "/api/answer", b"x" * 5000)[0] == 413
    assert request(port, "POST", "/api/other", {"expert": "alice"})[0] == 404
    assert request(port, "GET", "/api/next?expert=../x")[0] == 400
    # Requests other sites make the browser send: not JSON, another Origin, another Host (rebinding).
    ok = {"expert": "alice", "item": item, "answer": "real", "confidence": 3}
    assert request(port, "POST", "/api/answer", ok, {"Content-Type": "text/plain"})[0] == 415
    assert request(port, "POST", "/api/answer", ok, {"Origin": "http://evil.example"})[0] == 403
    assert request(port, "POST", "/api/answer", ok, {"Host": f"evil.example:{port}"})[0] == 403
    assert request(port, "GET", f"/img/{item}.png", headers={"Host": "evil.example"})[0] == 403
    assert not list(answers.glob("*"))  # nothing written
    status, reply, _ = answer(port, "alice", item, "generated", 5, ms=1234)
    assert status == 200 and json.loads(reply)["done"] == 1
    assert answer(port, "alice", item, "real", 1)[0] == 409  # once per item
    lines = (answers / "alice.jsonl").read_text().splitlines()
    assert len(lines) == 1
    a = json.loads(lines[0])
    assert (a["item"], a["answer"], a["confidence"], a["ms"], a["packet"]) == (item, "generated", 5, 1234, key.packet[0])


def test_an_expert_id_with_a_trailing_newline_is_refused(server, tmp_path):
    # re.match(r"^…$") accepts "alice\n": it was written as a second expert and counted as one.
    srv, key, answers = server
    port = srv.server_address[1]
    item = key["item"][0]
    for expert in ("alice\n", "alice\r\n", "\nalice"):
        status, reply, _ = request(port, "POST", "/api/answer",
                                   {"expert": expert, "item": item, "answer": "real", "confidence": 3})
        assert status == 400 and "expert" in json.loads(reply)["error"], expert
    assert request(port, "GET", "/api/next?expert=alice%0A")[0] == 400
    assert not list(answers.glob("*"))
    f = tmp_path / "bob.jsonl"
    f.write_text(json.dumps({"packet": key.packet[0], "expert": "bob\n", "item": item, "answer": "real",
                             "confidence": 3}) + "\n")
    with pytest.raises(InputError, match=r"bob.jsonl:1: expert id"):
        read_answers(f, key.packet[0])


def test_a_packet_with_a_key_inside_is_not_served(packet, tmp_path):
    pdir, key_path, _ = packet
    shutil.copy(key_path, pdir / "key.csv")
    with pytest.raises(InputError, match="key-like file inside the served packet"):
        make_server(pdir, tmp_path / "answers", port=0)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(pdir, answers, port):
    p = subprocess.Popen([sys.executable, "-m", "solargen", "expert-eval", "serve", str(pdir), "--answers", str(answers),
                          "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                         # Ctrl-C must reach it even when the suite runs as a background job (which
                         # inherits SIGINT ignored, and Python then keeps it ignored).
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert "http://127.0.0.1:" in p.stdout.readline()
    return p


def test_answers_survive_a_killed_server_and_the_expert_resumes(packet, tmp_path):
    pdir, key_path, key = packet
    answers = tmp_path / "answers"
    port = _free_port()
    p = _start(pdir, answers, port)
    try:
        order = expert_order(key.packet[0], list(key["item"]), "bob")
        for i in range(10):
            state = json.loads(request(port, "GET", "/api/next?expert=bob")[1])
            assert state["item"] == order[i] and state["done"] == i
            assert answer(port, "bob", state["item"])[0] == 200
    finally:
        p.send_signal(signal.SIGKILL)  # a crash: no clean shutdown
        p.wait()
    # A torn write (the crash hit mid-line) loses that line only.
    with open(answers / "bob.jsonl", "ab") as f:
        f.write(b'{"packet": "' + key.packet[0].encode() + b'", "expert": "bob", "it')
    assert len(read_answers(answers / "bob.jsonl", key.packet[0])) == 10
    p = _start(pdir, answers, port)
    try:
        state = json.loads(request(port, "GET", "/api/next?expert=bob")[1])
        assert state["done"] == 10 and state["item"] == order[10]
        while state["item"]:
            status, reply, _ = answer(port, "bob", state["item"], "generated")
            assert status == 200
            state = json.loads(reply)
        assert state["done"] == state["total"] == 24
    finally:
        p.send_signal(signal.SIGINT)
        p.wait(10)
    got = read_answers(answers / "bob.jsonl", key.packet[0])
    assert [a["item"] for a in got] == order


# --- the statistics ----------------------------------------------------------------------------

def _wilson(k, n, z=1.959963984540054):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


def test_accuracy_row_is_the_binomial_test_and_the_wilson_interval():
    r = accuracy_row(pd.Series([True] * 7 + [False] * 3))
    assert (r["n"], r["n_correct"], r["accuracy"]) == (10, 7, 0.7)
    assert np.allclose((r["ci95_low"], r["ci95_high"]), _wilson(7, 10))
    assert r["p_value"] == pytest.approx(0.34375)  # 2·P(X ≥ 7), X ~ B(10, 1/2) = 2·176/1024
    r = accuracy_row(pd.Series([True] * 20))
    assert r["accuracy"] == 1.0 and r["p_value"] == pytest.approx(2 * 0.5 ** 20)
    assert np.allclose((r["ci95_low"], r["ci95_high"]), _wilson(20, 20))


def _answers(key, expert, pick):
    return pd.DataFrame([{"expert": expert, "item": r.item, "answer": pick(r), "confidence": 3, "truth": r.truth,
                          "run": r.run, "view": r.view} for r in key.itertuples()])


def test_accuracy_all_right_is_one_and_random_is_near_chance():
    rng = np.random.default_rng(0)
    n = 4000
    key = pd.DataFrame({"item": [f"{i:032x}" for i in range(n)], "truth": rng.permutation(["real", "generated"] * (n // 2)),
                        "run": rng.choice(["a", "b"], n), "view": rng.choice(["full", "CROPPED8"], n)})
    df = pd.concat([_answers(key, "oracle", lambda r: r.truth),
                    _answers(key, "coin", lambda r: rng.choice(["real", "generated"])),
                    _answers(key, "always_real", lambda r: "real")])
    df["correct"] = df["answer"] == df["truth"]
    t = accuracy_table(df).set_index(["group", "value"])
    assert t.loc[("expert", "oracle"), "accuracy"] == 1.0 and t.loc[("expert", "oracle"), "p_value"] < 1e-300
    coin = t.loc[("expert", "coin")]
    assert abs(coin.accuracy - 0.5) < 0.03 and coin.ci95_low < 0.5 < coin.ci95_high and coin.p_value > 0.01
    assert t.loc[("expert", "always_real"), "accuracy"] == 0.5  # balanced packet: a constant answer is chance
    assert t.loc[("all", "all"), "n"] == 3 * n and t.loc[("all", "all"), "n_experts"] == 3
    assert set(t.loc["run_view"].index) == {"a/full", "a/CROPPED8", "b/full", "b/CROPPED8"}
    assert t.loc["run", "n"].sum() == 3 * n


def test_analyse_writes_table_figure_and_results_rows(packet, tmp_path):
    pdir, key_path, key = packet
    answers = tmp_path / "answers"
    answers.mkdir()
    for expert, pick in (("oracle", lambda r: r.truth), ("contrarian", lambda r: "real" if r.truth == "generated" else "generated")):
        with open(answers / f"{expert}.jsonl", "w") as f:
            for r in key.itertuples():
                f.write(json.dumps({"packet": r.packet, "expert": expert, "item": r.item, "answer": pick(r),
                                    "confidence": 4}) + "\n")
    r = subprocess.run([sys.executable, "-m", "solargen", "expert-eval", "analyse", "--key", str(key_path), "--answers",
                        str(answers), "--real-name", "realset", "--out-table", str(tmp_path / "t.csv"), "--out-figure",
                        str(tmp_path / "f.png"), "--out-rows", str(tmp_path / "rows.csv")],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(tmp_path / "t.csv").set_index(["group", "value"])
    assert t.loc[("expert", "oracle"), "accuracy"] == 1.0 and t.loc[("expert", "contrarian"), "accuracy"] == 0.0
    assert t.loc[("all", "all"), "accuracy"] == 0.5 and t.loc[("all", "all"), "n"] == 48
    assert Image.open(tmp_path / "f.png").size[0] > 100
    rows = pd.read_csv(tmp_path / "rows.csv")
    assert set(rows.metric) == {"human_accuracy"} and set(rows.net) == {"human"}
    assert set(zip(rows.real, rows.fake)) == {("realset", "small"), ("realset", "big"),
                                              ("realset-CROPPED8", "small-CROPPED8"), ("realset-CROPPED8", "big-CROPPED8")}
    assert (rows.value == 0.5).all()
    # ... and they join results.csv.
    m = tmp_path / "metrics.json"
    m.write_text(json.dumps({"run": "big", "rows": [{"metric": "fid", "value": 1.0, "real": "realset", "fake": "big",
                                                     "net": "n"}], "not_run": [], "n_fake": 5, "n_real": 10}))
    df = collect([m], tmp_path / "results.csv", extra_rows=[tmp_path / "rows.csv"])
    assert len(df) == 5 and set(df.metric) == {"fid", "human_accuracy"}


def test_analyse_refuses_answers_to_another_packet_and_empty_answers(packet, tmp_path):
    pdir, key_path, key = packet
    answers = tmp_path / "answers"
    answers.mkdir()
    with pytest.raises(InputError, match="no answers"):
        analyse(key_path, answers, tmp_path / "t.csv")
    (answers / "x.jsonl").write_text(json.dumps({"packet": "0000", "expert": "x", "item": key.item[0], "answer": "real",
                                                 "confidence": 1}) + "\n" + "{}\n")
    with pytest.raises(InputError, match="x.jsonl:1: answer to packet '0000'"):
        analyse(key_path, answers, tmp_path / "t.csv")
    (answers / "x.jsonl").write_text("garbage\n" + json.dumps({"packet": key.packet[0], "expert": "x", "item": key.item[0],
                                                               "answer": "real", "confidence": 1}) + "\n")
    with pytest.raises(InputError, match="x.jsonl:1: not an answer line"):
        analyse(key_path, answers, tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()
    with pytest.raises(InputError, match="key not found"):
        read_key(tmp_path / "nokey.csv")


# --- a real browser ----------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -r requirements.txt)")
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no headless browser: install Debian's chromium and chromium-driver to run the browser tests")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not look for drivers on the network
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1000,900"):
        opts.add_argument(a)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


def _answer_in_browser(driver, url, expert, pick, truth, stop_after=None):
    """Answer as an expert would: enter the id, look at the image (zoom), pick confidence and answer."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 10)
    driver.get(url)
    box = driver.find_element(By.ID, "expert")
    box.clear()
    box.send_keys(expert)
    driver.find_element(By.ID, "start").click()
    n = 0
    while True:
        wait.until(lambda d: d.find_element(By.ID, "task").is_displayed() or d.find_element(By.ID, "done").is_displayed())
        if driver.find_element(By.ID, "done").is_displayed():
            return n
        if stop_after is not None and n == stop_after:
            driver.find_element(By.ID, "pause").click()
            wait.until(EC.visibility_of_element_located((By.ID, "paused")))
            return n
        img = driver.find_element(By.ID, "img")
        item = img.get_attribute("data-item")
        wait.until(lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img))
        img.click()
        assert "zoomed" in img.get_attribute("class")
        img.click()
        done = driver.find_element(By.ID, "progress").get_attribute("data-done")
        if n % 2:  # by mouse
            driver.find_element(By.CSS_SELECTOR, f"input[name=confidence][value='{1 + n % 5}']").click()
            driver.find_element(By.ID, pick(item, truth[item])).click()
        else:  # by keyboard
            ActionChains(driver).send_keys(str(1 + n % 5), pick(item, truth[item])[0]).perform()
        wait.until(lambda d: d.find_element(By.ID, "progress").get_attribute("data-done") != done
                   or d.find_element(By.ID, "done").is_displayed())
        n += 1


def test_browser_experts_answer_a_packet_and_the_analysis_scores_them(browser, packet, tmp_path):
    from selenium.webdriver.common.by import By

    pdir, key_path, key = packet
    answers = tmp_path / "answers"
    srv = make_server(pdir, answers, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    truth = dict(zip(key["item"], key["truth"]))
    try:
        # Validation in the page: no answer without a confidence, nothing saved.
        browser.get(url)
        browser.find_element(By.ID, "expert").send_keys("oracle")
        browser.find_element(By.ID, "start").click()
        time.sleep(0.3)
        browser.find_element(By.ID, "real").click()
        assert "confidence" in browser.find_element(By.ID, "error").text
        assert not (answers / "oracle.jsonl").exists()
        # An expert who is always right, pausing half-way and resuming in a fresh page.
        first = _answer_in_browser(browser, url, "oracle", lambda item, t: t, truth, stop_after=9)
        assert first == 9 and len(read_answers(answers / "oracle.jsonl")) == 9
        rest = _answer_in_browser(browser, url, "oracle", lambda item, t: t, truth)
        assert first + rest == 24
        # An expert who always says "real": chance on a balanced packet.
        assert _answer_in_browser(browser, url, "always_real", lambda item, t: "real", truth) == 24
        # The page ran without errors (scripts, styles and images all allowed by its own policy).
        assert [m for m in browser.get_log("browser") if m["level"] == "SEVERE"] == []
    finally:
        srv.shutdown()
        srv.server_close()
    got = read_answers(answers / "oracle.jsonl", key.packet[0])
    assert sorted(a["item"] for a in got) == sorted(key["item"])  # complete, each image once
    assert [a["item"] for a in got] == expert_order(key.packet[0], list(key["item"]), "oracle")
    assert all(a["ms"] >= 0 for a in got) and {a["confidence"] for a in got} == {1, 2, 3, 4, 5}
    t = analyse(key_path, answers, tmp_path / "t.csv", tmp_path / "f.png", tmp_path / "rows.csv").set_index(["group", "value"])
    assert t.loc[("expert", "oracle"), "accuracy"] == 1.0
    assert t.loc[("expert", "always_real"), "accuracy"] == 0.5
    assert t.loc[("expert", "oracle"), "p_value"] == pytest.approx(2 * 0.5 ** 24)


# --- the workflow ------------------------------------------------------------------------------

def test_workflow_builds_the_packet_then_analyses_answers_into_results_csv(tmp_path):
    """The rules themselves, on stand-in upstream outputs (the e2e test makes real ones): the packet
    from the real folder and the samples; then, once an expert has answered, the analysis and
    results.csv with human_accuracy rows."""
    cfg = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    name = cfg["name"] = "pytest_expert"
    cfg["expert_eval"] = {"runs": ["stylegan2", "bicubic"], "n_per_run": 2, "crops": [8]}
    conf = tmp_path / "expert.yaml"
    conf.write_text(yaml.safe_dump(cfg))
    smk = lambda *a: helpers.smk("--configfile", str(conf), "--cores", "1", *a, cwd=tmp_path, check=False)
    r = smk("-n")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "expert_packet" in r.stdout and "expert_analysis" not in r.stdout
    assert "no answers in" in r.stdout + r.stderr
    out = tmp_path / "results" / name
    _folder(out / "data" / cfg["data"]["name"], 6, 32, 0)
    runs = {r: cfg["models"][v["model"]]["family"] for r, v in cfg["runs"].items() if r != "efficientnet-lite3"}
    for run, fam in runs.items():
        _folder(out / f"runs/{fam}/{run}/samples", 2, 32, 1)
        (out / f"runs/{fam}/{run}/metrics.json").write_text(json.dumps(
            {"run": run, "rows": [{"metric": "fid", "value": 1.0, "real": "r", "fake": run, "net": "n"}],
             "not_run": [], "n_fake": 2, "n_real": 6}))
    status = f"results/{name}/expert/status.json"
    r = smk("--allowed-rules", "expert_packet", "--", status)
    assert r.returncode == 0, r.stderr[-3000:]
    key = read_key(out / "expert/key.csv")
    assert len(key) == 2 * 2 * 4 and set(key.run) == {"stylegan2", "bicubic"}
    assert json.loads((tmp_path / status).read_text())["action"] == "built"
    # New samples make Snakemake run the job again; the packet stands while its images are the same.
    time.sleep(1)
    (out / "runs/stylegan2/stylegan2/samples").touch()
    r = smk("--allowed-rules", "expert_packet", "--", status)
    assert r.returncode == 0 and "Finished jobid: 0 (Rule: expert_packet)" in r.stderr, r.stderr[-3000:]
    assert json.loads((tmp_path / status).read_text()) == {"packet": key.packet[0], "items": 16, "action": "kept",
                                                           "packet_dir": f"results/{name}/expert/packet",
                                                           "key": f"results/{name}/expert/key.csv"}
    # An expert answers (as the form writes), always right; the next run analyses it.
    answers = out / "expert/answers"
    answers.mkdir()
    with open(answers / "ann.jsonl", "w") as f:
        for k in key.itertuples():
            f.write(json.dumps({"packet": k.packet, "expert": "ann", "item": k.item, "answer": k.truth,
                                "confidence": 5}) + "\n")
    r = smk("--allowed-rules", "expert_analysis", "results_csv", "--", f"results/{name}/results.csv")
    assert r.returncode == 0, r.stderr[-3000:]
    df = pd.read_csv(out / "results.csv")
    human = df[df.metric == "human_accuracy"]
    assert set(human.fake) == {"stylegan2", "bicubic", "stylegan2-CROPPED8", "bicubic-CROPPED8"}
    assert (human.value == 1.0).all() and set(human.net) == {"human"}
    assert len(df[df.metric == "fid"]) == len(runs)
    assert (out / "figures/human_accuracy.png").stat().st_size > 0
    assert pd.read_csv(out / "tables/human_accuracy.csv").query("group == 'all'").accuracy.item() == 1.0
    # Table and figure are in the Snakemake report, with their captions.
    r = smk("--report", "report.html", "--", f"results/{name}/tables/human_accuracy.csv",
            f"results/{name}/figures/human_accuracy.png")
    assert r.returncode == 0, r.stderr[-3000:]
    html = (tmp_path / "report.html").read_text(errors="replace")
    assert "human_accuracy.png" in html and "Wilson" in html
    # Samples drawn again (a retrained model) under an answered packet: the job fails, saying why,
    # and the packet and its key stay.
    for f in key[(key.run == "bicubic") & (key.truth == "generated")].file:
        Image.fromarray(np.zeros((32, 32), np.uint8)).save(tmp_path / f)
    (out / "runs/bicubic/bicubic/samples").touch()
    r = smk("--allowed-rules", "expert_packet", "--", status)
    assert r.returncode != 0
    assert "not rebuilt over a study in progress" in (out / "logs/expert_packet.log").read_text()
    assert read_key(out / "expert/key.csv").item.tolist() == key.item.tolist()
    # A run that is not a run is a config error before any job.
    cfg["expert_eval"]["runs"] = ["nosuch"]
    conf.write_text(yaml.safe_dump(cfg))
    r = smk("-n")
    assert r.returncode != 0 and "expert_eval.runs: 'nosuch' is not a key of runs" in r.stdout + r.stderr
    cfg["expert_eval"].update(runs=["stylegan2"], n_per_run=9)
    conf.write_text(yaml.safe_dump(cfg))
    r = smk("-n")
    assert r.returncode != 0 and "expert_eval.n_per_run = 9 exceeds evaluation.n_samples = 8" in r.stdout + r.stderr


def test_serve_binds_loopback_by_default_and_names_a_bad_packet(tmp_path):
    from solargen.cli import parser

    a = parser().parse_args(["expert-eval", "serve", "somewhere"])
    assert (a.host, a.port) == ("127.0.0.1", 8765)
    r = subprocess.run([sys.executable, "-m", "solargen", "expert-eval", "serve", str(tmp_path / "nopacket"), "--port", "0"],
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, timeout=60)
    assert r.returncode == 2 and "nopacket/items.json: not found (is" in r.stderr
