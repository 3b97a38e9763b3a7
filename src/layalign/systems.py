"""Text in, text out: a trained LayAlign model, or the bare LLM, behind one `generate` for evaluation and the CLI;
`answer` puts one question through a task's prompt template.

Input lengths: a trained model directory records the lengths it was trained with (`LayAlignConfig.extra["lengths"]`,
written when training saves), and `load_system` applies them; explicit `max_source_length` / `max_prompt_length`
override them for every kind of system alike, the bare LLM's prompt included, so that the rows of one table read
the same inputs. Every system exposes `lengths` (what it applies) and `last_truncated` (per example of its latest
call, the inputs it cut), which evaluation records.
"""

from __future__ import annotations

from pathlib import Path

import torch

from layalign.backbones.loading import pad_token_id
from layalign.data.languages import normalize_lang
from layalign.data.prompts import format_prompt, get_template, template_fields
from layalign.model import fusion
from layalign.model.choices import choice_logprobs
from layalign.model.config import CONFIG_NAME, LayAlignConfig
from layalign.model.lora import LLMLoRAModel, is_lora_directory
from layalign.model.modeling import LayAlignModel
from layalign.model.processing import DEFAULT_LENGTHS, InputLengths, LayAlignProcessor

LLM_ONLY_PREFIX = "llm:"
LENGTHS_KEY = "lengths"  # LayAlignConfig.extra[LENGTHS_KEY]: the training lengths, as InputLengths.as_dict()


class LayAlignSystem:
    """A LayAlign (or MindMerger / LangBridge) model with its processor."""

    def __init__(self, model: LayAlignModel, name: str, processor: LayAlignProcessor | None = None):
        self.model = model.eval()
        self.name = name
        self.processor = processor or LayAlignProcessor.from_model(model)
        self.zero_gates = False  # set by load_system(..., zero_gates=True): every fusion gate was zeroed

    @property
    def lengths(self) -> dict[str, int]:
        """The input limits applied (the target limit plays no part in generation)."""
        return {"max_source_length": self.processor.max_source_length,
                "max_prompt_length": self.processor.max_prompt_length}

    @property
    def last_truncated(self) -> list[list[str]]:
        return self.processor.last_truncated

    def generate(self, sources: list[str], prompts: list[str | None], max_new_tokens: int,
                 langs: list[str] | None = None, **generation_kwargs) -> list[str]:
        """Greedy answers. `langs` (ISO codes, one per source) give encoders with a source-language tag (NLLB,
        M2M100) each example's own tag."""
        batch = self.processor(sources, prompts, langs=langs)
        batch = {k: v.to(self.model.llm.device) for k, v in batch.items()}
        generation_kwargs.setdefault("do_sample", False)
        new_tokens = self.model.generate(**batch, max_new_tokens=max_new_tokens, **generation_kwargs)
        return self.processor.decode(new_tokens)

    @torch.no_grad()
    def score_choices(self, sources: list[str], prompts: list[str | None], choices: list[str],
                      langs: list[str] | None = None, greedy: bool = False, layout: str = "auto"
                      ) -> list[list[float]]:
        """log P(choice | source, prompt) for every example and choice, summed over the choice's tokens (tokenized as
        a training target, without its eos): choice scoring for classification benchmarks. `greedy=True` gives
        (log P, whether greedy decoding would produce the choice) pairs instead; `layout` see `choice_logprobs`."""
        batch = {k: v.to(self.model.llm.device) for k, v in self.processor(sources, prompts, langs=langs).items()}
        inputs, state = self.model.prompt_inputs(**batch)
        prefix = {"inputs_embeds": inputs.embeds, "attention_mask": inputs.attention_mask,
                  "position_ids": inputs.position_ids}
        with fusion.active(state):
            return choice_logprobs(self.model.llm, prefix, [self.processor._llm_ids(c) for c in choices], greedy,
                                   layout)


