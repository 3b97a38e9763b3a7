"""Answer extraction and scoring, as the paper does it.

Rules (the model's output is only the newly generated text, not the prompt):

- **Maths (mgsm, msvamp)**: the *last* number in the output, compared with the gold number within 1e-3. Before
  searching, any Unicode decimal digit (full-width "１８", Bengali "১৮", Thai "๑๘", ...) becomes its ASCII digit
  and full-width punctuation is folded (NFKC). A number is an optional minus sign (also in front of a currency
  sign: "-$5", "$-5"), digits with optional thousands separators ("1,234,567") and an optional decimal part
  ("18.00"); a trailing full stop is not a decimal point. "3,4" or "1,2345" are two numbers, not a decimal comma.
  A minus is a sign only when it touches the digits (or the currency sign) and does not follow a digit or a closing
  bracket: "20 - 5" and "(3+4)-5" end in 5, a list bullet "- 5 apples" is 5. Fractions are not parsed ("1/2" ends
  in 2), as in the paper.
- **X-CSQA**: a choice letter A-E. An explicit statement ("Answer: B", "the answer is (b)") wins; otherwise the
  first letter-like token: "(B)", "B)", "B.", "B:", or a letter standing alone on its line. A capital "A" used as
  an article ("A person would ...") is not a letter-like token.
- **XNLI**: the first label stem found, case-insensitive: entail* / neutral* / contradict*. Only when none is
  present, an output whose first word is yes / maybe / no is read as entailment / neutral / contradiction (the
  common NLI verbalisation); anything else is unanswered.
- **Translation**: the first non-empty line of the output (a model that runs on past its sentence does not drag
  the next lines into the score), scored at corpus level with sacrebleu chrF and BLEU (`translation_scores`).
"""

from __future__ import annotations

import re
import unicodedata

MATH = frozenset({"mgsm", "msvamp"})
CHOICE = frozenset({"xcsqa"})
NLI = frozenset({"xnli"})
TRANSLATION = frozenset({"translation"})
BENCHMARKS = MATH | CHOICE | NLI | TRANSLATION

MATH_TOLERANCE = 1e-3

# optional currency, optional minus (also "$-5" and "-$5"), then digits grouped by thousands or plain digits, then
# optional decimals. The look-behind stops a match from starting inside a number or after a decimal point.
_CURRENCY = r"(?:[$€£¥₹]\s*)?"
_NUMBER = re.compile(
    rf"(?<![\d.]){_CURRENCY}(?P<sign>-)?{_CURRENCY}"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?)"
)
# a minus right after a digit or a closing bracket ("20 - 5", "(3+4)-5") is subtraction, not a sign
_SUBTRACTION = re.compile(r"[\d)]\s*$")

# "Answer: B", "the answer is (b)": an upper-case letter not followed by a letter, or any letter in brackets
_ANSWER_LETTER = re.compile(r"(?i:answer)\s*(?i:is)?\s*:?\s*(?:\(([A-Ea-e])\)|([A-E])(?![A-Za-z]))")
# "(B)", "B)", "B.", "B:" (not "E.g."), or a letter alone at the end of its line; never the article in "A person"
_LETTER_LIKE = re.compile(r"(?<![A-Za-z])(?:\(([A-E])\)|([A-E])(?:[).:](?!\w)|[ \t]*$))", re.MULTILINE)

_NLI_STEMS = {"entail": "entailment", "neutral": "neutral", "contradict": "contradiction"}
_NLI_LABEL = re.compile(r"(entail|neutral|contradict)", re.IGNORECASE)
_NLI_VERBAL = {"yes": "entailment", "maybe": "neutral", "no": "contradiction"}
_FIRST_WORD = re.compile(r"^\W*([A-Za-z]+)")


def extract_answer(benchmark: str, text: str) -> str | None:
    """The answer a model's output gives for `benchmark`, normalised to the form of the gold text (a number
    string, a capital letter, a label word, a sentence), or None when it gives none."""
    _check(benchmark)
    if benchmark in MATH:
        value = last_number(text)
        return None if value is None else format_number(value)
    if benchmark in CHOICE:
        return extract_choice(text)
    if benchmark in NLI:
        return extract_nli_label(text)
    return extract_translation(text)


def is_correct(benchmark: str, pred: str | None, gold: str) -> bool:
    """Whether an extracted answer matches the gold answer. Translation has no per-example correctness (it is
    scored over the corpus): use `translation_scores`."""
    _check(benchmark)
    if benchmark in TRANSLATION:
        raise ValueError("translation is scored over the corpus with chrF/BLEU; use translation_scores()")
    if pred is None:
        return False
    if benchmark in MATH:
        gold_value, pred_value = parse_number(gold), parse_number(pred)
        if gold_value is None:
            raise ValueError(f"gold answer {gold!r} is not a number")
        return pred_value is not None and abs(pred_value - gold_value) <= MATH_TOLERANCE
    if benchmark in CHOICE:
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


# --- maths ---------------------------------------------------------------------------------------------------


def normalise_digits(text: str) -> str:
    """NFKC (full-width forms) and every Unicode decimal digit as its ASCII digit."""
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-")  # U+2212 MINUS SIGN survives NFKC
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c for c in text)


def last_number(text: str) -> float | None:
    """The last number in `text` (see the module docstring for what counts as one)."""
    text = normalise_digits(text)
    value = None
    for match in _NUMBER.finditer(text):
        negative = bool(match.group("sign")) and not _SUBTRACTION.search(text[: match.start()])
        number = float(match.group("num").replace(",", ""))
        value = -number if negative else number
    return value


def parse_number(text: str) -> float | None:
    """A gold or extracted answer as a float ("70000", "8.0", "1,000", "-3"); None if it holds no number."""
    return last_number(text)


def format_number(value: float) -> str:
    """18.0 -> "18", 1234.5 -> "1234.5": the short form a reader expects in predictions.jsonl."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


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


# --- translation ---------------------------------------------------------------------------------------------


def extract_translation(text: str) -> str:
    """The first non-empty line, stripped ("" when the output is empty)."""
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return ""


def _check(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {sorted(BENCHMARKS)}")
