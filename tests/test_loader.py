"""The training input pipeline: worker processes change nothing about which batches a run sees."""

import h5py
import numpy as np
import pytest
import torch

from helpers import Toy
from solargen import distributed as ddp
from solargen.dataset import H5Images
from solargen.loader import TrainBatches, batch_indices, default_workers, flips
from solargen.train import fit, load_checkpoint


@pytest.fixture
def h5(tmp_path):
    """A uint8 dataset (the study's storage) of 10 distinct 8² frames."""
    path = tmp_path / "dataset.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.random.default_rng(0).integers(0, 256, (10, 8, 8), dtype=np.uint8)
        f.attrs["quantisation"] = "uint8"
    return path


def _batches(data, workers, start=0, stop=7, batch_size=4, seed=5, ctx=None):
    tb = TrainBatches(data, start=start, stop=stop, batch_size=batch_size, seed=seed, ctx=ctx, workers=workers)
    try:
        return [b.clone() for b in tb]
    finally:
        tb.close()


def test_flip_is_a_pure_hash_of_seed_step_and_index():
    draws = [flips(3, s, i) for s in range(100) for i in range(20)]
    assert 0.45 < np.mean(draws) < 0.55
    assert draws == [flips(3, s, i) for s in range(100) for i in range(20)]
    assert draws != [flips(4, s, i) for s in range(100) for i in range(20)]
    # Not a function of the index alone: a frame is mirrored at some steps and not others.
    assert {flips(3, s, 7) for s in range(20)} == {True, False}


def test_zero_and_two_workers_give_identical_batches(h5):
    data = H5Images(h5, east_west_flip=True)
    before = torch.get_rng_state()
    serial, parallel = _batches(data, 0), _batches(data, 2)
    assert torch.equal(torch.get_rng_state(), before)  # the loader never touched the global RNG
    assert len(serial) == 7 and all(torch.equal(a, b) for a, b in zip(serial, parallel))
    # What the batches are: the step's frames, mirrored exactly where `flips` says.
    plain = H5Images(h5)
    for step, b in enumerate(serial):
        idx = batch_indices(step, 4, 10, 5).tolist()
        want = torch.stack([plain[i].flip(-1) if flips(5, step, i) else plain[i] for i in idx])
        assert torch.equal(b, want)
    assert any(flips(5, s, i) for s in range(7) for i in batch_indices(s, 4, 10, 5).tolist())


def test_a_resumed_loader_and_each_rank_see_their_part_of_the_same_batches(h5):
    data = H5Images(h5, east_west_flip=True)
    full = _batches(data, 0)
    assert all(torch.equal(a, b) for a, b in zip(full[3:], _batches(data, 2, start=3)))
    ranks = [_batches(data, 1, ctx=ddp.DistContext(rank=r, world_size=2)) for r in range(2)]
    assert all(torch.equal(torch.cat([r0, r1]), b) for r0, r1, b in zip(*ranks, full))




def test_training_with_workers_and_a_resume_equals_a_serial_run(h5, tmp_path):
    data = H5Images(h5, east_west_flip=True)
    straight = Toy(64, touch_global_rng=True)
    fit(straight, data, batch_size=3, total_steps=6, ckpt_dir=tmp_path / "a", save_every=100, seed=2, workers=0)
    first = Toy(64, touch_global_rng=True)
    fit(first, data, batch_size=3, total_steps=4, ckpt_dir=tmp_path / "b", save_every=100, seed=2, workers=2)
    resumed = Toy(64, touch_global_rng=True)
    fit(resumed, data, batch_size=3, total_steps=6, ckpt_dir=tmp_path / "b", save_every=100, seed=2, workers=2)
    a = load_checkpoint(tmp_path / "a" / "step0000006.pt")["modules"]["net"]
    b = load_checkpoint(tmp_path / "b" / "step0000006.pt")["modules"]["net"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_default_workers_follow_the_cores_of_the_rank(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda _: set(range(48)))
    monkeypatch.delenv("SOLARGEN_LOADER_WORKERS", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "12")  # JUWELS Booster: 48 cores / 4 GPUs
    assert default_workers() == 8
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")
    assert default_workers() == 4
    monkeypatch.delenv("SLURM_CPUS_PER_TASK")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun, 8 ranks sharing 48 cores
    assert default_workers() == 4
    monkeypatch.setattr("os.sched_getaffinity", lambda _: {0, 1})
    monkeypatch.delenv("LOCAL_WORLD_SIZE")
    assert default_workers() == 0  # this 2-core machine: read in the training process
    monkeypatch.setenv("SOLARGEN_LOADER_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.setenv("SOLARGEN_LOADER_WORKERS", "many")
    with pytest.raises(ValueError, match="SOLARGEN_LOADER_WORKERS"):
        default_workers()
