"""tests/vllm_plugin runs only inside .ci/venv-vllm (vLLM pins its own torch and transformers; see
.ci/setup-vllm.sh); in the main environment every module here skips at `pytest.importorskip("vllm")`. Not named
tests/vllm: with tests/ on sys.path (pytest puts it there for tests/test_*.py) a folder of that name would be
imported as the namespace package `vllm` and the skip would never happen."""

import importlib.util
import os

if importlib.util.find_spec("vllm") is not None:  # leave the main suite's environment alone
    # vLLM reads these at start-up: in-process engine (no engine-core subprocess: faster start, one process to
    # debug), a 1 GiB KV cache, offline
    for _name, _value in {"HF_HUB_OFFLINE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
                          "TOKENIZERS_PARALLELISM": "false"}.items():
        os.environ.setdefault(_name, _value)
