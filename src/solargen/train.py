"""The training loop every model family shares: data order, checkpoints, resume, EMA, logs.

A family hands `fit` a *trainable*: an object with

- ``modules``: dict name → ``nn.Module`` (everything whose weights are saved),
- ``optimizers``: dict name → ``torch.optim.Optimizer``,
- ``ema``: dict name → `solargen.models.ema.EMA` (the weights samples are drawn from),
- ``training_step(batch, step, generator) -> dict[str, float]`` (one optimisation step at the
  0-based ``step``, returns losses); ``device`` (where batches go).

Checkpoints (``step{K:07d}.pt``) are written atomically and hold weights, optimiser and EMA
state and the RNG state, so a resumed run continues exactly; the data order is a pure
function of (seed, step), so it needs no state. A corrupt newest checkpoint falls back to the
previous one. SIGTERM/SIGUSR1 (SLURM's warning before the time limit) save and stop.

A checkpoint carries its *training fingerprint* (`training_fingerprint`: family, image size,
model config, seed, the dataset's identity and the frames trained on; not ``nodes``,
``save_every``, the world size or the step count, so a 100K run resumes its 58K checkpoint).
A newest checkpoint of another fingerprint, or of another architecture, is never resumed:
`fit` refuses, naming what differs, or with ``move_stale`` moves the folder's checkpoints to
``stale-<time>/`` and starts fresh. A write that fails (a full disk) names the file and leaves
the previous checkpoint intact.

Data parallel (several ranks, see `solargen.distributed`): ``batch_size`` is the *global*
batch, each rank trains on its slice, gradients are averaged before every optimiser step;
rank 0 alone writes checkpoints and logs, and every rank resumes from the same file.
"""

from __future__ import annotations

import csv
import errno
import json
import logging
import os
import shutil
import signal
import time
from pathlib import Path

import torch

from . import distributed as ddp
from .io import atomic_path
from .loader import TrainBatches, batch_indices  # noqa: F401  (batch_indices: part of this API)
from .memory import keep_freed_memory

