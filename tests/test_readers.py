"""Prompt templates and data readers: exact templates, language codes, the real shared data (row counts from
../shared/data/MANIFEST.md) and a clear file:line error for every kind of malformed row."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from layalign.data import prompts
from layalign.data.examples import EvalExample, TrainExample
from layalign.data.prompts import format_options, format_prompt, register_template, xnli_label_word
from layalign.data.readers import (
    DEFAULT_PATHS,
    LANGS,
    LOW_RESOURCE,
    DataFormatError,
    canonical_number,
    normalize_lang,
    read_authors_bilingual,
    read_benchmark,
    read_gsm8k_english,
    read_metamath_json,
    read_mgsm,
    read_msvamp,
    read_parallel_files,
    read_parallel_jsonl,
    read_parallel_tsv,
    read_qalign_math,
    read_shared_parallel,
    read_translation_eval,
    read_xcsqa_eval,
    read_xcsqa_jsonl,
    read_xnli_eval,
    read_xnli_train_jsonl,
    render_gsm8k_answer,
    split_dev,
)

REPO = Path(__file__).parents[1]
DATA = REPO / ".." / "shared" / "data"
FIXTURES = Path(__file__).parent / "fixtures"
needs_data = pytest.mark.skipif(not (DATA / "MANIFEST.md").is_file(),
                                reason=f"the shared data copy is not at {DATA} (expected beside the repository)")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


# --- prompts -----------------------------------------------------------------------------------------------------


def test_math_template_is_the_papers():
    assert format_prompt("math", query="Q?") == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        "\n\n### Instruction:\nQ?\n\n### Response: Let's think step by step."
    )
    assert format_prompt("mgsm", query="Q?") == format_prompt("math", query="Q?")


def test_xcsqa_and_xnli_templates_are_the_releases():
    options = format_options(["dog", "cat", "cow"])
    assert options == "A. dog\tB. cat\tC. cow"
    expected = "Which?\nOptions:A. dog\tB. cat\tC. cow\nAnswer:"
    assert format_prompt("xcsqa", question="Which?", options=options) == expected
    assert prompts.xcsqa_prompt("Which?", ["dog", "cat", "cow"]) == expected
    assert prompts.xnli_prompt("P.", "H.") == "Premise: P.\nHypothesis: H.\nLabel:"


def test_format_prompt_errors_name_the_problem():
    with pytest.raises(KeyError, match="unknown prompt task 'nope'.*math"):
        format_prompt("nope", query="x")
    with pytest.raises(ValueError, match="needs field.*hypothesis"):
        format_prompt("xnli", premise="p")
    with pytest.raises(ValueError, match="takes no field.*query"):
        format_prompt("xnli", premise="p", hypothesis="h", query="q")


def test_register_template(monkeypatch):
    monkeypatch.setattr(prompts, "TEMPLATES", dict(prompts.TEMPLATES))
    register_template("echo", "Say: {text}")
    assert format_prompt("echo", text="hi") == "Say: hi"
    with pytest.raises(ValueError, match="already registered"):
        register_template("echo", "{text}")
    register_template("echo", "{text}!", overwrite=True)
    assert format_prompt("echo", text="hi") == "hi!"
    with pytest.raises(ValueError, match="already registered"):
        register_template("math", "{query}")


def test_xnli_label_words():
    assert [xnli_label_word(i) for i in (0, 1, 2)] == ["entailment", "neutral", "contradiction"]
    assert xnli_label_word("2") == "contradiction"
    assert xnli_label_word(" Neutral ") == "neutral"
    for bad in (3, -1, "maybe", True, None):
        with pytest.raises(ValueError, match="unknown XNLI label"):
            xnli_label_word(bad)


# --- languages and small helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name, code", [
    ("swh", "sw"), ("swa", "sw"), ("Swahili", "sw"), ("cmn", "zh"), ("zho-CN", "zh"), ("Chinese", "zh"),
    ("deu", "de"), ("jpn", "ja"), ("jap", "ja"), ("arb", "ar"), ("ben", "bn"), ("Flemish", "nl"), ("EN", "en"),
    ("deu_Latn", "de"),
])
def test_normalize_lang(name, code):
    assert normalize_lang(name) == code


def test_unknown_language_lists_known_ones():
    with pytest.raises(ValueError, match=r"unknown language 'xx'.*sw \(Swahili\)"):
        normalize_lang("xx")


def test_canonical_number_and_gsm8k_rendering():
    assert [canonical_number(x) for x in ("1,000", "8.0", "2.50", "-3", "114,200")] == ["1000", "8", "2.5", "-3",
                                                                                        "114200"]
    with pytest.raises(ValueError):
        canonical_number("ten")
    answer = "She sold 48/2 = <<48/2=24>>24 clips.\nIn all 1,000 + 80 = <<1000+80=1080>>1,080.\n#### 1,080"
    assert render_gsm8k_answer(answer) == "She sold 48/2 = 24 clips.\nIn all 1,000 + 80 = 1,080.\nThe answer is: 1080"


def test_benchmark_tables_are_consistent():
    assert len(LANGS["mgsm"]) == 11 and len(LANGS["msvamp"]) == 10
    assert len(LANGS["xnli"]) == 15 and len(LANGS["xcsqa"]) == 16
    assert LOW_RESOURCE["mgsm"] == ("bn", "th", "sw", "te")
    for bench, low in LOW_RESOURCE.items():
        assert set(low) <= set(LANGS[bench]), bench


def test_split_dev_is_reproducible_and_disjoint():
    items = list(range(50))
    train, dev = split_dev(items, 10, seed=0)
    assert len(dev) == 10 and sorted(train + dev) == items and train == sorted(train)
    assert split_dev(items, 10, seed=0) == (train, dev)
    assert split_dev(items, 10, seed=1)[1] != dev
    with pytest.raises(ValueError, match="n_dev"):
        split_dev(items, 51)


# --- the real shared data ----------------------------------------------------------------------------------------


@needs_data
def test_mgsm_real():
    data = read_mgsm(DATA / "mgsm")
    assert list(data) == list(LANGS["mgsm"])
    assert {lang: len(v) for lang, v in data.items()} == dict.fromkeys(LANGS["mgsm"], 250)
    first = data["en"][0]
    assert first.gold == "18" and first.source.startswith("Janet’s ducks") and first.prompt.endswith("step by step.")
    assert "2125" in {e.gold for e in data["en"]}  # the file writes 2,125
    assert all(canonical_number(e.gold) == e.gold for v in data.values() for e in v)
    only = read_mgsm(DATA / "mgsm" / "mgsm_sw.tsv", limit=5)
    assert list(only) == ["sw"] and len(only["sw"]) == 5


@needs_data
def test_xnli_dev_real():
    data = read_xnli_eval(DATA / "xnli")
    assert {lang: len(v) for lang, v in data.items()} == dict.fromkeys(LANGS["xnli"], 2490)
    assert Counter(e.gold for e in data["sw"]) == dict.fromkeys(("entailment", "neutral", "contradiction"), 830)
    example = data["en"][0]
    assert example.source == example.prompt == ("Premise: And he said, Mama, I'm home.\nHypothesis: He called his mom "
                                                 "as soon as the school bus dropped him off.\nLabel:")
    assert example.gold == "neutral"
    # the label sequence is identical across languages (MANIFEST)
    assert [e.gold for e in data["zh"]] == [e.gold for e in data["en"]]


@needs_data
def test_xnli_train_real():
    files = sorted((DATA / "xnli" / "train").glob("train-*.jsonl"))
    assert len(files) == 8
    for f in files:
        lang = f.stem.split("-")[1]
        examples = read_xnli_train_jsonl(f, lang)
        assert len(examples) == 9000
        assert Counter(e.target for e in examples) == dict.fromkeys(("entailment", "neutral", "contradiction"), 3000)
        assert all(e.source == e.prompt and e.lang == lang for e in examples)


@needs_data
def test_msvamp_sample_real():
    data = read_msvamp(DATA / "msvamp_sample")
    assert {lang: len(v) for lang, v in data.items()} == dict.fromkeys(LANGS["msvamp"], 20)
    assert data["sw"][0].gold == "8" and data["sw"][0].source.startswith("Julia alicheza")
    assert data["sw"][0].meta["query"].startswith("julia played tag")


@needs_data
def test_parallel_real():
    tatoeba = read_shared_parallel(DATA / "parallel", split="train")
    counts = Counter(e.lang for e in tatoeba)
    expected = dict.fromkeys(LANGS["translation"], 1000) | {"sw": 390 + 9000, "te": 234, "th": 548, "fr": 1000 + 9000}
    assert counts == expected
    assert all(e.prompt is None and e.source and e.target for e in tatoeba)
    ntrex = read_shared_parallel(DATA / "parallel", langs=["swa", "zho-CN"], split="test")
    assert Counter(e.lang for e in ntrex) == {"sw": 1997, "zh": 1997}
    assert ntrex[0].target == "Welsh AMs worried about 'looking like muppets'"
    # en-fr holds U+2028 inside lines and NUL bytes; alignment must survive both
    fr = read_authors_bilingual(DATA / "parallel" / "mindmerger_fork_pairs", ["fr", "sw"], stem="train_9k")
    assert Counter(e.lang for e in fr) == {"fr": 9000, "sw": 9000}
    assert not any("\x00" in e.target for e in fr)


@needs_data
def test_translation_eval_real():
    data = read_translation_eval(DATA / "parallel", langs=["bn", "sw"], limit=3)
    assert list(data) == ["bn", "sw"] and all(len(v) == 3 for v in data.values())
    assert data["sw"][0].gold == "Welsh AMs worried about 'looking like muppets'"
    assert data["sw"][0].prompt is None and data["sw"][0].meta == {"corpus": "ntrex"}
    assert {lang: len(v) for lang, v in read_translation_eval(DATA / "parallel").items()} == dict.fromkeys(
        LANGS["translation"], 1997)


@needs_data
def test_qalign_math_join_real():
    stats: dict = {}
    examples = read_qalign_math(DATA / "math_train", DATA / "gsm8k" / "train.jsonl", stats=stats)
    pairs = {"de": 7464, "es": 7468, "fr": 7464, "ja": 7466, "ru": 7360, "sw": 7469, "zh": 7363}
    # whitespace normalisation also joins the question whose GSM8K copy holds U+2028 where QAlign has a space
    assert stats == {lang: {"pairs": n, "joined": n} for lang, n in pairs.items()}
    assert len(examples) == sum(pairs.values())
    first = examples[0]
    assert first.lang == "de" and first.source.startswith("Natalia hat im April")
    assert first.prompt == format_prompt("math", query=first.source)
    assert first.target.endswith("clips altogether in April and May.\nThe answer is: 72")
    assert not any("<<" in e.target or "####" in e.target for e in examples)
    assert len(read_qalign_math(DATA / "math_train", DATA / "gsm8k" / "train.jsonl", langs=["sw"], limit=10)) == 10


@needs_data
def test_gsm8k_english_real():
    examples = read_gsm8k_english(DATA / "gsm8k" / "train.jsonl")
    assert len(examples) == 7473
    assert all(e.prompt is None and e.lang == "en" and "\nThe answer is: " in e.target for e in examples)
    assert read_gsm8k_english(DATA / "gsm8k" / "test.jsonl", limit=2, with_prompt=True)[0].prompt.endswith(
        "step by step.")


@needs_data
def test_read_benchmark_defaults(monkeypatch):
    monkeypatch.chdir(REPO)  # DEFAULT_PATHS are relative to the repository root
    assert DEFAULT_PATHS["mgsm"] == "../shared/data/mgsm"
    data = read_benchmark("mgsm", langs=["te", "en"], limit=4)
    assert list(data) == ["te", "en"] and all(len(v) == 4 for v in data.values())
    assert all(isinstance(e, EvalExample) for v in data.values() for e in v)
    assert len(read_benchmark("xnli", langs=["ur"], limit=7)["ur"]) == 7
    assert len(read_benchmark("msvamp", path=DATA / "msvamp_sample", langs=["Thai"])["th"]) == 20
    with pytest.raises(ValueError, match="X-CSQA has no copy.*--data"):
        read_benchmark("xcsqa")
    with pytest.raises(ValueError, match="unknown benchmark"):
        read_benchmark("gsm9k")
    with pytest.raises(ValueError, match="no mgsm file for 'ur'.*found: te, bn"):
        read_benchmark("mgsm", langs=["ur"])
    if not (DATA / "msvamp").exists():
        with pytest.raises(FileNotFoundError, match="msvamp_sample"):
            read_benchmark("msvamp")


# --- X-CSQA (hand-written fixture) -------------------------------------------------------------------------------


def test_xcsqa_fixture_eval_and_train():
    data = read_xcsqa_eval(FIXTURES / "xcsqa")
    assert {lang: len(v) for lang, v in data.items()} == {"zh": 3, "en": 3}
    first = data["en"][0]
    assert first.id == "fx-0001" and first.gold == "B"
    assert first.source == first.prompt == (
        "Where would you keep milk so that it stays cold?\n"
        "Options:A. oven\tB. refrigerator\tC. bookshelf\tD. garden\tE. bathtub\nAnswer:")
    train = read_xcsqa_jsonl(FIXTURES / "xcsqa" / "zh" / "dev.jsonl", "zh")
    assert [e.target for e in train] == ["B", "A", "C"] and isinstance(train[0], TrainExample)
    assert train[0].source == train[0].prompt and train[0].source.startswith("你会把牛奶")


def test_xcsqa_flat_layout_and_japanese_folder(tmp_path):
    en = (FIXTURES / "xcsqa" / "en" / "dev.jsonl").read_text(encoding="utf-8")
    write(tmp_path / "flat" / "dev-en.jsonl", en)
    write(tmp_path / "flat" / "dev-jap.jsonl", en)
    data = read_xcsqa_eval(tmp_path / "flat", langs=["ja"], limit=2)
    assert list(data) == ["ja"] and len(data["ja"]) == 2
    write(tmp_path / "nested" / "jap" / "dev.jsonl", en)
    assert list(read_xcsqa_eval(tmp_path / "nested")) == ["ja"]
    assert list(read_xcsqa_eval(tmp_path / "nested" / "jap" / "dev.jsonl")) == ["ja"]


# --- formats not in the shared copy ------------------------------------------------------------------------------


def test_parallel_tsv_and_jsonl(tmp_path):
    tsv = write(tmp_path / "p.tsv", "Habari\tHello\n\nAsante\tThank you\n")
    assert [(e.source, e.target, e.lang) for e in read_parallel_tsv(tsv, "swh")] == [
        ("Habari", "Hello", "sw"), ("Asante", "Thank you", "sw")]
    js = write(tmp_path / "p.jsonl", jsonl({"x": "Hallo", "en": "Hello"}))
    assert read_parallel_jsonl(js, "de", src_key="x", tgt_key="en")[0] == TrainExample("Hallo", "Hello", None, "de")


def test_metamath_json_array_and_variants(tmp_path):
    records = [{"query": f"Swali {i}", "response": f"Answer {i}. The answer is: {i}", "lang": "Swahili"}
               for i in range(3)]
    records.append({"question": "问题", "answer": "The answer is: 5", "language": "zh"})
    path = write(tmp_path / "metamath_615k.json", json.dumps(records, ensure_ascii=False, indent=2))
    examples = read_metamath_json(path)
    assert [e.lang for e in examples] == ["sw", "sw", "sw", "zh"]
    assert examples[0].prompt == format_prompt("math", query="Swali 0")
    assert examples[0].target == "Answer 0. The answer is: 0"
    assert [e.source for e in read_metamath_json(path, langs=["Swahili"], limit_per_lang=2)] == ["Swali 0", "Swali 1"]
    plain = write(tmp_path / "MetaMathQA.jsonl", jsonl({"query": "Q", "response": "R", "type": "GSM_AnsAug"}))
    assert read_metamath_json(plain, default_lang="en")[0].lang == "en"


def test_xnli_eval_jsonl_and_single_file(tmp_path):
    write(tmp_path / "test-sw.jsonl", jsonl({"sentence1": "P", "sentence2": "H", "label": 2}))
    data = read_xnli_eval(tmp_path, split="test")
    assert data["sw"][0].gold == "contradiction" and data["sw"][0].source == "Premise: P\nHypothesis: H\nLabel:"
    assert list(read_xnli_eval(tmp_path / "test-sw.jsonl")) == ["sw"]  # a file's own name gives split and language


def test_qalign_reports_unjoined(tmp_path):
    gsm = write(tmp_path / "gsm8k.jsonl", jsonl({"question": "One  plus one?", "answer": "1+1=<<1+1=2>>2\n#### 2"}))
    write(tmp_path / "q" / "sw-en" / "train.sw", "Moja jumlisha moja?\nSwali jingine?\n")
    write(tmp_path / "q" / "sw-en" / "train.en", "One plus one?\nAnother question?\n")
    stats: dict = {}
    examples = read_qalign_math(tmp_path / "q", gsm, stats=stats)
    assert stats == {"sw": {"pairs": 2, "joined": 1}}
    assert examples == [TrainExample("Moja jumlisha moja?", "1+1=2\nThe answer is: 2",
                                     format_prompt("math", query="Moja jumlisha moja?"), "sw")]


# --- malformed rows: every reader names the file and the line ----------------------------------------------------

XCSQA_OK = {"id": "q1", "question": {"stem": "S?", "choices": [{"label": "A", "text": "a"},
                                                               {"label": "B", "text": "b"}]}, "answerKey": "A"}
XCSQA_BAD_KEY = {**XCSQA_OK, "answerKey": "E"}
GSM_OK = {"question": "Q?", "answer": "1+1=2\n#### 2"}


def _mgsm(d):
    return read_mgsm(write(d / "mgsm_sw.tsv", "Swali?\t3\nSwali?\tthree\n"))


def _mgsm_columns(d):
    return read_mgsm(write(d / "mgsm_sw.tsv", "Swali?\t3\nSwali?\n"))


def _msvamp(d):
    return read_msvamp(write(d / "test_Swahili.json", jsonl({"m_query": "Q", "response": "1.0"}, {"response": "2"})))


def _xnli_tsv(d):
    return read_xnli_eval(write(d / "dev-sw.tsv", "P\tH\tneutral\nP\tH\tmaybe\n"))


def _xnli_tsv_empty(d):
    return read_xnli_eval(write(d / "dev-sw.tsv", "P\tH\tneutral\nP\t \tneutral\n"))


def _xnli_train(d):
    return read_xnli_train_jsonl(write(d / "train-sw.jsonl", jsonl({"premise": "P", "hypothesis": "H", "label": 0},
                                                                   {"premise": "P", "hypothesis": "H", "label": 3})),
                                 "sw")


def _xcsqa_train(d):
    return read_xcsqa_jsonl(write(d / "train-sw.jsonl", jsonl(XCSQA_OK, XCSQA_BAD_KEY)), "sw")


def _xcsqa_eval(d):
    return read_xcsqa_eval(write(d / "sw" / "dev.jsonl", jsonl(XCSQA_OK, {"id": "q2", "answerKey": "A"})))


def _parallel_files(d):
    return read_parallel_files(write(d / "a.sw", "Habari\n  \n"), write(d / "a.en", "Hello\nThanks\n"), "sw")


def _parallel_tsv(d):
    return read_parallel_tsv(write(d / "pairs.tsv", "Habari\tHello\nHabari\tHello\textra\n"), "sw")


def _parallel_jsonl(d):
    return read_parallel_jsonl(write(d / "pairs.jsonl", '{"source": "a", "target": "b"}\n{"source": "a", \n'), "sw")


def _shared_parallel(d):
    write(d / "tatoeba_laser" / "tatoeba.swh-eng.swh", "Habari\n\n")
    write(d / "tatoeba_laser" / "tatoeba.swh-eng.eng", "Hello\nThanks\n")
    return read_shared_parallel(d)


def _authors(d):
    write(d / "en-sw" / "train_100k.sw", "Habari\nAsante\n")
    write(d / "en-sw" / "train_100k.en", "Hello\n\x00\n")
    return read_authors_bilingual(d, ["sw"])


def _gsm8k(d):
    return read_gsm8k_english(write(d / "gsm8k.jsonl", jsonl(GSM_OK, {"question": "Q?", "answer": "no final line"})))


def _qalign(d):
    gsm = write(d / "gsm8k.jsonl", jsonl(GSM_OK, {"question": "Q2?"}))
    write(d / "q" / "sw-en" / "train.sw", "Swali?\n")
    write(d / "q" / "sw-en" / "train.en", "Q?\n")
    return read_qalign_math(d / "q", gsm)


def _metamath_array(d):
    good = json.dumps({"query": "Q", "response": "R", "lang": "Thai"}, indent=2)
    bad = json.dumps({"query": "Q", "response": "R", "lang": "Klingon"}, indent=2)
    return read_metamath_json(write(d / "metamath.json", f"[\n{good},\n{bad}\n]\n"))  # bad starts on line 7


def _metamath_syntax(d):
    return read_metamath_json(write(d / "metamath.json", '[\n  {"query": "Q", "response": "R", "lang": "th"},\n'
                                                         '  {"query": "Q" "response": "R"}\n]'))


def _metamath_no_lang(d):
    return read_metamath_json(write(d / "metamath.jsonl", jsonl({"query": "Q", "response": "R", "lang": "th"},
                                                                {"query": "Q", "response": "R"})))


def _invalid_utf8(d):
    path = d / "mgsm_sw.tsv"
    path.write_bytes(b"Swali?\t3\nSwa\xffli?\t4\n")
    return read_mgsm(path)


MALFORMED = [
    (_mgsm, "mgsm_sw.tsv", 2, "not a number"),
    (_mgsm_columns, "mgsm_sw.tsv", 2, "expected 2 tab-separated columns"),
    (_msvamp, "test_Swahili.json", 2, "missing key 'm_query'"),
    (_xnli_tsv, "dev-sw.tsv", 2, "unknown XNLI label 'maybe'"),
    (_xnli_tsv_empty, "dev-sw.tsv", 2, "empty hypothesis"),
    (_xnli_train, "train-sw.jsonl", 2, "unknown XNLI label 3"),
    (_xcsqa_train, "train-sw.jsonl", 2, "answerKey 'E' is not one of the choice labels A, B"),
    (_xcsqa_eval, "dev.jsonl", 2, "missing key 'question'"),
    (_parallel_files, "a.sw", 2, "empty line"),
    (_parallel_tsv, "pairs.tsv", 2, "found 3"),
    (_parallel_jsonl, "pairs.jsonl", 2, "invalid JSON"),
    (_shared_parallel, "tatoeba.swh-eng.swh", 2, "empty line"),
    (_authors, "train_100k.en", 2, "empty line"),
    (_gsm8k, "gsm8k.jsonl", 2, "no final '#### n'"),
    (_qalign, "gsm8k.jsonl", 2, "missing key 'answer'"),
    (_metamath_array, "metamath.json", 7, "unknown language 'Klingon'"),
    (_metamath_syntax, "metamath.json", 3, "invalid JSON"),
    (_metamath_no_lang, "metamath.jsonl", 2, "default_lang"),
    (_invalid_utf8, "mgsm_sw.tsv", 2, "not valid UTF-8"),
]


@pytest.mark.parametrize("reader, name, line, reason", MALFORMED, ids=[m[0].__name__.strip("_") for m in MALFORMED])
def test_malformed_row_names_file_and_line(tmp_path, reader, name, line, reason):
    with pytest.raises(DataFormatError) as info:
        reader(tmp_path)
    message = str(info.value)
    assert name in message and f"line {line}:" in message and reason in message, message
    assert info.value.line == line and info.value.path.name == name


def test_parallel_files_of_different_length(tmp_path):
    src, en = write(tmp_path / "x.sw", "a\nb\nc\n"), write(tmp_path / "x.en", "a\nb\n")
    with pytest.raises(ValueError, match=r"x\.sw has 3 lines.*x\.en has 2"):
        read_parallel_files(src, en, "sw")


@pytest.mark.parametrize("call", [
    lambda p: read_mgsm(p / "mgsm_sw.tsv"),
    lambda p: read_parallel_files(p / "a.sw", p / "a.en", "sw"),
    lambda p: read_gsm8k_english(p / "gsm8k.jsonl"),
    lambda p: read_xnli_train_jsonl(p / "train-sw.jsonl", "sw"),
    lambda p: read_metamath_json(p / "metamath.json"),
    lambda p: read_authors_bilingual(p, ["sw"]),
])
def test_missing_file_names_the_path(tmp_path, call):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        call(tmp_path)


def test_missing_folder_and_language(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        read_mgsm(tmp_path / "nowhere")
    write(tmp_path / "mgsm_sw.tsv", "Swali?\t3\n")
    with pytest.raises(ValueError, match="unknown language 'Klingon'"):
        read_mgsm(tmp_path, langs=["Klingon"])
    with pytest.raises(ValueError, match="unknown language"):
        read_parallel_tsv(write(tmp_path / "p.tsv", "a\tb\n"), "xx")
