"""The file-access contract every reader shares: a malformed row raises DataFormatError naming the file and the
1-based line, a missing file or folder names the path; and split_dev."""

from __future__ import annotations

import json

import pytest

from data_helpers import jsonl, write
from layalign.data import (
    DataFormatError,
    read_authors_bilingual,
    read_gsm8k_english,
    read_metamath_json,
    read_mgsm,
    read_msvamp,
    read_parallel_files,
    read_parallel_jsonl,
    read_parallel_tsv,
    read_qalign_math,
    read_shared_parallel,
    read_xcsqa_eval,
    read_xcsqa_jsonl,
    read_xnli_eval,
    read_xnli_train_jsonl,
    split_dev,
)


def test_split_dev_is_reproducible_and_disjoint():
    items = list(range(50))
    train, dev = split_dev(items, 10, seed=0)
    assert len(dev) == 10 and sorted(train + dev) == items and train == sorted(train)
    assert split_dev(items, 10, seed=0) == (train, dev)
    assert split_dev(items, 10, seed=1)[1] != dev
    with pytest.raises(ValueError, match="n_dev"):
        split_dev(items, 51)


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
