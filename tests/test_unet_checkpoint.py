"""Gradient checkpointing of the diffusion UNet: the same gradients, fewer kept activations."""

import torch

from solargen.models.diffusion.family import build_unet
from solargen.models.diffusion.unet import UNet

CFG = {"num_channels": 8, "num_res_blocks": 1, "channel_mult": [1, 2], "attention_resolutions": [8],
       "num_heads": 2, "dropout": 0.3, "learn_sigma": True}


def _grads(use_checkpoint: bool):
    torch.manual_seed(0)
    net = UNet(16, model_channels=8, num_res_blocks=1, channel_mult=(1, 2), attention_resolutions=(8,),
               num_heads=2, dropout=0.3, learn_sigma=True, use_checkpoint=use_checkpoint)
    # Zero-initialised output convs would leave most gradients zero; perturb every weight.
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    x, t = torch.randn(2, 1, 16, 16), torch.tensor([3, 700])
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    torch.manual_seed(1)  # dropout masks: drawn in forward, redrawn identically in recomputation
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = net(x, t)
    (out ** 2).mean().backward()
    return {n: p.grad.clone() for n, p in net.named_parameters()}, sum(saved), out.detach()


def test_checkpointing_gives_identical_gradients_and_keeps_less():
    plain, kept_plain, out_plain = _grads(False)
    ckpt, kept_ckpt, out_ckpt = _grads(True)
    assert torch.equal(out_plain, out_ckpt)
    assert plain.keys() == ckpt.keys()
    for name in plain:
        torch.testing.assert_close(ckpt[name], plain[name], rtol=1e-6, atol=0, msg=name)
    assert sum(bool(g.abs().sum()) for g in plain.values()) == len(plain)  # every parameter gets a gradient
    assert kept_ckpt < kept_plain / 2, (kept_ckpt, kept_plain)


def test_config_key_reaches_the_unet():
    assert build_unet({**CFG, "use_checkpoint": True}, 16).use_checkpoint
    assert not build_unet(CFG, 16).use_checkpoint  # default off
