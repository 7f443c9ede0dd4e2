"""ProjectedGAN's discriminator: offline EfficientNet-Lite weights, F's maps, mini-Ds, DiffAugment."""

import pytest
import torch

from solargen.models.efficientnet_lite import WeightsUnavailable, efficientnet_lite, weights_file
from solargen.models.projectedgan.diffaug import diff_augment
from solargen.models.projectedgan.discriminator import (MiniDiscriminator, MultiScaleDiscriminator,
                                                        ProjectedDiscriminator)
from solargen.models.projectedgan.projector import FeatureNetwork

# models_metrics.md §1.3, lite0, cout 64, expand, 224-px input
SHAPES_224 = {
    2: [(64, 112, 112), (64, 56, 56), (128, 28, 28), (256, 14, 14)],
    1: [(64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7)],
    0: [(24, 56, 56), (40, 28, 28), (112, 14, 14), (320, 7, 7)],
}
D_PARAMS = {2: 10.33e6, 1: 7.51e6, 0: 5.89e6}  # 4 non-separable mini-Ds, as measured (§1.4)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return {t: FeatureNetwork("lite0", proj_type=t) for t in (2, 1, 0)}


@pytest.mark.parametrize("proj_type", [2, 1, 0])
def test_feature_maps_patch_logits_and_sizes(nets, proj_type):
    f = nets[proj_type]
    x = torch.rand(1, 1, 224, 224) * 2 - 1
    with torch.no_grad():
        feats = f(x)
        d = MultiScaleDiscriminator(f.channels, proj_type, num_discs=4, separable=False)
        logits = [m(z) for m, z in zip(d.mini_discs, feats)]
    assert [tuple(z.shape[1:]) for z in feats] == SHAPES_224[proj_type]
    assert f.channels == [c for c, _, _ in SHAPES_224[proj_type]]
    assert f.resolutions(224) == [h for _, h, _ in SHAPES_224[proj_type]]
    assert [tuple(z.shape) for z in logits] == [(1, 1, 4, 4)] * 4  # nominal 256-px sizing at 224
    assert n_params(f.backbone) == pytest.approx(2.96e6, rel=0.005)  # head dropped
    assert n_params(d) == pytest.approx(D_PARAMS[proj_type], rel=0.005)
    ccm_csm = n_params(f.projections) if f.projections is not None else 0
    assert ccm_csm == pytest.approx({2: 0.377e6, 1: 0.200e6, 0: 0}[proj_type], rel=0.005)


