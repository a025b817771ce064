# distillguard — every workflow is a target here. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
KAFKA := deploy/kafka/kafka.sh

.PHONY: bench demo eval screenshots help setup system-deps test test-pure check lint typecheck kafka-up kafka-down kafka-status kafka-cluster-up kafka-cluster-down clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

$(BIN)/distillguard: pyproject.toml $(wildcard detectors/*.c detectors/*.h) | system-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

setup: system-deps $(BIN)/distillguard  ## create .venv with the package and dev tools, fetch Kafka's jars
	$(KAFKA) fetch
	$(BIN)/python deploy/compose/fetch_schema.py

system-deps:  ## install missing Debian packages (JDK, Maven, promtool, amtool, chromium)
	bash deploy/system-deps.sh

test: setup  ## run all tests (unit, doctests, end to end on a real broker the tests start and stop)
	$(BIN)/python -m pytest -q -p no:warnings

test-pure: setup  ## the unit tests again with every C accelerator off: the Python references alone
	DISTILLGUARD_PURE_PYTHON=1 $(BIN)/python -m pytest -q -p no:warnings --ignore=tests/integration

lint: setup  ## ruff
	$(BIN)/ruff check detectors stream sim bench gateway tests
	$(BIN)/ruff format --check detectors stream sim bench gateway tests

typecheck: setup  ## mypy --strict on the packages
	$(BIN)/mypy

check: lint typecheck test test-pure  ## everything CI runs

kafka-up:  ## start a local single-node Kafka on 127.0.0.1:9092 (KAFKA_PORT to change)
	$(KAFKA) up

kafka-down:  ## stop it (by pid)
	$(KAFKA) down

kafka-status:
	$(KAFKA) status

kafka-cluster-up:  ## three-node KRaft cluster on 127.0.0.1:9092/9102/9112
	$(KAFKA) cluster-up

kafka-cluster-down:
	$(KAFKA) cluster-down

clean:  ## remove the venv and local run state (not the jar cache)
	rm -rf $(VENV) .run

demo: setup  ## start Kafka and a worker, stream traffic, show decisions live, clean up
	$(BIN)/python -m stream.demo

screenshots: setup  ## the triage page's screenshots in docs/img (demo alerts in process, headless Chromium)
	$(BIN)/python -m tests.integration.screenshot

eval: setup  ## the acceptance table: leave-one-family-out, beside baselines (~22–26 min on 2 cores); writes docs/acceptance.md
	$(BIN)/python -m sim.acceptance --markdown docs/acceptance.md --json out/acceptance.json

bench: setup  ## benchmarks: detector core, then end to end on a broker it starts (figures in README)
	$(BIN)/python -m bench.bench_detector --events 200000 --accounts 100000 --state-accounts 1000000
	$(BIN)/python -m bench.bench_instructions --events 30000
	$(BIN)/python -m bench.bench_intent --events 120000
	$(BIN)/python -m bench.bench_stage --shards 1 2 4 --batch 1000
	$(BIN)/python -m bench.bench_e2e --events 200000
