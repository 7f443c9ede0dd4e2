"""Data-parallel training for every family: ranks, gradient averaging, per-rank randomness.

Why not ``torch.nn.parallel.DistributedDataParallel``: the families' ``training_step`` call
their modules several times per step and step several optimisers (a GAN runs D and G phases,
with D frozen while G's loss flows through it; StyleGAN2 adds lazy regularisers every k steps).
Wrapping every module call in DDP would mean editing each family and fighting DDP's
one-forward-one-backward assumption (``find_unused_parameters``, frozen D, double backward).

Instead the engine is family-agnostic and exact:

- **Data**: the global batch of ``step`` is ``batch_indices(step, global_batch, n, seed)``
  (a pure function of seed and step, so resume needs no sampler state); rank r of W takes
  the contiguous slice r·B/W … (r+1)·B/W (`shard`). B must be divisible by W.
- **Gradients**: before *every* optimiser step, an optimiser step-pre-hook all-reduces the
  gradients of that optimiser's parameters (flattened into buckets) and divides by W. Each
  rank's loss is a mean over its B/W samples, so the average is the gradient of the mean over
  the global batch: one W-process step equals one single-process step on the concatenated
  batch (to float rounding; ``tests/test_distributed.py`` checks it). All ranks then apply
  the same update to the same weights, so weights, optimiser and EMA state stay identical.
- **Buffers**: floating-point buffers (StyleGAN2's path-length mean, FastGAN's BatchNorm
  statistics) are averaged after each step, so ranks never drift apart. The running mean of a
  lerp is linear, so this is exactly the single-process update; per-rank BatchNorm *batch*
  statistics (FastGAN's G only) and the path-length target used inside a step are per rank,
  as in the upstream multi-GPU code. Initial weights are broadcast from rank 0.
- **Randomness**: rank 0 keeps the single-process streams (seed); rank r > 0 gets its own
  deterministic stream (`rank_seed`). Checkpoints keep every rank's generator and global RNG
  state, so a resume on the same number of ranks continues exactly.
- **Assumption**: every rank runs the same code path in a step (the families branch only on
  the step number and config, never on data), so the collectives line up.

Ranks come from torchrun (``RANK``/``WORLD_SIZE``/``LOCAL_RANK``) or from ``srun`` (one task
per GPU: ``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``; ``MASTER_ADDR`` is the first host
of ``SLURM_JOB_NODELIST``). Backend: NCCL on CUDA, gloo on CPU.
"""

from __future__ import annotations

import datetime
import logging
import os
import subprocess
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)

#: gradients are all-reduced in flat buckets of at most this many elements (100 MB in fp32),
#: so the extra memory stays bounded for the paper-scale U-Net.
BUCKET_NUMEL = 25_000_000


@dataclass
class DistContext:
    """Where this process sits in the job. ``world_size == 1``: plain single-process training."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def rank_seed(seed: int, rank: int) -> int:
    """The random seed of ``rank``: rank 0 keeps ``seed`` (so one process is the plain run)."""
    if rank == 0:
        return seed
    return (seed * 1_000_003 + rank * 998_244_353) % (2**63 - 1)


def _first_host(nodelist: str) -> str:
    """First hostname of a SLURM node list (``jwb[0001-0004]`` → ``jwb0001``)."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True,
                             text=True, check=True, timeout=30).stdout.split()
        if out:
            return out[0]
    except (OSError, subprocess.SubprocessError):
        pass
    # No scontrol: expand the first entry of the bracket syntax by hand.
    head = nodelist.split(",")[0]
    if "[" in head:
        prefix, rest = head.split("[", 1)
        return prefix + rest.split("-")[0].split(",")[0].rstrip("]")
    return head


