"""The diffusion model: ADM's UNet and the Gaussian diffusion (schedules, respacing, samplers, losses)."""

import numpy as np
import pytest
import torch

from solargen.models.diffusion.gaussian_diffusion import (GaussianDiffusion, beta_schedule, respaced,
                                                          space_timesteps)
from solargen.models.diffusion.unet import Attention, UNet, default_channel_mult

T = 1000


def tiny_unet(image_size=16, **kw):
    kw = {"model_channels": 16, "num_res_blocks": 1, "attention_resolutions": (8,), **kw}
    return UNet(image_size, **kw)


# -- UNet --------------------------------------------------------------------------------------

@pytest.mark.parametrize("image_size", [16, 32])
@pytest.mark.parametrize("learn_sigma", [False, True])
def test_unet_output_shape(image_size, learn_sigma):
    net = tiny_unet(image_size, learn_sigma=learn_sigma)
    x = torch.randn(3, 1, image_size, image_size)
    out = net(x, torch.tensor([0, 17, 999]))
    assert out.shape == (3, 2 if learn_sigma else 1, image_size, image_size)
    assert torch.equal(out, torch.zeros_like(out))  # zero-initialised output conv
    assert net(x, torch.tensor([0.5, 17.0, 999.0])).shape == out.shape  # float timesteps too


def test_attention_at_configured_resolutions():
    # 32 px, 4 levels: 32, 16, 8, 4. Attention at 16 px: one block in the encoder, num_res_blocks+1
    # = 2 in the decoder, plus the middle block's (at 4 px).
    net = tiny_unet(32, channel_mult=(1, 2, 2, 2), attention_resolutions=(16,))
    seen = []
    for m in net.modules():
        if isinstance(m, Attention):
            m.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[-1]))
    net(torch.randn(1, 1, 32, 32), torch.tensor([5]))
    assert sorted(seen) == [4, 16, 16, 16]
    assert sum(isinstance(m, Attention) for m in net.middle) == 1

    # The study's 1024 px setting: (16, 8) are never reached (the bottom is 32 px): middle only.
    big = UNet(1024, model_channels=8, num_res_blocks=1, attention_resolutions=(16, 8))
    attn = [name for name, m in big.named_modules() if isinstance(m, Attention)]
    assert attn == ["middle.1"]


def test_group_norm_groups_divide_channels():
    for mc, expect in [(16, 16), (8, 8), (48, 16), (64, 32)]:
        net = tiny_unet(16, model_channels=mc, num_heads=4)
        norms = [m for m in net.modules() if isinstance(m, torch.nn.GroupNorm)]
        assert norms and all(m.num_channels % m.num_groups == 0 for m in norms)
        assert norms[0].num_groups == expect  # the first norm sees model_channels·mult[0] channels


def test_default_channel_mult():
    assert default_channel_mult(1024) == default_channel_mult(256) == (1, 1, 2, 2, 4, 4)
    assert default_channel_mult(64) == (1, 2, 3, 4)
    assert default_channel_mult(16) == (1, 2, 2)


# -- schedules and respacing -------------------------------------------------------------------

@pytest.mark.parametrize("name", ["linear", "cosine"])
@pytest.mark.parametrize("steps", [1000, 250])
def test_beta_schedules(name, steps):
    betas = beta_schedule(name, steps)
    assert betas.shape == (steps,) and betas.dtype == np.float64
    assert ((betas > 0) & (betas < 1)).all()
    assert (np.diff(betas) >= 0).all()
    assert (np.diff(GaussianDiffusion(betas).alphas_cumprod) < 0).all()


def test_linear_schedule_is_adms():
    assert np.allclose(beta_schedule("linear", 1000)[[0, -1]], [1e-4, 0.02])
    assert np.allclose(beta_schedule("linear", 250)[[0, -1]], [4e-4, 0.08])  # scaled by 1000/T


def test_space_timesteps_convention():
    steps = space_timesteps(T, 50)
    assert len(steps) == 50 and steps[0] == 0 and steps[-1] == T - 1
    assert steps == sorted(set(steps))
    assert space_timesteps(T, T) == list(range(T))
    assert space_timesteps(T, "50") == steps
    sec = space_timesteps(T, "10,10,5")  # sections of 334, 333, 333 steps
    assert len(sec) == 25 and sec[-1] == T - 1
    assert sum(s < 334 for s in sec) == 10 and sum(s >= 667 for s in sec) == 5
    with pytest.raises(ValueError):
        space_timesteps(10, 11)


