"""Whole paths on tiny models: evaluation writes every output and its table matches its predictions file."""

import json
from pathlib import Path

import pytest

from layalign.evaluation import evaluate
from layalign.systems import LayAlignSystem, LLMOnlySystem
from layalign.tasks import get_task
from layalign.testing import byte_tokenizer, randomize_adapters, tiny_model

SHARED = Path(__file__).parents[1] / ".." / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data is not beside the repository")


@needs_shared
@pytest.mark.parametrize("bench", ["mgsm", "xnli"])
def test_evaluation_on_tiny_models_writes_everything_and_the_table_matches(tmp_path, bench):
    model = tiny_model()
    randomize_adapters(model, scale=0.3)
    path = SHARED / ("mgsm" if bench == "mgsm" else "xnli/dev")
    examples = get_task(bench).read(str(path), langs=["sw", "de", "zh"], limit=3)
    for system, name in ((LayAlignSystem(model, name="LayAlign (tiny)"), "layalign"),
                         (LLMOnlySystem(model.llm, byte_tokenizer(), name="LLM only (tiny)"), "llm")):
        out = tmp_path / name
        results = evaluate(system, bench, examples, out, batch_size=2, max_new_tokens=4, progress=False)
        for file in ("predictions.jsonl", "results.json", "results.md", "results.csv", "accuracy.png"):
            assert (out / file).is_file(), file
        rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 9 and {r["lang"] for r in rows} == {"sw", "de", "zh"}
        for lang in ("sw", "de", "zh"):
            lang_rows = [r for r in rows if r["lang"] == lang]
            expected = 100 * sum(r["correct"] for r in lang_rows) / len(lang_rows)
            assert results["per_language"][lang]["accuracy"] == pytest.approx(expected)
        assert json.loads((out / "results.json").read_text())["per_language"] == results["per_language"]


def test_the_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    from layalign.cli import main

    assert main(["evaluate", "--model", "llm:x", "--benchmark", "mgsm", "--data", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "layalign evaluate: error:" in err and "nope" in err and "Traceback" not in err
    bad = tmp_path / "mgsm_sw.tsv"
    bad.write_text("a question without an answer column\n", encoding="utf-8")
    assert main(["evaluate", "--model", "llm:x", "--benchmark", "mgsm", "--data", str(bad)]) == 2
    assert "mgsm_sw.tsv" in capsys.readouterr().err
