# tle-kedro: the project's verbs. `make run` and `make test` are the quick start.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
COHORT := data/01_raw/cohort
export DO_NOT_TRACK := 1
export KEDRO_DISABLE_TELEMETRY := 1
export MPLBACKEND := Agg
# 127.0.0.1 unless you say otherwise: `make ui HOST=0.0.0.0`
HOST ?= 127.0.0.1
UI_PORT ?= 5000
VIZ_PORT ?= 4141

.PHONY: setup run demo test lint bench viz viz-build ui clean-data screenshots design confirm confirm-report

setup: $(STAMP)

# Reinstalls only when the install files change: a no-op `make setup` takes well under a second.
$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, pinned: a looser requirement would pull a multi-GB CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[dev]"
	@touch $(STAMP)

$(COHORT)/participants.tsv: | $(STAMP)
	$(BIN)/kedro run --pipelines=demo_cohort

demo: $(COHORT)/participants.tsv

run: setup demo
	$(BIN)/kedro run

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy src

# Two processes (pytest-xdist): the shared real runs in one, the other modules spread over both.
test: lint
	$(BIN)/pytest -n 2 --dist loadgroup --cov --cov-report=term -q

# Retake the browser screenshots the docs embed (docs/img/); `make test` writes them to build/.
screenshots: setup
	TLE_UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q -p no:cacheprovider --no-cov tests/browser

bench: setup
	$(BIN)/python benchmarks/run_benchmarks.py

# The comparison on fresh synthetic cohorts (docs/confirmation.md): `design` on the design
# seeds, `confirm` on the confirmation seeds (never used to choose anything), each resumable;
# both rewrite data/08_reporting/confirmation*.  ENV=smoke: 16-patient cohorts under data/smoke.
# FORCE=1 reruns cohorts that are done; SEEDS="1 2" runs a subset of the configured seeds.
CONFIRM_ARGS = $(if $(ENV),--env=$(ENV)) $(if $(FORCE),--force) $(if $(SEEDS),--seeds $(SEEDS))

design: setup
	$(BIN)/python -m tle_kedro.confirmation design $(CONFIRM_ARGS)

confirm: setup
	$(BIN)/python -m tle_kedro.confirmation confirmation $(CONFIRM_ARGS)

confirm-report: setup
	$(BIN)/python -m tle_kedro.confirmation report $(if $(ENV),--env=$(ENV))

viz: setup
	$(BIN)/kedro viz run --host $(HOST) --port $(VIZ_PORT) --no-browser

viz-build: setup
	$(BIN)/kedro viz build

ui: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --host $(HOST) --port $(UI_PORT)

clean-data:
	find data -type f ! -name .gitkeep -delete
