"""LayAlignProcessor: texts -> the tensors LayAlignModel.forward / generate take.

The encoder tokenizer reads the source; the LLM tokenizer reads the prompt and the target (no special tokens: the
model adds bos, and the processor appends eos to every target). Over-long texts are truncated with one warning per
call: sources and targets keep their beginning, prompts keep their end (where the template's answer cue is). Every
call also records which of each example's texts were cut (`last_truncated`), so evaluation can count truncated
inputs per language instead of relying on warnings.

Which text the encoder reads and whether the LLM gets the prompt follow the model's config (`from_model`), in
training and evaluation alike: LangBridge's encoder reads the task-templated prompt (`encoder_reads_prompt`), and a
model without `use_prompt` gets no prompt tensors at all.

Encoders whose tokenizer carries a source-language tag (NLLB, M2M100: `src_lang`) read every source with its own
language's tag when the caller passes `langs`, as the authors' releases do; `encoder_lang_code` maps our ISO 639-1
codes to the tokenizer's codes.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch

# ISO 639-1 -> NLLB-200 (FLORES-200) code, for every language a benchmark or the parallel data uses; M2M100 takes the
# ISO code itself
NLLB_CODES = {
    "ar": "arb_Arab", "bg": "bul_Cyrl", "bn": "ben_Beng", "de": "deu_Latn", "el": "ell_Grek", "en": "eng_Latn",
    "es": "spa_Latn", "fr": "fra_Latn", "hi": "hin_Deva", "it": "ita_Latn", "ja": "jpn_Jpan", "nl": "nld_Latn",
    "pl": "pol_Latn", "pt": "por_Latn", "ru": "rus_Cyrl", "sw": "swh_Latn", "te": "tel_Telu", "th": "tha_Thai",
    "tr": "tur_Latn", "ur": "urd_Arab", "vi": "vie_Latn", "zh": "zho_Hans",
}
_NLLB_STYLE = re.compile(r"[a-z]{3}_[A-Z][a-z]{3}")


class TruncationWarning(UserWarning):
    """Texts were cut to the processor's limits (a category of its own, so that a caller counting truncation per
    example can silence just these)."""


@dataclass(frozen=True)
class InputLengths:
    """The token limits of a processor: encoder source, LLM prompt, LLM target (eos included). A trained model
    records the ones it was trained with (`LayAlignConfig.extra["lengths"]`), and evaluation reuses them."""

    max_source_length: int = 200
    max_prompt_length: int = 512
    max_target_length: int = 512

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> InputLengths:
        """The lengths in `values` (a config's record; unknown keys ignored), the defaults for the rest."""
        known = {k: int(v) for k, v in (values or {}).items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)


DEFAULT_LENGTHS = InputLengths()


def encoder_lang_code(tokenizer, lang: str) -> str | None:
    """The tokenizer's source-language code for ISO code `lang` ("sw" -> "swh_Latn" for NLLB, "sw" for M2M100; a
    Flores-200 code such as "swh_Latn" is NLLB's own tag), or None for an encoder without language tags. The code
    style is read from the tokenizer's current `src_lang` (NLLB's "eng_Latn" vs M2M100's "en"); an unmapped
    language is a ValueError (a wrong tag would be silent)."""
    current = getattr(tokenizer, "src_lang", None)
    if current is None:
        return None
    if _NLLB_STYLE.fullmatch(current):
        if _NLLB_STYLE.fullmatch(lang):  # already a Flores-200 code (SIB-200's language ids)
            return lang
        if lang not in NLLB_CODES:
            raise ValueError(f"no NLLB language code for {lang!r}; known: {', '.join(sorted(NLLB_CODES))}")
        return NLLB_CODES[lang]
    return lang


class LayAlignProcessor:
    def __init__(self, encoder_tokenizer, llm_tokenizer, max_source_length: int = DEFAULT_LENGTHS.max_source_length,
                 max_prompt_length: int = DEFAULT_LENGTHS.max_prompt_length,
                 max_target_length: int = DEFAULT_LENGTHS.max_target_length, encoder_reads_prompt: bool = False,
                 use_prompt: bool = True):
        if encoder_tokenizer is None or llm_tokenizer is None:
            raise ValueError("LayAlignProcessor needs both the encoder's and the LLM's tokenizer")
        self.encoder_tokenizer = encoder_tokenizer
        self.llm_tokenizer = llm_tokenizer
        self.max_source_length = max_source_length
        self.max_prompt_length = max_prompt_length
        self.max_target_length = max_target_length
        # the encoder reads an example's prompt (where it has one) instead of its source (LangBridge)
        self.encoder_reads_prompt = encoder_reads_prompt
        # False: prompts never reach the LLM (the model would ignore them; not tokenised, cut or counted)
        self.use_prompt = use_prompt
        self.eos_token_id = llm_tokenizer.eos_token_id
        # texts cut so far, per kind; a trainer turns the per-call warnings off and reports these totals instead
        self.truncated: Counter[str] = Counter()
        self.warn_truncation = True
        # per example of the latest call: the kinds of text cut ("source", "prompt", "target"), [] when none was
        self.last_truncated: list[list[str]] = []
        if self.eos_token_id is None:
            raise ValueError("the LLM tokenizer has no eos token; targets could never end")

    @classmethod
    def from_model(cls, model, **lengths) -> LayAlignProcessor:
        """The processor for `model`: its tokenizers, and what its config says the encoder and the LLM read."""
        config = model.config
        return cls(model.encoder_tokenizer, model.llm_tokenizer, **lengths,
                   encoder_reads_prompt=bool(getattr(config, "encoder_reads_prompt", False)),
                   use_prompt=bool(getattr(config, "use_prompt", True)))

    @property
    def lengths(self) -> InputLengths:
        return InputLengths(self.max_source_length, self.max_prompt_length, self.max_target_length)

    def __call__(self, sources: Sequence[str], prompts: Sequence[str | None] | None = None,
                 targets: Sequence[str] | None = None, langs: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """The model's tensors for a batch. `langs` (ISO codes, one per source) set the encoder's source-language
        tag per example where its tokenizer has one (NLLB, M2M100); without `langs` such an encoder keeps its
        tokenizer's current tag, and encoders without tags ignore `langs`."""
        _check_texts("source", sources)
        if langs is not None and len(langs) != len(sources):
            raise ValueError(f"{len(langs)} languages for {len(sources)} sources")
        if prompts is not None and len(prompts) != len(sources):
            raise ValueError(f"{len(prompts)} prompts for {len(sources)} sources")
        if self.encoder_reads_prompt and prompts is not None:
            sources = [p if p else s for s, p in zip(sources, prompts, strict=True)]
        if not self.use_prompt:
            prompts = None
        self.last_truncated = [[] for _ in sources]
        source_ids = self._source_ids(sources, langs)
        source_ids = self._truncate(source_ids, self.max_source_length, "source", keep="start",
                                    tail=self._encoder_tail())
        batch = _pad(source_ids, "encoder_input_ids", "encoder_attention_mask", self._encoder_pad())
        if prompts is not None and any(p is not None for p in prompts):
            prompt_ids = [self._llm_ids(p) if p else [] for p in prompts]
            prompt_ids = self._truncate(prompt_ids, self.max_prompt_length, "prompt", keep="end")
            batch |= _pad(prompt_ids, "prompt_input_ids", "prompt_attention_mask", 0)
        if targets is not None:
            _check_texts("target", targets)
            if len(targets) != len(sources):
                raise ValueError(f"{len(targets)} targets for {len(sources)} sources")
            target_ids = [self._llm_ids(t) + [self.eos_token_id] for t in targets]
            target_ids = self._truncate(target_ids, self.max_target_length, "target", keep="start")
            batch |= _pad(target_ids, "labels", "labels_attention_mask", 0)
        return batch

    def _source_ids(self, sources: Sequence[str], langs: Sequence[str] | None) -> list[list[int]]:
        # the encoder's own special tokens (<s> ... </s>, T5's </s>, NLLB's language tag) are part of how it was
        # trained
        tokenizer = self.encoder_tokenizer
        codes = [encoder_lang_code(tokenizer, lang) for lang in langs] if langs is not None else None
        if not codes or codes[0] is None:
            return [tokenizer(text)["input_ids"] for text in sources]
        default = tokenizer.src_lang
        try:  # the tag is tokenizer state: set per example, then restored for other users of the tokenizer
            ids = []
            for text, code in zip(sources, codes, strict=True):
                tokenizer.src_lang = code
                ids.append(tokenizer(text)["input_ids"])
        except KeyError:  # M2M100 has no code for some languages (Telugu)
            raise ValueError(f"the encoder's tokenizer has no language code {code!r}") from None
        finally:
            tokenizer.src_lang = default
        return ids

    def decode(self, token_ids: torch.Tensor) -> list[str]:
        return [text.strip() for text in self.llm_tokenizer.batch_decode(token_ids, skip_special_tokens=True)]

    def _llm_ids(self, text: str) -> list[int]:
        return self.llm_tokenizer(text, add_special_tokens=False)["input_ids"]

    def _encoder_pad(self) -> int:
        return self.encoder_tokenizer.pad_token_id or 0

    def _encoder_tail(self) -> list[int]:
        """The encoder's closing special token(s), kept when a source is cut."""
        eos = self.encoder_tokenizer.sep_token_id or self.encoder_tokenizer.eos_token_id
        return [] if eos is None else [eos]

    def _truncate(self, ids: list[list[int]], limit: int, what: str, keep: str,
                  tail: list[int] | None = None) -> list[list[int]]:
        over = [i for i, x in enumerate(ids) if len(x) > limit]
        if not over:
            return ids
        cut = len(over)
        for i in over:
            self.last_truncated[i].append(what)
        self.truncated[what] += cut
        if self.warn_truncation:
            warnings.warn(f"{cut} of {len(ids)} {what} texts are longer than {limit} tokens and were truncated",
                          TruncationWarning, stacklevel=3)
        if keep == "end":
            return [x[-limit:] for x in ids]
        tail = tail or []
        return [x if len(x) <= limit else x[: limit - len(tail)] + tail for x in ids]


def _check_texts(what: str, texts: Sequence[str]) -> None:
    if not len(texts):
        raise ValueError(f"no {what} texts given")
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"{what} text {i} is empty")


def _pad(ids: list[list[int]], ids_key: str, mask_key: str, pad_id: int) -> dict[str, torch.Tensor]:
    """Right padding; the model moves all padding of the assembled LLM input to the left itself."""
    width = max(1, max(len(x) for x in ids))
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
        mask[row, : len(x)] = 1
    return {ids_key: input_ids, mask_key: mask}
