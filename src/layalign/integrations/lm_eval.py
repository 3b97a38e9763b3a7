"""Every model of this library as the lm-evaluation-harness model "layalign".

    layalign-lm-eval --model layalign --model_args pretrained=DIR --tasks layalign_mgsm      # our tasks included
    python -m layalign.integrations.lm_eval run --model layalign --model_args pretrained=llm:REF --tasks ...

lm_eval 0.4.x finds models only in modules that are imported (its CLI imports `lm_eval.models` and nothing else;
it reads no entry-point group for models), so the commands above import this module, which registers "layalign",
then run lm_eval's own CLI, adding `--include_path` for our task YAMLs unless one is given. In Python,
`import layalign.integrations.lm_eval` before `lm_eval.simple_evaluate(model="layalign", ...)`.

`pretrained` is whatever `layalign.systems.load_system` takes: a LayAlign / MindMerger / LangBridge directory, an
llm-lora directory, `llm:REF` for the bare LLM, or `ENCODER,LLM` (quote it: lm_eval splits model_args at commas,
so use `encoder=...,llm=...` instead). Other arguments: device, dtype, batch_size, max_source_length,
max_prompt_length, and source=doc|context.

The encoder reads the example's text in its own language and the LLM reads the prompt: the prompt is the harness's
rendered context, the source comes from the request's document (`req.doc`), as `layalign evaluate` reads it:
a `layalign_source` field of the document if it has one, else the first pattern of `SOURCES` that matches the task's
name (`register_source` adds one). Our task YAMLs (`tasks_dir()`) build their documents with this library's readers,
so their `source` field is the reader's own. `source=context` makes the encoder read the rendered context instead
(for a task with no mapping, where the prompt is the text itself, as in XNLI and X-CSQA).

Data-parallel: under `accelerate launch --multi_gpu --num_processes N -m layalign.integrations.lm_eval run ...` (or
`torchrun`) every process loads the model on its own device, the harness gives each rank its share of the documents
(rank and world size come from `accelerate.Accelerator`, as for lm_eval's own HF model), and rank 0 gathers the
results. With device=cpu (or no GPU) the processes form a gloo group on the CPU; `accelerate launch --cpu` itself
starts one process only (its simple launcher), hence `--multi_gpu` there. See docs/lm-eval.md.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from layalign.data.flores import FLORES_CODE
from layalign.data.languages import _is_known_lang, normalize_lang
from layalign.data.prompts import xcsqa_prompt, xnli_prompt

SOURCE_FIELD = "layalign_source"  # a document field that overrides the task's mapping
SourceFn = Callable[[dict], str]

# (task-name pattern, document -> source), first match wins; `register_source` puts new ones first
SOURCES: list[tuple[str, SourceFn]] = [
    ("layalign_*", lambda doc: doc["source"]),  # our YAMLs: documents made by our readers
    # the harness's own tasks, read as our readers would read the same rows
    ("mgsm_*", lambda doc: doc["question"]),
    ("xnli_*", lambda doc: xnli_prompt(doc["premise"], doc["hypothesis"])),
    ("msvamp_*", lambda doc: doc["m_query"]),  # MathOctopus's files
    ("xcsqa_*", lambda doc: xcsqa_source(doc)),  # X-CSR's files
]


def register_source(pattern: str, source: Sequence[str] | SourceFn, separator: str = "\n") -> None:
    """Say where the encoder's text is in the documents of the tasks whose names match `pattern` (fnmatch): a
    function of the document, or field names whose values are joined with `separator`."""
    if callable(source):
        SOURCES.insert(0, (pattern, source))
        return
    fields = list(source)
    if not fields:
        raise ValueError("register_source needs at least one field name")
    SOURCES.insert(0, (pattern, lambda doc: separator.join(str(doc[f]) for f in fields)))


def xcsqa_source(doc: dict) -> str:
    """An X-CSR document's source, as `layalign.data.xcsqa` builds it (the filled prompt)."""
    question = doc["question"]
    return xcsqa_prompt(question["stem"], [c["text"] for c in question["choices"]])