def test_respacing():
    betas = beta_schedule("linear", T)
    full = GaussianDiffusion(betas)
    assert np.allclose(respaced(betas, list(range(T))).betas, betas, rtol=1e-9, atol=1e-12)
    keep = space_timesteps(T, 37)
    sub = respaced(betas, keep)
    assert sub.num_timesteps == 37
    assert np.allclose(sub.alphas_cumprod, full.alphas_cumprod[keep], rtol=1e-12)
    # The model sees original timesteps.
    seen = []
    sub.model_output(lambda x, t: seen.append(t) or x, torch.zeros(3, 1), torch.tensor([0, 1, 36]))
    assert seen[0].tolist() == [keep[0], keep[1], keep[36]]


# -- forward process ---------------------------------------------------------------------------

def test_q_sample_at_the_end_is_noise():
    d = GaussianDiffusion(beta_schedule("cosine", T))
    assert d.alphas_cumprod[-1] < 1e-8
    x0, noise = torch.rand(4, 1, 8, 8) * 2 - 1, torch.randn(4, 1, 8, 8)
    assert torch.allclose(d.q_sample(x0, torch.full((4,), T - 1), noise), noise, atol=1e-4)


def test_q_sample_moments():
    d = GaussianDiffusion(beta_schedule("linear", T))
    g = torch.Generator().manual_seed(0)
    x0 = torch.linspace(-1, 1, 16).view(1, 1, 4, 4)
    for t in (10, 300, 700):
        xt = d.q_sample(x0.expand(20_000, -1, -1, -1), torch.full((20_000,), t),
                        torch.randn(20_000, 1, 4, 4, generator=g))
        ab = d.alphas_cumprod[t]
        assert torch.allclose(xt.mean(0), np.sqrt(ab) * x0[0], atol=0.03)
        assert torch.allclose(xt.var(0), torch.full((1, 4, 4), 1 - ab), rtol=0.05)


# -- samplers against oracles ------------------------------------------------------------------

def oracle_eps(alphas_cumprod, posterior_x0):
    """The true ε-predictor for data whose E[x0 | x_t] is ``posterior_x0(x_t, ᾱ_t)``; indexed by the
    *original* timestep, so it also checks that respaced samplers pass those on."""
    def model(x, t):
        ab = torch.from_numpy(alphas_cumprod[t.numpy()]).float().view(-1, *[1] * (x.ndim - 1))
        return (x - ab.sqrt() * posterior_x0(x, ab)) / (1 - ab).sqrt()
    return model


@pytest.mark.parametrize("clip", [True, False])
def test_samplers_recover_a_single_image(clip):
    betas = beta_schedule("linear", T)
    x_star = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 1.8 - 0.9
    model = oracle_eps(GaussianDiffusion(betas).alphas_cumprod, lambda x, ab: x_star)
    d = respaced(betas, space_timesteps(T, 50))
    g = torch.Generator().manual_seed(0)
    for x in (d.p_sample_loop(model, (4, 1, 8, 8), clip_denoised=clip, generator=g),
              d.ddim_sample_loop(model, (4, 1, 8, 8), eta=0.0, clip_denoised=clip, generator=g)):
        assert (x - x_star).abs().max() < 1e-3


@pytest.mark.parametrize("sampler", ["ddpm", "ddpm_small", "ddim"])
def test_samplers_reproduce_a_gaussian(sampler):
    # Data N(μ, s²): E[x0 | x_t] = μ + √ᾱ s² / (ᾱ s² + 1 − ᾱ) · (x_t − √ᾱ μ). With the true ε, the
    # full chain must give back mean μ and std s; wrong noise scales or coefficients would not.
    mu, s = 0.3, 0.2
    betas = beta_schedule("linear", T)
    d = GaussianDiffusion(betas, sigma_small=sampler == "ddpm_small")
    model = oracle_eps(d.alphas_cumprod, lambda x, ab: mu + ab.sqrt() * s**2 / (ab * s**2 + 1 - ab) * (x - ab.sqrt() * mu))
    g = torch.Generator().manual_seed(0)
    shape = (1000, 1, 4, 4)
    x = (d.ddim_sample_loop(model, shape, clip_denoised=False, generator=g) if sampler == "ddim"
         else d.p_sample_loop(model, shape, clip_denoised=False, generator=g))
    assert abs(x.mean().item() - mu) < 0.01
    assert abs(x.std().item() - s) < 0.01


