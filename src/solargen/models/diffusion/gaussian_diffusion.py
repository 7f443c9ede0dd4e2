"""Gaussian diffusion (Ho et al. 2020; Nichol & Dhariwal 2021) as used by ADM.

Forward process q(x_t | x_0) = N(√ᾱ_t x_0, (1−ᾱ_t) I) on data in [-1, 1], t = 0 … T−1.
The model predicts ε. Its variance is either fixed (ADM's default "fixed large", σ²_t = β_t,
or with ``sigma_small`` the posterior variance β̃_t) or, with ``learn_sigma``, learned as
log σ²_t = v·log β_t + (1−v)·log β̃_t, v = (out+1)/2 from an extra output channel per image
channel, trained by the hybrid loss L_simple + λ L_vlb (improved DDPM).

Schedule constants are float64 numpy arrays (precision matters near ᾱ → 0 and 1) that are
indexed per batch and handed to torch as float32.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor


def beta_schedule(name: str, num_timesteps: int) -> np.ndarray:
    """The betas (T,) float64, index t = 0 … T−1.

    ``linear``: ADM's scaled linear schedule, β from 1e-4·s to 0.02·s with s = 1000/T, so every
    T has about the same ᾱ_T. ``cosine``: Nichol & Dhariwal, ᾱ(t) ∝ cos²((t/T + 0.008)/1.008 · π/2).
    Both are capped at 0.999 (the cosine paper's cap; it also keeps very short linear chains,
    T ≤ 20, valid, where ADM's formula would reach 1).
    """
    if name == "linear":
        scale = 1000 / num_timesteps
        betas = np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)
    elif name == "cosine":
        s = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
        alpha_bar = np.cos((s + 0.008) / 1.008 * np.pi / 2) ** 2
        betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    else:
        raise ValueError(f"unknown beta schedule {name!r} (allowed: linear, cosine)")
    return np.minimum(betas, 0.999)


def space_timesteps(num_timesteps: int, section_counts: int | str) -> list[int]:
    """The original timesteps a respaced sampler visits, sorted ascending.

    ``section_counts`` is an int S, or ADM's comma syntax (``"10,10,5"``: split 0 … T−1 into
    that many near-equal consecutive sections, the first ``T mod n`` one step longer, and take
    that many steps in each). Within a section of steps a … b, S steps are spaced evenly from a
    to b, both ends included (rounded), so an int S gives round(linspace(0, T−1, S)) and the
    chain always starts from the last step T−1; a section asked for a single step keeps its
    last one. S = T keeps every step.
    """
    counts = [int(c) for c in section_counts.split(",")] if isinstance(section_counts, str) else [int(section_counts)]
    size, extra = divmod(num_timesteps, len(counts))
    steps, start = [], 0
    for i, count in enumerate(counts):
        length = size + (i < extra)
        if not 1 <= count <= length:
            raise ValueError(f"cannot take {count} steps from a section of {length} (T={num_timesteps})")
        end = start + length - 1
        steps += [end] if count == 1 else np.round(np.linspace(start, end, count)).astype(int).tolist()
        start += length
    return sorted(steps)


def _gather(a: np.ndarray, t: Tensor, ndim: int) -> Tensor:
    """a[t] as float32 on t's device, shaped (B, 1, …, 1) to broadcast against a (B, C, H, W) batch."""
    out = torch.from_numpy(a[t.cpu().numpy()]).to(device=t.device, dtype=torch.float32)
    return out.view(-1, *([1] * (ndim - 1)))


def _randn(shape, generator: torch.Generator | None, device) -> Tensor:
    # Drawn on the generator's device, then moved: a CPU generator gives the same samples on any device.
    return torch.randn(shape, generator=generator, device=generator.device if generator is not None else device).to(device)


def _device_of(model, noise: Tensor | None) -> torch.device:
    if noise is not None:
        return noise.device
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):  # a plain callable, e.g. an oracle in the tests
        return torch.device("cpu")


def _steps(n: int, progress: bool, desc: str):
    steps = range(n - 1, -1, -1)
    if progress:
        from tqdm import tqdm

        return tqdm(steps, desc=desc, leave=False)
    return steps