def source_of(req: Instance) -> str:
    """The encoder's text for one request (see the module docstring)."""
    doc = req.doc or {}
    if SOURCE_FIELD in doc:
        return str(doc[SOURCE_FIELD])
    name = req.task_name or ""
    for pattern, fn in SOURCES:
        if fnmatch.fnmatch(name, pattern):
            try:
                return fn(doc)
            except KeyError as e:
                raise ValueError(f"task {name!r}: its documents have no field {e} that the source mapping for "
                                 f"{pattern!r} reads (fields: {', '.join(map(str, doc))})") from None
    raise ValueError(
        f"task {name!r}: no source mapping, so the encoder has nothing to read (it reads the question in its own "
        f"language, not the rendered prompt). Add one: `layalign.integrations.lm_eval.register_source({name!r}, "
        f"[field, ...])` before evaluating, or a `process_docs` in the task YAML that adds a {SOURCE_FIELD!r} field "
        f"to each document; or pass model_args source=context to let the encoder read the rendered context "
        f"(document fields: {', '.join(map(str, doc))})")


def lang_of(req: Instance) -> str | None:
    """The request's language, from a `lang` field of the document or the task name's last part ("..._sw"),
    for encoders with source-language tags (NLLB, M2M100); None when neither names a language."""
    doc = req.doc or {}
    if isinstance(doc.get("lang"), str) and FLORES_CODE.fullmatch(doc["lang"]):
        return doc["lang"]  # SIB-200's ids are Flores-200 codes, NLLB's own tags
    for candidate in (doc.get("lang"), (req.task_name or "").rsplit("_", 1)[-1]):
        if isinstance(candidate, str) and candidate and _is_known_lang(candidate):
            return normalize_lang(candidate)
    return None


def available_device(device: str | None) -> str:
    """`device`, or the CPU with a warning where that device does not exist here (lm_eval's CLI passes cuda:0 unless
    told otherwise, so the README's command would stop on a machine without a GPU); no device: a GPU if there is one.
    """
    if not device:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        kind = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device {device!r} is not a torch device (e.g. cpu, cuda, cuda:1, mps)") from None
    backend = getattr(torch, kind.type, None) if kind.type != "mps" else torch.backends.mps
    if kind.type in ("cpu", "meta"):
        return device
    present = backend is not None and backend.is_available()
    if present and kind.index is not None and hasattr(backend, "device_count"):
        present = kind.index < backend.device_count()
    if present:
        return device
    warnings.warn(f"device {device!r} is not available on this machine: running on the CPU instead", stacklevel=2)
    return "cpu"


def tasks_dir() -> Path:
    """The folder of our task YAMLs, for `--include_path` / `TaskManager(include_path=...)`."""
    return Path(__file__).with_name("lm_eval_tasks")


