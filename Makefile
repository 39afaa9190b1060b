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

.PHONY: run test test-fast test-unit test-slurm test-newest setup apt lock tables report clean-results

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

# The exact versions CI tests: requirements.lock (pyproject.toml has ranges), then the package itself.
$(STAMP): pyproject.toml requirements.lock
	$(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade "pip==26.3"
	$(VENV)/bin/pip install -q -r requirements.lock
	$(VENV)/bin/pip install -q --no-deps -e .
	touch $(STAMP)

# Remake requirements.lock from pyproject.toml's ranges (uv, from PyPI), keeping the locked versions
# where they still fit; `make lock UPGRADE=1` moves every package to the newest version allowed.
lock:
	$(VENV)/bin/pip install -q "uv==0.13.8"
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --universal --python-version 3.11 --no-annotate \
	  --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade) -o requirements.lock

# The newest versions pyproject.toml's ranges allow, in a venv of their own, and the unit tests on
# them: a release that breaks aftbench shows here before anyone widens the lock. CI runs it after
# `make test` and reports a failure without failing the build (it tests PyPI's latest, not this change).
NEWEST ?= .venv-newest
test-newest: apt
	rm -rf $(NEWEST) && $(PY) -m venv $(NEWEST)
	$(NEWEST)/bin/pip install -q --upgrade "pip==26.3"
	$(NEWEST)/bin/pip install -q --upgrade --upgrade-strategy eager -e ".[test]"
	$(NEWEST)/bin/pip list --format=freeze > $(NEWEST)/versions.txt
	PATH=$(abspath $(NEWEST))/bin:$$PATH HF_HUB_OFFLINE=1 $(NEWEST)/bin/python -m pytest -q -m "not slow" -p no:cacheprovider

clean-results:
	rm -rf results/runs results/features results/splits results/logs results/benchmarks results/reports results/factors .snakemake
