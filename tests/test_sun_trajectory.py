"""scripts/sun_trajectory.py, the recipe-tuning tool behind the tables of docs/training_recipes.md:
it trains a config's model entry with its overrides and scores each check with the committed
criterion, reproducibly."""

import importlib.util
import re
from pathlib import Path

import h5py
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _script():
    spec = importlib.util.spec_from_file_location("sun_trajectory", ROOT / "scripts/sun_trajectory.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _disks(path, n=6, size=32):
    yy, xx = np.mgrid[:size, :size]
    r = np.hypot(yy - (size - 1) / 2, xx - (size - 1) / 2) / (size / 2)
    rng = np.random.default_rng(0)
    frames = [np.clip(np.where(r < 0.8, 0.6, 0.1) + 0.02 * rng.standard_normal((size, size)), 0, 1) for _ in range(n)]
    with h5py.File(path, "w") as f:
        f["images"] = np.asarray(frames, dtype=np.float32)
    return path


def test_checks_follow_the_override_and_repeat_exactly(tmp_path, capsys):
    data = _disks(tmp_path / "dataset.h5")
    args = ["--config", str(ROOT / "config/ci.yaml"), "--dataset", str(data), "--model", "stylegan2",
            "--set", '{"ema_kimg": 0}', "--steps", "3", "--every", "2", "--n", "4"]
    run = _script().main
    run(args)
    first = capsys.readouterr().out.splitlines()
    # a check every 2 steps and one at the end
    assert [int(re.match(r"step (\d+) ", line).group(1)) for line in first] == [2, 3]
    assert all(re.search(r"pass \d/4 median_d \d\.\d{3} tau \d\.\d{4}", line) for line in first)
    run(args)
    again = capsys.readouterr().out.splitlines()
    strip = [re.sub(r"\| cpu .*", "", line) for line in first]
    assert strip == [re.sub(r"\| cpu .*", "", line) for line in again]
    # the override reaches the trainer: without it the samples come from the EMA generator, which
    # after 3 steps of the entry's 10-kimg half-life is still its initialisation (ema_kimg 0: the
    # trained G)
    run([a for a in args if a not in ("--set", '{"ema_kimg": 0}')])
    other = capsys.readouterr().out.splitlines()
    assert [re.sub(r"\| cpu .*", "", line) for line in other] != strip
