# Everyday commands; `make help` lists them.
PY := .venv/bin/python

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## create .venv with the test tools and real execution
	bash scripts/setup.sh --test

run: ## the main job on the embedded default
	$(PY) -m orchestrator cascade=sdxs trace=3to24qps

test: ## the whole suite (what .ci/run runs)
	$(PY) -m pytest

test-fast: ## the fast lane: no real role processes, no SSH
	$(PY) -m pytest -m "not slow"

lint: ## ruff and mypy (a step of .ci/run of its own)
	$(PY) -m ruff check . && $(PY) -m ruff format --check . && $(PY) -m mypy

bench: ## every benchmark script (minutes)
	$(PY) -m benchmarks.planner
	$(PY) -m benchmarks.diffserve_paper
	$(PY) -m benchmarks.engine
	$(PY) -m benchmarks.fidelity
	$(PY) -m benchmarks.testbed_overhead
	$(PY) -m benchmarks.deploy
	$(PY) -m benchmarks.real_execution
	$(PY) -m benchmarks.spotserve_policies
	$(PY) -m benchmarks.spotserve_run
	$(PY) -m benchmarks.gpt_decode
	$(PY) -m benchmarks.spotserve_real
	$(PY) -m benchmarks.bounds
	$(PY) -m benchmarks.sweeps
	$(PY) -m benchmarks.faults

protos: ## regenerate the gRPC stubs from runtime/protos/servelab.proto
	$(PY) -m grpc_tools.protoc -I. --python_out=. --pyi_out=. --grpc_python_out=. runtime/protos/servelab.proto

.PHONY: help setup run test test-fast lint bench protos