log = logging.getLogger(__name__)


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be resumed or written; the message names the file and the remedy."""


class StaleCheckpoint(CheckpointError):
    """The newest checkpoint belongs to another training (fingerprint or architecture)."""


def scale_lr(cfg: dict) -> dict:
    """The model config with ``lr`` scaled for its global batch (config keys ``lr_scaling``:
    none | linear | sqrt, and ``lr_reference_batch``, the batch the configured lr was tuned for).

    The batch is global, so the number of GPUs never changes the lr; scaling only matters when
    a config changes the batch away from the one its lr comes from.
    """
    rule = cfg.get("lr_scaling", "none")
    if rule == "none":
        return cfg
    if rule not in ("linear", "sqrt") or "lr_reference_batch" not in cfg:
        raise ValueError(f"lr_scaling {rule!r} needs lr_scaling in (none, linear, sqrt) and lr_reference_batch")
    ratio = cfg["batch_size"] / cfg["lr_reference_batch"]
    return {**cfg, "lr": float(cfg["lr"]) * (ratio if rule == "linear" else ratio**0.5)}


def checkpoint_path(ckpt_dir: str | Path, step: int) -> Path:
    return Path(ckpt_dir) / f"step{step:07d}.pt"


def rng_state(generator: torch.Generator, device: torch.device | None = None) -> dict:
    """This process's random state: global CPU RNG, the training generator, and the GPU's RNG."""
    out = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    if device is not None and device.type == "cuda":
        out["cuda"] = torch.cuda.get_rng_state(device)
    return out


def set_rng_state(rng: dict, generator: torch.Generator, device: torch.device | None = None):
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    if "cuda" in rng and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(rng["cuda"], device)


def save_checkpoint(path: str | Path, trainable, step: int, generator: torch.Generator, extra: dict | None = None,
                    rank_rng: list[dict] | None = None):
    """Write the full training state atomically. ``rank_rng``: every rank's `rng_state`
    (data-parallel runs; the top-level ``rng`` is rank 0's)."""
    device = getattr(trainable, "device", None)
    state = {
        "step": step,
        "modules": {k: m.state_dict() for k, m in trainable.modules.items()},
        "optimizers": {k: o.state_dict() for k, o in trainable.optimizers.items()},
        "ema": {k: e.state_dict() for k, e in trainable.ema.items()},
        "rng": rank_rng[0] if rank_rng else rng_state(generator, device),
        "extra": extra or {},
    }
    if rank_rng:
        state["rng"] = {**state["rng"], "ranks": rank_rng}
    try:
        with atomic_path(path) as tmp:
            torch.save(state, tmp)
    except (OSError, RuntimeError) as e:  # torch reports a full disk as "unexpected pos …"
        raise CheckpointError(_write_failure(Path(path), e)) from e


def _write_failure(path: Path, e: Exception) -> str:
    """What went wrong writing ``path``, what is left, and the remedy."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        free = None
    full = (isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)) or "unexpected pos" in str(e) \
        or (free is not None and free < 64 * 2**20)
    cause = "the disk is full" if full else f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    room = f" ({free / 2**20:.0f} MiB free there)" if free is not None else ""

    def step_of(p):
        return int(p.stem[4:]) if p.stem[4:].isdigit() else -1

    earlier = [p for p in sorted(path.parent.glob("step*.pt")) if step_of(p) < step_of(path)]
    kept = (f"the newest complete checkpoint, {earlier[-1]}, is intact and a re-run resumes from it"
            if earlier else "no earlier checkpoint exists")
    return (f"cannot write checkpoint {path}: {cause}{room}. Nothing was replaced: {kept}. "
            f"Free space on that file system (or point the checkpoints elsewhere) and run again.")


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint safely (``weights_only=True``); raise if it is corrupt."""
    return torch.load(path, map_location="cpu", weights_only=True)


def latest_checkpoint(ckpt_dir: str | Path, max_step: int | None = None) -> tuple[Path, dict] | None:
    """The newest readable checkpoint with step ≤ ``max_step``; corrupt ones are skipped with a warning."""
    paths = sorted(Path(ckpt_dir).glob("step*.pt"), reverse=True)
    for p in paths:
        step = int(p.stem[4:])
        if max_step is not None and step > max_step:
            continue
        try:
            return p, load_checkpoint(p)
        except Exception as e:  # truncated zip, bad pickle: fall back to the previous one
            log.warning("checkpoint %s is unreadable (%s); falling back to an earlier one", p, e)
    return None


#: The train command's flag that moves stale checkpoints aside and starts fresh.
FRESH_FLAG = "--move-stale"

#: Model config keys that say where and how a training runs, not what it learns: changing
#: them does not make a checkpoint stale (nor do the world size and the step count, which are
#: not model config keys). ``use_checkpoint`` recomputes activations bit for bit.
NOT_FINGERPRINTED = ("nodes", "save_every", "compile", "use_checkpoint")


def training_fingerprint(family: str, cfg: dict, image_size: int, data: dict | None = None, **more) -> dict:
    """What a checkpoint must share with a run for the run to resume it, as flat key → value:
    ``family``, ``image_size``, ``model.<key>`` for each model config key (but
    `NOT_FINGERPRINTED`), ``data.*`` (e.g. `solargen.dataset.dataset_identity` and the frames
    trained on) and ``more`` (seed, augmentation). ``version``, the package's, is recorded too;
    a difference in it alone is only a warning."""
    from . import __version__

    fp = {"family": family, "image_size": int(image_size)}
    fp.update({f"model.{k}": v for k, v in sorted(cfg.items()) if k not in NOT_FINGERPRINTED})
    fp.update(data or {})
    fp.update(more)
    fp["version"] = __version__
    return json.loads(json.dumps(fp, sort_keys=True))  # plain JSON types (tuples → lists): comparable


def _legacy_fingerprint(extra: dict) -> dict:
    """The part of a fingerprint a checkpoint written before fingerprints still tells (its model JSON)."""
    if "model" not in extra:
        return {}
    try:
        cfg = json.loads(extra["model"])
    except (TypeError, ValueError):
        return {}
    fp = {f"model.{k}": v for k, v in cfg.items() if k not in NOT_FINGERPRINTED}
    fp.update({k: extra[k] for k in ("family", "image_size") if k in extra})
    return json.loads(json.dumps(fp, sort_keys=True))


def _show(v) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= 60 else s[:57] + "..."


def _fingerprint_problem(found: tuple[Path, dict], now: dict) -> str | None:
    """The first fingerprint key (and how many more) in which checkpoint ``found`` differs from ``now``."""
    path, state = found
    saved = state.get("extra", {}).get("fingerprint")
    legacy = saved is None
    if legacy:
        saved = _legacy_fingerprint(state.get("extra", {}))
        log.warning("%s was written before training fingerprints: only its model config can be checked, "
                    "not its data", path)
    keys = sorted((set(saved) & set(now)) if legacy else (set(saved) | set(now)))
    differ = [k for k in keys if k != "version" and saved.get(k, "(absent)") != now.get(k, "(absent)")]
    if differ:
        k = differ[0]
        more = f" (also {', '.join(differ[1:4])}{', …' if len(differ) > 4 else ''})" if differ[1:] else ""
        return f"{k} is {_show(saved.get(k, '(absent)'))} there and {_show(now.get(k, '(absent)'))} now{more}"
    if not legacy and saved.get("version") != now.get("version"):
        log.warning("%s was written by solargen %s, this is %s; same training fingerprint, so resuming",
                    path, saved.get("version"), now.get("version"))
    return None


def _architecture_problem(trainable, state: dict) -> str | None:
    """Why ``state``'s weights and optimiser state do not fit ``trainable`` (None: they do)."""
    saved_modules = state.get("modules", {})
    parts = [(f"module {k!r}", m.state_dict(), saved_modules.get(k)) for k, m in trainable.modules.items()]
    parts += [(f"EMA {k!r}", e.state_dict(), state.get("ema", {}).get(k)) for k, e in trainable.ema.items()]
    for what, own, sd in parts:
        if sd is None:
            return f"it has no {what} (it has modules {', '.join(saved_modules) or 'none'})"
        missing = [k for k in own if k not in sd]
        unexpected = [k for k in sd if k not in own]
        shape = [k for k in own if k in sd and tuple(sd[k].shape) != tuple(own[k].shape)]
        if missing or unexpected or shape:
            eg = (f"e.g. {shape[0]} is {list(sd[shape[0]].shape)} there and {list(own[shape[0]].shape)} here"
                  if shape else f"e.g. {(missing or unexpected)[0]}")
            return (f"its {what} is another architecture ({len(shape)} tensors of another shape, "
                    f"{len(missing)} missing, {len(unexpected)} unexpected; {eg})")
    extra_modules = sorted(set(saved_modules) - set(trainable.modules))
    if extra_modules:
        return f"it has modules this model lacks ({', '.join(extra_modules)}): another architecture"
    for k, o in trainable.optimizers.items():
        groups = state.get("optimizers", {}).get(k, {}).get("param_groups")
        if groups is None:
            return f"it has no optimiser {k!r}"
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in o.param_groups]:
            return f"its optimiser {k!r} holds other parameter groups: another architecture"
    return None


