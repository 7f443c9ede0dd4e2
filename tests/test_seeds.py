"""Seed replicates (issue 21): each seed its own training and sampling job and target, named
``<run>@seed<s>``; the plain run stays as it was; tables give mean and spread across seeds."""

import re

import pandas as pd
import pytest

from helpers import ci_config, smk
from solargen.report.tables import read_results, replicate_table


def _stats(stdout):
    lines = stdout.split("Job stats:")[1].splitlines()
    return {p[0]: int(p[1]) for p in (line.split() for line in lines) if len(p) == 2 and p[1].isdigit()}


def test_each_seed_is_its_own_training_and_sampling_target(tmp_path):
    plain = ci_config(tmp_path, lambda c: c.update(name="seeds"), "plain.yaml")
    seeded = ci_config(tmp_path, lambda c: (c.update(name="seeds"), c["runs"]["stylegan2"].update(seeds=[0, 1, 2])),
                       "seeded.yaml")
    # A replicate alone is a target: one training (seed 1), its sampling and evaluation.
    r = smk("-n", "-p", "results/seeds/runs/stylegan2/stylegan2@seed1/metrics.json", "--configfile", str(seeded))
    stats = _stats(r.stdout)
    assert stats["train"] == 1 and stats["evaluate"] == 1 and stats["sample"] >= 1
    # (the solar feature networks' feature_train jobs also run `solargen train`, seed-independent)
    train = [line for line in r.stdout.splitlines() if "solargen train --family stylegan2" in line]
    assert len(train) == 1 and "stylegan2@seed1/checkpoints" in train[0] and re.search(r"--seed 1\b", train[0])
    sample = [line for line in r.stdout.splitlines() if "solargen sample" in line]
    assert sample and all(re.search(r"--seed 1\b", s) for s in sample)
    # The whole study: two more replicates of every stylegan2 job; the plain run's commands unchanged.
    a = smk("-n", "-p", "--configfile", str(plain)).stdout
    b = smk("-n", "-p", "--configfile", str(seeded)).stdout
    sa, sb = _stats(a), _stats(b)
    for rule in ("train", "evaluate", "gather_samples"):
        assert sb[rule] == sa[rule] + 2, rule
    plain_train = [line for line in a.splitlines() if "solargen train --family stylegan2" in line]
    assert plain_train and set(plain_train) <= set(b.splitlines())


    r = smk("-n", "--configfile", "config/ci.yaml", "--config", "name=x", check=True)
    assert r.returncode == 0


def test_replicate_table_gives_mean_and_spread(tmp_path):
    rows = [("fid", 10.0, "R", "stylegan2", "n"), ("fid", 12.0, "R", "stylegan2@seed1", "n"),
            ("fid", 14.0, "R", "stylegan2@seed2", "n"), ("fid", 3.0, "R", "full_projectedgan", "n"),
            ("fid", 5.0, "R-CROPPED8", "stylegan2@seed1-CROPPED8", "n")]
    pd.DataFrame(rows, columns=["metric", "value", "real", "fake", "net"]).to_csv(tmp_path / "r.csv", index=False)
    t = replicate_table(read_results(tmp_path / "r.csv"))
    assert len(t) == 1  # only runs with replicates; crops apart
    row = t.iloc[0]
    assert row.run == "stylegan2" and row.n_seeds == 3 and row["mean"] == 12.0 and row.sd == pytest.approx(2.0)
    assert row.by_seed == "1:12 2:14 base:10"
