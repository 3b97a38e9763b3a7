"""The data of a recipe: reader specs (`train_data`, `dev_data` in the YAML) -> training examples.

A spec is `{"reader": NAME, ...that reader's arguments}`, plus optionally `sample: N`. Paths may use {data_dir}.
Readers that read one language per file take `lang`; given `langs` instead, the spec is called once per language,
with {lang} in its paths replaced. Which reader is which is written down in `READERS`, not guessed.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from layalign import data
from layalign.data import TrainExample


@dataclass(frozen=True)
class Reader:
    """A reader function of `layalign.data` and the arguments a recipe may pass to it."""

    function: Callable[..., list[TrainExample]]
    arguments: tuple[str, ...]
    one_language: bool = False  # takes `lang` (one file per language): `langs` in a spec means one call per language


# reader name in a recipe -> its function; `arguments` must match the function's signature (a test checks)
READERS: dict[str, Reader] = {
    "parallel_files": Reader(data.read_parallel_files, ("src_path", "en_path", "lang", "limit"), one_language=True),
    "parallel_tsv": Reader(data.read_parallel_tsv, ("path", "lang", "limit"), one_language=True),
    "parallel_jsonl": Reader(data.read_parallel_jsonl, ("path", "lang", "src_key", "tgt_key", "limit"),
                             one_language=True),
    "authors_bilingual": Reader(data.read_authors_bilingual, ("root", "langs", "stem", "limit")),
    "shared_parallel": Reader(data.read_shared_parallel, ("parallel_dir", "langs", "split", "limit")),
    "qalign_math": Reader(data.read_qalign_math, ("math_train_dir", "gsm8k_train_path", "langs", "limit", "stats")),
    "metamath": Reader(data.read_metamath_json, ("path", "langs", "limit_per_lang", "default_lang")),
    "gsm8k_english": Reader(data.read_gsm8k_english, ("path", "limit", "with_prompt")),
    "xnli_train": Reader(data.read_xnli_train_jsonl, ("path", "lang", "limit"), one_language=True),
    "xcsqa_train": Reader(data.read_xcsqa_jsonl, ("path", "lang", "limit"), one_language=True),
    # SIB-200 (layalign.data.sib200): `langs` is a list of Flores-200 codes or a set name ("task", "comparison", ...)
    "sib200_task": Reader(data.read_sib200_train, ("folder", "langs", "split", "limit")),
    "sib200_pairs": Reader(data.read_sib200_pairs, ("folder", "langs", "split", "limit")),
}


def read_examples(specs: list[dict[str, Any]], data_dir: str, seed: int = 0) -> list[TrainExample]:
    """Every example the reader specs name, in order. A spec: {"reader": NAME, ...that reader's arguments}, plus
    optionally `sample: N`: N examples drawn at random (with `seed`) from what each reader call returns. Use it
    rather than the readers' `limit` (the first N) where a file is sorted, as the XNLI training files are (by label)."""
    examples: list[TrainExample] = []
    for spec in specs:
        spec = dict(spec)
        name = spec.pop("reader", None)
        sample = spec.pop("sample", None)
        if name not in READERS:
            raise ValueError(f"unknown reader {name!r} in the recipe; known: {', '.join(READERS)}")
        reader = READERS[name]
        spec = {k: v.replace("{data_dir}", data_dir) if isinstance(v, str) else v for k, v in spec.items()}
        for kwargs in _calls(spec, reader):
            unknown = sorted(set(kwargs) - set(reader.arguments))
            if unknown:
                raise ValueError(f"reader {name!r} takes {sorted(reader.arguments)}, not {unknown}")
            read = reader.function(**kwargs)
            if sample is not None:
                if not 0 < int(sample) <= len(read):
                    raise ValueError(f"reader {name!r}: sample={sample}, but the call {kwargs} returned {len(read)} "
                                     "examples")
                read = random.Random(seed).sample(read, int(sample))
            examples += read
    return examples


def _calls(spec: dict[str, Any], reader: Reader) -> list[dict[str, Any]]:
    """The keyword arguments of each call of `reader` that `spec` asks for."""
    if "langs" not in spec or not reader.one_language:
        return [spec]
    return [{**{k: v.replace("{lang}", lang) if isinstance(v, str) else v for k, v in spec.items() if k != "langs"},
             "lang": lang} for lang in spec["langs"]]
