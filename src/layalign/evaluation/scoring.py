r"""Answer extraction and scoring, under one of two protocols (`PROTOCOLS`; a run records which).

A task's answer kind comes from the registry (`layalign.tasks`); the rules per protocol and answer kind are all
here. The model's output is only the newly generated text, not the prompt.

**paper**: the authors' own evaluation code (sustech-nlp/LayAlign, evaluation.py and tools/utils.py), exactly:

- number: `extract_last_num` on the output and on the gold answer: commas between digits dropped, the last match of
  `\d+(\.\d+)?` as a float, 0.0 when there is none (so an output without a number is right when the gold is 0); no
  minus sign is read (-5 reads as 5, on both sides). Correct when |gold - prediction| < 1e-3.
- letter, label, topic: the output stripped equals the gold exactly ("B", "entailment"; case and everything after
  count).
- MGSM's average as their code prints it is over 10 languages, without Telugu (`Task.paper_average_excludes`);
  results keep the all-language average as well.
- line (translation): as lenient (the authors report no translation benchmark).

**lenient** (the default): what a reader would accept as the model's answer:

- **number (mgsm, msvamp)**: the *last* number in the output, compared with the gold number within 1e-3. Before
  searching, any Unicode decimal digit (full-width "１８", Bengali "১৮", Thai "๑๘", ...) becomes its ASCII digit
  and full-width punctuation is folded (NFKC). A number is an optional minus sign (also in front of a currency
  sign: "-$5", "$-5"), digits with optional thousands separators ("1,234,567") and an optional decimal part
  ("18.00"); a trailing full stop is not a decimal point. "3,4" or "1,2345" are two numbers, not a decimal comma.
  A minus is a sign only when it touches the digits (or the currency sign) and does not follow a digit or a closing
  bracket: "20 - 5" and "(3+4)-5" end in 5, a list bullet "- 5 apples" is 5. Fractions are not parsed ("1/2" ends
  in 2), as in the paper. The number rules live in `layalign.data.numbers`.
- **letter (X-CSQA)**: a choice letter A-E. An explicit statement ("Answer: B", "the answer is (b)") wins; otherwise
  the first letter-like token: "(B)", "B)", "B.", "B:", or a letter standing alone on its line. A capital "A" used
  as an article ("A person would ...") is not a letter-like token.
- **label (XNLI)**: the first label stem found, case-insensitive: entail* / neutral* / contradict*. Only when none
  is present, an output whose first word is yes / maybe / no is read as entailment / neutral / contradiction (the
  common NLI verbalisation); anything else is unanswered.
- **topic (SIB-200)**: the first category the output names, case-insensitive, by its stem at the start of a word:
  scien* or technolog* (science/technology), travel*, politic*, sport*, health*, entertain*, geograph*. This is how
  SIB-200's GPT-3.5 / GPT-4 outputs are scored ("the first label each answer names"); none named is unanswered.
- **line (translation)**: the first non-empty line of the output (a model that runs on past its sentence does not
  drag the next lines into the score), scored at corpus level with sacrebleu chrF and BLEU (`translation_scores`).

Then `score_predictions` turns predictions.jsonl rows into per-language scores and their averages.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from layalign.data.numbers import format_number, last_number
from layalign.tasks import get_task

MATH_TOLERANCE = 1e-3
PROTOCOLS = ("lenient", "paper")
DEFAULT_PROTOCOL = "lenient"

# the authors' extract_last_num: thousands commas between digits dropped, then the last unsigned decimal number
_AUTHORS_COMMA = re.compile(r"(\d),(\d)")
_AUTHORS_NUMBER = re.compile(r"\d+(?:\.\d+)?")

# "Answer: B", "the answer is (b)": an upper-case letter not followed by a letter, or any letter in brackets
_ANSWER_LETTER = re.compile(r"(?i:answer)\s*(?i:is)?\s*:?\s*(?:\(([A-Ea-e])\)|([A-E])(?![A-Za-z]))")
# "(B)", "B)", "B.", "B:" (not "E.g."), or a letter alone at the end of its line; never the article in "A person"
_LETTER_LIKE = re.compile(r"(?<![A-Za-z])(?:\(([A-E])\)|([A-E])(?:[).:](?!\w)|[ \t]*$))", re.MULTILINE)

_NLI_STEMS = {"entail": "entailment", "neutral": "neutral", "contradict": "contradiction"}
_NLI_LABEL = re.compile(r"(entail|neutral|contradict)", re.IGNORECASE)
_NLI_VERBAL = {"yes": "entailment", "maybe": "neutral", "no": "contradiction"}
_FIRST_WORD = re.compile(r"^\W*([A-Za-z]+)")

_TOPIC_STEMS = {"scien": "science/technology", "technolog": "science/technology", "travel": "travel",
                "politic": "politics", "sport": "sports", "health": "health", "entertain": "entertainment",
                "geograph": "geography"}
_TOPIC = re.compile(r"(?<![A-Za-z])(" + "|".join(_TOPIC_STEMS) + ")", re.IGNORECASE)


def check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {', '.join(PROTOCOLS)}")
    return protocol


def authors_last_number(text: str) -> float:
    """The number the authors' `extract_last_num` reads (see the module docstring): 0.0 when there is none."""
    found = _AUTHORS_NUMBER.findall(_AUTHORS_COMMA.sub(r"\1\2", text))
    return float(found[-1]) if found else 0.0


