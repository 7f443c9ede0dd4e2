"""ProjectedGAN family: ablation switches, what is frozen, the hinge loss, resume and sampling."""

import pytest
import torch

from solargen.models.projectedgan.ablations import ABLATIONS, resolve, weights_problem
from solargen.models.projectedgan.family import ProjectedGANTrainer, sample
from solargen.train import fit

TINY = dict(image_size=32, z_dim=16, w_dim=16, mapping_layers=2, channel_base=256, channel_max=16,
            interp_size=128, disc_width=0.125, lr=0.002, batch_size=2)

# The study's names → the switches each must turn (models_metrics.md §1.8), written out
# independently of the registry so a wrong entry there fails here.
EXPECTED = {
    "full_projectedgan": {},
    "no_cross_scale_mixing": {"proj_type": 1},
    "no_cross_scale_and_no_cross_channel_mixing": {"proj_type": 0},
    "unfreeze_feature_network": {"freeze_backbone": False},
    "trainable_projections": {"freeze_projections": False},
    "unfreeze_feature_network+trainable_projections": {"freeze_backbone": False, "freeze_projections": False},
    "randomly_initialized_feature_network": {"pretrained": False},
    "randomly_initialized_feature_network_unfrozen": {"pretrained": False, "freeze_backbone": False},
    "efficientnet-lite1": {"backbone": "lite1"},
    "efficientnet-lite2": {"backbone": "lite2"},
    "efficientnet-lite3": {"backbone": "lite3"},
    "discriminator_1": {"num_discs": 1},
    "discriminator_1,2": {"num_discs": 2},
    "discriminator_1,2,3": {"num_discs": 3},
    "augmentations_off": {"diffaug": ""},
    "stylegan2_discriminator": {"discriminator": "stylegan2"},
}
BASE = {"backbone": "lite0", "pretrained": True, "freeze_backbone": True, "freeze_projections": True,
        "proj_type": 2, "num_discs": 4, "diffaug": "color,translation,cutout", "discriminator": "projected"}


def test_every_study_ablation_resolves_to_its_switches():
    assert set(ABLATIONS) == set(EXPECTED)
    for name, change in EXPECTED.items():
        r = resolve({"ablation": name})
        assert {k: r[k] for k in BASE} == {**BASE, **change}, name
    assert resolve({})["ablation"] == "full_projectedgan"
    with pytest.raises(ValueError, match="sets proj_type = 1, but the model entry sets proj_type = 2"):
        resolve({"ablation": "no_cross_scale_mixing", "proj_type": 2})


def test_missing_weights_are_found_when_the_config_is_read(tmp_path):
    assert weights_problem({"ablation": "full_projectedgan"}) is None
    assert "weights_path" in weights_problem({"ablation": "efficientnet-lite3"})
    assert str(tmp_path / "x.pth") in weights_problem({"ablation": "efficientnet-lite3",
                                                       "weights_path": str(tmp_path / "x.pth")})
    # A random backbone needs no weights.
    assert weights_problem({"ablation": "randomly_initialized_feature_network", "backbone": "lite3"}) is None


def _params(module):
    return [p.detach().clone() for p in module.parameters()]


def _changed(before, module):
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


@pytest.mark.parametrize("ablation, backbone_trains, projections_train", [
    ("full_projectedgan", False, False),
    ("trainable_projections", False, True),
    ("unfreeze_feature_network", True, False),
    ("unfreeze_feature_network+trainable_projections", True, True),
])
def test_frozen_parts_get_no_gradient_and_do_not_change(ablation, backbone_trains, projections_train):
    torch.manual_seed(0)
    t = ProjectedGANTrainer({**TINY, "ablation": ablation}, 32)
    fn = t.D.feature_network
    bb, pr, heads = _params(fn.backbone), _params(fn.projections), _params(t.D.discriminator)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    t.training_step(x, 0, torch.Generator().manual_seed(0))
    assert _changed(bb, fn.backbone) == backbone_trains
    assert _changed(pr, fn.projections) == projections_train
    assert _changed(heads, t.D.discriminator)  # the mini-Ds always train
    for p in fn.backbone.parameters():
        assert (p.grad is not None) == backbone_trains
    assert not fn.training  # BatchNorm of the feature network keeps its running statistics