def detect() -> DistContext:
    """Rank, world size and local rank from torchrun's or SLURM's environment (else 1 process).

    SLURM variables count only with ``SLURM_NTASKS`` > 1, i.e. when ``srun`` started one task
    per rank (a job step of one task, such as Snakemake's own ``srun -n1``, is one process).
    Sets ``MASTER_ADDR``/``MASTER_PORT`` for SLURM launches when they are unset.
    """
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:
        return DistContext(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        ctx = DistContext(int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]), int(env.get("SLURM_LOCALID", 0)))
        if "MASTER_ADDR" not in env:
            env["MASTER_ADDR"] = _first_host(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST", "127.0.0.1"))
        # One port per job, so two jobs sharing a node don't collide.
        env.setdefault("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 20000))
        return ctx
    return DistContext()


def init(device: torch.device, ctx: DistContext | None = None, timeout_min: float = 30) -> tuple[DistContext, torch.device]:
    """Join the process group (NCCL for CUDA, gloo for CPU); returns the context and this rank's device.

    On CUDA each rank takes GPU ``local_rank`` (a node's ranks share its GPUs).
    """
    import torch.distributed as dist

    ctx = ctx or detect()
    if not ctx.active:
        return ctx, device
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://",
                                rank=ctx.rank, world_size=ctx.world_size,
                                timeout=datetime.timedelta(minutes=timeout_min))
    log.info("rank %d of %d (local %d) on %s, backend %s", ctx.rank, ctx.world_size, ctx.local_rank,
             device, dist.get_backend())
    return ctx, device


def shutdown():
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def shard(idx: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """This rank's contiguous slice of the global batch indices (B,) → (B/W,)."""
    b = len(idx)
    if b % ctx.world_size:
        raise ValueError(f"global batch_size {b} is not divisible by the {ctx.world_size} ranks")
    per = b // ctx.world_size
    return idx[ctx.rank * per:(ctx.rank + 1) * per]


def _buckets(tensors, limit: int = BUCKET_NUMEL):
    """Consecutive groups of same-device, same-dtype tensors of at most ``limit`` elements."""
    group, numel = [], 0
    for t in tensors:
        if group and (numel + t.numel() > limit or t.dtype != group[0].dtype or t.device != group[0].device):
            yield group
            group, numel = [], 0
        group.append(t)
        numel += t.numel()
    if group:
        yield group


def all_reduce_mean(tensors):
    """Replace each tensor by its mean over ranks (in place, bucketed)."""
    import torch.distributed as dist
    from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

    world = dist.get_world_size()
    for group in _buckets(tensors):
        flat = _flatten_dense_tensors(group)
        dist.all_reduce(flat)
        flat /= world
        for t, avg in zip(group, _unflatten_dense_tensors(flat, group)):
            t.copy_(avg)


def _average_gradients(optimizer, args, kwargs):
    """Optimiser step-pre-hook: average this optimiser's gradients over ranks before it steps."""
    grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
    if any(g.is_sparse for g in grads):
        raise NotImplementedError("sparse gradients are not supported by the data-parallel engine")
    all_reduce_mean(grads)


def attach(optimizers: dict) -> list:
    """Hook every optimiser so its gradients are averaged over ranks before each step; returns handles."""
    return [o.register_step_pre_hook(_average_gradients) for o in optimizers.values()]


def _float_buffers(trainable):
    return [b for m in trainable.modules.values() for b in m.buffers() if b.is_floating_point()]


def sync_buffers(trainable):
    """Average the floating-point buffers of the trained modules over ranks."""
    bufs = _float_buffers(trainable)
    if bufs:
        all_reduce_mean(bufs)


def broadcast_state(trainable):
    """Copy every parameter and buffer (modules and EMA copies) from rank 0 to all ranks."""
    import torch.distributed as dist

    mods = list(trainable.modules.values()) + [e.model for e in trainable.ema.values()]
    with torch.no_grad():
        for m in mods:
            for t in list(m.parameters()) + list(m.buffers()):
                dist.broadcast(t.data, 0)


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank if ``flag`` is true on any (so all ranks stop at the same step)."""
    import torch.distributed as dist

    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def gather_mean(values: list[float], device: torch.device) -> list[float]:
    """The mean over ranks of each of ``values`` (every rank passes the same number)."""
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.float64 if device.type == "cpu" else torch.float32, device=device)
    dist.all_reduce(t)
    return (t / dist.get_world_size()).tolist()


def gather_objects(obj):
    """Every rank's ``obj`` as a list ordered by rank (on all ranks)."""
    import torch.distributed as dist

    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's ``obj`` on every rank."""
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, 0)
    return box[0]


def barrier():
    import torch.distributed as dist

    dist.barrier()
