"""The benchmark registry: every fact about a benchmark in one `Task` entry of `TASKS`.

Evaluation, scoring, reports and the command line read a benchmark's reader, languages, low-resource set, default
data path, generation length, choices, metrics and answer kind from here; nowhere else names a benchmark. Prompt
template strings live in `layalign.data.prompts` (an entry names its template there); the readers live in
`layalign.data`.

Adding a benchmark = a reader returning {lang: [EvalExample]} and one entry in TASKS (see the README).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layalign.data import (
    SIB200_LABELS,
    TEMPLATES,
    XNLI_LABELS,
    EvalExample,
    read_mgsm,
    read_msvamp,
    read_sib200_eval,
    read_translation_eval,
    read_xcsqa_eval,
    read_xnli_eval,
)
from layalign.data.flores import NOT_ENCODER_LANGUAGES, SIB200_LANGUAGES

# (path, langs=None, limit=None[, split=...]) -> {lang: examples}, languages in the task's order
Reader = Callable[..., dict[str, list[EvalExample]]]

# how an answer is read from a model's output (see layalign.evaluation.scoring):
# number: the last number; letter: a choice letter A-E; label: an NLI label word; topic: a SIB-200 category; line: the
# first non-empty line
ANSWER_KINDS = ("number", "letter", "label", "topic", "line")
# what a task reports: accuracy from every row's `correct`, or corpus chrF and BLEU per language (sacrebleu)
ACCURACY = ("accuracy",)
CORPUS_METRICS = ("chrf", "bleu")

SHARED_DATA = "../shared/data"  # relative to the current directory (the repository root)


@dataclass(frozen=True)
class Task:
    """One benchmark.

    name: the CLI's --benchmark value and the results' "benchmark".
    reader: reads a file or folder into {lang: [EvalExample]} (prompts already built with `template`).
    template: the key of `layalign.data.prompts.TEMPLATES` the reader builds prompts with.
    languages: every language, in the column order of the papers' tables.
    low_resource: the languages averaged separately ("Low-resource avg").
    data_path: the default data, relative to the repository root; None where there is no shared copy.
    max_new_tokens: the default generation length (512 for chain-of-thought maths, a few for a label).
    answer: how the answer is read from the output, one of ANSWER_KINDS.
    metrics: what is reported: ACCURACY (per-example correctness) or CORPUS_METRICS.
    choices: the allowed answers for choice scoring (each as its training target is written), or None.
    splits: whether the reader takes split= ("dev", "test").
    data_note: the error when data_path is None, or a hint added when the default copy is missing.
    paper_average_excludes: languages the authors' evaluation code leaves out of its average (MGSM: Telugu); under
        the paper protocol results add that average beside the all-language one.
    """

    name: str
    reader: Reader
    template: str
    languages: tuple[str, ...]
    low_resource: tuple[str, ...]
    data_path: str | None
    max_new_tokens: int
    answer: str
    metrics: tuple[str, ...] = ACCURACY
    choices: tuple[str, ...] | None = None
    splits: bool = False
    data_note: str = ""
    paper_average_excludes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # a malformed entry fails at import, not halfway through a run
        if self.answer not in ANSWER_KINDS:
            raise ValueError(f"task {self.name}: answer kind {self.answer!r} is not one of {', '.join(ANSWER_KINDS)}")
        if self.metrics not in (ACCURACY, CORPUS_METRICS):
            raise ValueError(f"task {self.name}: metrics {self.metrics} must be {ACCURACY} or {CORPUS_METRICS}")
        if self.template not in TEMPLATES:
            raise ValueError(f"task {self.name}: no prompt template {self.template!r} in layalign.data.prompts")
        if not set(self.low_resource) <= set(self.languages):
            raise ValueError(f"task {self.name}: low-resource languages {self.low_resource} not all in its languages")
        if self.choices is not None and not self.choices:
            raise ValueError(f"task {self.name}: choices must be None or non-empty")
        if not set(self.paper_average_excludes) <= set(self.languages):
            raise ValueError(f"task {self.name}: paper_average_excludes {self.paper_average_excludes} not all in its "
                             "languages")
        if self.max_new_tokens < 1:
            raise ValueError(f"task {self.name}: max_new_tokens must be positive")

    @property
    def per_example(self) -> bool:
        """Whether every prediction is right or wrong on its own (accuracy), rather than scored over a corpus."""
        return self.metrics == ACCURACY

    @property
    def prompt_template(self) -> str:
        """The template text (from layalign.data.prompts)."""
        return TEMPLATES[self.template]

    def default_data(self) -> Path:
        """The shared copy (relative to the current directory), or a clear error where there is none."""
        if self.data_path is None:
            raise ValueError(self.data_note or f"{self.name} has no copy in {SHARED_DATA}; pass --data")
        path = Path(self.data_path)
        if not path.exists():
            hint = f"; {self.data_note}" if self.data_note else ""
            raise FileNotFoundError(f"default {self.name} data {path} not found (relative to {Path.cwd()}){hint}; "
                                    "pass --data")
        return path

    def read(self, path: str | Path | None = None, langs: Sequence[str] | None = None, limit: int | None = None,
             split: str | None = None) -> dict[str, list[EvalExample]]:
        """{lang: examples}: from `path`, or the default copy; the first `limit` per language; `split` for the tasks
        that have splits (default "dev"). The languages come in the order of `langs`, else in the task's order."""
        if split is not None and not self.splits:
            raise ValueError(f"{self.name} has no splits to choose from")
        options: dict[str, Any] = {"split": split} if split is not None else {}
        examples = self.reader(self.default_data() if path is None else path, langs=langs, limit=limit, **options)
        return examples if langs is not None else {lang: examples[lang] for lang in self.ordered(examples)}

    def ordered(self, langs: Iterable[str]) -> list[str]:
        """`langs` in the task's column order (`languages`), the ones it does not list sorted after."""
        langs = list(langs)
        return [c for c in self.languages if c in langs] + sorted(c for c in langs if c not in self.languages)