class LayAlignLM(LM):
    """A system of `layalign.systems` behind lm_eval's model interface: `generate_until` and `loglikelihood`."""

    def __init__(self, pretrained: str | None = None, device: str | None = None, dtype: str | None = None,
                 batch_size: int | str | None = 8, max_source_length: int | str | None = None,
                 max_prompt_length: int | str | None = None, source: str = "doc", encoder: str | None = None,
                 llm: str | None = None, system: Any = None, **ignored: Any):
        super().__init__()
        from accelerate import Accelerator

        from layalign.systems import load_system

        if source not in ("doc", "context"):
            raise ValueError(f"source must be 'doc' or 'context', not {source!r}")
        if (pretrained is None) == (encoder is None and llm is None) and system is None:
            raise ValueError("model_args need pretrained=DIR|llm:REF, or encoder=...,llm=... for an untrained pair")
        if encoder is not None or llm is not None:
            if encoder is None or llm is None:
                raise ValueError("an untrained pair needs both encoder= and llm=")
            pretrained = f"{encoder},{llm}"
        unknown = {k: v for k, v in ignored.items() if k not in ("max_batch_size",) and v is not None}
        if unknown:
            raise ValueError(f"unknown model_args for layalign: {', '.join(unknown)}")
        # as lm_eval's HF model: one Accelerator; several processes = data parallel, each on its own device. On the
        # CPU, accelerate sets up a process group (gloo) only when told cpu=True (otherwise every process of a
        # `torchrun` / `accelerate launch --multi_gpu` would be a world of one and evaluate every document). Only
        # when launched so: in one process an earlier Accelerator on a GPU would refuse cpu=True
        device = available_device(device)
        on_cpu = device.startswith("cpu")
        launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
        accelerator = Accelerator(cpu=on_cpu and launched)
        if accelerator.num_processes > 1:
            self.accelerator = accelerator
            device = str(accelerator.device)
            self._rank, self._world_size = accelerator.process_index, accelerator.num_processes
        self.batch_size = 8 if batch_size in (None, "auto") or str(batch_size).startswith("auto") else int(batch_size)
        self.source = source
        self.system = system if system is not None else load_system(
            str(pretrained), device=device, dtype=dtype,
            max_source_length=_int_or_none(max_source_length), max_prompt_length=_int_or_none(max_prompt_length))
        self._device = device

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict[str, Any], additional_config: dict[str, Any] | None = None
                            ) -> LayAlignLM:
        # the harness adds its own --device/--batch_size; model_args name them too, and they win
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k not in arg_dict}
        return cls(**arg_dict, **extra)

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict[str, Any] | None = None
                               ) -> LayAlignLM:
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    # --- lm_eval's interface --------------------------------------------------------------------------------

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Greedy answers (sampling when a task asks for it) in batches of requests that share their generation
        settings, in the harness's order; each answer is cut at the first of the task's `until` strings."""
        out: list[str | None] = [None] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, req in enumerate(requests):
            groups.setdefault(repr(sorted(_gen_kwargs(req).items())), []).append(i)
        bar = _progress(len(requests), "layalign generate_until", disable_tqdm or self.rank != 0)
        for indices in groups.values():
            settings = _gen_kwargs(requests[indices[0]])
            until = settings.pop("until")
            max_new_tokens = settings.pop("max_gen_toks")
            for start in range(0, len(indices), self.batch_size):
                batch = [requests[i] for i in indices[start:start + self.batch_size]]
                texts = self.system.generate(self._sources(batch), [r.args[0] for r in batch], max_new_tokens,
                                             langs=self._langs(batch), **settings)
                for i, text in zip(indices[start:start + self.batch_size], texts, strict=True):
                    out[i] = _cut(text, until)
                    self.cache_hook.add_partial("generate_until", requests[i].args, out[i])
                bar.update(len(batch))
        bar.close()
        return out  # type: ignore[return-value]

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """(log P(continuation | source, context), whether greedy decoding gives it) per request, through the
        system's choice scoring: the continuations of one context are scored together, and contexts that have the
        same continuations (a multiple-choice task's answers) share a batch."""
        by_context: dict[tuple[str, str, str | None], list[int]] = {}
        for i, req in enumerate(requests):
            context = req.args[0]
            if not context:
                raise ValueError(f"task {req.task_name!r}: loglikelihood with an empty context (an unconditional "
                                 "metric such as acc_mutual_info) is not supported: the encoder needs a source")
            by_context.setdefault((context, self._source(req), lang_of(req)), []).append(i)
        batches: dict[tuple[str, ...], list[tuple[str, str, str | None]]] = {}
        for key, indices in by_context.items():
            continuations = tuple(dict.fromkeys(requests[i].args[1] for i in indices))
            batches.setdefault(continuations, []).append(key)
        out: list[tuple[float, bool] | None] = [None] * len(requests)
        bar = _progress(len(requests), "layalign loglikelihood", disable_tqdm or self.rank != 0)
        for continuations, keys in batches.items():
            for start in range(0, len(keys), self.batch_size):
                chunk = keys[start:start + self.batch_size]
                langs = [lang for _, _, lang in chunk]
                rows = self.system.score_choices([s for _, s, _ in chunk], [c for c, _, _ in chunk],
                                                 list(continuations), langs=langs if all(langs) else None,
                                                 greedy=True)
                for key, row in zip(chunk, rows, strict=True):
                    scores = dict(zip(continuations, row, strict=True))
                    for i in by_context[key]:
                        out[i] = scores[requests[i].args[1]]
                        self.cache_hook.add_partial("loglikelihood", requests[i].args, out[i])
                    bar.update(len(by_context[key]))
        bar.close()
        return out  # type: ignore[return-value]

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        raise NotImplementedError(
            "layalign models have no loglikelihood_rolling (perplexity tasks such as wikitext): the encoder reads a "
            "source text that such a request does not have, and scoring a text given itself would be meaningless. "
            "Evaluate perplexity on the bare LLM with lm_eval's own hf model instead.")

    # --- data parallel, as lm_eval's HF model ---------------------------------------------------------------

    @property
    def device(self) -> str | None:
        return self._device

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.gather(tensor) if self.world_size > 1 else tensor

    def gather_object(self, obj: Any, dst: int = 0) -> list[Any] | None:
        if self.world_size <= 1:
            return [obj]
        result = [None] * self.world_size if self.rank == dst else None
        torch.distributed.gather_object(obj=obj, object_gather_list=result, dst=dst)
        return result

    def barrier(self) -> None:
        if self.world_size > 1:
            self.accelerator.wait_for_everyone()

    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.system, "name", "layalign")).replace("/", "__")

    # --- helpers --------------------------------------------------------------------------------------------

    def _source(self, req: Instance) -> str:
        return req.args[0] if self.source == "context" else source_of(req)

    def _sources(self, batch: list[Instance]) -> list[str]:
        return [self._source(r) for r in batch]

    @staticmethod
    def _langs(batch: list[Instance]) -> list[str] | None:
        langs = [lang_of(r) for r in batch]
        return langs if all(langs) else None  # a tag for some rows only would mix conventions in one batch


