"""Language codes.

Languages are ISO 639-1 codes everywhere: `normalize_lang` maps Tatoeba/NTREX/FLORES codes and English names to
them. Each benchmark's languages and low-resource set are in the registry (`layalign.tasks`).
"""

from __future__ import annotations

import re

# ISO 639-1 code -> (English name, other spellings: ISO 639-2/3 codes and the names datasets use)
_LANGUAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "ar": ("Arabic", ("ara", "arb")),
    "bg": ("Bulgarian", ("bul",)),
    "bn": ("Bengali", ("ben", "bangla")),
    "de": ("German", ("deu", "ger")),
    "el": ("Greek", ("ell", "gre")),
    "en": ("English", ("eng",)),
    "es": ("Spanish", ("spa",)),
    "fr": ("French", ("fra", "fre")),
    "hi": ("Hindi", ("hin",)),
    "it": ("Italian", ("ita",)),
    "ja": ("Japanese", ("jpn", "jap")),  # X-CSR names its Japanese folder "jap"
    "nl": ("Dutch", ("nld", "dut", "flemish")),  # the release calls X-CSQA's nl "Flemish"
    "pl": ("Polish", ("pol",)),
    "pt": ("Portuguese", ("por",)),
    "ru": ("Russian", ("rus",)),
    "sw": ("Swahili", ("swa", "swh")),
    "te": ("Telugu", ("tel",)),
    "th": ("Thai", ("tha",)),
    "tr": ("Turkish", ("tur",)),
    "ur": ("Urdu", ("urd",)),
    "vi": ("Vietnamese", ("vie",)),
    "zh": ("Chinese", ("zho", "chi", "cmn", "zho_simpl")),
}
_LANG_LOOKUP = {
    spelling.lower(): code
    for code, (name, others) in _LANGUAGES.items()
    for spelling in (code, name, *others)
}


def normalize_lang(name: str) -> str:
    """The ISO 639-1 code for a language code or English name: "swh"/"swa"/"Swahili" -> "sw", "cmn"/"zho-CN" -> "zh".
    A region or script suffix ("zho-CN", "deu_Latn") is ignored. Unknown names raise ValueError listing the known."""
    key = str(name).strip().lower()
    if key in _LANG_LOOKUP:
        return _LANG_LOOKUP[key]
    base = re.split(r"[-_]", key, maxsplit=1)[0]
    if base in _LANG_LOOKUP:
        return _LANG_LOOKUP[base]
    known = ", ".join(f"{code} ({_LANGUAGES[code][0]})" for code in sorted(_LANGUAGES))
    raise ValueError(f"unknown language {name!r}; known: {known}")


def _is_known_lang(name: str) -> bool:
    try:
        normalize_lang(name)
    except ValueError:
        return False
    return True
