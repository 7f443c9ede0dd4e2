"""StyleGAN2 networks and losses: modulation maths, resampling, style mixing, truncation, noise
determinism, R1 and path-length penalties against finite differences, shapes and sizes."""

import math

import pytest
import torch
import torch.nn.functional as F

from solargen.models.stylegan2.losses import (PathLengthPenalty, d_logistic_loss, g_nonsaturating_loss,
                                              r1_penalty)
from solargen.models.stylegan2.networks import (Blur, Discriminator, EqualConv2d, Generator, ModulatedConv2d,
                                                Upsample2d, mixing_crossover, style_mix)

TINY = {"z_dim": 32, "w_dim": 32, "mapping_layers": 2, "channel_base": 512, "channel_max": 32}


def _tiny_g(size=16, **kw):
    torch.manual_seed(0)
    return Generator(size, **{**TINY, **kw})


def _interior_var(y):
    """Per-sample variance (B,) away from the zero-padded border."""
    return y[:, :, 1:-1, 1:-1].flatten(1).var(dim=1)


def test_demodulation_keeps_unit_variance():
    torch.manual_seed(0)
    x = torch.randn(8, 64, 24, 24)
    w = 2 * torch.randn(8, 32)  # styles s = A(w) + 1 spread widely around 1
    conv = ModulatedConv2d(64, 64, 3, w_dim=32, demodulate=True)
    plain = ModulatedConv2d(64, 64, 3, w_dim=32, demodulate=False)
    plain.load_state_dict(conv.state_dict())
    with torch.no_grad():
        v_demod, v_plain = _interior_var(conv(x, w)), _interior_var(plain(x, w))
    assert torch.allclose(v_demod, torch.ones(8), atol=0.1), v_demod
    # without demodulation the output scale follows the style magnitudes: E[s²] = 1 + 4 here
    assert v_plain.mean() > 2.0, v_plain
    assert v_plain.max() / v_plain.min() > 1.3, v_plain


