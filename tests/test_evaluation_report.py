"""`compare_runs` and `layalign compare`: several runs in one table and chart; clear errors for bad runs."""

from evaluation_helpers import FakeSystem, math_answerer, mgsm_examples, needs_data, table_row
from layalign.cli import main
from layalign.data.examples import EvalExample
from layalign.evaluation import compare_runs, evaluate


@needs_data
def test_compare_merges_two_runs(tmp_path, capsys):
    examples = mgsm_examples(langs=("en", "bn"), n=4)
    evaluate(FakeSystem("good", math_answerer(examples, lambda ex: True)), "mgsm", examples, tmp_path / "a",
             progress=False, low_resource={"bn"})
    evaluate(FakeSystem("half", math_answerer(examples, lambda ex: ex.id.endswith(("0", "1")))), "mgsm",
             examples, tmp_path / "b", progress=False, low_resource={"bn"})

    md = compare_runs([tmp_path / "a", tmp_path / "b"], tmp_path / "cmp")
    assert table_row(md, "good")["Avg"] == "100.0"
    assert table_row(md, "half")["bn"] == "50.0"
    assert table_row(md, "half")["Low-resource avg"] == "50.0"
    for name in ("compare.md", "compare.csv", "compare.png"):
        assert (tmp_path / "cmp" / name).is_file()

    # different benchmarks: a clear error, exit code 2
    xnli = {"en": [EvalExample(id="x0", lang="en", source="s", gold="neutral")]}
    evaluate(FakeSystem("nli", lambda s: "neutral"), "xnli", xnli, tmp_path / "c", progress=False)
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "cmp2")]) == 2
    assert "different benchmarks" in capsys.readouterr().err
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "missing")]) == 2
    assert "not an evaluation run" in capsys.readouterr().err