class LLMOnlySystem:
    """The bare LLM reading the prompt (or, without one, the source) directly: the "LLM only" row of every table.
    Its input is [bos] + prompt tokens, the same start LayAlign gives the LLM, cut to `max_prompt_length` tokens
    keeping the end as LayAlign's processor does (the default is the processor's, so that a fused model trained
    with the default lengths and the bare LLM read the same prompt). It has no encoder: `langs` are ignored."""

    def __init__(self, llm, tokenizer, name: str, max_prompt_length: int = DEFAULT_LENGTHS.max_prompt_length):
        self.llm = llm.eval()
        self.tokenizer = tokenizer
        self.name = name
        self.max_prompt_length = max_prompt_length
        self.last_truncated: list[list[str]] = []

    @property
    def lengths(self) -> dict[str, int | None]:
        return {"max_source_length": None, "max_prompt_length": self.max_prompt_length}

    def _prompt_ids(self, sources: list[str], prompts: list[str | None]) -> list[list[int]]:
        texts = [prompt or source for source, prompt in zip(sources, prompts, strict=True)]
        bos = self.llm.config.bos_token_id
        ids = [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
        self.last_truncated = [["prompt"] if len(x) > self.max_prompt_length else [] for x in ids]
        return [([bos] if bos is not None else []) + x[-self.max_prompt_length:] for x in ids]

    def inputs(self, sources: list[str], prompts: list[str | None]) -> dict[str, torch.Tensor]:
        """The LLM's input for a batch: [bos] + each prompt (or source), cut to `max_prompt_length`, left-padded;
        `input_ids` and `attention_mask` on the LLM's device (what `generate` and `score_choices` feed it)."""
        ids = self._prompt_ids(sources, prompts)
        width = max(len(x) for x in ids)
        pad = pad_token_id(self.llm, self.tokenizer)
        input_ids = torch.tensor([[pad] * (width - len(x)) + x for x in ids], device=self.llm.device)
        mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids], device=self.llm.device)
        return {"input_ids": input_ids, "attention_mask": mask}

    def generate(self, sources: list[str], prompts: list[str | None], max_new_tokens: int,
                 langs: list[str] | None = None, **generation_kwargs) -> list[str]:
        inputs = self.inputs(sources, prompts)
        input_ids, mask = inputs["input_ids"], inputs["attention_mask"]
        width, pad = input_ids.shape[1], pad_token_id(self.llm, self.tokenizer)
        generation_kwargs.setdefault("do_sample", False)
        with torch.no_grad():
            out = self.llm.generate(input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens,
                                    pad_token_id=pad, **generation_kwargs)
        return [t.strip() for t in self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)]

    @torch.no_grad()
    def score_choices(self, sources: list[str], prompts: list[str | None], choices: list[str],
                      langs: list[str] | None = None, greedy: bool = False, layout: str = "auto"
                      ) -> list[list[float]]:
        """log P(choice | prompt) for every example and choice, summed over the choice's tokens (with `greedy=True`:
        (log P, is greedy) pairs; `layout`: see `choice_logprobs`)."""
        prefix = self.inputs(sources, prompts)
        prefix["position_ids"] = (prefix["attention_mask"].cumsum(dim=1) - 1).clamp(min=0)  # from each row's bos
        return choice_logprobs(self.llm, prefix, [self.tokenizer(c, add_special_tokens=False)["input_ids"]
                                                  for c in choices], greedy, layout)


def load_system(model: str, device: str | None = None, dtype: str | None = None, *,
                max_source_length: int | None = None, max_prompt_length: int | None = None,
                zero_gates: bool = False) -> LayAlignSystem | LLMOnlySystem:
    """`llm:REF` -> the bare LLM; a LayAlign (or llm-lora) directory, or the name of a model shipped with the package
    (`layalign.pretrained`) -> the trained model, a training run's output directory -> the model its `select` chose;
    `ENCODER,LLM` -> an untrained LayAlign pair (gates at zero: it answers
    as the bare LLM would, given the mapped encoder states).

    Input lengths: a trained model uses the lengths recorded in its config (see `recorded_lengths`), the others the
    processor's defaults; `max_source_length` / `max_prompt_length` override either, and the bare LLM's prompt limit
    is `max_prompt_length` too.

    zero_gates: every fusion gate set to zero after loading (no retraining), so the fused model answers exactly as
    if the branch were absent: the branch's contribution is the difference from the same model with its gates.
    A ValueError for a system without gates."""
    system = _load_system(model, device, dtype, max_source_length=max_source_length,
                          max_prompt_length=max_prompt_length)
    if zero_gates:
        gates = getattr(getattr(system, "model", None), "gates", None)
        if gates is None:
            raise ValueError(f"--zero-gates needs a model with fusion gates; {model} has none "
                             "(no layer-wise fusion: MindMerger, an LLM-only row or a LangBridge-style model)")
        with torch.no_grad():
            gates.zero_()
        system.zero_gates = True
    return system


def _load_system(model: str, device: str | None, dtype: str | None, *, max_source_length: int | None,
                 max_prompt_length: int | None) -> LayAlignSystem | LLMOnlySystem:
    from layalign.pretrained import locate

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model = locate(model)
    overrides = {k: v for k, v in (("max_source_length", max_source_length),
                                   ("max_prompt_length", max_prompt_length)) if v is not None}
    if model.startswith(LLM_ONLY_PREFIX):
        from layalign.backbones.loading import load_llm

        ref = model[len(LLM_ONLY_PREFIX):]
        llm, tokenizer = load_llm(ref, dtype or "float32")
        return LLMOnlySystem(llm.to(device), tokenizer, name=f"LLM only ({Path(ref).name})",
                             max_prompt_length=max_prompt_length or DEFAULT_LENGTHS.max_prompt_length)
    if Path(model).is_dir() and not (Path(model) / CONFIG_NAME).is_file():
        from layalign.training.checkpoint import resolve_model_dir

        model = str(resolve_model_dir(model))  # a training run's output_dir: the model its `select` chose
    if is_lora_directory(model):
        return _lora_system(model, device, dtype, max_prompt_length)
    if (Path(model) / CONFIG_NAME).is_file():
        trained = LayAlignModel.from_pretrained(model, **({"dtype": dtype} if dtype else {})).to(device)
        return _with_lengths(trained, _system_name(trained.config, Path(model).name), overrides)
    if "," in model:
        encoder, llm = (part.strip() for part in model.split(",", 1))
        untrained = LayAlignModel(LayAlignConfig(encoder=encoder, llm=llm, dtype=dtype or "float32")).to(device)
        return _with_lengths(untrained, "LayAlign (untrained)", overrides)
    raise ValueError(f"{model!r} is neither a LayAlign directory (no {CONFIG_NAME}), nor llm:REF, nor ENCODER,LLM")


