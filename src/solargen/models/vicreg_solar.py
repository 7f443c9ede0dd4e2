"""VICReg on solar frames (the study's ``vicreg_rn50_solar``), for `solargen.train.fit`.

Trunk: timm's ``ResNet`` with one input channel, ResNet-50 (Bottleneck, [3, 4, 6, 3]) at paper
scale, fewer/narrower BasicBlock stages at demo scale (``block``, ``layers``, ``channels``,
``stem_width``); its global-average-pooled output is the representation (the features). Expander:
``expander`` widths, Linear-BN-ReLU between, a plain Linear last (VICReg's 8192-8192-8192).
Loss: ``sim_coeff`` × invariance (MSE of the two views' embeddings) + ``std_coeff`` × variance
(hinge of each dimension's std at 1, per view) + ``cov_coeff`` × covariance (squared off-diagonal
covariances / dim), the paper's 25 / 25 / 1.

Two views per frame with VICReg's augmentations adapted to one channel: random resized crop
(scale 0.08–1, bicubic), horizontal flip (0.5), brightness and contrast jitter (``jitter`` 0.4,
with probability ``jitter_p`` 0.8; saturation, hue and grayscale do not apply to one channel), Gaussian blur
(probability ``blur_p``, VICReg's 1.0 / 0.1 for the two views, σ 0.1–2 in units of a 224-px frame) and
solarisation (``solarize_p``, 0 / 0.2). Optimiser: LARS (timm's; biases and norms excluded from weight decay and
adaptation) or AdamW (``optimizer``), warm-up + cosine lr per step, lr = ``base_lr`` × batch / 256.
Data parallel: the loss is computed on the embeddings gathered from every rank (`gather_batch`)
and, on GPUs, batch norms are synchronised, so the statistics are the global batch's, as VICReg's.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .ssl_common import crop_resize, random_boxes, set_lr, warmup_cosine


def trunk_kwargs(cfg: dict) -> dict:
    """timm ``ResNet`` arguments of the trunk (JSON-safe: the block by name)."""
    return {"block": cfg.get("block", "Bottleneck"), "layers": list(cfg.get("layers", [3, 4, 6, 3])), "in_chans": 1,
            "num_classes": 0, "channels": list(cfg.get("channels", [64, 128, 256, 512])),
            "stem_width": int(cfg.get("stem_width", 64)), "stem_type": cfg.get("stem_type", "")}


def build_trunk(cfg: dict) -> nn.Module:
    from .ssl_common import constructor_kwargs, encoder_class

    return encoder_class("ResNet")(**constructor_kwargs(trunk_kwargs(cfg)))


def expander(dim_in: int, widths: list[int]) -> nn.Sequential:
    layers, d = [], dim_in
    for i, w in enumerate(widths):
        layers.append(nn.Linear(d, w, bias=i < len(widths) - 1))  # the last layer has no bias, as VICReg's
        if i < len(widths) - 1:
            layers += [nn.BatchNorm1d(w), nn.ReLU(inplace=True)]
        d = w
    return nn.Sequential(*layers)


def off_diagonal(m: torch.Tensor) -> torch.Tensor:
    n = m.shape[0]
    return m.flatten()[:-1].view(n - 1, n + 1)[:, 1:].flatten()


def vicreg_loss(z1: torch.Tensor, z2: torch.Tensor, sim: float = 25.0, std: float = 25.0, cov: float = 1.0):
    """VICReg's loss of two (B, D) embeddings: (total, {invariance, variance, covariance})."""
    b, d = z1.shape
    inv = F.mse_loss(z1, z2)
    z1, z2 = z1 - z1.mean(0), z2 - z2.mean(0)
    s1, s2 = torch.sqrt(z1.var(0) + 1e-4), torch.sqrt(z2.var(0) + 1e-4)
    var = F.relu(1 - s1).mean() / 2 + F.relu(1 - s2).mean() / 2
    c1, c2 = z1.T @ z1 / (b - 1), z2.T @ z2 / (b - 1)
    covl = off_diagonal(c1).pow(2).sum() / d + off_diagonal(c2).pow(2).sum() / d
    total = sim * inv + std * var + cov * covl
    return total, {"invariance": inv, "variance": var, "covariance": covl}


