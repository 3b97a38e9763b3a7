"""SIB-200: the reader (fixture rows, quoting off, malformed rows with file:line, unknown languages, splits), the
translation pairs and task rows recipes name, the registry entry, `evaluate --split`, and the language split
(Flores-200 codes, the encoder's pretraining set, scripts, the study's fixed sets). The shared copy is read for its
dev and train splits only; the test split is held back and never read here."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from data_helpers import DATA, FIXTURES, needs_data, write
from layalign.cli import build_parser
from layalign.data import DataFormatError, read_sib200_eval, read_sib200_pairs, read_sib200_train
from layalign.data.flores import (
    COMPARISON_LANGUAGES,
    ENCODER_LANGUAGES,
    NOT_ENCODER_LANGUAGES,
    SIB200_LANGUAGES,
    TASK_LANGUAGES,
    XLMR_CC100,
    by_script,
    resolve_languages,
    script,
)
from layalign.data.prompts import SIB200_LABELS
from layalign.evaluation.scoring import extract_answer, is_correct
from layalign.tasks import get_task
from layalign.training import read_examples

SIB = FIXTURES / "sib200"
HEADER = "index_id\tcategory\ttext\n"


def test_fixture_rows_become_prompted_examples_with_quotes_kept_verbatim():
    data = read_sib200_eval(SIB)
    assert list(data) == ["eng_Latn", "fra_Latn"] and [len(v) for v in data.values()] == [3, 3]
    first = data["eng_Latn"][0]
    assert (first.id, first.lang, first.gold, first.source) == ("sib200-eng_Latn-10", "eng_Latn", "politics",
                                                                "The parliament voted on the bill.")
    assert first.prompt == ("Text: The parliament voted on the bill.\nTopic (science/technology, travel, politics, "
                            "sports, health, entertainment or geography):")
    # the same item has the same id suffix in every language (multi-parallel)
    assert [e.id.rsplit("-", 1)[1] for e in data["fra_Latn"]] == [e.id.rsplit("-", 1)[1] for e in data["eng_Latn"]]
    train = read_sib200_train(SIB, ["fra_Latn"])
    assert train[1].source == 'L\'équipe a gagné le "match final.'  # an unbalanced quote is text, not quoting
    assert (train[1].target, train[1].lang) == ("sports", "fra_Latn")


def test_splits_languages_and_limits(tmp_path):
    assert [e.gold for e in read_sib200_eval(SIB, split="test")["fra_Latn"]] == ["entertainment"]
    assert list(read_sib200_eval(SIB, langs=["fra_Latn"], limit=2)) == ["fra_Latn"]
    assert len(read_sib200_eval(SIB, langs=["fra_Latn"], limit=2)["fra_Latn"]) == 2
    with pytest.raises(ValueError, match="unknown SIB-200 split 'validation'; choose one of train, dev, test"):
        read_sib200_eval(SIB, split="validation")
    shutil.copytree(SIB / "eng_Latn", tmp_path / "eng_Latn")
    (tmp_path / "eng_Latn" / "test.tsv").unlink()
    with pytest.raises(FileNotFoundError, match=r"no SIB-200 files \{lang\}/test.tsv in"):
        read_sib200_eval(tmp_path, split="test")


def test_unknown_and_missing_languages_fail_naming_where_the_codes_are_listed():
    with pytest.raises(ValueError, match=r"unknown Flores-200 language 'eng' \(did you mean eng_Latn\?\).*"
                                         r"python -m layalign.data.flores` lists the codes.*name a set: all"):
        read_sib200_eval(SIB, langs=["eng"])
    with pytest.raises(ValueError, match="no SIB-200 dev file for 'swh_Latn' in .*2 languages there have one"):
        read_sib200_eval(SIB, langs=["swh_Latn"])


@pytest.mark.parametrize(("row", "line", "message"), [
    ("5\ttravel\n", 3, r"expected 3 tab-separated columns \(index_id, category, text\), found 2"),
    ("5\tweather\tIt rains.\n", 3, "unknown category 'weather'; expected one of science/technology, travel"),
    ("5\ttravel\t  \n", 3, "empty text"),
    ("5\ttravel\tA\tB\n", 3, "found 4"),
])
def test_a_malformed_row_names_its_file_and_line(tmp_path, row, line, message):
    path = write(tmp_path / "eng_Latn" / "dev.tsv", HEADER + "1\thealth\tFine.\n" + row)
    with pytest.raises(DataFormatError, match=message) as err:
        read_sib200_eval(tmp_path)
    assert (err.value.path, err.value.line) == (path, line)


def test_a_missing_header_is_an_error_on_line_one(tmp_path):
    write(tmp_path / "eng_Latn" / "dev.tsv", "1\thealth\tFine.\n")
    with pytest.raises(DataFormatError, match=r"dev.tsv, line 1: expected the header 'index_id\\tcategory\\ttext'"):
        read_sib200_eval(tmp_path)


def test_pairs_join_each_language_to_english_by_index_id(tmp_path):
    pairs = read_sib200_pairs(SIB, ["eng_Latn", "fra_Latn"])  # English itself gives no pair
    assert [(p.source, p.target, p.prompt, p.lang) for p in pairs][0] == (
        "Voyagez léger à l'étranger.", "Pack light when you go abroad.", None, "fra_Latn")
    assert len(pairs) == 3
    shutil.copytree(SIB, tmp_path / "sib", dirs_exist_ok=True)
    write(tmp_path / "sib" / "fra_Latn" / "train.tsv", HEADER + "1\ttravel\tVoyagez.\n99\ttravel\tSans original.\n")
    with pytest.raises(DataFormatError, match=r"train.tsv, line 3: index_id 99 has no row in eng_Latn/train.tsv"):
        read_sib200_pairs(tmp_path / "sib", ["fra_Latn"])


def test_recipes_name_the_task_rows_and_the_pairs():
    specs = [{"reader": "sib200_task", "folder": "{data_dir}/sib200", "langs": ["eng_Latn", "fra_Latn"], "limit": 2},
             {"reader": "sib200_pairs", "folder": "{data_dir}/sib200", "langs": ["fra_Latn"]}]
    examples = read_examples(specs, str(FIXTURES))
    assert [(e.lang, e.target) for e in examples[:4]] == [("eng_Latn", "travel"), ("eng_Latn", "sports"),
                                                          ("fra_Latn", "travel"), ("fra_Latn", "sports")]
    assert [e.prompt for e in examples[4:]] == [None] * 3 and examples[4].target == "Pack light when you go abroad."


def test_the_registry_entry_and_its_answers():
    task = get_task("sib200")
    assert task.languages == SIB200_LANGUAGES and task.choices == SIB200_LABELS and task.splits
    assert task.low_resource == NOT_ENCODER_LANGUAGES
    assert task.read(SIB, split="test", langs=["eng_Latn"])["eng_Latn"][0].gold == "entertainment"
    # lenient: the first category named, by its stem; paper: the stripped output is the label exactly
    assert extract_answer("sib200", "Topic: Science and technology") == "science/technology"
    assert extract_answer("sib200", "sport, then travel") == "sports"
    assert extract_answer("sib200", "geopolitics") is None and extract_answer("sib200", "weather") is None
    assert is_correct("sib200", extract_answer("sib200", " Travel."), "travel")
    assert extract_answer("sib200", " Travel.", "paper") == "Travel."
    assert not is_correct("sib200", "Travel.", "travel", "paper") and is_correct("sib200", "travel", "travel", "paper")


def test_evaluate_takes_a_split_and_reads_any_folder_of_the_layout(tmp_path, monkeypatch):
    from evaluation_helpers import FakeSystem
    from layalign.evaluation.run import cli_evaluate

    args = build_parser().parse_args(["evaluate", "--model", "m", "--benchmark", "sib200", "--data", str(SIB),
                                      "--split", "test", "--out", str(tmp_path / "run")])
    assert args.split == "test"
    assert build_parser().parse_args(["evaluate", "--model", "m", "--benchmark", "sib200"]).split is None  # dev
    system = FakeSystem("fake", lambda source: "entertainment")
    monkeypatch.setattr("layalign.systems.load_system", lambda *a, **k: system)
    assert cli_evaluate(args) == 0
    assert sorted(system.seen) == ["Le film est sorti hier soir.", "The film opened last night."]
    assert sorted(system.langs) == ["eng_Latn", "fra_Latn"]
    mgsm = build_parser().parse_args(["evaluate", "--model", "m", "--benchmark", "mgsm", "--split", "test"])
    with pytest.raises(ValueError, match="mgsm has no splits"):
        get_task("mgsm").read(DATA / "mgsm", split=mgsm.split)


# --- the language split ----------------------------------------------------------------------------------------


def test_the_encoder_set_is_xlmr_cc100_mapped_to_flores_codes():
    assert len(XLMR_CC100) == 100  # Conneau et al. 2020, Table 6, romanized and Zawgyi variants included
    unmapped = sorted(k for k, v in XLMR_CC100.items() if v is None)
    assert unmapped == ["bn_rom", "br", "fy", "hi_rom", "la", "ta_rom", "te_rom", "ur_rom"]
    assert len(ENCODER_LANGUAGES) == 91 and set(ENCODER_LANGUAGES) <= set(SIB200_LANGUAGES)
    assert set(ENCODER_LANGUAGES).isdisjoint(NOT_ENCODER_LANGUAGES)
    assert len(ENCODER_LANGUAGES) + len(NOT_ENCODER_LANGUAGES) == len(SIB200_LANGUAGES) == 205
    # varieties Flores lists apart from the standard one are not counted as seen
    assert {"arb_Arab", "zho_Hant", "kmr_Latn"} <= set(ENCODER_LANGUAGES)
    assert {"ary_Arab", "arb_Latn", "yue_Hant", "ckb_Arab", "prs_Arab"} <= set(NOT_ENCODER_LANGUAGES)


def test_scripts_come_from_the_code_suffix():
    assert script("tha_Thai") == "Thai" and script("zho_Hant") == "Hant"
    groups = by_script()
    assert sum(map(len, groups.values())) == 205 and len(groups) == 30
    assert next(iter(groups)) == "Latn" and groups["Ethi"] == ["amh_Ethi", "tir_Ethi"]


def test_the_comparison_set_spans_scripts_and_coverage_and_holds_the_task_languages():
    comparison = set(COMPARISON_LANGUAGES)
    assert len(comparison) == len(COMPARISON_LANGUAGES) >= 40 and "eng_Latn" in comparison
    assert comparison <= set(SIB200_LANGUAGES)
    assert len(by_script(COMPARISON_LANGUAGES)) >= 20
    seen, unseen = comparison & set(ENCODER_LANGUAGES), comparison & set(NOT_ENCODER_LANGUAGES)
    assert len(seen) >= 20 and len(unseen) >= 15
    assert set(TASK_LANGUAGES) <= seen and "eng_Latn" not in TASK_LANGUAGES
    assert len(TASK_LANGUAGES) <= len(comparison) // 5  # most of the comparison set is never task-trained
    assert resolve_languages(["eng_Latn", "task"]) == ["eng_Latn", *TASK_LANGUAGES]


@needs_data
def test_the_shared_copy_has_every_language_and_parses():
    folder = DATA / "sib200"
    assert tuple(sorted(p.name for p in folder.iterdir() if p.is_dir())) == SIB200_LANGUAGES
    dev = read_sib200_eval(folder)
    assert {len(v) for v in dev.values()} == {99}
    assert Counter(e.gold for e in dev["eng_Latn"]) == {"science/technology": 25, "travel": 20, "politics": 14,
                                                        "sports": 12, "health": 11, "entertainment": 9,
                                                        "geography": 8}
    train_ids = {e.meta["index_id"] for e in read_sib200_eval(folder, split="train", langs=["eng_Latn"])["eng_Latn"]}
    assert len(train_ids) == 701 and train_ids.isdisjoint(e.meta["index_id"] for e in dev["eng_Latn"])
    pairs = read_sib200_pairs(folder, ["amh_Ethi"])
    assert len(pairs) == 701 and pairs[0].target.startswith("Turkey is encircled by seas on three sides")
