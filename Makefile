# largebatch: `make report` builds results/report.html; `make test` runs the test suite.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all
SNAKEMAKE_ARGS ?=

.PHONY: venv report test lint format bench clean dry-run

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

clean:
	rm -rf results .snakemake
