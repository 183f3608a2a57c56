# Marketing KPI kit. `make` (or `make help`) lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
QUARTER ?= latest
DATA    ?= data/sample
OUT     ?= reports

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	$(BIN)/python -m ipykernel install --prefix "$(abspath $(VENV))" --name kpi-kit \
		--display-name "Marketing KPI kit" > /dev/null
	@touch $(STAMP)

.PHONY: help install report summary validate test test-fast check typecheck lint lab sample bench clean

help: ## show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[1m%-10s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: $(STAMP) ## create .venv (when missing) and install the kit with its test tools

report: $(STAMP) ## render the quarterly report of data/sample into reports/ (QUARTER=latest)
	$(BIN)/kpi report --data $(DATA) --quarter $(QUARTER) --out $(OUT)

summary: $(STAMP) ## print a quarter's KPI table in the terminal
	$(BIN)/kpi summary --data $(DATA) --quarter $(QUARTER)

validate: $(STAMP) ## check DATA against the data contract
	$(BIN)/kpi validate --data $(DATA)

test: $(STAMP) ## run the whole test suite (unit, doctests, notebooks, report, browser)
	$(BIN)/python -m pytest

test-fast: $(STAMP) ## the tests not marked slow
	$(BIN)/python -m pytest -m "not slow"

CHECKED := kpi_helpers tests benchmarks notebooks data/examples

check: $(STAMP) ## what CI checks before the tests: ruff lint and format, mypy, doctests of every module
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/mypy
	$(BIN)/python -m pytest --doctest-modules kpi_helpers -q -p no:cacheprovider

typecheck: $(STAMP) ## mypy on kpi_helpers (zero errors; part of make check)
	$(BIN)/mypy

lint: $(STAMP) ## ruff on the package, tests, benchmarks and notebooks
	$(BIN)/ruff check $(CHECKED)

# Headless-friendly: no browser is opened without a display, and root (containers, CI) is allowed.
LAB_FLAGS ?= $(if $(DISPLAY),,--no-browser) $(if $(filter 0,$(shell id -u)),--allow-root,)

lab: $(STAMP) ## start JupyterLab on the notebooks with the kit's kernel (LAB_FLAGS to add flags)
	$(BIN)/jupyter lab --notebook-dir=notebooks $(LAB_FLAGS)

sample: $(STAMP) ## regenerate data/sample (seed 42, scale 1)
	$(BIN)/kpi sample --out data/sample --seed 42 --scale 1

bench: $(STAMP) ## run the benchmarks (prints figures; minutes)
	$(BIN)/python benchmarks/bench_report.py --repeat 3
	$(BIN)/python benchmarks/bench_scale.py --steps validate,metrics,report,again --repeat 3
	$(BIN)/python benchmarks/bench_attribution.py
	$(BIN)/python benchmarks/bench_forecast.py
	$(BIN)/python benchmarks/bench_models.py

clean: ## remove rendered reports and caches (keeps .venv)
	rm -rf $(OUT)/*/ $(OUT)/index.html .pytest_cache .ruff_cache .hypothesis