def test_learned_sigma_sampling_and_ddim_eta():
    d = respaced(beta_schedule("cosine", T), space_timesteps(T, 10), learn_sigma=True)
    x_star = torch.full((1, 1, 4, 4), 0.5)
    ac = GaussianDiffusion(beta_schedule("cosine", T)).alphas_cumprod
    eps = oracle_eps(ac, lambda x, ab: x_star)
    model = lambda x, t: torch.cat([eps(x, t), torch.zeros_like(x)], dim=1)  # v = 0: halfway variance
    g = torch.Generator().manual_seed(0)
    assert (d.p_sample_loop(model, (2, 1, 4, 4), generator=g) - x_star).abs().max() < 1e-3
    assert (d.ddim_sample_loop(model, (2, 1, 4, 4), eta=1.0, generator=g) - x_star).abs().max() < 1e-3


# -- training ----------------------------------------------------------------------------------

def test_training_lowers_the_loss():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    ramp = torch.linspace(-1, 1, 8)
    data = torch.stack([ramp.view(1, 8).expand(8, 8), ramp.view(8, 1).expand(8, 8)])[:, None]  # (2, 1, 8, 8)
    net = UNet(8, model_channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(4,))
    d = GaussianDiffusion(beta_schedule("linear", T))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(120):
        x0 = data[torch.randint(0, 2, (16,), generator=g)]
        t = torch.randint(0, T, (16,), generator=g)
        loss = d.training_loss(net, x0, t=t, noise=torch.randn(x0.shape, generator=g))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = np.mean(losses[:20]), np.mean(losses[-20:])
    assert last < 0.5 * first, (first, last)


def test_hybrid_loss_trains_only_the_variance_through_vb():
    d = GaussianDiffusion(beta_schedule("linear", T), learn_sigma=True)
    eps_out = torch.zeros(1, 1, 4, 4, requires_grad=True)
    v_out = torch.zeros(1, 1, 4, 4, requires_grad=True)
    model = lambda x, t: torch.cat([eps_out.expand_as(x), v_out.expand_as(x)], dim=1)
    x0 = torch.rand(8, 1, 4, 4) * 2 - 1
    t = torch.tensor([0, 1, 5, 50, 200, 500, 800, 999])
    losses = d.training_loss(model, x0, t=t)
    assert set(losses) == {"loss", "mse", "vb"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert torch.allclose(losses["loss"], losses["mse"] + losses["vb"])
    losses["vb"].backward()
    assert eps_out.grad is None or torch.equal(eps_out.grad, torch.zeros_like(eps_out))
    assert v_out.grad is not None and v_out.grad.abs().sum() > 0


# -- reproducibility ---------------------------------------------------------------------------

def test_sampling_is_deterministic_given_a_generator():
    torch.manual_seed(0)
    net = tiny_unet(16, learn_sigma=True).eval()
    for p in net.out.parameters():  # make the output non-trivial
        torch.nn.init.normal_(p, std=0.02)
    d = respaced(beta_schedule("linear", T), space_timesteps(T, 5), learn_sigma=True)
    draw = {
        "ddpm": lambda seed: d.p_sample_loop(net, (2, 1, 16, 16), generator=torch.Generator().manual_seed(seed)),
        "ddim": lambda seed: d.ddim_sample_loop(net, (2, 1, 16, 16), eta=0.5, generator=torch.Generator().manual_seed(seed)),
    }
    for f in draw.values():
        a, b, c = f(3), f(3), f(4)
        assert torch.equal(a, b)
        assert not torch.equal(a, c)


def test_sampling_attention_equals_the_training_one_to_float_rounding():
    """Without gradients the attention runs on contiguous heads (CPU SDPA's fused kernel); its
    output equals the strided call that training makes, to float rounding."""
    from solargen.models.diffusion.unet import Attention

    torch.manual_seed(0)
    att = Attention(48, 4)
    torch.nn.init.normal_(att.proj.weight)  # zero-initialised: the attention would not show
    x = torch.randn(4, 48, 16, 16)
    with torch.no_grad():
        fast = att(x)
    slow = att(x).detach()
    assert not torch.equal(fast, x)
    torch.testing.assert_close(fast, slow, rtol=1e-5, atol=1e-5)
