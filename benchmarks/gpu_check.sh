#!/usr/bin/env bash
# The GPU check on a lent GPU (bare machine, no package registry): set up, then benchmarks/gpu_check.py, within
# 8 minutes in all (the script stops starting steps at 420 s and writes what it has). Results: $OUT/gpu_check.json
# and $OUT/gpu_check.md ($OUT is set by the device tool; else pass --out DIR). Extra arguments go to gpu_check.py
# (e.g. --cpu-dry-run, --budget SECONDS, --shapes llama-2-7b-like).
#
# Set-up: the image has torch, transformers, accelerate, peft, safetensors. The check imports only torch,
# transformers (with its tokenizers), safetensors and layalign's model code, so the project is installed without
# its dependencies and without build isolation (no registry to fetch setuptools from); should that fail,
# src/ on PYTHONPATH serves as well.
set -uo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INDEX=1
start=$SECONDS
python -m pip install -q --no-deps --no-build-isolation -e . >/tmp/gpu_check_pip.log 2>&1 \
    || { echo "[gpu_check.sh] pip install -e . failed (see below); using PYTHONPATH=src"; tail -5 /tmp/gpu_check_pip.log; }
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
echo "[gpu_check.sh] set-up took $((SECONDS - start)) s"
budget=$((420 - (SECONDS - start)))
exec python benchmarks/gpu_check.py --budget "$budget" "$@"
