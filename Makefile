# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   — create .venv, install, run the whole study at toy scale, build the report
#   make test   — create .venv, install, run the test suite (includes one end-to-end CI-scale run)
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install demo test dryrun-paper lint clean smoke-paper gpu-check

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $@

demo: install
	snakemake --profile profiles/local
	snakemake --profile profiles/local --report results/demo/report.html

test: install
	python -m pytest

dryrun-paper: install
	JUWELS_ACCOUNT=$${JUWELS_ACCOUNT:-myproject} JUWELS_PARTITION=$${JUWELS_PARTITION:-booster} \
	  snakemake -n --profile profiles/juwels

# Every family's paper network at 1024 px: trains, checkpoints, resumes, samples 2 images and is
# scored (scripts/gpu_check.sh, overlay config/smoke_paper.yaml). On the CPU each family runs at
# batch 1 under a resident-memory limit (SMOKE_RSS_GIB; over it the family is stopped and
# reported, not the machine); on a GPU at its per-GPU batch, fp32 and bf16.
SMOKE_RSS_GIB ?= 6
SMOKE_ARGS ?= $(if $(shell python -c "import torch;print(torch.cuda.is_available() or '')" 2>/dev/null),,--batch 1 --steps 1 --ranks 1)
smoke-paper: install
	GPU_CHECK_RSS_LIMIT_GIB=$(SMOKE_RSS_GIB) scripts/gpu_check.sh --scale paper $(SMOKE_ARGS)

# The GPU check (scripts/gpu_check.sh): paper scale on CUDA, the tiny CPU/gloo path elsewhere.
gpu-check: install
	scripts/gpu_check.sh

lint: install
	snakemake --lint --configfile config/ci.yaml

clean:
	rm -rf results .snakemake
