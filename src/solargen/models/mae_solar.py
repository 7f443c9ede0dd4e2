"""MAE on solar frames (the study's ``mae_solar_vitb16`` / ``mae_solarp128_vitb16``), for
`solargen.train.fit`.

The encoder is timm's ``VisionTransformer`` with one input channel (ViT-B/16 at paper scale);
the decoder is MAE's light transformer (``decoder_depth`` timm ``Block``s of width
``decoder_embed_dim``) that predicts the pixels of every patch. Per step: a random resized crop
of each frame (``crop_scale``; or, with ``crop_px``, a random square of that many native pixels,
the patch variant) resized to ``input_size``, optional horizontal flip, ``mask_ratio`` of the
patches dropped at random per image, loss = MSE on the masked patches only, each target patch
normalised by its own mean and variance (``norm_pix_loss``). AdamW with MAE's decoupled weight
decay (none on biases, norms and position embeddings), warm-up + cosine lr per step. Position
embeddings are MAE's fixed 2-D sin-cos ones (frozen).

Features (`encoder_features`): the encoder's final-normed class token, all patches visible. This
is MAE's own read-out of a frozen encoder: its linear probing (``main_linprobe.py``, in the study's
MAE fork too) defaults to the class token after the final norm (``global_pool`` off), mean pooling
being its fine-tuning default, where the encoder itself is trained further. It is exactly timm's
forward of the exported encoder (``global_pool='token'``, ``num_classes=0``).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn

from .ssl_common import crop_resize, random_boxes, set_lr, warmup_cosine


def sincos_pos_embed(dim: int, grid: int, cls_token: bool) -> torch.Tensor:
    """MAE's fixed 2-D sine-cosine position embeddings, (1, [1 +] grid², dim); zeros for the class token."""
    if dim % 4:
        raise ValueError(f"embedding width {dim} must be a multiple of 4 for 2-D sin-cos position embeddings")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4))
    gy, gx = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64), indexing="ij")

    def embed(pos):
        out = np.outer(pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    emb = np.concatenate([embed(gx), embed(gy)], axis=1)  # (grid², dim)
    if cls_token:
        emb = np.concatenate([np.zeros((1, dim)), emb])
    return torch.from_numpy(emb).float()[None]


def encoder_kwargs(cfg: dict) -> dict:
    """timm ``VisionTransformer`` arguments of the encoder (JSON-safe: stored with the export)."""
    return {"img_size": int(cfg["input_size"]), "patch_size": int(cfg["patch_size"]), "in_chans": 1,
            "num_classes": 0, "global_pool": "token", "fc_norm": False, "embed_dim": int(cfg["embed_dim"]),
            "depth": int(cfg["depth"]), "num_heads": int(cfg["num_heads"]),
            "mlp_ratio": float(cfg.get("mlp_ratio", 4.0)), "qkv_bias": True}


class MAE(nn.Module):
    def __init__(self, cfg: dict):
        super().__init__()
        from timm.models.vision_transformer import Block, VisionTransformer

        size, p = int(cfg["input_size"]), int(cfg["patch_size"])
        if size % p:
            raise ValueError(f"mae_solar: input_size {size} is not a multiple of patch_size {p}")
        self.patch, self.grid = p, size // p
        self.encoder = VisionTransformer(**encoder_kwargs(cfg))
        d, dd = int(cfg["embed_dim"]), int(cfg["decoder_embed_dim"])
        with torch.no_grad():
            self.encoder.pos_embed.copy_(sincos_pos_embed(d, self.grid, cls_token=True))
        self.encoder.pos_embed.requires_grad_(False)
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.register_buffer("decoder_pos_embed", sincos_pos_embed(dd, self.grid, cls_token=True))
        self.decoder_blocks = nn.Sequential(*[
            Block(dd, int(cfg["decoder_num_heads"]), mlp_ratio=float(cfg.get("mlp_ratio", 4.0)), qkv_bias=True)
            for _ in range(int(cfg["decoder_depth"]))])
        self.decoder_norm = nn.LayerNorm(dd)
        self.decoder_pred = nn.Linear(dd, p * p)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in [self.decoder_embed, self.decoder_pred, *self.decoder_blocks.modules()]:
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, H, W) → (B, L, p²), patches in row-major order (the encoder's token order)."""
        b, p, g = x.shape[0], self.patch, self.grid
        return x.reshape(b, g, p, g, p).permute(0, 1, 3, 2, 4).reshape(b, g * g, p * p)

    def encode_visible(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        """Encoder tokens (B, 1 + K, D) of the patches ``keep`` (B, K) only, final norm applied."""
        e = self.encoder
        t = e.patch_embed(x) + e.pos_embed[:, 1:]
        t = torch.gather(t, 1, keep[..., None].expand(-1, -1, t.shape[-1]))
        cls = (e.cls_token + e.pos_embed[:, :1]).expand(t.shape[0], -1, -1)
        return e.norm(e.blocks(torch.cat([cls, t], 1)))

    def forward(self, x: torch.Tensor, noise: torch.Tensor, mask_ratio: float):
        """Predicted patches (B, L, p²) and the mask (B, L; 1 = masked). ``noise`` (B, L) in [0, 1)
        decides the mask: the patches with the smallest noise are kept."""
        b, n = noise.shape
        n_keep = int(round(n * (1 - mask_ratio)))
        order = noise.argsort(1)
        restore = order.argsort(1)
        keep = order[:, :n_keep]
        mask = torch.ones(b, n, device=x.device)
        mask[:, :n_keep] = 0
        mask = torch.gather(mask, 1, restore)
        z = self.decoder_embed(self.encode_visible(x, keep))
        full = torch.cat([z[:, 1:], self.mask_token.expand(b, n - n_keep, -1)], 1)
        full = torch.gather(full, 1, restore[..., None].expand(-1, -1, full.shape[-1]))
        h = torch.cat([z[:, :1], full], 1) + self.decoder_pos_embed
        h = self.decoder_norm(self.decoder_blocks(h))
        return self.decoder_pred(h[:, 1:]), mask


def patch_targets(patches: torch.Tensor, norm_pix: bool) -> torch.Tensor:
    """The loss's targets: each patch normalised by its own mean and variance (``norm_pix``)."""
    if not norm_pix:
        return patches
    mean, var = patches.mean(-1, keepdim=True), patches.var(-1, keepdim=True)
    return (patches - mean) / (var + 1e-6) ** 0.5


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the masked patches only."""
    return (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()


def encoder_features(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(B, D) features of ``x`` (B, 1, S, S) in [-1, 1]: the final-normed class token."""
    return encoder(x)


class MAETrainer:
    """A trainable for `solargen.train.fit` (see there for the protocol); no EMA (MAE has none)."""

    def __init__(self, cfg: dict, image_size: int, device: str | torch.device = "cpu"):
        from timm.optim import param_groups_weight_decay

        self.cfg, self.image_size = cfg, image_size
        self.device = torch.device(device)
        self.model = MAE(cfg).to(self.device)
        self.size = int(cfg["input_size"])
        self.mask_ratio = float(cfg.get("mask_ratio", 0.75))
        self.norm_pix = bool(cfg.get("norm_pix_loss", True))
        # MAE's absolute lr: base lr × global batch / 256.
        self.lr = float(cfg["base_lr"]) * int(cfg["batch_size"]) / 256
        groups = param_groups_weight_decay(self.model, float(cfg.get("weight_decay", 0.05)))
        self.opt = torch.optim.AdamW(groups, lr=self.lr, betas=tuple(cfg.get("betas", (0.9, 0.95))))
        self.modules = {"mae": self.model}
        self.optimizers = {"adamw": self.opt}
        self.ema = {}

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random (resized) crops at the input size, then a random horizontal flip."""
        h, w = x.shape[-2:]
        side = self.cfg.get("crop_px")
        boxes = random_boxes(x.shape[0], h, w, generator, scale=tuple(self.cfg.get("crop_scale", (0.2, 1.0))),
                             side=int(side) if side else None)
        x = crop_resize(x, boxes, self.size)
        if self.cfg.get("random_flip", True):
            flip = (torch.rand(x.shape[0], generator=generator) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x

    def loss(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        pred, mask = self.model(x, noise, self.mask_ratio)
        return masked_mse(pred, patch_targets(self.model.patchify(x), self.norm_pix), mask)

    def training_step(self, batch: torch.Tensor, step: int, generator: torch.Generator) -> dict[str, float]:
        self.model.train()
        total = int(self.cfg.get("schedule_steps") or self.cfg["train_steps"])
        set_lr(self.opt, warmup_cosine(step, self.lr, int(self.cfg.get("warmup_steps", 0)), total,
                                       float(self.cfg.get("min_lr", 0.0))))
        x = self.augment(batch[:, :1], generator)
        noise = torch.rand(x.shape[0], self.model.grid ** 2, generator=generator).to(self.device)
        loss = self.loss(x, noise)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": float(loss.detach()), "lr": self.opt.param_groups[0]["lr"]}

    def export_args(self) -> dict:
        """What `solargen.models.ssl_common.save_encoder` stores for this encoder."""
        return {"kind": "mae_solar", "library": "timm", "arch": "VisionTransformer", "kwargs": encoder_kwargs(self.cfg),
                "state_dict": self.model.encoder.state_dict(), "input_size": self.size,
                "feature": "final-normed class token (MAE's linear-probing read-out)"}


@torch.no_grad()
def reconstruction_check(model: MAE, x: torch.Tensor, mask_ratio: float, seed: int = 0) -> dict[str, float]:
    """On frames ``x`` (B, 1, S, S): the MAE's masked-patch MSE in normalised-pixel space, and the
    same MSE for the baseline that fills each masked patch with the image's mean over its visible
    patches (normalised by the masked patch's own statistics, as the loss is). Any constant fill
    scores ≥ 1 there (1 exactly with the patch's true mean), so < 1 means the MAE predicts
    structure inside the masked patches."""
    model.eval()
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(x.shape[0], model.grid ** 2, generator=g)
    pred, mask = model(x, noise, mask_ratio)
    patches = model.patchify(x)
    mean, std = patches.mean(-1, keepdim=True), (patches.var(-1, keepdim=True) + 1e-6) ** 0.5
    target = (patches - mean) / std
    visible = 1 - mask
    fill = (patches.mean(-1) * visible).sum(1) / visible.sum(1)  # (B,): mean of the visible pixels
    base = (fill[:, None, None] - mean) / std * torch.ones_like(patches)
    return {"mae_masked_mse": float(masked_mse(pred, target, mask)),
            "baseline_masked_mse": float(masked_mse(base, target, mask))}