def test_discriminator_count_and_random_backbone():
    one = ProjectedGANTrainer({**TINY, "ablation": "discriminator_1"}, 32)
    assert len(one.D.discriminator.mini_discs) == 1
    torch.manual_seed(0)
    rnd = ProjectedGANTrainer({**TINY, "ablation": "randomly_initialized_feature_network"}, 32)
    torch.manual_seed(0)
    pre = ProjectedGANTrainer(TINY, 32)
    stem = lambda t: next(t.D.feature_network.backbone.parameters())  # noqa: E731
    assert not torch.equal(stem(rnd), stem(pre))


def test_training_steps_reduce_the_discriminators_hinge_loss():
    torch.manual_seed(0)
    t = ProjectedGANTrainer({**TINY, "ablation": "augmentations_off", "batch_size": 4}, 32)
    x = torch.rand(4, 1, 32, 32) * 0.5 + 0.25  # a fixed "real" batch
    with torch.no_grad():
        fake = t.G(torch.randn(4, t.G.z_dim, generator=torch.Generator().manual_seed(1)))

    def hinge():
        with torch.no_grad():
            return float(torch.relu(1 - t.D(x)).mean() + torch.relu(1 + t.D(fake)).mean())

    before = hinge()
    g = torch.Generator().manual_seed(0)
    for step in range(8):
        t.training_step(x, step, g)
    after = hinge()
    assert after < before - 0.1


def test_resume_continues_exactly_and_samples_are_reproducible(tmp_path):
    data = torch.rand(6, 1, 32, 32) * 2 - 1
    cfg = {**TINY, "generator": "fastgan", "ngf": 8}

    def run(d, steps):
        torch.manual_seed(0)
        return fit(ProjectedGANTrainer(cfg, 32), data, batch_size=2, total_steps=steps, ckpt_dir=d, save_every=2)

    run(tmp_path / "a", 2)
    resumed = torch.load(run(tmp_path / "a", 4), weights_only=True)
    straight = torch.load(run(tmp_path / "b", 4), weights_only=True)
    for k, v in straight["ema"]["G"].items():
        assert torch.equal(v, resumed["ema"]["G"][k]), k
    a = sample(straight, cfg, 32, 3, seed=5, batch_size=2)
    assert a.shape == (3, 1, 32, 32) and a.abs().max() <= 1
    assert torch.equal(a, sample(resumed, cfg, 32, 3, seed=5, batch_size=2))
    assert not torch.equal(a, sample(straight, cfg, 32, 3, seed=6, batch_size=2))


def test_stylegan2_discriminator_arm_uses_the_same_generator():
    arm = ProjectedGANTrainer({**TINY, "ablation": "stylegan2_discriminator"}, 32)
    base = ProjectedGANTrainer(TINY, 32)
    assert type(arm.G) is type(base.G)
    assert sum(p.numel() for p in arm.G.parameters()) == sum(p.numel() for p in base.G.parameters())
    assert not hasattr(arm.D, "feature_network")
    losses = arm.training_step(torch.rand(2, 1, 32, 32) * 2 - 1, 0, torch.Generator().manual_seed(0))
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())


def test_fastgan_generator_shapes_and_size():
    from solargen.models.projectedgan.fastgan import FastGANGenerator

    g = FastGANGenerator(128, ngf=16)
    # Upstream's fastgan_lite at ngf=16, 128 px: 3.1 M parameters (models_metrics.md §1.1).
    assert 2.9e6 < sum(p.numel() for p in g.parameters()) < 3.3e6
    assert g(torch.randn(2, 256)).shape == (2, 1, 128, 128)
    small = FastGANGenerator(32, z_dim=16, ngf=8, lite=False).eval()  # "big" blocks with noise inputs
    z = torch.randn(2, 16)
    a = small(z, generator=torch.Generator().manual_seed(0))
    assert a.shape == (2, 1, 32, 32)
    assert torch.equal(a, small(z, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match="power-of-two"):
        FastGANGenerator(48)
