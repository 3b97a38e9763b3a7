"""What a request must carry before it reaches the engine, checked without one: the source parser takes a string (or a
list of them) and refuses anything else with a ValueError that says what was sent (vLLM turns it into HTTP 400), and
the "layalign" renderer refuses every request that would reach the model without a source."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

pytest.importorskip("vllm")

from layalign.integrations.vllm.processing import MODALITY, LayAlignDataParser  # noqa: E402
from layalign.integrations.vllm.serving import _TemplateMixin  # noqa: E402


def test_the_source_parser_takes_strings_and_names_anything_else():
    parse = LayAlignDataParser().parse_mm_data
    assert parse({MODALITY: "Der Hund"})[MODALITY].get_all() == ["Der Hund"]
    assert parse({MODALITY: ["a", "b"]})[MODALITY].get_all() == ["a", "b"]
    for value, named in ((5, "not int"), (None, "not NoneType"), ({"text": "x"}, "not dict"), (b"x", "not bytes"),
                         (["a", 3], "not int"), ("", "the source is empty"), (" \n", "the source is empty")):
        with pytest.raises(ValueError, match=named):
            parse({MODALITY: value})


@pytest.fixture
def renderer() -> _TemplateMixin:
    mixin = _TemplateMixin()
    mixin.model_config = SimpleNamespace(hf_config=SimpleNamespace(layalign={"prompt_template": "Q: {query}"}))
    return mixin


def test_a_text_becomes_source_and_templated_prompt(renderer):
    assert renderer._as_layalign({"prompt": "Hujambo"}) == {"prompt": "Q: Hujambo",
                                                            "multi_modal_data": {MODALITY: "Hujambo"}}
    explicit = {"prompt": "p", "multi_modal_data": {MODALITY: "s"}}
    assert renderer._as_layalign(explicit) is explicit
    cast = renderer._as_layalign({"encoder_prompt": {"prompt": "Hujambo"}, "decoder_prompt": None})
    assert cast["encoder_prompt"]["multi_modal_data"] == {MODALITY: "Hujambo"}


@pytest.mark.parametrize(("request_", "named"), [
    ({"prompt_token_ids": [1, 2, 3]}, "not token ids"),
    ({"prompt_embeds": object()}, "not prompt embeddings"),
    ({"prompt": "p", "multi_modal_data": {"image": object()}}, "needs a 'source'"),
    ({"encoder_prompt": {"prompt_token_ids": [1]}, "decoder_prompt": {"prompt_token_ids": [2]}}, "not token ids"),
], ids=["token ids", "embeddings", "no source item", "encoder-decoder tokens"])
def test_a_request_without_a_source_is_refused(renderer, request_, named):
    with pytest.raises(ValueError, match=named):
        renderer._as_layalign(request_)