def normal_kl(mean1: Tensor, log_var1: Tensor, mean2: Tensor, log_var2: Tensor) -> Tensor:
    """KL(N(mean1, e^log_var1) ‖ N(mean2, e^log_var2)) elementwise, in nats."""
    return 0.5 * (-1.0 + log_var2 - log_var1 + torch.exp(log_var1 - log_var2)
                  + (mean1 - mean2) ** 2 * torch.exp(-log_var2))


def discretized_gaussian_log_likelihood(x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
    """log p(x) elementwise for x in [-1, 1] quantised to 256 levels under N(mean, e^log_var):
    the Gaussian mass of x's bin (width 2/255), the edge bins extending to ±∞ (L_0 of DDPM)."""
    inv_std = torch.exp(-0.5 * log_var)
    cdf_hi = torch.special.ndtr(inv_std * (x - mean + 1 / 255))
    cdf_lo = torch.special.ndtr(inv_std * (x - mean - 1 / 255))
    mass = torch.where(x < -0.999, cdf_hi, torch.where(x > 0.999, 1 - cdf_lo, cdf_hi - cdf_lo))
    return torch.log(mass.clamp(min=1e-12))


class GaussianDiffusion:
    """A T-step Gaussian diffusion with ε-prediction.

    ``timestep_map`` (set by `respaced`) maps this chain's index 0 … T−1 to the timestep the
    model was trained on; every model call goes through it, so a model trained on the full
    chain serves any respaced one.
    """

    def __init__(self, betas: np.ndarray, learn_sigma: bool = False, sigma_small: bool = False,
                 timestep_map: list[int] | None = None):
        self.betas = betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or not ((betas > 0) & (betas < 1)).all():
            raise ValueError("betas must be a 1-d array in (0, 1)")
        self.num_timesteps = len(betas)
        self.learn_sigma = learn_sigma
        self.timestep_map = None if timestep_map is None else np.asarray(timestep_map, dtype=np.int64)

        self.alphas_cumprod = ac = np.cumprod(1.0 - betas)
        self.alphas_cumprod_prev = ac_prev = np.append(1.0, ac[:-1])
        self.sqrt_alphas_cumprod = np.sqrt(ac)
        self.sqrt_one_minus_alphas_cumprod = np.sqrt(1.0 - ac)
        self.sqrt_recip_alphas_cumprod = np.sqrt(1.0 / ac)
        self.sqrt_recipm1_alphas_cumprod = np.sqrt(1.0 / ac - 1.0)
        # Posterior q(x_{t-1} | x_t, x_0) = N(c1·x_0 + c2·x_t, β̃_t).
        self.posterior_variance = betas * (1.0 - ac_prev) / (1.0 - ac)
        # β̃_0 = 0: its log is clipped to β̃_1's (the t = 0 step adds no noise anyway).
        pv = self.posterior_variance
        self.posterior_log_variance_clipped = np.log(np.append(pv[1], pv[1:]) if len(pv) > 1 else betas)
        self.posterior_mean_coef1 = betas * np.sqrt(ac_prev) / (1.0 - ac)
        self.posterior_mean_coef2 = (1.0 - ac_prev) * np.sqrt(1.0 - betas) / (1.0 - ac)
        # Fixed variances: "large" σ² = β_t (first entry β̃_1, as in ADM), "small" σ² = β̃_t.
        large = np.append(self.posterior_variance[1], betas[1:]) if self.num_timesteps > 1 else betas
        self.fixed_log_variance = self.posterior_log_variance_clipped if sigma_small else np.log(large)

    # -- forward process -------------------------------------------------------------------
    def q_sample(self, x0: Tensor, t: Tensor, noise: Tensor | None = None) -> Tensor:
        """x_t ~ q(x_t | x_0): x0 (B, C, H, W), t (B,) long -> (B, C, H, W)."""
        noise = torch.randn_like(x0) if noise is None else noise
        return (_gather(self.sqrt_alphas_cumprod, t, x0.ndim) * x0
                + _gather(self.sqrt_one_minus_alphas_cumprod, t, x0.ndim) * noise)

    def q_posterior(self, x0: Tensor, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """Mean and clipped log variance of q(x_{t-1} | x_t, x_0)."""
        n = x_t.ndim
        mean = _gather(self.posterior_mean_coef1, t, n) * x0 + _gather(self.posterior_mean_coef2, t, n) * x_t
        return mean, _gather(self.posterior_log_variance_clipped, t, n).expand_as(x_t)

    def predict_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x̂_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t."""
        n = x_t.ndim
        return _gather(self.sqrt_recip_alphas_cumprod, t, n) * x_t - _gather(self.sqrt_recipm1_alphas_cumprod, t, n) * eps

    def predict_eps(self, x_t: Tensor, t: Tensor, x0: Tensor) -> Tensor:
        """The ε that maps x_t to x0 (inverse of `predict_x0`)."""
        n = x_t.ndim
        return (_gather(self.sqrt_recip_alphas_cumprod, t, n) * x_t - x0) / _gather(self.sqrt_recipm1_alphas_cumprod, t, n)

    # -- the model's reverse process -------------------------------------------------------
    def model_output(self, model, x_t: Tensor, t: Tensor) -> Tensor:
        """model(x_t, original timestep of t)."""
        if self.timestep_map is not None:
            t = torch.from_numpy(self.timestep_map[t.cpu().numpy()]).to(t.device)
        return model(x_t, t)

    def _learned_log_variance(self, v: Tensor, t: Tensor) -> Tensor:
        """log σ² = frac·log β_t + (1−frac)·log β̃_t with frac = (v+1)/2, v the model's raw output."""
        frac = (v + 1) / 2
        log_beta = _gather(np.log(self.betas), t, v.ndim)
        return frac * log_beta + (1 - frac) * _gather(self.posterior_log_variance_clipped, t, v.ndim)

    def p_mean_variance(self, model, x_t: Tensor, t: Tensor, clip_denoised: bool = True) -> dict[str, Tensor]:
        """p(x_{t-1} | x_t): keys mean, log_var, pred_x0, eps, each (B, C, H, W)."""
        out = self.model_output(model, x_t, t)
        c = x_t.shape[1]
        eps = out[:, :c]
        log_var = (self._learned_log_variance(out[:, c:], t) if self.learn_sigma
                   else _gather(self.fixed_log_variance, t, x_t.ndim).expand_as(x_t))
        x0 = self.predict_x0(x_t, t, eps)
        if clip_denoised:
            x0 = x0.clamp(-1, 1)
        mean, _ = self.q_posterior(x0, x_t, t)
        return {"mean": mean, "log_var": log_var, "pred_x0": x0, "eps": eps}

    # -- training --------------------------------------------------------------------------
    def training_loss(self, model, x0: Tensor, t: Tensor | None = None, noise: Tensor | None = None) -> dict[str, Tensor]:
        """Scalar losses for a batch x0 (B, C, H, W): 'mse' (ε-prediction, L_simple), 'loss', and with
        ``learn_sigma`` 'vb' (L_vlb term for the variance only, scaled by T/1000, i.e. λ = 1/1000)."""
        if t is None:
            t = torch.randint(0, self.num_timesteps, (x0.shape[0],), device=x0.device)
        noise = torch.randn_like(x0) if noise is None else noise
        x_t = self.q_sample(x0, t, noise)
        out = self.model_output(model, x_t, t)
        c = x0.shape[1]
        eps = out[:, :c]
        losses = {"mse": ((noise - eps) ** 2).mean()}
        losses["loss"] = losses["mse"]
        if self.learn_sigma:
            # Stop-gradient on ε: L_vlb trains only the variance, L_simple alone drives the mean.
            vb = self._vb_term(x0, x_t, t, eps.detach(), self._learned_log_variance(out[:, c:], t))
            losses["vb"] = vb.mean() * self.num_timesteps / 1000.0
            losses["loss"] = losses["mse"] + losses["vb"]
        return losses

    def _vb_term(self, x0: Tensor, x_t: Tensor, t: Tensor, eps: Tensor, log_var: Tensor) -> Tensor:
        """L_t in bits/dim per sample (B,): KL(q(x_{t-1}|x_t,x_0) ‖ p(x_{t-1}|x_t)), or at t = 0 the
        decoder NLL −log p(x_0|x_1)."""
        true_mean, true_log_var = self.q_posterior(x0, x_t, t)
        mean, _ = self.q_posterior(self.predict_x0(x_t, t, eps), x_t, t)  # unclipped, as in training
        kl = normal_kl(true_mean, true_log_var, mean, log_var).flatten(1).mean(1)
        nll = -discretized_gaussian_log_likelihood(x0, mean, log_var).flatten(1).mean(1)
        return torch.where(t == 0, nll, kl) / math.log(2.0)

    # -- sampling --------------------------------------------------------------------------
    @torch.no_grad()
    def p_sample_loop(self, model, shape, noise: Tensor | None = None, clip_denoised: bool = True,
                      progress: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """DDPM ancestral sampling from x_T ~ N(0, I) (or ``noise``) -> x_0 of ``shape`` (B, C, H, W)."""
        device = _device_of(model, noise)
        x = noise.to(device) if noise is not None else _randn(shape, generator, device)
        for i in _steps(self.num_timesteps, progress, "DDPM"):
            t = torch.full((x.shape[0],), i, device=device, dtype=torch.long)
            out = self.p_mean_variance(model, x, t, clip_denoised)
            x = out["mean"]
            if i > 0:  # the last step returns the mean
                x = x + torch.exp(0.5 * out["log_var"]) * _randn(x.shape, generator, device)
        return x

    @torch.no_grad()
    def ddim_sample_loop(self, model, shape, eta: float = 0.0, noise: Tensor | None = None, clip_denoised: bool = True,
                         progress: bool = False, generator: torch.Generator | None = None) -> Tensor:
        """DDIM (Song et al. 2021) -> x_0 of ``shape``; eta = 0 is deterministic given x_T, eta = 1
        matches DDPM's posterior variance."""
        device = _device_of(model, noise)
        x = noise.to(device) if noise is not None else _randn(shape, generator, device)
        for i in _steps(self.num_timesteps, progress, "DDIM"):
            t = torch.full((x.shape[0],), i, device=device, dtype=torch.long)
            x0 = self.p_mean_variance(model, x, t, clip_denoised)["pred_x0"]
            eps = self.predict_eps(x, t, x0)  # re-derived so that it agrees with the clipped x0
            ab, ab_prev = _gather(self.alphas_cumprod, t, x.ndim), _gather(self.alphas_cumprod_prev, t, x.ndim)
            sigma = eta * torch.sqrt((1 - ab_prev) / (1 - ab) * (1 - ab / ab_prev))
            x = torch.sqrt(ab_prev) * x0 + torch.sqrt((1 - ab_prev - sigma ** 2).clamp(min=0)) * eps
            if eta > 0 and i > 0:
                x = x + sigma * _randn(x.shape, generator, device)
        return x


def respaced(diffusion_betas: np.ndarray, use_timesteps: list[int], learn_sigma: bool = False,
             sigma_small: bool = False) -> GaussianDiffusion:
    """The diffusion that visits only ``use_timesteps`` of the chain with betas ``diffusion_betas``.

    Its betas are recomputed so that its ᾱ at each kept step equals the original ᾱ there
    (β'_i = 1 − ᾱ_{k_i} / ᾱ_{k_{i-1}}), and its model calls receive the original timesteps k_i.
    """
    keep = sorted({int(k) for k in use_timesteps})
    betas = np.asarray(diffusion_betas, dtype=np.float64)
    if not keep or keep[0] < 0 or keep[-1] >= len(betas):
        raise ValueError(f"timesteps must lie in 0 … {len(betas) - 1}")
    ac = np.cumprod(1.0 - betas)[keep]
    new_betas = 1.0 - ac / np.append(1.0, ac[:-1])
    return GaussianDiffusion(new_betas, learn_sigma=learn_sigma, sigma_small=sigma_small, timestep_map=keep)
