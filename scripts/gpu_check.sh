#!/usr/bin/env bash
# One command for a GPU machine (scripts/gpu_check.py does the work; run from anywhere):
#   scripts/gpu_check.sh                 # CUDA: every family's paper model at 1024 px, fp32 and bf16
#                                        # (TF32 on), one family compiled, 2 ranks vs 1 over NCCL
#                                        # when there are ≥ 2 GPUs; < 8 min on one H100 (estimated)
#   scripts/gpu_check.sh                 # no GPU: the same at the tiny CI size, fp32, 2 gloo ranks
#   scripts/gpu_check.sh --scale paper --batch 1 --families stylegan2   # paper scale on the CPU
# Prints per family images/s per GPU, peak GPU memory / resident memory, the loss after N steps
# and the spectral distance of 2 samples; ends with one key=value line. Exit 0 when all ran.
# Children above GPU_CHECK_RSS_LIMIT_GIB (default 6) resident memory are killed and reported.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
exec python scripts/gpu_check.py "$@"
