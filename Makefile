# Set-up is part of both entry points, so each works on a fresh machine:
#   make run    install (apt + venv + pip), then run the default offline sweep
#   make test   install, then run the test suite: the fast suite, then the SLURM suite on a real
#               local cluster (make test-fast / make test-slurm run one of them)
# Both need root for apt-get (or the Debian data packages already installed / unpacked: docs/offline_assets.md).
PY ?= python3
VENV ?= .venv
CORES ?= 2
APT_PACKAGES = dataset-fashion-mnist wordnet-base openclipart-svg openclipart-png
STAMP = $(VENV)/.installed
# Rules run `python -m aftbench ...`: put the venv first on PATH for every recipe.
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: run test test-fast test-unit test-slurm setup apt tables report clean-results

run: setup
	$(VENV)/bin/snakemake --cores $(CORES)

test: test-fast test-slurm

test-fast: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q

# The unit tests alone: no Snakemake run, no subprocess job (tests marked `slow` are skipped).
test-unit: setup
	HF_HUB_OFFLINE=1 $(VENV)/bin/python -m pytest -q -m "not slow"

# Brings up a one-node SLURM cluster (tests/slurm/start.sh), runs tests/test_slurm.py, tears it down.
test-slurm: setup
	HF_HUB_OFFLINE=1 bash tests/with_slurm_cluster.sh $(VENV)/bin/python -m pytest -q tests/test_slurm.py

tables: setup
	$(VENV)/bin/snakemake tables --cores 1

report: setup
	$(VENV)/bin/snakemake --report results/report.html

setup: apt $(STAMP)

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "apt-get install$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade "pip==26.3"
	# torch first, on its own line: pins the exact build (pip would otherwise pick any torch a dependency allows)
	$(VENV)/bin/pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(VENV)/bin/pip install -q -e ".[test]"
	touch $(STAMP)

clean-results:
	rm -rf results/runs results/features results/splits results/logs results/benchmarks results/reports results/factors .snakemake
