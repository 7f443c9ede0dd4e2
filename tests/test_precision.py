"""bf16 autocast is a GPU option: on the CPU a bf16 config trains exactly as fp32."""

import pytest
import torch

from solargen.train import fit, load_checkpoint
from helpers import Toy
from test_train import DATA


def test_bf16_is_off_on_the_cpu_and_unknown_precisions_are_refused(tmp_path):
    fit(Toy(), DATA, batch_size=2, total_steps=3, ckpt_dir=tmp_path / "a", save_every=100, seed=0, precision="fp32")
    fit(Toy(), DATA, batch_size=2, total_steps=3, ckpt_dir=tmp_path / "b", save_every=100, seed=0, precision="bf16")
    a = load_checkpoint(tmp_path / "a" / "step0000003.pt")["modules"]["net"]
    b = load_checkpoint(tmp_path / "b" / "step0000003.pt")["modules"]["net"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="fp16"):
        fit(Toy(), DATA, batch_size=2, total_steps=3, ckpt_dir=tmp_path / "c", save_every=100, precision="fp16")
