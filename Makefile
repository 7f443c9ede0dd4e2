# Two commands do all set-up on a fresh machine with Python 3.11:
#   make demo   — create .venv, install, run the whole study at toy scale, build the report
#   make test   — create .venv, install, run the test suite (includes one end-to-end CI-scale run)
VENV   ?= .venv
PYTHON ?= python3
BIN    := $(VENV)/bin
export PATH := $(abspath $(BIN)):$(PATH)
export HF_HUB_OFFLINE := 1
export PYTHONUNBUFFERED := 1

.PHONY: install demo test dryrun-paper lint clean

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

lint: install
	snakemake --lint --configfile config/ci.yaml

clean:
	rm -rf results .snakemake