def stale_reason(trainable, found: tuple[Path, dict], fingerprint: dict | None) -> str | None:
    """Why checkpoint ``found`` (path, state) cannot be resumed by this training (None: it can):
    a fingerprint key that differs, else weights that do not fit the model."""
    if fingerprint is not None:
        why = _fingerprint_problem(found, fingerprint)
        if why:
            return why
    return _architecture_problem(trainable, found[1])


def move_aside(ckpt_dir: Path, also=()) -> Path:
    """Move every checkpoint of ``ckpt_dir`` (and the files or folders ``also``, e.g. the training
    logs of that training) into a new ``ckpt_dir/stale-<time>/``; nothing is deleted."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest, i = ckpt_dir / f"stale-{stamp}", 1
    while dest.exists():
        dest, i = ckpt_dir / f"stale-{stamp}-{i}", i + 1
    dest.mkdir(parents=True)
    for p in sorted(ckpt_dir.glob("step*.pt")):
        os.replace(p, dest / p.name)
    for p in also:
        if p is not None and Path(p).exists():
            shutil.move(str(p), str(dest / Path(p).name))
    return dest


def _check_resume(found, trainable, fingerprint, move_stale, ckpt_dir, also) -> tuple[tuple | None, str | None]:
    """(the checkpoint to resume or None, the error to raise or None) for the newest readable one."""
    why = stale_reason(trainable, found, fingerprint)
    if why is None:
        return found, None
    if move_stale:
        dest = move_aside(ckpt_dir, also)
        log.warning("%s belongs to another training (%s): moved the checkpoints of %s to %s and training "
                    "from scratch", found[0], why, ckpt_dir, dest)
        return None, None
    return None, (f"{found[0]} belongs to another training: {why}. Resuming it would continue that training "
                  f"(its weights and optimiser state, lr included). To start fresh, run again with {FRESH_FLAG} "
                  f"(moves the checkpoints of {ckpt_dir} to {ckpt_dir}/stale-<time>/; nothing is deleted), "
                  "or give another --ckpt-dir.")


def restore(trainable, state: dict, generator: torch.Generator, ctx: ddp.DistContext | None = None,
            seed: int = 0) -> int:
    """Load a checkpoint into ``trainable`` and this rank's random state; returns its step.

    A data-parallel checkpoint resumed on the same number of ranks continues every rank's
    random streams exactly. On another number of ranks the batches are still the same (they
    depend on seed and step only) but the random streams restart from (seed, rank, step).
    """
    ctx = ctx or ddp.DistContext()
    for k, m in trainable.modules.items():
        m.load_state_dict(state["modules"][k])
    for k, o in trainable.optimizers.items():
        o.load_state_dict(state["optimizers"][k])
    for k, e in trainable.ema.items():
        e.load_state_dict(state["ema"][k])
    step = int(state["step"])
    rng = state["rng"]
    saved = len(rng.get("ranks", [rng]))
    device = getattr(trainable, "device", None)
    if saved == ctx.world_size:
        set_rng_state(rng["ranks"][ctx.rank] if "ranks" in rng else rng, generator, device)
    else:
        log.warning("checkpoint was written by %d rank(s), resuming on %d: same batches, new random "
                    "streams from (seed, rank, step)", saved, ctx.world_size)
        s = ddp.rank_seed(seed * 1_000_003 + step, ctx.rank)
        generator.manual_seed(s)
        torch.manual_seed(s)
    return step


class _StopRequest:
    """Turns SIGTERM/SIGUSR1 into a flag the loop checks between steps."""

    def __init__(self):
        self.signum = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGTERM, signal.SIGUSR1):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *a):
        for s, h in self._old.items():
            signal.signal(s, h)


class Interrupted(RuntimeError):
    """Raised after the checkpoint is saved when a stop signal arrived (the job should be re-run)."""


def fit(trainable, dataset, *, batch_size: int, total_steps: int, ckpt_dir: str | Path,
        save_every: int, seed: int = 0, log_csv: str | Path | None = None,
        log_every: int = 10, extra: dict | None = None, dist: ddp.DistContext | None = None,
        precision: str = "fp32", compile: bool = False, tensorboard: str | Path | None = None,
        check=None, check_every: int = 0, workers: int | None = None, fingerprint: dict | None = None,
        move_stale: bool = False) -> Path:
    """Train until ``total_steps``, resuming from the newest valid checkpoint in ``ckpt_dir``.

    ``batch_size`` is the global batch; with ``dist`` (an initialised process group of W
    ranks) each rank trains on B/W of it. ``precision="bf16"`` runs each step under bf16
    autocast on a GPU (ignored on the CPU, where it would only be slower); ``compile``
    compiles every module with `torch.compile`. Rank 0 logs losses, images/s and (GPU) peak
    memory every ``log_every`` steps to ``log_csv`` and, if given, TensorBoard scalars in
    ``tensorboard``. With ``check`` (e.g. `solargen.evaluate.training_check.TrainingCheck`),
    rank 0 adds ``check(trainable)``'s numbers to the log every ``check_every`` steps and at the
    end. Batches come from `solargen.loader.TrainBatches` with ``workers`` reader processes
    (None: from the cores this rank has). ``fingerprint`` (`training_fingerprint`) is stored in
    every checkpoint, and a newest checkpoint of another fingerprint or architecture raises
    `StaleCheckpoint`, or, with ``move_stale``, is moved aside with its folder's other
    checkpoints and the training logs, and training starts from scratch. Returns the path of
    the checkpoint at ``total_steps``.
    """
    import contextlib

    from tqdm import tqdm

    ctx = dist or ddp.DistContext()
    ckpt_dir = Path(ckpt_dir)
    device = getattr(trainable, "device", torch.device("cpu"))
    if device.type == "cpu":  # each step's activations from the heap, not re-faulted: −6 to −12 % CPU per step
        keep_freed_memory()
    generator = torch.Generator().manual_seed(ddp.rank_seed(seed, ctx.rank))
    torch.manual_seed(ddp.rank_seed(seed, ctx.rank))
    if ctx.active and batch_size % ctx.world_size:
        raise ValueError(f"global batch_size {batch_size} is not divisible by the {ctx.world_size} ranks")
    step = 0
    found = latest_checkpoint(ckpt_dir, max_step=total_steps) if ctx.is_main else None
    stale = None
    if found:  # rank 0 decides whether it is this training's
        found, stale = _check_resume(found, trainable, fingerprint, move_stale, ckpt_dir, (log_csv, tensorboard))
    if ctx.active:  # rank 0 picks the file (a corrupt newest one is skipped once), all ranks read it
        path, stale = ddp.broadcast_object((str(found[0]) if found else None, stale))
        found = (Path(path), found[1] if found else load_checkpoint(path)) if path else None
    if stale:
        raise StaleCheckpoint(stale)
    if fingerprint is not None:
        extra = {**(extra or {}), "fingerprint": fingerprint}
    if found:
        step = restore(trainable, found[1], generator, ctx, seed)
        if ctx.is_main:
            log.info("resumed from %s (step %d)", found[0], step)
    final = checkpoint_path(ckpt_dir, total_steps)
    if step == total_steps:
        return final
    hooks = []
    if ctx.active:
        ddp.broadcast_state(trainable)
        hooks = ddp.attach(trainable.optimizers)
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision {precision!r}: use fp32 or bf16")
    bf16 = precision == "bf16" and device.type == "cuda"
    if compile:
        for m in trainable.modules.values():
            m.compile()  # in place: parameter names, hence checkpoints, stay the same
    logger = _CsvLog(log_csv, resume_step=step) if log_csv and ctx.is_main else None
    tb = _TensorBoard(tensorboard, step) if tensorboard and ctx.is_main else None
    # Workers read and stack the next batches while this process trains on the current one.
    batches = TrainBatches(dataset, start=step, stop=total_steps, batch_size=batch_size, seed=seed, ctx=ctx,
                           device=device, workers=workers)
    t0, seen = time.perf_counter(), 0
    try:
        with _StopRequest() as stop, tqdm(total=total_steps, initial=step, desc="train", unit="step",
                                          disable=not ctx.is_main) as bar:
            for batch in batches:
                with torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
                    losses = trainable.training_step(batch, step, generator)
                if ctx.active:
                    ddp.sync_buffers(trainable)
                step += 1
                seen += batch_size
                bar.update(1)
                checking = check is not None and check_every > 0 and (step % check_every == 0 or step == total_steps)
                if (log_csv or tensorboard) and (step % log_every == 0 or step == total_steps or checking):
                    if ctx.active:  # the global batch's losses: the mean over ranks
                        losses = dict(zip(losses, ddp.gather_mean(list(losses.values()), device)))
                    dt = time.perf_counter() - t0
                    row = {**losses, "images_per_s": seen / dt if dt else 0.0}
                    if device.type == "cuda":
                        row["gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
                    if checking and ctx.is_main:
                        row.update(check(trainable))
                    if logger:
                        logger.write({"step": step, **row})
                    if tb:
                        tb.write(step, row)
                    bar.set_postfix({k: f"{v:.4f}" for k, v in losses.items()})
                stopping = stop.signum is not None
                if ctx.active:  # every rank stops after the same step
                    stopping = ddp.any_rank(stopping, device)
                if step % save_every == 0 or step == total_steps or stopping:
                    _save(checkpoint_path(ckpt_dir, step), trainable, step, generator, extra, ctx, device)
                if stopping and step < total_steps:
                    raise Interrupted(f"stopped by signal {stop.signum or '(on another rank)'} at step {step}; "
                                      "checkpoint saved")
    finally:
        batches.close()
        for h in hooks:
            h.remove()
        if tb:
            tb.close()
    return final


def _save(path, trainable, step, generator, extra, ctx: ddp.DistContext, device):
    """Rank 0 writes the checkpoint (with every rank's random state); the others wait for it."""
    if not ctx.active:
        save_checkpoint(path, trainable, step, generator, extra)
        return
    rank_rng = ddp.gather_objects(rng_state(generator, device))
    if ctx.is_main:
        save_checkpoint(path, trainable, step, generator, {**(extra or {}), "world_size": ctx.world_size},
                        rank_rng=rank_rng)
    ddp.barrier()


class _CsvLog:
    """Append-only CSV training log; rows past the resumed step (from a lost run) are dropped."""

    def __init__(self, path, resume_step: int):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        rows = []
        if self.path.exists():
            with open(self.path) as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.fields = list(rows[0].keys()) if rows else None
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", newline="") as f:
                if rows:
                    w = csv.DictWriter(f, self.fields)
                    w.writeheader()
                    w.writerows(rows)

    def write(self, row: dict):
        new = self.fields is None
        if new:
            self.fields = list(row)
        elif set(row) - set(self.fields):  # a new column (a periodic check): widen the file once
            with open(self.path) as f:
                rows = list(csv.DictReader(f))
            self.fields += [k for k in row if k not in self.fields]
            with atomic_path(self.path) as tmp:
                with open(tmp, "w", newline="") as f:
                    w = csv.DictWriter(f, self.fields)
                    w.writeheader()
                    w.writerows(rows)
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})


class _TensorBoard:
    """TensorBoard scalars under ``train/<name>``; events of a lost run past the resumed step are purged."""

    def __init__(self, log_dir, resume_step: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # the tensorboard package is optional; the CSV log has the same numbers
            log.warning("no TensorBoard log (%s); the CSV log has the same scalars", e)
            self.writer = None
            return
        self.writer = SummaryWriter(str(log_dir), purge_step=resume_step + 1 if resume_step else None)

    def write(self, step: int, row: dict):
        if self.writer:
            for k, v in row.items():
                self.writer.add_scalar(f"train/{k}", v, step)

    def close(self):
        if self.writer:
            self.writer.close()