def extract_answer(benchmark: str, text: str, protocol: str = DEFAULT_PROTOCOL) -> str | None:
    """The answer a model's output gives for `benchmark`, normalised to the form of the gold text (a number
    string, a capital letter, a label word, a sentence), or None when it gives none. Under the paper protocol a
    letter or label answer is the stripped output itself, and a number is always found (0 when absent)."""
    kind = get_task(benchmark).answer
    if check_protocol(protocol) == "paper" and kind != "line":
        return format_number(authors_last_number(text)) if kind == "number" else text.strip()
    if kind == "number":
        value = last_number(text)
        return None if value is None else format_number(value)
    if kind == "letter":
        return extract_choice(text)
    if kind == "label":
        return extract_nli_label(text)
    if kind == "topic":
        return extract_topic(text)
    return extract_translation(text)


def is_correct(benchmark: str, pred: str | None, gold: str, protocol: str = DEFAULT_PROTOCOL) -> bool:
    """Whether an extracted answer (`extract_answer` under the same protocol) matches the gold answer. Translation
    has no per-example correctness (it is scored over the corpus): use `translation_scores`."""
    task = get_task(benchmark)
    if not task.per_example:
        raise ValueError(f"{benchmark} is scored over the corpus with chrF/BLEU; use translation_scores()")
    if pred is None:
        return False
    if check_protocol(protocol) == "paper":
        if task.answer == "number":
            return abs(authors_last_number(gold) - authors_last_number(pred)) < MATH_TOLERANCE
        return pred == gold
    if task.answer == "number":
        gold_value, pred_value = last_number(gold), last_number(pred)
        if gold_value is None:
            raise ValueError(f"gold answer {gold!r} is not a number")
        return pred_value is not None and abs(pred_value - gold_value) <= MATH_TOLERANCE
    if task.answer == "letter":
        return pred.strip().upper() == gold.strip().upper()
    return pred.strip().lower() == gold.strip().lower()


def translation_scores(hypotheses: list[str], references: list[str]) -> dict[str, float]:
    """Corpus chrF and BLEU (sacrebleu defaults: chrF with n=6, beta=2; BLEU with the 13a tokenizer)."""
    import sacrebleu  # imported here: the other benchmarks do not need it

    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references")
    return {
        "chrf": sacrebleu.corpus_chrf(hypotheses, [references]).score,
        "bleu": sacrebleu.corpus_bleu(hypotheses, [references]).score,
    }


# --- classification ------------------------------------------------------------------------------------------


