"""StyleGAN2's losses: non-saturating logistic GAN loss, R1 on reals, path-length regulariser.

Weights and lazy intervals are the caller's: StyleGAN2 adds (γ/2)·R1·16 every 16 D steps and
2·PL·4 every 4 G steps (on half the batch), so the regularisers cost a fraction of a step.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


def d_logistic_loss(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D's logistic loss: mean softplus(D(G(z))) + mean softplus(−D(x)).

    Equals −log(1 − σ(fake)) − log σ(real): binary cross-entropy on logits.
    """
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def g_nonsaturating_loss(fake_logits: Tensor) -> Tensor:
    """G's non-saturating loss: mean softplus(−D(G(z))) = −log σ(D(G(z))); strong gradients early on."""
    return F.softplus(-fake_logits).mean()


def heuristic_r1_gamma(image_size: int, batch_size: int) -> float:
    """stylegan2-ada's "auto" R1 weight, γ = 0.0002·res²/batch: 0.2 at 64 px and batch 4, 6.6 at
    1024 px and batch 32 (config F sets 10 explicitly). Used where a config leaves ``r1_gamma`` unset."""
    return 0.0002 * image_size ** 2 / batch_size


def r1_penalty(D: nn.Module, x_real: Tensor) -> tuple[Tensor, Tensor]:
    """R1 (Mescheder et al. 2018): E‖∇ₓD(x)‖² on reals → (penalty scalar, real logits (B,)).

    The gradient is built with create_graph=True so the penalty can be backpropagated into D;
    the caller scales it by γ/2 (and by the lazy interval). The logits come back so that a
    non-lazy step can reuse them for the main loss.
    """
    x = x_real.detach().requires_grad_(True)
    logits = D(x)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    return grad.square().sum(dim=(1, 2, 3)).mean(), logits


class PathLengthPenalty(nn.Module):
    """Path-length regulariser: keeps ‖J_wᵀ y‖ constant, so a fixed step in W changes the image by
    a fixed amount (smoother, better-conditioned mapping from W to images).

    y ~ N(0, I)/√(H·W) (so the expected length does not depend on resolution); per-sample length
    = √(mean over layers of Σ_{w_dim} g²) with g = ∂Σ(G.synthesis(ws)·y)/∂ws; a = running mean of
    the lengths (``pl_mean``, decay 0.01); penalty = mean((length − a)²) against the updated a,
    as in the official code. ``pl_mean`` is a buffer, so ``state_dict`` checkpoints it.
    """

    def __init__(self, decay: float = 0.01):
        super().__init__()
        self.decay = decay
        self.register_buffer("pl_mean", torch.zeros(()))
        self.last_lengths: Tensor | None = None  # detached (B,) lengths of the last call, for logging

    def path_lengths(self, G: nn.Module, ws: Tensor, y: Tensor | None = None, noise_mode: str = "random",
                     generator: torch.Generator | None = None) -> Tensor:
        """Per-sample lengths (B,) of J_wᵀ y for ws (B, num_ws, w_dim), with a graph for backprop.

        If ``y`` is None it is drawn as N(0, I)/√(H·W), after the synthesis noise, from
        ``generator`` (on its device, then moved to ws's) when given, so the call is reproducible
        on any device. The synthesis noise is drawn once, inside this single call, and does not
        depend on ws, so the gradient is with respect to ws only. If ws does not require grad
        (a detached tensor) it is made a leaf that does; then no gradient reaches the mapping.
        """
        if not ws.requires_grad:
            ws = ws.detach().requires_grad_(True)
        img = G.synthesis(ws, noise_mode=noise_mode, generator=generator)  # (B, C, H, W)
        if y is None:
            device = generator.device if generator is not None else img.device
            y = torch.randn(img.shape, generator=generator, device=device, dtype=img.dtype).to(img.device)
            y = y / math.sqrt(img.shape[2] * img.shape[3])
        (grad,) = torch.autograd.grad((img * y).sum(), ws, create_graph=True)  # (B, num_ws, w_dim)
        return grad.square().sum(dim=2).mean(dim=1).sqrt()

    def forward(self, G: nn.Module, ws: Tensor, generator: torch.Generator | None = None,
                noise_mode: str = "random") -> Tensor:
        """Penalty scalar for ws (B, num_ws, w_dim); updates ``pl_mean`` (and ``last_lengths``)."""
        lengths = self.path_lengths(G, ws, None, noise_mode, generator)
        pl_mean = self.pl_mean.to(lengths.dtype).lerp(lengths.mean(), self.decay)
        self.pl_mean.copy_(pl_mean.detach())
        self.last_lengths = lengths.detach()
        return (lengths - pl_mean).square().mean()
