"""The report's language groups and per-language gains: computed from the units' per-language accuracies, with
every number in the text checked against a hand computation."""

from pathlib import Path

import pytest
import yaml

from layalign.studies.groups import groups_section, resolve_groups
from layalign.studies.spec import StudyError, load_study

LANGS = ["eng_Latn", "swh_Latn", "hau_Latn", "yor_Latn"]


def write_study(root: Path, **extra) -> Path:
    trained = {"seeds": 2, "learning_rate": {"reason": "fixed for the test"},
               "stages": [{"name": "task", "recipe": "task.yaml"}]}
    study = {"name": "g", "benchmark": "sib200", "languages": LANGS,
             "systems": [{"name": "llm-lora", "label": "LLM + LoRA", "variant": "llm-lora", **trained},
                         {"name": "layalign", "label": "LayAlign", **trained},
                         {"name": "llm-prompted", "label": "LLM only"}], **extra}
    (root / "study.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    return root / "study.yaml"


def record(accuracies: dict[str, float]) -> dict:
    return {"results": {("choices", "lenient"): {"per_language": {k: {"accuracy": v} for k, v in accuracies.items()}}}}


def test_groups_average_languages_per_seed_and_gains_are_differences_of_seed_means(tmp_path):
    path = write_study(tmp_path, groups={"English": ["eng_Latn"], "trained": ["swh_Latn"], "untrained": "rest"},
                       gain_over="llm-lora")
    study = load_study(path)
    assert resolve_groups(study, LANGS) == {"English": ["eng_Latn"], "trained": ["swh_Latn"],
                                            "untrained": ["hau_Latn", "yor_Latn"]}
    systems = {
        "llm-lora": [record({"eng_Latn": 80, "swh_Latn": 40, "hau_Latn": 30, "yor_Latn": 20}),
                     record({"eng_Latn": 78, "swh_Latn": 42, "hau_Latn": 34, "yor_Latn": 22})],
        "layalign": [record({"eng_Latn": 76, "swh_Latn": 50, "hau_Latn": 40, "yor_Latn": 30}),
                     record({"eng_Latn": 76, "swh_Latn": 54, "hau_Latn": 36, "yor_Latn": 30})],
        "llm-prompted": [record({"eng_Latn": 20, "swh_Latn": 18, "hau_Latn": 21, "yor_Latn": 19})],
    }
    lines = groups_section(systems, study, ("choices", "lenient", "choice scoring"), LANGS, tmp_path / "fig",
                           tmp_path)
    text = "\n".join(lines)
    assert "| system | seeds | English (1) | trained (1) | untrained (2) | all (4) |" in text
    # LLM + LoRA's untrained group: seed 0 (30 + 20) / 2 = 25, seed 1 (34 + 22) / 2 = 28 -> 26.5 (25.0-28.0)
    assert "| LLM + LoRA | 2 | 79.0 (78.0-80.0) | 41.0 (40.0-42.0) | 26.5 (25.0-28.0) | 43.2 (42.5-44.0) |" in text
    assert "| LLM only | 1 | 20.0 | 18.0 | 20.0 | 19.5 |" in text
    # LayAlign - LLM + LoRA per language: eng 76 - 79 = -3, swh 52 - 41 = +11, hau 38 - 32 = +6, yor 30 - 21 = +9
    assert ("- LayAlign (2 seed(s)): above in 3 of 4 languages, below in 1; median +7.5, from -3.0 (eng_Latn) to "
            "+11.0 (swh_Latn)") in text
    assert "LLM only (" not in text.split("Gain over")[1]  # the untrained system has no gain line
    assert (tmp_path / "fig" / "gain-choices-lenient.png").stat().st_size > 0
    assert "](fig/gain-choices-lenient.png)" in text


def test_gains_are_split_where_the_baselines_inputs_were_mostly_cut(tmp_path):
    """A language where the baseline's inputs were cut on more than half of the rows (here hau: 60 of 99) gets its
    own median gain: a fused system's gain there may be its encoder reading what the baseline's LLM never saw."""
    study = load_study(write_study(tmp_path, gain_over="llm-lora"))

    def cut_record(accuracies: dict[str, float], truncated: dict[str, int]) -> dict:
        rec = record(accuracies)
        for lang, count in truncated.items():
            rec["results"]["choices", "lenient"]["per_language"][lang] |= {"n": 99, "truncated": count}
        return rec

    cut = {"eng_Latn": 0, "swh_Latn": 49, "hau_Latn": 60, "yor_Latn": 0}  # 49 of 99: not more than half
    systems = {"llm-lora": [cut_record({"eng_Latn": 80, "swh_Latn": 40, "hau_Latn": 20, "yor_Latn": 30}, cut)],
               "layalign": [cut_record({"eng_Latn": 78, "swh_Latn": 50, "hau_Latn": 60, "yor_Latn": 36}, cut)]}
    text = "\n".join(groups_section(systems, study, ("choices", "lenient", "x"), LANGS, tmp_path, tmp_path))
    # gains: eng -2, swh +10, hau +40, yor +6; the other three's median is +6
    assert ("- Where LLM + LoRA's inputs were cut to the length limits on more than half of the rows (1 language: "
            "hau_Latn), the median gain is: LayAlign +40.0; in the other 3 languages: LayAlign +6.0.") in text


def test_a_study_without_groups_shows_neither(tmp_path):
    study = load_study(write_study(tmp_path))
    assert groups_section({"layalign": [record(dict.fromkeys(LANGS, 50.0))]}, study,
                          ("choices", "lenient", "x"), LANGS, tmp_path, tmp_path) == []


@pytest.mark.parametrize(("extra", "message"), [
    ({"groups": {"a": "rest", "b": "rest"}}, "more than one 'rest'"),
    ({"groups": {"a": "eng_Latn"}}, "groups maps each group's name to a list"),
    ({"gain_over": "llm-prompted"}, "gain_over 'llm-prompted' is not a trained system"),
])
def test_bad_groups_are_one_line_errors_naming_the_file(tmp_path, extra, message):
    with pytest.raises(StudyError, match=message) as err:
        load_study(write_study(tmp_path, **extra))
    assert str(tmp_path / "study.yaml") in str(err.value)


def test_every_language_rows_split_by_encoder_coverage_and_by_scripts_of_five_or_more():
    from layalign.data.flores import SIB200_LANGUAGES
    from layalign.studies.all_languages import language_groups

    groups = dict(language_groups(list(SIB200_LANGUAGES)))
    assert groups["every language (205)"] == list(SIB200_LANGUAGES)
    seen, unseen = groups["in the encoder's pretraining set"], groups["outside it"]
    assert "swh_Latn" in seen and "yor_Latn" in unseen and sorted(seen + unseen) == sorted(SIB200_LANGUAGES)
    assert list(groups)[3] == "Latin script"  # the most languages first
    assert all(len(members) >= 5 for name, members in groups.items() if name.endswith(" script"))
    assert "Tifinagh script" not in groups  # too few languages for a row of their own
    assert list(dict(language_groups(["en", "sw"]))) == ["every language (2)"]  # not Flores codes: no split