_SAMPLING_KEYS = ("temperature", "top_p", "top_k")


def _gen_kwargs(req: Instance) -> dict[str, Any]:
    """The request's generation settings in our terms: until (list), max_gen_toks, and sampling settings only when
    the task samples (greedy is what `layalign evaluate` does)."""
    raw = dict(req.args[1] or {})
    until = raw.pop("until", None) or []
    until = [until] if isinstance(until, str) else list(until)
    settings: dict[str, Any] = {"until": until, "max_gen_toks": int(raw.pop("max_gen_toks", 256))}
    sample = bool(raw.get("do_sample", False)) and float(raw.get("temperature", 1.0) or 0.0) > 0
    if sample:
        settings["do_sample"] = True
        settings |= {k: raw[k] for k in _SAMPLING_KEYS if k in raw}
    return settings


def _cut(text: str, until: list[str]) -> str:
    for stop in until:
        if stop:
            text = text.split(stop, 1)[0]
    return text


def _int_or_none(value: int | str | None) -> int | None:
    return None if value in (None, "", "None") else int(value)


def _progress(total: int, desc: str, disable: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=disable)


if __name__ != "__main__":  # run as a script, main() imports the module proper, which registers the class once
    register_model("layalign")(LayAlignLM)


def main(argv: list[str] | None = None) -> None:
    """lm_eval's command line with "layalign" registered and our task YAMLs on the include path (unless the
    command line gives one)."""
    from lm_eval.__main__ import cli_evaluate

    import layalign.integrations.lm_eval  # noqa: F401  (registers "layalign")

    args = list(sys.argv[1:] if argv is None else argv)
    if "--include_path" not in args and not any(a.startswith("--include_path=") for a in args):
        args += ["--include_path", str(tasks_dir())]
    sys.argv = [sys.argv[0] or "layalign-lm-eval", *args]
    try:
        cli_evaluate()
    except (FileNotFoundError, ValueError) as err:  # bad input (data, model_args, a device): one line, as `layalign`
        if os.environ.get("LAYALIGN_DEBUG"):
            raise
        print(f"layalign-lm-eval: error: {err}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