def test_feature_network_input_handling(nets):
    f = nets[2]
    grey = torch.rand(2, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        small = f(grey)
        rgb = f(grey.repeat(1, 3, 1, 1))
        big = f(torch.zeros(1, 3, 256, 256))  # ≥ 224: not resized
    assert [z.shape[-1] for z in small] == f.resolutions(64) == [112, 56, 28, 14]  # resized to 224
    assert [z.shape[-1] for z in big] == f.resolutions(256) == [128, 64, 32, 16]
    assert all(torch.equal(a, b) for a, b in zip(small, rgb))  # grey = replicated grey
    f.train()
    assert not any(m.training for m in f.modules())


def test_lite0_weights_reproduce_the_reference_implementation():
    from efficientnet_lite_pytorch import EfficientNet

    ref = EfficientNet.from_name("efficientnet-lite0")
    ref.load_state_dict(torch.load(weights_file("lite0"), weights_only=True))
    torch.manual_seed(1)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = ref.eval()(x)
        ours = efficientnet_lite("lite0").eval()(x)
        unloaded = efficientnet_lite("lite0", pretrained=False).eval()(x)
    assert torch.allclose(ours, expected, atol=1e-5, rtol=0)  # measured: bit-identical
    assert (unloaded - expected).abs().max() > 1.0  # so the check above means something
    # F's 4 stages (proj_type 0) are the reference's stem + flat blocks cut after 3, 5, 11, 16
    f = FeatureNetwork("lite0", proj_type=0, interp_size=None)
    with torch.no_grad():
        feats, h, ends = f(x), ref._swish(ref._bn0(ref._conv_stem(x))), []
        for i, block in enumerate(ref._blocks, 1):
            h = block(h)
            if i in (3, 5, 11, 16):
                ends.append(h)
    assert all(torch.allclose(a, b, atol=1e-5, rtol=0) for a, b in zip(feats, ends))


@pytest.mark.parametrize("backbone, stage_channels", [("lite1", [24, 40, 112, 320]), ("lite2", [24, 48, 120, 352]),
                                                      ("lite3", [32, 48, 136, 384])])
def test_other_backbones_load_and_split_alike(backbone, stage_channels):
    pretrained = backbone != "lite3"  # no lite3 weights here
    f = FeatureNetwork(backbone, pretrained=pretrained, proj_type=0, interp_size=None)
    with torch.no_grad():
        feats = f(torch.zeros(1, 3, 64, 64))
    sides = [64 // s for s in (4, 8, 16, 32)]
    assert [tuple(z.shape[1:]) for z in feats] == [(c, s, s) for c, s in zip(stage_channels, sides)]
    if pretrained:  # the weights really went in: the stem is not timm's random init
        ref = torch.load(weights_file(backbone), weights_only=True)["_conv_stem.weight"]
        assert torch.equal(f.backbone[0][0].weight, ref)


def test_weights_unavailable_cases(tmp_path):
    with pytest.raises(WeightsUnavailable, match="weights_path"):
        efficientnet_lite("lite3")
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsUnavailable, match="nope.pth"):
        efficientnet_lite("lite0", weights_path=str(missing))
    with pytest.raises(WeightsUnavailable, match="wrong backbone"):
        efficientnet_lite("lite2", weights_path=str(weights_file("lite0")))
    with pytest.raises(ValueError, match="allowed"):
        weights_file("lite4")


def test_timm_named_file_loads_directly(tmp_path):
    net = efficientnet_lite("lite0", pretrained=False)
    torch.nn.init.normal_(net.conv_stem.weight)
    torch.save(net.state_dict(), tmp_path / "timm.pth")
    loaded = efficientnet_lite("lite0", weights_path=str(tmp_path / "timm.pth"), num_classes=10)
    assert torch.equal(loaded.conv_stem.weight, net.conv_stem.weight)
    assert loaded.get_classifier().out_features == 10


def test_diff_augment():
    x = torch.rand(4, 1, 64, 64) * 2 - 1
    assert torch.equal(diff_augment(x, ""), x)
    a = diff_augment(x, generator=torch.Generator().manual_seed(3))
    b = diff_augment(x, generator=torch.Generator().manual_seed(3))
    c = diff_augment(x, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and (a - x).abs().mean() > 0.1
    # cutout zeroes a 13×13 square (0.2·64, clipped at the border) in every sample
    cut = diff_augment(torch.ones(8, 1, 64, 64), "cutout", torch.Generator().manual_seed(0))
    zeros = (cut == 0).sum(dim=(1, 2, 3))
    assert (zeros > 0).all() and (zeros <= 13 * 13).all() and (zeros == 13 * 13).any()
    # translation shifts by at most 8 px, zero-filling what it vacates
    t = diff_augment(torch.ones(16, 1, 64, 64), "translation", torch.Generator().manual_seed(0))
    assert (t[:, :, 8:-8, 8:-8] == 1).all() and (t == 0).any()
    xg = x.clone().requires_grad_(True)
    diff_augment(xg, generator=torch.Generator().manual_seed(3)).sum().backward()
    assert xg.grad is not None and xg.grad.abs().sum() > 0


def test_mini_discriminator_sizing():
    d = MiniDiscriminator(64, 128, separable=True, width=0.25)
    assert d(torch.zeros(2, 64, 512, 512)).shape == (2, 1, 29, 29)  # the study's 1024 px: 29×29 patches
    with pytest.raises(ValueError):
        MiniDiscriminator(64, 96)


@pytest.mark.parametrize("side", [2, 4, 8, 13, 14, 16, 56])
def test_actual_sizing_keeps_a_normalised_block(side):
    """Upstream's mini-Ds all have ≥ 1 conv-BN-LeakyReLU block before the logit conv; at
    ``disc_sizing: actual`` a map too small to halve (the demo's 8- and 4-px CSM levels) must
    keep one too, else the logits are a linear read-out of raw features (±10 in 2 steps)."""
    d = MiniDiscriminator(64, 32, separable=True, width=0.25, map_side=side)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in d.modules())
    out = d(torch.randn(3, 64, side, side))
    assert min(out.shape[-2:]) >= 4
    if side < 14:  # no room to halve: the one block keeps the side, the logits are as before
        assert out.shape[-1] == {2: 5, 4: 5, 8: 5, 13: 10}[side]


def test_projected_discriminator_is_frozen_but_passes_gradients(nets):
    torch.manual_seed(0)
    d = ProjectedDiscriminator(nets[2], num_discs=4, separable=True, width=0.25)
    d.train()
    assert not any(m.training for m in d.feature_network.modules())
    assert all(m.training for m in d.discriminator.modules())
    d.feature_network.requires_grad_(False)
    x = (torch.rand(2, 1, 64, 64) * 2 - 1).requires_grad_(True)
    out = d(x, generator=torch.Generator().manual_seed(0))
    assert out.shape == (2, 4 * 16)
    out.mean().backward()
    assert all(p.grad is None for p in d.feature_network.parameters())
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in d.discriminator.parameters())
    # eval-mode D without augmentation is deterministic
    d.eval()
    d.diffaug_policy = ""
    with torch.no_grad():
        assert torch.equal(d(x), d(x))


def test_forward_pair_is_two_separate_passes(nets):
    """D's step shares F's forward between reals and fakes; the logits, the gradients and the
    mini-Ds' batch statistics must be those of two separate passes (upstream's Dreal/Dgen)."""
    import copy

    fn = FeatureNetwork("lite0", proj_type=2, interp_size=64)
    fn.load_state_dict(nets[2].state_dict())
    torch.manual_seed(0)
    d1 = ProjectedDiscriminator(fn, num_discs=4, width=0.25, sizing="actual", image_size=64)
    d2 = copy.deepcopy(d1)
    d1.train(), d2.train()
    a, b = torch.rand(4, 1, 64, 64) * 2 - 1, torch.rand(4, 1, 64, 64) * 2 - 1
    b[:2] -= 1  # a different batch: separate BatchNorm statistics matter
    g = torch.Generator().manual_seed(5)
    ra, rb = d1(a, g), d1(b, g)
    pa, pb = d2.forward_pair(a, b, torch.Generator().manual_seed(5))
    torch.testing.assert_close(pa, ra, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(pb, rb, atol=1e-4, rtol=1e-4)
    (ra.mean() - rb.mean()).backward()
    (pa.mean() - pb.mean()).backward()
    for p1, p2 in zip(d1.discriminator.parameters(), d2.discriminator.parameters()):
        torch.testing.assert_close(p2.grad, p1.grad, atol=1e-4, rtol=1e-3)