def extract_choice(text: str) -> str | None:
    """The choice letter A-E (see the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    explicit = _ANSWER_LETTER.search(text)
    if explicit:
        return (explicit.group(1) or explicit.group(2)).upper()
    match = _LETTER_LIKE.search(text)
    if match:
        return match.group(1) or match.group(2)
    return None


def extract_nli_label(text: str) -> str | None:
    """entailment / neutral / contradiction (see the module docstring)."""
    match = _NLI_LABEL.search(text)
    if match:
        return _NLI_STEMS[match.group(1).lower()]
    first = _FIRST_WORD.match(text)
    if first:
        return _NLI_VERBAL.get(first.group(1).lower())
    return None


def extract_topic(text: str) -> str | None:
    """The first SIB-200 category named (see the module docstring)."""
    match = _TOPIC.search(text)
    return _TOPIC_STEMS[match.group(1).lower()] if match else None


# --- translation ---------------------------------------------------------------------------------------------


def extract_translation(text: str) -> str:
    """The first non-empty line, stripped ("" when the output is empty)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


# --- per-language scores -------------------------------------------------------------------------------------


def row_key(row: dict) -> tuple[str, str]:
    """A predictions row's identity: (lang, id)."""
    return str(row["lang"]), str(row["id"])


def metrics_of(benchmark: str) -> list[str]:
    return list(get_task(benchmark).metrics)


def score_predictions(benchmark: str, rows: list[dict], low_resource: Iterable[str] = (),
                      protocol: str = DEFAULT_PROTOCOL) -> dict:
    """Per-language scores (percentages), their unweighted average, and the average over the low-resource
    languages present (None if none is). Languages keep their order of first appearance in `rows`; a repeated
    (lang, id) counts once. Rows are scored as they were written (their `correct`); `protocol` is recorded, and
    under "paper" `paper_average` adds the average over the languages the authors average (MGSM without Telugu).

    Per language, `truncated` counts the rows whose input was cut to the length limits (rows carry the cut parts
    in "truncated"); None when the system did not report truncation."""
    by_lang: dict[str, list[dict]] = {}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        if row_key(row) not in seen:
            seen.add(row_key(row))
            by_lang.setdefault(row["lang"], []).append(row)

    per_lang = {lang: _score_lang(benchmark, lang_rows) for lang, lang_rows in by_lang.items()}
    low = [lang for lang in by_lang if lang in set(low_resource)]
    metrics = metrics_of(benchmark)
    truncated = [s["truncated"] for s in per_lang.values() if s["truncated"] is not None]
    results = {
        "benchmark": benchmark,
        "protocol": check_protocol(protocol),
        "metrics": metrics,
        "languages": list(by_lang),
        "per_language": per_lang,
        "average": {m: _mean(per_lang[lang][m] for lang in by_lang) for m in metrics},
        "low_resource_languages": low,
        "low_resource_average": {m: _mean(per_lang[lang][m] for lang in low) for m in metrics},
        "n": sum(len(r) for r in by_lang.values()),
        "truncated": sum(truncated) if truncated else None,
    }
    excluded = get_task(benchmark).paper_average_excludes
    if protocol == "paper" and excluded:
        langs = [lang for lang in by_lang if lang not in excluded]
        results["paper_average"] = {"languages": langs, "excluded": list(excluded),
                                    **{m: _mean(per_lang[lang][m] for lang in langs) for m in metrics}}
    return results


def _score_lang(benchmark: str, rows: list[dict]) -> dict:
    # rows from a system that reports no truncation have no "truncated" field: unknown, not zero
    known = [r["truncated"] for r in rows if "truncated" in r]
    truncated = sum(bool(t) for t in known) if known else None
    if not get_task(benchmark).per_example:  # the registry allows one corpus metric set: chrF and BLEU
        return {"n": len(rows), "truncated": truncated,
                **translation_scores([r["answer"] or "" for r in rows], [r["gold"] for r in rows])}
    correct = sum(bool(r["correct"]) for r in rows)
    return {"n": len(rows), "correct": correct, "accuracy": 100.0 * correct / len(rows), "truncated": truncated}


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None
