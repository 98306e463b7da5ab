# largebatch: `make report` builds results/report.html; `make test` runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all
SNAKEMAKE_ARGS ?=

.PHONY: venv report test lint format bench clean dry-run system-deps gpu-check

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

report: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) $(SNAKEMAKE_ARGS)

dry-run: $(STAMP)
	$(BIN)/snakemake -n --cores $(CORES) $(SNAKEMAKE_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check .

format: $(STAMP)
	$(BIN)/snakefmt .

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# On a machine with a GPU: the paper-scale rehearsal on CUDA (bf16 autocast, channels_last),
# then one real-size epoch (capped at GPU_CHECK_STEPS steps) of every paper-scale network at
# each of its batch sizes, timed with CUDA events -> results/perf/gpu_costs.json, which
# `python -m largebatch.estimate` reads. Without a visible GPU it says so and exits 0.
# REHEARSAL_CONFIG: the config overlay that switches the rehearsal on ('' skips it).
REHEARSAL_CONFIG ?= config/rehearsal.yaml
GPU_CHECK_STEPS ?= 200
gpu-check: $(STAMP)
	$(BIN)/python -m largebatch.gpucheck --rehearsal '$(REHEARSAL_CONFIG)' --max-steps $(GPU_CHECK_STEPS) \
	  --cores $(CORES) --out results/perf/gpu_costs.json
	@if [ -f results/perf/gpu_costs.json ]; then $(BIN)/python -m largebatch.estimate; fi

# Debian packages for the browser check of the report and the local SLURM test (root + apt).
# DPkg::Lock::Timeout: wait up to 10 min for another apt-get/dpkg to release its lock.
system-deps:
	@if [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then \
	  echo "system-deps: needs root and apt-get; skipping (browser and SLURM tests will skip)"; exit 0; fi; \
	need=""; command -v chromium >/dev/null || need="$$need chromium"; \
	command -v slurmctld >/dev/null || need="$$need slurm-wlm munge"; \
	if [ -n "$$need" ]; then apt-get -o DPkg::Lock::Timeout=600 update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q $$need; \
	else echo "system-deps: chromium and slurm already installed"; fi

clean:
	rm -rf results .snakemake
