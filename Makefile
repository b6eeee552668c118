# The two commands of the README's quick start: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= pipeline/configs/demo.yaml
SEEDS ?= 5

.PHONY: setup demo demo-layerwise test test-fast lint lock clean

setup:
	@bash scripts/setup.sh

# TensorFlow's C++ INFO/WARNING lines (CUDA probing, rendezvous) drown the summaries.
demo demo-layerwise: export TF_CPP_MIN_LOG_LEVEL ?= 2

# Set up, write the bundled demo data, run the local pipeline on it, then print the
# target accuracy of the transfer model next to the same network trained from scratch
# on the same few labels, over SEEDS seeds (mean and spread).
demo: setup
	$(BIN)/tfx-transfer demo-data --out demo_data
	$(BIN)/tfx-transfer run --config $(CONFIG)
	$(BIN)/python -m bench.transfer_vs_scratch --config $(CONFIG) --seeds $(SEEDS)

# The same target task with a base pretrained WITHOUT labels (greedy layer-wise
# autoencoders on the unlabelled demo images) instead of the source task.
demo-layerwise: setup
	$(BIN)/tfx-transfer demo-data --out demo_data
	$(BIN)/tfx-transfer run --config pipeline/configs/demo_layerwise.yaml

# Set up and run the whole test suite (unit, component and end-to-end tests).
test: setup
	@start=$$(date +%s); \
	$(BIN)/python -m pytest -p no:cacheprovider --durations=15 tests; rc=$$?; \
	echo "test: suite took $$(( $$(date +%s) - start ))s"; exit $$rc

# Unit and component tests only (skips the end-to-end pipeline runs).
test-fast: setup
	$(BIN)/python -m pytest -m "not e2e" tests

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

# Re-resolve the lock from requirements.in (needs the package registry).
lock: setup
	$(BIN)/uv pip compile requirements.in --python-version 3.10 \
	  --python-platform x86_64-manylinux_2_36 -o requirements.lock

clean:
	rm -rf tfx_transfer_runs demo_data
