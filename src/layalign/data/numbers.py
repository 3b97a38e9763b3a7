"""Numbers, in one place: gold numbers read from the data files (`canonical_number`) and numbers found in a
model's free text (`normalise_digits`, `last_number`, `format_number`, used for answer scoring).

Two regexes on purpose, because they answer different questions:

- `_GOLD_NUMBER` checks that a whole gold field is one plain decimal literal ("-3", "8.0", "1000") once its thousands
  commas are dropped. It is strict: "$5", "5.", ".5", "+3", "1e3" are rejected, since a data file holding them is
  malformed. Commas are dropped anywhere, so "1,2345" reads as 12345.
- `_TEXT_NUMBER` finds numbers inside model output: currency signs, a minus on either side of one, thousands
  groups only in threes ("1,2345" is two numbers, 1 and 2345), and never starting inside a number or after a
  decimal point; `last_number` also tells a subtraction minus from a sign.

On every gold field of MGSM, the MSVAMP sample and GSM8K train/test both read the same value
(tests/test_data_numbers.py checks MGSM and GSM8K).
"""

from __future__ import annotations

import re
import unicodedata
from decimal import Decimal, InvalidOperation

# --- gold numbers in the data files ------------------------------------------------------------------------------

_GOLD_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def canonical_number(raw: str) -> str:
    """A gold number in plain form: thousands commas dropped, "8.0" -> "8", "2.50" -> "2.5"."""
    text = raw.strip().replace(",", "")
    if not _GOLD_NUMBER.fullmatch(text):
        raise ValueError(f"not a number: {raw!r}")
    try:
        value = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the regex already guarantees a decimal literal
        raise ValueError(f"not a number: {raw!r}") from None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


# --- numbers in model output -------------------------------------------------------------------------------------

# optional currency, optional minus (also "$-5" and "-$5"), then digits grouped by thousands or plain digits, then
# optional decimals. The look-behind stops a match from starting inside a number or after a decimal point.
_CURRENCY = r"(?:[$€£¥₹]\s*)?"
_TEXT_NUMBER = re.compile(
    rf"(?<![\d.]){_CURRENCY}(?P<sign>-)?{_CURRENCY}"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?)"
)
# a minus right after a digit or a closing bracket ("20 - 5", "(3+4)-5") is subtraction, not a sign
_SUBTRACTION = re.compile(r"[\d)]\s*$")


def normalise_digits(text: str) -> str:
    """NFKC (full-width forms) and every Unicode decimal digit as its ASCII digit."""
    text = unicodedata.normalize("NFKC", text).replace("\u2212", "-")  # U+2212 MINUS SIGN survives NFKC
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() and not c.isascii() else c for c in text)


def last_number(text: str) -> float | None:
    """The last number in `text`: digits after `normalise_digits`, optional thousands commas and decimals, a minus
    only where it is a sign (not "20 - 5" or "(3+4)-5"); None if there is none."""
    text = normalise_digits(text)
    value = None
    for match in _TEXT_NUMBER.finditer(text):
        negative = bool(match.group("sign")) and not _SUBTRACTION.search(text[: match.start()])
        number = float(match.group("num").replace(",", ""))
        value = -number if negative else number
    return value


def format_number(value: float) -> str:
    """18.0 -> "18", 1234.5 -> "1234.5": the short form a reader expects in predictions.jsonl."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)
