"""The conditional GAN family (msdgan): networks' shapes, the degradation, training, sampling, metrics."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from helpers import smooth_fields
from solargen.models.msdgan.family import (MSDGANTrainer, bicubic_baseline, degrade, generator_input,
                                           sample)
from solargen.evaluate.pixel import dft_magnitude, pixel_metrics
from solargen.models.msdgan.networks import MultiScaleDiscriminator, UNetGenerator, downsample
from solargen.train import fit, load_checkpoint

TINY = {"factor": 4, "noise": True, "base_channels": 8, "lr": 2e-3, "lambda_l1": 10.0, "lambda_gan": 1.0,
        "ema_rate": 0.9, "batch_size": 8, "save_every": 1000}


def _train(cfg, y, steps=30):
    torch.manual_seed(0)
    t = MSDGANTrainer(cfg, y.shape[-1])
    g = torch.Generator().manual_seed(0)
    return t, [t.training_step(y, i, g) for i in range(steps)]


@pytest.fixture(scope="module")
def trained_gan():
    n = torch.get_num_threads()  # module-scoped: set up before the per-test one-thread fixture
    torch.set_num_threads(1)
    with torch.random.fork_rng():
        y = smooth_fields()
        out = (y, *_train(TINY, y))
    torch.set_num_threads(n)
    return out


# --- networks ---------------------------------------------------------------------------------

def test_the_discriminator_judges_three_scales_with_the_expected_maps():
    x, c = torch.randn(2, 1, 64, 64), torch.randn(2, 1, 64, 64)
    out = MultiScaleDiscriminator(2, base_channels=8, image_size=64)(x, c)
    assert [tuple(o[-1].shape) for o in out] == [(2, 1, 8, 8), (2, 1, 4, 4), (2, 1, 2, 2)]
    assert [len(o) for o in out] == [5, 5, 5]  # 3 stride-2 blocks + 1 stride-1 block + logits
    assert [tuple(f.shape[1:]) for f in out[0][:-1]] == [(8, 32, 32), (16, 16, 16), (32, 8, 8), (64, 8, 8)]
    one = MultiScaleDiscriminator(2, scales=[1], base_channels=8, image_size=64)(x, c)
    assert len(one) == 1 and one[0][-1].shape == (2, 1, 8, 8)
    outer = MultiScaleDiscriminator(2, scales=[1, 3], base_channels=8, image_size=64)(x, c)
    assert [o[-1].shape[-1] for o in outer] == [8, 2]


def test_small_inputs_get_shallower_patchgans_that_never_go_below_2x2():
    out = MultiScaleDiscriminator(2, base_channels=8, image_size=16)(torch.randn(1, 2, 16, 16))
    assert [tuple(o[-1].shape[-2:]) for o in out] == [(2, 2), (2, 2), (2, 2)]
    assert [len(o) for o in out] == [5, 4, 3]  # 4-px ¼ scale: a single stride-2 block


def test_downsampling_does_not_count_the_padding():
    x = torch.full((1, 1, 16, 16), 3.7)
    assert torch.allclose(downsample(x), torch.full((1, 1, 8, 8), 3.7))
    # The test has teeth: counting the zero padding would darken the border.
    assert F.avg_pool2d(x, 3, 2, 1, count_include_pad=True)[0, 0, 0, 0] < 3.7 * 0.5


@pytest.mark.parametrize("size, depth", [(16, 2), (32, 3), (64, 4)])
def test_the_generator_adapts_its_depth_and_keeps_the_size(size, depth):
    G = UNetGenerator(2, 1, base_channels=8, image_size=size).eval()
    y = G(torch.randn(3, 2, size, size))
    assert G.depth == depth and y.shape == (3, 1, size, size) and y.abs().max() < 1


# --- degradation and baseline -------------------------------------------------------------------

def test_degrade_keeps_block_means_and_only_replicates_the_low_res_spectrum():
    x, f = smooth_fields(2, 32, seed=1), 4
    d = degrade(x, f)
    lo = F.avg_pool2d(x, f)
    assert torch.allclose(F.avg_pool2d(d, f), lo, atol=1e-6)
    assert torch.equal(d, lo.repeat_interleave(f, -1).repeat_interleave(f, -2))
    # Nearest upsampling: F_up(k) = F_lo(k mod n)·B(k_y)·B(k_x), B = box of width f. So above the
    # low-res Nyquist there is nothing but replicas of the low-res spectrum.
    N, n = 32, 32 // f
    B = np.exp(-2j * np.pi * np.outer(np.arange(N), np.arange(f)) / N).sum(1)
    k = np.arange(N) % n
    expect = np.fft.fft2(lo[:, 0].double().numpy())[:, k][:, :, k] * B[:, None] * B[None]
    assert np.allclose(np.fft.fft2(d[:, 0].double().numpy()), expect, atol=1e-8)


def _keys_bicubic_1d(a: np.ndarray, out: int) -> np.ndarray:
    """Reference resize along the last axis: Keys cubic (A = −0.75, as torch), half-pixel centres,
    clamped border indices — written from the definition, not from torch."""
    n = a.shape[-1]
    src = (np.arange(out) + 0.5) * n / out - 0.5
    i0 = np.floor(src).astype(int)
    t = src - i0
    A = -0.75
    def w(s):  # noqa: E306
        s = np.abs(s)
        return np.where(s <= 1, (A + 2) * s**3 - (A + 3) * s**2 + 1,
                        np.where(s < 2, A * s**3 - 5 * A * s**2 + 8 * A * s - 4 * A, 0.0))
    res = 0
    for j in (-1, 0, 1, 2):
        res = res + a[..., np.clip(i0 + j, 0, n - 1)] * w(t - j)
    return res


def test_bicubic_baseline_matches_a_reference_implementation():
    x = smooth_fields(2, 32, seed=2)
    lo = F.avg_pool2d(x, 4).double().numpy()
    ref = _keys_bicubic_1d(np.swapaxes(_keys_bicubic_1d(lo, 32), -1, -2), 32)
    ref = np.clip(np.swapaxes(ref, -1, -2), -1, 1)
    assert np.allclose(bicubic_baseline(x, 4).double().numpy(), ref, atol=1e-5)
    const = torch.full((1, 1, 32, 32), 0.3)
    assert torch.allclose(bicubic_baseline(const, 4), const, atol=1e-6)
    # Block means survive approximately where the image is resolved at low res (bicubic is an
    # interpolant, not mean-preserving: it overshoots on rough low-res grids).
    smooth = F.interpolate(smooth_fields(2, 16, seed=3), size=64, mode="bilinear", align_corners=False)
    lo = F.avg_pool2d(smooth, 4)
    block_err = (F.avg_pool2d(bicubic_baseline(smooth, 4), 4) - lo).abs().mean()
    assert block_err < 0.05 * (lo - lo.mean()).abs().mean()


def test_generator_input_has_a_noise_channel_only_when_asked():
    x = smooth_fields(2, 16)
    g = torch.Generator().manual_seed(0)
    assert generator_input(x, 4, False, g).shape == (2, 1, 16, 16)
    inp = generator_input(x, 4, True, g)
    assert inp.shape == (2, 2, 16, 16) and torch.equal(inp[:, :1], degrade(x, 4))


# --- training ---------------------------------------------------------------------------------

def test_the_l1_only_arm_has_no_discriminator_and_regresses():
    y = smooth_fields()
    t, losses = _train({**TINY, "lambda_gan": 0.0, "lambda_l1": 1.0}, y)
    assert set(t.modules) == set(t.optimizers) == {"G"} and t.D is None
    assert all(r["loss_D"] == 0.0 and r["gan_G"] == 0.0 for r in losses)
    assert all(r["loss_G"] == pytest.approx(r["l1"]) for r in losses)
    assert losses[-1]["l1"] < 0.6 * losses[0]["l1"]


def test_the_gan_lowers_l1_and_trains_both_players(trained_gan):
    _, t, losses = trained_gan
    assert set(t.modules) == {"G", "D"} and set(t.optimizers) == {"G", "D"} and set(t.ema) == {"G"}
    assert set(losses[0]) == {"loss_G", "loss_D", "l1", "gan_G", "fm"}
    assert all(r["loss_D"] > 0 and r["gan_G"] > 0 and r["fm"] == 0.0 for r in losses)
    assert losses[-1]["loss_G"] == pytest.approx(losses[-1]["gan_G"] + 10 * losses[-1]["l1"], rel=1e-5)
    assert losses[-1]["l1"] < 0.6 * losses[0]["l1"]


def test_feature_matching_is_reported_when_on():
    _, losses = _train({**TINY, "lambda_fm": 10.0}, smooth_fields(4, 16), steps=2)
    assert all(r["fm"] > 0 for r in losses)
    r = losses[-1]
    assert r["loss_G"] == pytest.approx(r["gan_G"] + 10 * r["l1"] + 10 * r["fm"], rel=1e-5)


def test_the_generator_uses_its_condition(trained_gan):
    y, t, _ = trained_gan
    t.G.eval()
    inp = generator_input(y, 4, True, torch.Generator().manual_seed(5))
    shuffled = torch.cat([inp[:, :1].roll(1, 0), inp[:, 1:]], 1)  # each target gets another's block image
    with torch.no_grad():
        right, wrong = (t.G(inp) - y).abs().mean(), (t.G(shuffled) - y).abs().mean()
    assert right < 0.6 * wrong


def test_sample_is_deterministic_and_in_range(trained_gan):
    y, t, _ = trained_gan
    state = {"ema": {"G": t.ema["G"].state_dict()}}
    a = sample(state, TINY, 32, 5, targets=y, seed=3, batch_size=2, steps=10, sampler="ddpm")
    b = sample(state, TINY, 32, 5, targets=y[:, 0], seed=3, batch_size=4)
    assert a.shape == (5, 1, 32, 32) and torch.equal(a, b)
    assert a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, sample(state, TINY, 32, 5, targets=y, seed=4))  # the noise channel matters
    with pytest.raises(ValueError):
        sample(state, TINY, 32, 9, targets=y)


def test_through_the_shared_loop_checkpoints_hold_both_players(tmp_path):
    y = smooth_fields(4, 16)
    torch.manual_seed(0)
    path = fit(MSDGANTrainer(TINY, 16), list(y), batch_size=2, total_steps=3, ckpt_dir=tmp_path,
               save_every=1000, seed=0)
    state = load_checkpoint(path)
    assert set(state["modules"]) == {"G", "D"} and set(state["ema"]) == {"G"}
    assert sample(state, TINY, 16, 4, targets=y).shape == (4, 1, 16, 16)


# --- metrics ----------------------------------------------------------------------------------

def test_pixel_metrics_on_closed_form_cases():
    x = ((smooth_fields(3, 32, seed=4)[:, 0] + 0.9) / 2).numpy()  # in [0, 0.9]
    same = pixel_metrics(x, x)
    assert same["l1"] == 0 and same["psnr"] == math.inf and same["ssim"] == pytest.approx(1, abs=1e-12)
    shifted = pixel_metrics(x + 0.1, x)
    assert shifted["l1"] == pytest.approx(0.1) and shifted["psnr"] == pytest.approx(20)
    assert shifted["ssim"] < 1
    # Constant images: SSIM is its luminance term alone, (2ab + C1)/(a² + b² + C1).
    a, b, c1 = 0.4, 0.5, 0.01**2
    flat = pixel_metrics(np.full((1, 32, 32), b), np.full((1, 32, 32), a))
    assert flat["ssim"] == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-9)
    noisy = x + np.random.default_rng(0).normal(0, 0.1, x.shape)
    assert pixel_metrics(noisy, x)["ssim"] == pytest.approx(pixel_metrics(x, noisy)["ssim"])
    assert pixel_metrics(noisy, x)["ssim"] < shifted["ssim"]


def test_dft_magnitude_is_the_centred_mean_log_spectrum():
    x = np.full((2, 16, 16), 0.5)
    m = dft_magnitude(x)
    assert m.shape == (16, 16) and m[8, 8] == pytest.approx(np.log10(0.5 * 256))
    assert m[0, 0] < -7  # no power off DC, floored by eps
