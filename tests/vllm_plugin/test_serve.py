"""`layalign serve` end to end: vLLM's OpenAI-compatible server on a LayAlign directory of the real default pair,
queried over HTTP on /v1/completions and /v1/chat/completions; the answers equal LayAlignModel.generate's with the
request's text as source and prompt (the "layalign" renderer, template "{query}")."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytest.importorskip("vllm")

from parity import reference_greedy  # noqa: E402

from layalign import LayAlignConfig, LayAlignModel  # noqa: E402
from layalign.testing import randomize_adapters  # noqa: E402

pytestmark = [pytest.mark.real, pytest.mark.slow]
TEXT = "Der Hund schläft im Garten."
NEW_TOKENS = 12


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def test_openai_endpoints_answer_as_generate(tmp_path):
    model = LayAlignModel(LayAlignConfig()).eval()
    randomize_adapters(model, scale=0.05, seed=2)
    model.save_pretrained(tmp_path / "model")
    expected = reference_greedy(model, [("de", TEXT, TEXT)], NEW_TOKENS)[0][0]

    port = _free_port()
    out = tmp_path / "model" / "vllm"
    command = ["-m", "layalign", "serve", str(tmp_path / "model"), "--python", sys.executable,
               "--vllm-args", f"--port {port} --max-model-len 1024 --enforce-eager"]
    env = {**os.environ, "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 (closed in finally)
    server = subprocess.Popen([sys.executable, *command], stdout=log, stderr=subprocess.STDOUT, env=env,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5):
                    break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("the server did not come up:\n"
                                         + (tmp_path / "server.log").read_text()[-3000:]) from None
                time.sleep(2)
        base = f"http://127.0.0.1:{port}/v1"
        params = {"model": str(out), "max_tokens": NEW_TOKENS, "temperature": 0, "return_token_ids": True}
        completion = _post(f"{base}/completions", {**params, "prompt": TEXT})
        chat = _post(f"{base}/chat/completions", {**params, "messages": [{"role": "user", "content": TEXT}]})
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        log.close()
    assert completion["choices"][0]["token_ids"] == expected
    assert chat["choices"][0]["token_ids"] == expected
    assert chat["choices"][0]["message"]["content"] == completion["choices"][0]["text"]
    # the decoder prompt vLLM ran: bos, one placeholder per encoder token and the boundary, then the text's tokens
    assert completion["usage"]["prompt_tokens"] > len(model.llm_tokenizer(TEXT, add_special_tokens=False).input_ids)
