"""Data-parallel scaling model of every family at paper scale, from counted FLOPs and gradient bytes.

For each family's paper config (config/config.yaml ``templates``) this builds the networks on the
``meta`` device (no memory, no compute) and counts, with `torch.utils.flop_counter`, the forward
FLOPs per image of each network, plus the parameters whose gradients the engine all-reduces.
A training step costs k_G·F_G + k_D·F_D FLOPs per image (k from the phase structure of each
family's ``training_step``, see PHASES). The multipliers are checked here on the CI-size models:
the FLOPs of a real CPU ``training_step`` (counted while it runs) against the k-model, and the
measured CPU time gives the CPU's achieved FLOP rate.

Per-GPU time on an A100 then follows from an assumed achieved throughput, and the all-reduce
time of ``solargen.distributed`` (ring, not overlapped with backward) from gradient bytes and
bus bandwidths. All assumptions are the constants below and are printed.

    python benchmarks/scaling.py            # ~1 min on 2 CPU cores

Last line: key=value pairs (per family: A100 img/s per GPU at 1 GPU and efficiency at 64 GPUs).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import yaml
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

ROOT = Path(__file__).resolve().parents[1]

# --- assumptions (JUWELS Booster: 4 × A100-SXM4-40GB per node, NVLink3, 4 × HDR200 per node) ---
A100_PEAK_TF32 = 156e12   # dense tensor-core TF32 FLOP/s (fp32 training with TF32 on)
A100_PEAK_BF16 = 312e12
MFU = 0.35                # achieved fraction of peak for conv nets of this kind (assumed)
NVLINK_BUSBW = 200e9      # NCCL all-reduce bus bandwidth within a node (B/s), 4 GPUs (assumed)
IB_BUSBW = 20e9           # per GPU across nodes: one HDR200 (25 GB/s) per GPU at 80 % (assumed)
ALLREDUCE_LATENCY = 10e-6  # per bucket and ring hop (NCCL: a few µs NVLink, ~10 µs IB; assumed)
BUCKET_BYTES = 100e6      # solargen.distributed.BUCKET_NUMEL × 4 B
GPUS = [1, 4, 8, 16, 32, 64]

#: per family: (per-GPU batch in the paper config, k_G, k_D). Forward = 1, backward ≈ 2.
#: diffusion: U-Net fwd+bwd = 3.
#: GANs: G phase = G fwd+bwd (3) + D fwd+bwd through its input (3); D phase = G fwd (1, no grad)
#: + D fwd+bwd on real and fake (6). So k_G = 4, k_D = 9 (lazy regularisers of StyleGAN2 add
#: ~ +0.75·F_G (path length every 4 steps, half batch, double backward) and ~ +0.6·F_D (R1 every
#: 16): ignored). msdgan's G output is reused by D, so k_G = 3.
PHASES = {"diffusion": (1, 3, 0), "stylegan2": (4, 4, 9), "projectedgan": (8, 4, 9), "msdgan": (2, 3, 9)}


class _Flops(TorchDispatchMode):
    """Matmul/convolution FLOPs of everything run inside (torch's own per-op formulas).

    `FlopCounterMode` does the same but also tracks modules, which breaks on the GANs'
    requires_grad toggling; this counts ops only.
    """

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        f = flop_registry.get(func._overloadpacket)
        if f is not None:
            self.total += f(*args, **kwargs, out_val=out)
        return out


def _count(fn) -> float:
    with _Flops() as fc:
        fn()
    return float(fc.total)


def paper_costs(family: str, cfg: dict, size: int) -> dict:
    """Forward FLOPs per image of G (or the U-Net) and D, and all-reduced parameter count, on meta."""
    dev = torch.device("meta")
    if family == "diffusion":
        from solargen.models.diffusion.family import build_unet

        with dev:
            u = build_unet(cfg, size)
        x, t = torch.zeros(1, 1, size, size, device=dev), torch.zeros(1, dtype=torch.long, device=dev)
        return {"F_G": _count(lambda: u(x, t)), "F_D": 0.0,
                "params": sum(p.numel() for p in u.parameters())}
    if family == "msdgan":
        from solargen.models.msdgan.family import build_discriminator, build_generator

        with dev:
            G, D = build_generator(cfg, size), build_discriminator(cfg, size)
        inp = torch.zeros(1, 2 if cfg.get("noise", True) else 1, size, size, device=dev)
        y = torch.zeros(1, 1, size, size, device=dev)
        return {"F_G": _count(lambda: G(inp)), "F_D": _count(lambda: D(y, y)),
                "params": sum(p.numel() for m in (G, D) for p in m.parameters())}
    if family == "stylegan2":
        from solargen.models.stylegan2.family import build_discriminator, build_generator
    else:
        from solargen.models.projectedgan.ablations import resolve
        from solargen.models.projectedgan.family import build_discriminator, build_generator

        cfg = {**resolve(cfg), "pretrained": False}  # weights do not change FLOPs
    with dev:
        G, D = build_generator(cfg, size), build_discriminator(cfg, size)
    z = torch.zeros(4, G.z_dim, device=dev)
    x = torch.zeros(4, 1, size, size, device=dev)
    f_g = _count(lambda: G(z)) / 4
    f_d = _count(lambda: D(x)) / 4
    if family == "projectedgan":  # only D's own layers are trained; the feature network is frozen
        fn = D.feature_network
        frozen = {id(p) for p in fn.backbone.parameters()}
        d_params = sum(p.numel() for p in D.parameters() if id(p) not in frozen)
    else:
        d_params = sum(p.numel() for p in D.parameters())
    return {"F_G": f_g, "F_D": f_d, "params": sum(p.numel() for p in G.parameters()) + d_params}


def allreduce_s(nbytes: float, gpus: int) -> float:
    """Ring all-reduce time: 2(N−1)/N · bytes / bus bandwidth (+ latency per bucket and ring step)."""
    if gpus == 1:
        return 0.0
    bw = NVLINK_BUSBW if gpus <= 4 else IB_BUSBW
    buckets = max(1, -(-nbytes // BUCKET_BYTES))
    return 2 * (gpus - 1) / gpus * nbytes / bw + buckets * 2 * (gpus - 1) * ALLREDUCE_LATENCY


def cpu_check(family: str, cfg: dict, size: int, steps: int = 3) -> dict:
    """The k-model against a real CPU step of the CI-size model: counted FLOPs and time per step."""
    from solargen.models import family as get_family

    torch.manual_seed(0)
    b = cfg["batch_size"]
    tr = get_family(family).trainer(cfg, size, device="cpu")
    x = torch.rand(b, 1, size, size) * 2 - 1
    g = torch.Generator().manual_seed(0)
    tr.training_step(x, 1, g)  # warm-up (and skip the lazy-regularisation step 0)
    counted = _count(lambda: tr.training_step(x, 1, g))
    t0 = time.perf_counter()
    for s in range(steps):
        tr.training_step(x, 1 + s, g)
    dt = (time.perf_counter() - t0) / steps
    meta = paper_costs(family, cfg, size)
    _, kg, kd = PHASES[family]
    model = b * (kg * meta["F_G"] + kd * meta["F_D"])
    return {"counted": counted, "model": model, "step_s": dt, "gflops": counted / dt / 1e9}


def main():
    torch.set_num_threads(2)
    paper = yaml.safe_load((ROOT / "config/config.yaml").read_text())["templates"]
    ci = yaml.safe_load((ROOT / "config/ci.yaml").read_text())["models"]
    names = {"diffusion": ("adm_1024", "diffusion_1000t_lr0.0001_128ch_2bpr_horiz_flip"),
             "stylegan2": ("stylegan2_1024", "stylegan2"), "projectedgan": ("projectedgan_1024", "full_projectedgan"),
             "msdgan": ("msdgan_1024", "msdgan")}
    print(f"assumptions: A100 TF32 {A100_PEAK_TF32 / 1e12:.0f} TFLOP/s peak × MFU {MFU}, "
          f"NVLink bus bw {NVLINK_BUSBW / 1e9:.0f} GB/s (≤ 4 GPUs), IB {IB_BUSBW / 1e9:.0f} GB/s per GPU (> 4 GPUs)")
    print("\nCPU check of the FLOP model (CI-size models, one real training_step):")
    for fam, (_, c) in names.items():
        m = ci[c]
        r = cpu_check(fam, {k: v for k, v in m.items() if k not in ("family", "image_size")}, m["image_size"])
        print(f"  {fam:13s} counted {r['counted'] / 1e9:8.3f} GFLOP/step, k-model {r['model'] / 1e9:8.3f} "
              f"(ratio {r['counted'] / r['model']:.2f}), {r['step_s'] * 1e3:7.1f} ms/step on CPU = {r['gflops']:.1f} GFLOP/s")
    final = []
    print("\nPaper scale (1024 px), A100, per-GPU batch as in config/config.yaml (nodes × 4 GPUs):")
    for fam, (tpl, _) in names.items():
        cfg = {k: v for k, v in paper[tpl].items() if k not in ("family", "image_size")}
        c = paper_costs(fam, cfg, paper[tpl]["image_size"])
        b, kg, kd = PHASES[fam]
        flops_img = kg * c["F_G"] + kd * c["F_D"]
        t_comp = b * flops_img / (A100_PEAK_TF32 * MFU)
        grad_bytes = 4 * c["params"]
        print(f"\n{fam}: F_G {c['F_G'] / 1e9:.0f} GFLOP, F_D {c['F_D'] / 1e9:.0f} GFLOP per image fwd; "
              f"{flops_img / 1e12:.2f} TFLOP per image-step; {c['params'] / 1e6:.1f} M all-reduced params "
              f"= {grad_bytes / 1e6:.0f} MB per step; per-GPU batch {b}: compute {t_comp * 1e3:.0f} ms/step "
              f"(TF32; bf16 ≈ ½)")
        print("  GPUs  allreduce_ms  step_ms  img/s/GPU  img/s total  efficiency")
        base = b / t_comp
        for n in GPUS:
            t_ar = allreduce_s(grad_bytes, n)
            ips = b / (t_comp + t_ar)
            print(f"  {n:4d}  {t_ar * 1e3:12.1f}  {(t_comp + t_ar) * 1e3:7.0f}  {ips:9.2f}  {ips * n:11.1f}  {ips / base:10.3f}")
        final += [f"{fam}_img_s_gpu={base:.3g}", f"{fam}_eff64={b / (t_comp + allreduce_s(grad_bytes, 64)) / base:.3f}"]
    print(" ".join(final))


if __name__ == "__main__":
    main()
