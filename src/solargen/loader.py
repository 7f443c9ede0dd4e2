"""Training batches: which frames (a pure function of seed, step and rank), read ahead by workers.

`batch_indices` fixes the data order; `TrainBatches` reads those frames through a
`torch.utils.data.DataLoader`: worker processes (each opens its own HDF5 handle, lazily),
prefetch, and on a GPU pinned memory with non-blocking copies, so reading and stacking the next
batches overlaps the current step. Nothing here draws from a random state a checkpoint has to
save: the loader has its own generator (it only seeds the workers) and the east-west flip is a
hash of (seed, step, dataset index). A resumed run therefore sees exactly the batches of an
uninterrupted one, with any number of workers (0 reads in the training process itself).

Workers: ``SOLARGEN_LOADER_WORKERS`` if set, else the cores this rank has (SLURM_CPUS_PER_TASK,
bounded by the CPUs the process may run on; without SLURM the CPUs shared among the node's ranks)
less two (the training process and a spare), between 0 and 8.
"""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, Sampler, get_worker_info

from . import distributed as ddp

MAX_WORKERS = 8
_M64 = (1 << 64) - 1


def batch_indices(step: int, batch_size: int, n: int, seed: int) -> torch.Tensor:
    """Dataset indices of the global batch at ``step``: a fresh seeded permutation each epoch.

    A pure function of its arguments, so a resumed run sees exactly the batches it would have.
    """
    g = torch.arange(step * batch_size, (step + 1) * batch_size)
    epochs, pos = g // n, g % n
    out = torch.empty(batch_size, dtype=torch.long)
    for e in epochs.unique().tolist():
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + e))
        m = epochs == e
        out[m] = perm[pos[m]]
    return out


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of an integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def flips(seed: int, step: int, index: int) -> bool:
    """Whether the east-west flip mirrors dataset frame ``index`` in the batch of ``step``.

    Half the (step, frame) pairs, independent of rank, worker and global random state.
    """
    return bool(_mix(_mix(_mix(seed & _M64) ^ step) ^ index) & 1)


def default_workers() -> int:
    """Loader worker processes for this rank (module docstring)."""
    env = os.environ.get("SOLARGEN_LOADER_WORKERS")
    if env is not None and env.strip():
        try:
            n = int(env)
        except ValueError:
            n = -1
        if n < 0:
            raise ValueError(f"SOLARGEN_LOADER_WORKERS={env!r}: a number of worker processes >= 0")
        return n
    avail = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK")
    if slurm and slurm.isdigit():
        cores = min(int(slurm), avail)  # srun: one task per rank, its cores
    else:
        cores = avail // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1") or 1))  # torchrun: shared
    return max(0, min(cores - 2, MAX_WORKERS))


class _StepBatches(Sampler):
    """For each step, this rank's slice of the global batch, as (step, dataset index) keys."""

    def __init__(self, start: int, stop: int, batch_size: int, n: int, seed: int, ctx: ddp.DistContext):
        self.start, self.stop, self.batch_size, self.n, self.seed, self.ctx = start, stop, batch_size, n, seed, ctx

    def __len__(self):
        return max(0, self.stop - self.start)

    def __iter__(self):
        for step in range(self.start, self.stop):
            idx = batch_indices(step, self.batch_size, self.n, self.seed)
            if self.ctx.active:
                idx = ddp.shard(idx, self.ctx)
            yield [(step, i) for i in idx.tolist()]


class _Frames(Dataset):
    """The dataset's item ``i``, mirrored left-right where `flips` says (datasets with ``flip``)."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed = dataset, seed
        self.flip = bool(getattr(dataset, "flip", False))

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, key):
        step, i = key
        x = self.dataset[i]
        return x.flip(-1) if self.flip and flips(self.seed, step, i) else x


def _worker_init(_):
    # A forked worker must not share an HDF5 handle the parent may hold: drop it, the dataset
    # opens its own on first read (h5py handles are not fork-safe).
    ds = get_worker_info().dataset.dataset
    if getattr(ds, "_f", None) is not None:
        ds._f = None


class TrainBatches:
    """This rank's batches for steps ``start … stop-1``, on ``device``; iterate once, then `close`.

    ``workers`` None: `default_workers`. ``prefetch``: batches each worker reads ahead.
    """

    def __init__(self, dataset, *, start: int, stop: int, batch_size: int, seed: int,
                 ctx: ddp.DistContext | None = None, device: torch.device = torch.device("cpu"),
                 workers: int | None = None, prefetch: int = 2):
        ctx = ctx or ddp.DistContext()
        self.workers = default_workers() if workers is None else int(workers)
        self.workers = min(self.workers, max(0, stop - start))  # no idle processes for a short run
        self.device = device
        self.pin = device.type == "cuda"
        self.loader = DataLoader(
            _Frames(dataset, seed), batch_sampler=_StepBatches(start, stop, batch_size, len(dataset), seed, ctx),
            num_workers=self.workers, pin_memory=self.pin, worker_init_fn=_worker_init if self.workers else None,
            prefetch_factor=prefetch if self.workers else None,
            # Its own generator: the loader never draws from the global RNG that checkpoints save.
            generator=torch.Generator().manual_seed(ddp.rank_seed(seed, ctx.rank) ^ start))
        self._it = None

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        self._it = iter(self.loader)
        for batch in self._it:
            yield batch.to(self.device, non_blocking=self.pin)

    def close(self):
        """Stop the worker processes now (not at garbage collection)."""
        shutdown = getattr(self._it, "_shutdown_workers", None)
        if shutdown:
            shutdown()
        self._it = None