@pytest.mark.parametrize("up", [False, True])
def test_modulated_conv_grouped_equals_per_sample_conv(up):
    """The grouped-conv batching reproduces the per-sample definition w″ = demod(s·w)."""
    torch.manual_seed(1)
    conv = ModulatedConv2d(5, 7, 3, w_dim=6, up=up).double()
    x, w = torch.randn(3, 5, 8, 8, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    out = conv(x, w)
    assert out.shape == (3, 7, 16 if up else 8, 16 if up else 8)
    for b in range(3):
        s = conv.affine(w[b:b + 1])[0]
        wt = conv.weight * conv.weight_gain * s[None, :, None, None]
        wt = wt / (wt.square().sum(dim=(1, 2, 3), keepdim=True) + 1e-8).sqrt()
        if up:
            ref = conv.blur(F.conv_transpose2d(x[b:b + 1], wt.transpose(0, 1), stride=2))
        else:
            ref = F.conv2d(x[b:b + 1], wt, padding=1)
        assert torch.allclose(out[b:b + 1], ref, atol=1e-12)


def test_fir_upsample_matches_zero_insertion_and_filter():
    torch.manual_seed(2)
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    u = torch.zeros(2, 3, 10, 10, dtype=torch.float64)
    u[..., ::2, ::2] = x
    ref = Blur((2, 1), gain=4.0).double()(u)  # upfirdn2d(up=2, pad=(2, 1)) of the official code
    out = Upsample2d().double()(x)
    assert out.shape == (2, 3, 10, 10)
    assert torch.allclose(out, ref, atol=1e-12)
    ones = Upsample2d()(torch.ones(1, 1, 6, 6))
    assert torch.allclose(ones[..., 1:-1, 1:-1], torch.ones(1, 1, 10, 10))  # DC gain 1 away from the edge


def test_resampling_is_pixel_centre_aligned():
    """A ramp f(i) = i (value = pixel index, centre at i + ½) must stay a ramp on the new grid:
    ×2 up gives (o − ½)/2, ×2 down gives 2o + ½; a half-pixel shift of the FIR would break it."""
    ramp = torch.arange(16, dtype=torch.float64).expand(1, 1, 16, 16).clone()
    up_ref = ((torch.arange(32, dtype=torch.float64) - 0.5) / 2).expand(1, 1, 32, 32)
    assert torch.allclose(Upsample2d().double()(ramp)[..., 2:-2, 2:-2], up_ref[..., 2:-2, 2:-2])
    conv = ModulatedConv2d(1, 1, 3, w_dim=2, up=True).double()
    with torch.no_grad():  # identity style, delta kernel: isolates the resampling
        conv.weight.zero_()[0, 0, 1, 1] = 1.0
        conv.affine.weight.zero_()
    y = conv(ramp, torch.zeros(1, 2, dtype=torch.float64))
    assert torch.allclose(y[..., 2:-2, 2:-2], up_ref[..., 2:-2, 2:-2])
    down = EqualConv2d(1, 1, 3, down=True).double()
    with torch.no_grad():
        down.weight.zero_()[0, 0, 1, 1] = 3.0  # × weight_gain 1/3 = a delta
    down_ref = (2 * torch.arange(8, dtype=torch.float64) + 0.5).expand(1, 1, 8, 8)
    assert torch.allclose(down(ramp)[..., 1:-1, 1:-1], down_ref[..., 1:-1, 1:-1])


def test_upsampling_modulated_conv_has_unit_dc_gain():
    """Transposed conv + FIR (gain 4) maps a constant input to the same constant as the plain conv."""
    torch.manual_seed(3)
    up = ModulatedConv2d(4, 5, 3, w_dim=6, up=True).double()
    same = ModulatedConv2d(4, 5, 3, w_dim=6).double()
    same.load_state_dict(up.state_dict())
    x, w = torch.ones(2, 4, 8, 8, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64)
    y_up, y = up(x, w), same(x, w)
    ref = y[:, :, 4:5, 4:5].expand(-1, -1, 10, 10)
    assert torch.allclose(y_up[:, :, 3:-3, 3:-3], ref, atol=1e-12)


def test_style_mix_switches_at_crossover():
    ws = torch.randn(4, 6, 3)
    ws2 = torch.randn(4, 6, 3)
    cross = torch.tensor([1, 3, 5, 6])
    out = style_mix(ws, ws2, cross)
    for b, c in enumerate(cross.tolist()):
        assert torch.equal(out[b, :c], ws[b, :c])
        assert torch.equal(out[b, c:], ws2[b, c:])
    assert torch.equal(style_mix(ws, ws2, 2)[:, 2:], ws2[:, 2:])  # a scalar crossover mixes all samples
    g = torch.Generator().manual_seed(0)
    assert torch.equal(mixing_crossover(6, 100, 0.0, g), torch.full((100,), 6))
    # one crossover per batch (stylegan2-ada), 0.9 of batches mixed, at layers 1..5
    cs = torch.stack([mixing_crossover(6, 8, 0.9, g) for _ in range(1000)])
    assert (cs == cs[:, :1]).all()
    c = cs[:, 0]
    assert c.min() >= 1 and c.max() <= 6
    assert 0.85 < (c < 6).float().mean() < 0.95
    assert set(c[c < 6].tolist()) == {1, 2, 3, 4, 5}


def test_mixed_mapping_leaves_w_avg_to_the_first_latent():
    G = _tiny_g().train()
    z = torch.randn(6, 32)
    w_first = G.mapping_network.layers(z * torch.rsqrt(z.square().mean(1, keepdim=True) + 1e-8))
    ws = G.mixed_mapping(z, 1.0, torch.Generator().manual_seed(3))
    # only the first latent updated w̄; every sample mixed, so row 0 is z's and the last row z2's
    assert torch.allclose(G.mapping_network.w_avg, 0.005 * w_first.detach().mean(0), atol=1e-6)
    assert torch.allclose(ws[:, 0], w_first, atol=1e-6)
    assert not torch.allclose(ws[:, -1], w_first, atol=1e-3)


def test_r1_penalty_matches_finite_differences():
    torch.manual_seed(0)
    D = Discriminator(16, channel_base=64, channel_max=4, mbstd_group_size=2).double()
    x = torch.randn(2, 1, 16, 16, dtype=torch.float64)
    pen, logits = r1_penalty(D, x)
    assert logits.shape == (2,)
    eps = 1e-5
    grad = torch.zeros_like(x)
    with torch.no_grad():
        flat = x.flatten()
        for i in range(flat.numel()):
            hi, lo = flat.clone(), flat.clone()
            hi[i] += eps
            lo[i] -= eps
            grad.view(-1)[i] = (D(hi.view_as(x)).sum() - D(lo.view_as(x)).sum()) / (2 * eps)
    ref = grad.square().sum(dim=(1, 2, 3)).mean()
    assert ref > 0
    assert torch.allclose(pen, ref, rtol=1e-6), (pen.item(), ref.item())
    pen.backward()  # create_graph=True: the penalty trains D
    # every parameter but the final bias (a constant shift of D(x), absent from ∇ₓD) gets a gradient
    missing = {n for n, p in D.named_parameters() if p.grad is None}
    assert missing == {"out.bias"}
    grads = [p.grad for p in D.parameters() if p.grad is not None]
    assert all(torch.isfinite(g).all() for g in grads) and sum(g.abs().sum() for g in grads) > 0


def test_path_length_matches_finite_differences():
    G = _tiny_g(16, w_dim=4, z_dim=4).double()
    for m in G.modules():  # non-zero noise so the const maps really are part of the function
        if hasattr(m, "strength"):
            m.strength.data.fill_(0.3)
    ws = torch.randn(2, G.num_ws, 4, dtype=torch.float64)
    y = torch.randn(2, 1, 16, 16, dtype=torch.float64) / 16
    pl = PathLengthPenalty()
    lengths = pl.path_lengths(G, ws, y, noise_mode="const")
    eps = 1e-6
    grad = torch.zeros_like(ws)
    with torch.no_grad():
        for i in range(ws.numel()):
            hi, lo = ws.clone(), ws.clone()
            hi.view(-1)[i] += eps
            lo.view(-1)[i] -= eps
            f_hi = (G.synthesis(hi, noise_mode="const") * y).sum()
            f_lo = (G.synthesis(lo, noise_mode="const") * y).sum()
            grad.view(-1)[i] = (f_hi - f_lo) / (2 * eps)
    ref = grad.square().sum(dim=2).mean(dim=1).sqrt()
    assert torch.allclose(lengths, ref, rtol=1e-6), (lengths, ref)

    # the penalty call draws y from the generator (after the noise) and tracks the running mean
    y_seed = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(5), dtype=torch.float64) / 16
    expected = pl.path_lengths(G, ws, y_seed, noise_mode="const").detach()
    pen = pl(G, ws, generator=torch.Generator().manual_seed(5), noise_mode="const")
    assert torch.allclose(pl.last_lengths, expected, rtol=1e-10)
    mean1 = 0.01 * expected.mean()
    assert torch.allclose(pl.pl_mean.double(), mean1, rtol=1e-6)
    assert torch.allclose(pen, (expected - mean1).square().mean(), rtol=1e-5)
    pl(G, ws, generator=torch.Generator().manual_seed(5), noise_mode="const")
    assert torch.allclose(pl.pl_mean.double(), mean1 + 0.01 * (expected.mean() - mean1), rtol=1e-6)
    state = pl.state_dict()
    assert set(state) == {"pl_mean"}
    pl2 = PathLengthPenalty()
    pl2.load_state_dict(state)
    assert pl2.pl_mean == pl.pl_mean

    # the penalty reaches the mapping network through ws (random noise path too)
    z = torch.randn(2, 4, dtype=torch.float64)
    pl(G, G.mapping(z), generator=torch.Generator().manual_seed(1)).backward()
    assert G.mapping_network.layers[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("size", [16, 32])
def test_shapes(size):
    G = _tiny_g(size)
    D = Discriminator(size, channel_base=512, channel_max=32)
    assert G.num_ws == 2 * int(math.log2(size)) - 2
    z = torch.randn(3, 32)
    ws = G.mapping(z)
    assert ws.shape == (3, G.num_ws, 32)
    img = G.synthesis(ws)
    assert img.shape == (3, 1, size, size)
    assert torch.isfinite(img).all() and img.std() > 0
    logits = D(img)
    assert logits.shape == (3,)
    assert D(torch.randn(5, 1, size, size)).shape == (5,)  # batch not a multiple of the mbstd group
    with pytest.raises(ValueError):
        D(torch.randn(2, 1, size // 2, size // 2))


def test_param_count_64px():
    G = Generator(64, z_dim=128, w_dim=128, mapping_layers=4, channel_base=4096, channel_max=128)
    # the reference notes measured 1.43 M for the upstream code at this configuration
    assert G.param_count() == 1_427_150
    D = Discriminator(64, channel_base=4096, channel_max=128)
    assert 1.2e6 < D.param_count() < 1.7e6


def test_truncation_and_w_avg():
    G = _tiny_g().train()
    for _ in range(3):
        G.mapping(torch.randn(8, 32))  # training-mode forwards move w̄
    w_avg = G.mapping_network.w_avg.clone()
    assert w_avg.abs().sum() > 0
    G.eval()
    z = torch.randn(5, 32)
    with torch.no_grad():
        ws0 = G.mapping(z, truncation_psi=0.0)
        ws1 = G.mapping(z, truncation_psi=1.0)
        ws_half = G.mapping(z, truncation_psi=0.5)
    assert torch.allclose(ws0, w_avg.expand_as(ws0))
    assert torch.equal(G.mapping_network.w_avg, w_avg)  # eval mode leaves w̄ alone
    assert torch.allclose(ws_half, 0.5 * (ws1 + ws0), atol=1e-6)
    assert not torch.allclose(ws1, ws0)
    G.train()
    w = G.mapping(z)[:, 0].detach()
    assert torch.allclose(G.mapping_network.w_avg, w.mean(0).lerp(w_avg, 0.995), atol=1e-6)
    assert torch.equal(G.mapping(z, truncation_psi=1.0), G.mapping(z))


def test_noise_modes_and_seeded_determinism():
    G = _tiny_g().eval()
    for m in G.modules():
        if hasattr(m, "strength"):
            m.strength.data.fill_(0.5)  # noise strengths start at 0; make the noise visible
    z = torch.randn(2, 32)
    with torch.no_grad():
        a = G(z, generator=torch.Generator().manual_seed(7))
        b = G(z, generator=torch.Generator().manual_seed(7))
        c = G(z, generator=torch.Generator().manual_seed(8))
        r1, r2 = G(z), G(z)
        k1, k2 = G(z, noise_mode="const"), G(z, noise_mode="const")
        n = G(z, noise_mode="none")
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)
    assert not torch.allclose(r1, r2)
    assert torch.equal(k1, k2)
    assert not torch.allclose(k1, n)
    # const noise is a function of the architecture only: a freshly built copy reproduces it
    G2 = _tiny_g()
    G2.load_state_dict(G.state_dict())
    with torch.no_grad():
        assert torch.equal(G2.eval()(z, noise_mode="const"), k1)
    with pytest.raises(ValueError):
        G(z, noise_mode="bogus")


def test_logistic_losses():
    zero = torch.zeros(4)
    assert torch.allclose(d_logistic_loss(zero, zero), torch.tensor(2 * math.log(2)))
    assert torch.allclose(g_nonsaturating_loss(zero), torch.tensor(math.log(2)))
    big = torch.full((4,), 20.0)
    assert d_logistic_loss(big, -big) < 1e-6  # confident, correct D
    assert g_nonsaturating_loss(-big) > 19  # non-saturating: G still gets a large loss