TASKS: dict[str, Task] = {
    task.name: task
    for task in (
        Task("mgsm", read_mgsm, "math",
             languages=("te", "bn", "th", "sw", "ja", "zh", "de", "fr", "ru", "es", "en"),
             low_resource=("bn", "th", "sw", "te"),  # as the paper
             data_path=f"{SHARED_DATA}/mgsm", max_new_tokens=512, answer="number",
             paper_average_excludes=("te",)),  # the release's MGSM list has no Telugu (MindMerger's table has it)
        Task("msvamp", read_msvamp, "math",
             languages=("bn", "th", "sw", "ja", "zh", "de", "fr", "ru", "es", "en"),
             low_resource=("bn", "th", "sw"),  # MSVAMP has no Telugu
             data_path=f"{SHARED_DATA}/msvamp", max_new_tokens=512, answer="number",
             data_note=f"the full test sets are held back from this copy, {SHARED_DATA}/msvamp_sample holds the "
                       "first 20 rows per language (for testing only)"),
        # X-CSQA and XNLI follow MindMerger, whose tables lead with the low-resource group sw ur hi; a letter or a
        # label needs only a few new tokens
        Task("xcsqa", read_xcsqa_eval, "xcsqa",
             languages=("sw", "ur", "hi", "ar", "vi", "ja", "pl", "zh", "nl", "ru", "it", "de", "pt", "fr", "es",
                        "en"),
             low_resource=("sw", "ur", "hi"), data_path=None, max_new_tokens=16, answer="letter",
             choices=("A", "B", "C", "D", "E"), splits=True,
             data_note="X-CSQA has no copy in ../shared/data (X-CSR is distributed only through Google Drive); pass "
                       "--data with the X-CSQA folder (xx/dev.jsonl per language) or a dev-xx.jsonl file"),
        Task("xnli", read_xnli_eval, "xnli",
             languages=("sw", "ur", "hi", "th", "ar", "tr", "el", "vi", "zh", "ru", "bg", "de", "fr", "es", "en"),
             low_resource=("sw", "ur", "hi"), data_path=f"{SHARED_DATA}/xnli", max_new_tokens=16, answer="label",
             choices=XNLI_LABELS, splits=True),
        # Flores-200 codes as language ids; the separately averaged group is the 114 languages outside the encoder's
        # pretraining set (layalign.data.flores says which and from what source)
        Task("sib200", read_sib200_eval, "sib200", languages=SIB200_LANGUAGES, low_resource=NOT_ENCODER_LANGUAGES,
             data_path=f"{SHARED_DATA}/sib200", max_new_tokens=16, answer="topic", choices=SIB200_LABELS, splits=True,
             data_note="the test split is held back from this copy: develop and report on dev"),
        # the 21 NTREX-128 / Tatoeba languages of ../shared/data/parallel; the low-resource set is the maths one
        Task("translation", read_translation_eval, "translation",
             languages=("bn", "th", "sw", "te", "ja", "zh", "de", "fr", "ru", "es", "ar", "bg", "el", "hi", "it",
                        "nl", "pl", "pt", "tr", "ur", "vi"),
             low_resource=("bn", "th", "sw", "te"), data_path=f"{SHARED_DATA}/parallel", max_new_tokens=256,
             answer="line", metrics=CORPUS_METRICS),
    )
}


def get_task(name: str) -> Task:
    """The registry entry of benchmark `name`; a ValueError listing the known names otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(TASKS)}") from None
