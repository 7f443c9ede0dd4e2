"""StyleGAN2 family on the shared loop: lazy regularisers, EMA, checkpoint → identical samples."""

import torch

from solargen.models.stylegan2.family import StyleGAN2Trainer, sample
from solargen.models.ema import half_life_decay
from solargen.train import fit, load_checkpoint

TINY = dict(image_size=16, z_dim=16, w_dim=16, mapping_layers=2, channel_base=128, channel_max=16,
            lr=0.002, batch_size=4, r1_interval=4, pl_interval=2)


def _x(n=4, seed=0):
    return torch.rand(n, 1, 16, 16, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_lazy_regularisers_run_at_their_intervals_with_compensated_adam():
    t = StyleGAN2Trainer(TINY, 16)
    g = torch.Generator().manual_seed(0)
    logs = [t.training_step(_x(), s, g) for s in range(4)]
    assert ["r1_penalty" in lg for lg in logs] == [True, False, False, False]
    assert ["pl_penalty" in lg for lg in logs] == [True, False, True, False]
    assert float(t.pl.pl_mean) > 0  # the path-length running mean moved off zero
    # lr·c and betas**c with c = interval / (interval + 1): D every 4 → c = 0.8, G every 2 → 2/3.
    d, gopt = t.optimizers["D"].param_groups[0], t.optimizers["G"].param_groups[0]
    assert abs(d["lr"] - 0.002 * 0.8) < 1e-12 and abs(d["betas"][1] - 0.99 ** 0.8) < 1e-12
    assert abs(gopt["lr"] - 0.002 * 2 / 3) < 1e-12


def test_pl_weight_zero_skips_the_path_length_phase_and_its_adam_compensation():
    # The demo's switch (config F keeps pl_weight 2): no Greg step, so G's Adam is not compensated.
    t = StyleGAN2Trainer({**TINY, "pl_weight": 0.0}, 16)
    g = torch.Generator().manual_seed(0)
    logs = [t.training_step(_x(), s, g) for s in range(3)]
    assert not any("pl_penalty" in lg for lg in logs) and "r1_penalty" in logs[0]
    assert float(t.pl.pl_mean) == 0  # the running mean never moved
    gopt = t.optimizers["G"].param_groups[0]
    assert gopt["lr"] == 0.002 and tuple(gopt["betas"]) == (0.0, 0.99)
    assert abs(t.optimizers["D"].param_groups[0]["lr"] - 0.002 * 0.8) < 1e-12  # D's R1 still lazy


def test_ema_differs_after_steps_and_equals_g_with_zero_half_life():
    g = torch.Generator().manual_seed(0)
    t = StyleGAN2Trainer(TINY, 16)
    for s in range(3):
        t.training_step(_x(), s, g)
    ema = dict(t.ema["G"].model.named_parameters())
    assert any(not torch.equal(p, ema[n]) for n, p in t.G.named_parameters())
    # ema_kimg = 0: decay 0, the EMA generator is the trained one.
    t0 = StyleGAN2Trainer({**TINY, "ema_kimg": 0.0}, 16)
    for s in range(2):
        t0.training_step(_x(), s, g)
    ema0 = dict(t0.ema["G"].model.named_parameters())
    assert all(torch.equal(p, ema0[n]) for n, p in t0.G.named_parameters())
    # Half-life in images: after one half-life worth of steps the old weights count half.
    assert abs(half_life_decay(10**6, 32, 10.0) ** (10_000 / 32) - 0.5) < 1e-9


def test_save_load_gives_identical_samples_and_resume_is_exact(tmp_path):
    data = torch.cat([_x(4, 0), _x(4, 1)])

    def run(d, steps):
        torch.manual_seed(0)
        return fit(StyleGAN2Trainer(TINY, 16), data, batch_size=4, total_steps=steps, ckpt_dir=d, save_every=2)

    run(tmp_path / "a", 2)
    resumed = load_checkpoint(run(tmp_path / "a", 5))
    straight = load_checkpoint(run(tmp_path / "b", 5))
    for k, v in straight["modules"]["G"].items():
        assert torch.equal(v, resumed["modules"]["G"][k]), k
    assert torch.equal(straight["modules"]["pl"]["pl_mean"], resumed["modules"]["pl"]["pl_mean"])
    a = sample(straight, TINY, 16, 5, seed=3, batch_size=2)
    assert a.shape == (5, 1, 16, 16) and a.abs().max() <= 1
    assert torch.equal(a, sample(resumed, TINY, 16, 5, seed=3, batch_size=2))
    assert not torch.equal(a, sample(straight, TINY, 16, 5, seed=4, batch_size=2))
    # Truncation ψ = 0 collapses every sample onto w̄ (noise inputs still differ slightly).
    flat = sample(straight, {**TINY, "truncation_psi": 0.0}, 16, 4, seed=3)
    assert (flat - flat.mean(0)).abs().mean() < (a - a.mean(0)).abs().mean()
