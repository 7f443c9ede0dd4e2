"""solargen.config: the checks across keys, the computed defaults, and the workflow's boundary
(building the DAG imports no torch; rule files hold no defaults of their own)."""

import copy
import re

import pytest
import yaml
from helpers import ROOT, smk
from snakemake.utils import validate

from solargen import config as study

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def _ci():
    cfg = yaml.safe_load((ROOT / "config/ci.yaml").read_text())
    validate(cfg, str(SCHEMA))
    return cfg


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["runs"]["stylegan2"].update(model="nope"), "runs.stylegan2.model = 'nope' is not a key of models"),
    (lambda c: c["evaluation"].update(n_samples=3), "evaluation.n_samples = 3 is too few"),
    (lambda c: c["evaluation"]["nets"].append("resnet9"), "evaluation.nets: 'resnet9' is neither built in"),
    (lambda c: c["models"]["stylegan2"].update(image_size=24), "models.stylegan2.image_size = 24 must be a power of two"),
    (lambda c: c["data"].update(extra_wavelengths=[193]), "data.extra_wavelengths holds the target wavelength 193"),
    (lambda c: c["data"]["calibration"].update(pointing_table="jsoc"), "pointing_table: jsoc needs data.source: jsoc_lev1"),
])
def test_cross_key_checks_name_the_key(edit, message):
    cfg = _ci()
    study.check(cfg)  # the committed config passes
    edit(cfg)
    with pytest.raises(ValueError, match=re.escape(message)):
        study.check(cfg)


def test_computed_defaults_and_seed_replicates():
    cfg = _ci()
    cfg["runs"]["stylegan2"]["seeds"] = [0, 7]
    before = copy.deepcopy(cfg)
    study.expand_seeds(cfg)
    study.fill_defaults(cfg)
    seed = before["seed"]
    # The replicate at the top-level seed is the run itself; seed 7 is its own run and model.
    assert "stylegan2@seed0" not in cfg["runs"] and cfg["runs"]["stylegan2@seed7"]["seed"] == 7
    assert cfg["models"]["stylegan2@seed7"]["seed"] == 7 and cfg["models"]["stylegan2"]["seed"] == seed
    assert all(r["seed"] == cfg["models"][r["model"]]["seed"] for r in cfg["runs"].values())
    assert all(r["sampling_steps"] == before["runs"].get(n, {}).get("sampling_steps", 1)
               for n, r in cfg["runs"].items() if "@" not in n)
    assert all(f["seed"] == seed for f in cfg["feature_train"].values())


def test_shards_follow_the_source():
    cfg = _ci()
    d = cfg["data"]
    assert study.shards(cfg) == [f"{i:04d}" for i in range(-(-d["n_frames"] // d["frames_per_shard"]))]
    j = yaml.safe_load((ROOT / "config/jsoc_lev1.yaml").read_text())
    validate(j, str(SCHEMA))
    assert len(study.shards(j)) == 6  # 2011-01-01 .. 2011-03-01 in 10-day chunks


def test_building_the_dag_imports_no_torch(tmp_path):
    """A dry run (CI, planning on a login node) stays fast: torch, if imported, raises here."""
    shim = tmp_path / "shim/torch"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('torch imported while building the DAG')\n")
    env = {"PYTHONPATH": f"{tmp_path / 'shim'}:{ROOT / 'src'}", "JUWELS_ACCOUNT": "x", "JUWELS_PARTITION": "booster"}
    for args in (["--configfile", "config/ci.yaml"], ["--configfile", "config/demo.yaml", "config/translation.yaml"],
                 ["--profile", "profiles/juwels"]):
        r = smk("-n", *args, "--directory", str(tmp_path), env=env)
        assert "This was a dry-run" in r.stdout, args


def test_rule_files_hold_no_defaults():
    """Constant defaults live in the schema only, computed ones in solargen.config or the family's
    code: a rule file never says `.get(key, default)`."""
    found = [f"{p.name}:{i}: {line.strip()}"
             for p in sorted((ROOT / "workflow/rules").glob("*.smk")) + [ROOT / "Snakefile"]
             for i, line in enumerate(p.read_text().splitlines(), 1)
             if re.search(r"\.get\([^()]*,", line)]
    assert not found, "\n".join(found)