def gather_batch(z: torch.Tensor) -> torch.Tensor:
    """Every rank's embeddings, concatenated in rank order, so the variance and covariance terms see
    the global batch as VICReg's; differentiable (each rank's gradient flows back to its own part,
    summed over ranks, then the loop's gradient averaging makes it the single-process gradient).
    One process: ``z`` itself."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z
    return torch.cat(_AllGather.apply(z))


class _AllGather(torch.autograd.Function):
    """All ranks' ``z`` (forward); backward sums the incoming gradients over ranks and keeps this
    rank's part. Our own, not ``torch.distributed.nn.functional.all_gather``, whose backward left
    a thread that aborted ~1 in 5 gloo processes at exit ("terminate called without an active
    exception"), which fails a finished training job."""

    @staticmethod
    def forward(ctx, z):
        import torch.distributed as dist

        out = [torch.empty_like(z) for _ in range(dist.get_world_size())]
        dist.all_gather(out, z.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        import torch.distributed as dist

        g = torch.stack(grads)
        dist.all_reduce(g)
        return g[dist.get_rank()]


class VICReg(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        self.trunk = build_trunk(cfg)
        self.expander = expander(self.trunk.num_features, [int(w) for w in cfg["expander"]])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.expander(self.trunk(x))


def encoder_features(trunk: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, D) representation of ``x`` (B, 1, S, S) in [-1, 1]: the trunk's pooled output."""
    return trunk(x)


def _uniform(n, lo, hi, g):
    return torch.empty(n).uniform_(lo, hi, generator=g)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Per-image separable Gaussian blur of (B, 1, S, S) with σ (B,) in pixels (reflect padding)."""
    out = []
    for img, s in zip(x, sigma.tolist()):
        r = max(1, int(3 * s + 0.5))
        t = torch.arange(-r, r + 1, dtype=x.dtype, device=x.device)
        k = torch.exp(-t ** 2 / (2 * s * s))
        k = k / k.sum()
        y = F.pad(img[None], (r, r, r, r), mode="reflect" if r < img.shape[-1] else "replicate")
        y = F.conv2d(y, k.view(1, 1, 1, -1))
        y = F.conv2d(y, k.view(1, 1, -1, 1))
        out.append(y)
    return torch.cat(out)


def augment(x: torch.Tensor, size: int, g: torch.Generator, blur_p: float, solarize_p: float,
            scale=(0.08, 1.0), jitter: float = 0.4, jitter_p: float = 0.8) -> torch.Tensor:
    """One VICReg view of frames (B, 1, H, W) in [-1, 1] (see the module docstring)."""
    b, (h, w) = x.shape[0], x.shape[-2:]
    v = crop_resize(x, random_boxes(b, h, w, g, scale=scale), size)
    dev = v.device
    flip = (torch.rand(b, generator=g) < 0.5).to(dev)
    v = torch.where(flip[:, None, None, None], v.flip(-1), v)
    u = (v + 1) / 2  # [0, 1], where torchvision's colour transforms work
    on = (torch.rand(b, generator=g) < jitter_p).to(dev)[:, None, None, None]
    bright = _uniform(b, 1 - jitter, 1 + jitter, g).to(dev)[:, None, None, None]
    contrast = _uniform(b, 1 - jitter, 1 + jitter, g).to(dev)[:, None, None, None]
    j = (u * bright).clamp(0, 1)
    j = ((j - j.mean((1, 2, 3), keepdim=True)) * contrast + j.mean((1, 2, 3), keepdim=True)).clamp(0, 1)
    u = torch.where(on, j, u)
    blur = torch.rand(b, generator=g) < blur_p
    sigma = _uniform(b, 0.1, 2.0, g) * size / 224
    if blur.any():
        u = u.clone()
        u[blur.to(dev)] = gaussian_blur(u[blur.to(dev)], sigma[blur])
    sol = (torch.rand(b, generator=g) < solarize_p).to(dev)[:, None, None, None]
    u = torch.where(sol & (u >= 0.5), 1 - u, u)
    return u * 2 - 1


class VICRegTrainer:
    """A trainable for `solargen.train.fit` (see there for the protocol); no EMA (VICReg has none)."""

    def __init__(self, cfg: dict, image_size: int, device: str | torch.device = "cpu"):
        self.cfg, self.image_size = cfg, image_size
        self.device = torch.device(device)
        self.model = VICReg(cfg).to(self.device)
        import torch.distributed as dist

        if self.device.type == "cuda" and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Batch statistics over the global batch, as VICReg (same parameter and buffer names).
            self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
        self.size = int(cfg["input_size"])
        self.lr = float(cfg["base_lr"]) * int(cfg["batch_size"]) / 256
        wd = float(cfg.get("weight_decay", 1e-6))
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        rest = [p for p in self.model.parameters() if p.ndim <= 1]
        opt = cfg.get("optimizer", "lars")
        if opt == "lars":
            from timm.optim import Lars

            # VICReg's LARS: biases and norms get neither weight decay nor the trust-ratio adaptation.
            self.opt = Lars([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}],
                            lr=self.lr, momentum=0.9, trust_coeff=0.001)
        elif opt == "adamw":
            self.opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}],
                                         lr=self.lr)
        else:
            raise ValueError(f"vicreg_solar: optimizer {opt!r} (allowed: lars, adamw)")
        self.modules = {"vicreg": self.model}
        self.optimizers = {opt: self.opt}
        self.ema = {}

    def views(self, x: torch.Tensor, g: torch.Generator):
        c = self.cfg
        kw = {"scale": tuple(c.get("crop_scale", (0.08, 1.0))), "jitter": float(c.get("jitter", 0.4)),
              "jitter_p": float(c.get("jitter_p", 0.8))}
        (b1, b2), (s1, s2) = c.get("blur_p", (1.0, 0.1)), c.get("solarize_p", (0.0, 0.2))
        return (augment(x, self.size, g, blur_p=float(b1), solarize_p=float(s1), **kw),
                augment(x, self.size, g, blur_p=float(b2), solarize_p=float(s2), **kw))

    def loss(self, x1: torch.Tensor, x2: torch.Tensor):
        c = self.cfg
        return vicreg_loss(gather_batch(self.model(x1)), gather_batch(self.model(x2)), float(c.get("sim_coeff", 25.0)),
                           float(c.get("std_coeff", 25.0)), float(c.get("cov_coeff", 1.0)))

    def training_step(self, batch: torch.Tensor, step: int, generator: torch.Generator) -> dict[str, float]:
        self.model.train()
        total = int(self.cfg.get("schedule_steps") or self.cfg["train_steps"])
        set_lr(self.opt, warmup_cosine(step, self.lr, int(self.cfg.get("warmup_steps", 0)), total,
                                       float(self.cfg.get("min_lr", 0.0))))
        x1, x2 = self.views(batch[:, :1], generator)
        loss, parts = self.loss(x1, x2)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in parts.items()},
                "lr": self.opt.param_groups[0]["lr"]}

    def export_args(self) -> dict:
        return {"kind": "vicreg_solar", "library": "timm", "arch": "ResNet", "kwargs": trunk_kwargs(self.cfg),
                "state_dict": self.model.trunk.state_dict(), "input_size": self.size,
                "feature": "global-average-pooled trunk output (the representation, not the expander)"}


@torch.no_grad()
def collapse_check(model: VICReg, x: torch.Tensor) -> dict[str, float]:
    """Per-dimension std of the expander embeddings and of the representations of frames ``x``
    (eval mode), as VICReg's variance term defines it: sqrt(Var + 1e-4) of each dimension across
    the batch (unbiased Var); VICReg wants every embedding dimension's std ≥ 1 (γ = 1), and
    ``embedding_variance_term`` is its hinge, mean of max(0, 1 - std)."""
    model.eval()
    r = model.trunk(x)
    z = model.expander(r)
    sz, sr = torch.sqrt(z.var(0) + 1e-4), torch.sqrt(r.var(0) + 1e-4)
    return {"embedding_std_mean": float(sz.mean()), "embedding_std_min": float(sz.min()),
            "embedding_dims_std_ge_1": float((sz >= 1).float().mean()),
            "embedding_variance_term": float(F.relu(1 - sz).mean()),
            "representation_std_mean": float(sr.mean()), "representation_std_min": float(sr.min()),
            "representation_dims_dead": float((r.std(0) < 1e-4).float().mean())}