def _lora_system(directory: str, device: str, dtype: str | None, max_prompt_length: int | None) -> LLMOnlySystem:
    """An llm-lora directory -> the LLM with its LoRA update merged into the weights (a plain transformers model:
    generation and choice scoring take exactly the bare LLM's path), reading the prompt with the training's limit."""
    trained = LLMLoRAModel.from_pretrained(directory, **({"dtype": dtype} if dtype else {}))
    llm = trained.merged_llm().to(device)
    llm.config.bos_token_id = trained.bos_token_id  # what training put first
    name = trained.config.extra.get("name") or f"LLM only + LoRA ({Path(directory).name})"
    limit = max_prompt_length or recorded_lengths(trained.config).max_prompt_length
    return LLMOnlySystem(llm, trained.llm_tokenizer, name=name, max_prompt_length=limit)


def recorded_lengths(config: LayAlignConfig) -> InputLengths:
    """The lengths a model was trained with (`config.extra["lengths"]`), the processor's defaults where none is
    recorded (models saved before training recorded them, untrained pairs)."""
    return InputLengths.from_dict(config.extra.get(LENGTHS_KEY))


def _with_lengths(model: LayAlignModel, name: str, overrides: dict[str, int]) -> LayAlignSystem:
    lengths = recorded_lengths(model.config).as_dict() | overrides
    return LayAlignSystem(model, name=name, processor=LayAlignProcessor.from_model(model, **lengths))


def answer(system: LayAlignSystem | LLMOnlySystem, question: str, task: str = "math", max_new_tokens: int = 128,
           lang: str | None = None, fields: dict[str, str] | None = None) -> str:
    """The system's answer to one question. The encoder reads the question (with `lang`'s source-language tag where
    the encoder has tags); the LLM prompt is the task's template around it (task "none": the question alone).
    `fields` fill a template's other fields (XNLI's hypothesis), as for `single_input`."""
    source, prompt, langs = single_input(question, task, lang, fields)
    return system.generate([source], [prompt], max_new_tokens=max_new_tokens, langs=langs)[0]


def classify(system: LayAlignSystem | LLMOnlySystem, text: str, task: str, lang: str | None = None,
             fields: dict[str, str] | None = None) -> tuple[str, dict[str, float]]:
    """The most likely of a classification task's labels for one text (choice scoring, as `layalign evaluate
    --scoring choices` does), and every label's log-likelihood."""
    from layalign.tasks import get_task

    choices = get_task(task).choices
    if choices is None:
        raise ValueError(f"{task} has no fixed labels to choose from; it is answered by generation")
    source, prompt, langs = single_input(text, task, lang, fields)
    scores = dict(zip(choices, system.score_choices([source], [prompt], list(choices), langs=langs)[0], strict=True))
    return max(choices, key=scores.__getitem__), scores


def single_input(text: str, task: str, lang: str | None = None, fields: dict[str, str] | None = None
                 ) -> tuple[str, str, list[str] | None]:
    """(source, prompt, langs) of one input, as the task's evaluation reader builds them: `text` fills the template's
    first field and `fields` the others; a one-field task's encoder reads the text itself (SIB-200, maths), a
    several-field task's the whole filled prompt (XNLI, X-CSQA). The language as a source-language tag reads it: a
    Flores-200 code (SIB-200's, "hau_Latn") as given, else the ISO 639-1 code."""
    from layalign.data.flores import FLORES_CODE, check_language

    fields = dict(fields or {})
    if not text.strip():
        raise ValueError("the question is empty")
    names = template_fields(get_template(task))
    if names:
        if names[0] in fields:
            raise ValueError(f"the text on the command line is the {task} prompt's {names[0]!r}; give the others")
        fields[names[0]] = text
    if missing := [name for name in names if not str(fields.get(name, "")).strip()]:
        raise ValueError(f"the {task} prompt also needs {', '.join(missing)}: --field {missing[0]}=TEXT")
    prompt = format_prompt(task, **fields)  # an unknown field is an error there
    source = text if len(names) <= 1 else prompt
    if not lang:
        return source, prompt, None
    return source, prompt, [check_language(lang) if FLORES_CODE.fullmatch(lang) else normalize_lang(lang)]


def _system_name(config: LayAlignConfig, directory: str) -> str:
    names = {"layalign": "LayAlign", "mindmerger": "MindMerger", "langbridge": "LangBridge"}
    return config.extra.get("name") or f"{names[config.variant]} ({directory})"
