"""Data: record types, prompt templates, readers for training sets and benchmarks.

Modules, one per concept:

- `examples`: TrainExample and EvalExample, the record types every reader returns.
- `prompts`: the prompt templates (math, X-CSQA, XNLI, translation) and XNLI label words.
- `languages`: ISO 639-1 codes (`normalize_lang`).
- `io`: DataFormatError (file:line), checked line / JSONL / JSON-array / TSV reading, text cleaning, `split_dev`.
- `numbers`: gold numbers (`canonical_number`) and numbers in model output (`last_number`, `format_number`).
- `layout`: finding one file per language, in the benchmark's order.
- `parallel`: translation pairs for training and the translation test set.
- `maths`: GSM8K, QAlign math, MetaMathQA (training); MGSM, MSVAMP (benchmarks).
- `xnli`, `xcsqa`: their training and evaluation readers.
- `flores`: Flores-200 codes (SIB-200's language ids): scripts, the encoder's pretraining languages, the study's sets.
- `sib200`: SIB-200 evaluation rows, task-stage rows and X -> English pairs from its multi-parallel train split.

Every fact about a benchmark (its reader, languages, low-resource set, default data) is in the registry,
`layalign.tasks`: `get_task(name).read(...)` reads one.

Roles (see examples.py): `source` is what the multilingual encoder reads, `prompt` the LLM prompt (None in the
translation stage and for LangBridge), `target`/`gold` the English answer.

- Translation stage: source = X sentence, target = English sentence, prompt = None.
- Math task stage: source = X question, prompt = math template around it, target = English chain of thought.
- X-CSQA / XNLI: source = prompt = the whole formatted prompt in language X; target = choice letter / label word.
- SIB-200: source = the X sentence, prompt = the topic template around it, target = the category.
"""

from layalign.data.examples import EvalExample, TrainExample
from layalign.data.io import DataFormatError, split_dev
from layalign.data.languages import normalize_lang
from layalign.data.maths import (
    read_gsm8k_english,
    read_metamath_json,
    read_mgsm,
    read_msvamp,
    read_qalign_math,
    render_gsm8k_answer,
)
from layalign.data.numbers import canonical_number
from layalign.data.parallel import (
    SHARED_PARALLEL_SPLITS,
    read_authors_bilingual,
    read_parallel_files,
    read_parallel_jsonl,
    read_parallel_tsv,
    read_shared_parallel,
    read_translation_eval,
    shared_parallel_files,
)
from layalign.data.prompts import (
    SIB200_LABELS,
    TEMPLATES,
    XNLI_LABELS,
    format_prompt,
    register_template,
    xnli_label_word,
)
from layalign.data.sib200 import read_sib200_eval, read_sib200_pairs, read_sib200_train
from layalign.data.xcsqa import read_xcsqa_eval, read_xcsqa_jsonl
from layalign.data.xnli import read_xnli_eval, read_xnli_train_jsonl

__all__ = [
    "SHARED_PARALLEL_SPLITS",
    "SIB200_LABELS",
    "TEMPLATES",
    "XNLI_LABELS",
    "DataFormatError",
    "EvalExample",
    "TrainExample",
    "canonical_number",
    "format_prompt",
    "normalize_lang",
    "read_authors_bilingual",
    "read_gsm8k_english",
    "read_metamath_json",
    "read_mgsm",
    "read_msvamp",
    "read_parallel_files",
    "read_parallel_jsonl",
    "read_parallel_tsv",
    "read_qalign_math",
    "read_shared_parallel",
    "read_sib200_eval",
    "read_sib200_pairs",
    "read_sib200_train",
    "read_translation_eval",
    "read_xcsqa_eval",
    "read_xcsqa_jsonl",
    "read_xnli_eval",
    "read_xnli_train_jsonl",
    "register_template",
    "render_gsm8k_answer",
    "shared_parallel_files",
    "split_dev",
    "xnli_label_word",
]
