"""Greedy outputs of vLLM (the layalign plugin) against LayAlignModel.generate, token for token.

Used by tests/vllm_plugin/test_vllm_parity.py (adapters randomised by the test, so it runs on a fresh clone) and,
as a script, to write docs/results/vllm-parity.md for a trained directory:

    .ci/venv-vllm/bin/python tests/vllm_plugin/parity.py runs/encoder-dropout/drop-true/final \
        --out docs/results/vllm-parity.md
    .ci/venv-vllm/bin/python tests/vllm_plugin/parity.py layalign-xnli-e5-smollm2 --xnli ../shared/data/xnli/dev

`--random LLM` first writes model_dir: the default encoder and the catalogue's LLM (a name such as
qwen2.5-coder-0.5b-instruct, or a path) with randomised adapters and the gates spread over [-1, 1], as the tests do
on small decoders: parity on a real decoder of another family without training one.

    .ci/venv-vllm/bin/python tests/vllm_plugin/parity.py runs/parity-qwen2 --random qwen2.5-coder-0.5b-instruct \
        --out docs/results/vllm-parity-qwen2.md

`--xnli DIR` takes the requests from XNLI dev instead (the first 2 rows of 9 languages, source and prompt as
`layalign evaluate` builds them): what a model trained on XNLI answers in earnest.

Where float order makes a token differ, the check passes only if the two top logits at the first differing step
were within TOLERANCE of each other on both sides (vLLM's top-2 log-probabilities differ by exactly the logit gap).
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

for name, value in {"HF_HUB_OFFLINE": "1", "VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
                    "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(name, value)

import torch  # noqa: E402

# logit gap under which two top tokens count as tied (float32 logits of order 10: about 1e-5 relative)
TOLERANCE = 1e-3
MAX_NEW_TOKENS = 16

# (language, source the encoder reads, LLM prompt): 9 languages, 2 prompts each = 18 requests
SOURCES = [
    ("de", "Der Hund schläft im Garten."),
    ("fr", "Quelle est la capitale de la France ?"),
    ("es", "¿Cuántos días tiene una semana?"),
    ("zh", "今天天气很好。"),
    ("ru", "Я люблю читать книги."),
    ("ja", "猫は魚が好きです。"),
    ("sw", "Mtoto anacheza mpira."),
    ("th", "ฉันชอบกินข้าว"),
    ("bn", "আমি প্রতিদিন স্কুলে যাই।"),
]
PROMPTS = ["Translate to English:", "Answer:"]
CASES = [(lang, source, prompt) for lang, source in SOURCES for prompt in PROMPTS]


@dataclass
class CaseResult:
    lang: str
    source: str
    prompt: str
    vllm: list[int]
    reference: list[int]
    diverged_at: int | None = None  # first differing step (None: identical)
    gap_vllm: float | None = None  # top-1 minus top-2 logit at that step
    gap_reference: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return self.diverged_at is None

    @property
    def within_tolerance(self) -> bool:
        return self.identical or (self.gap_vllm is not None and self.gap_reference is not None
                                  and max(self.gap_vllm, self.gap_reference) <= TOLERANCE)


def xnli_cases(data: str | Path, per_lang: int = 2) -> list[tuple[str, str, str]]:
    """(language, source, prompt) from XNLI dev, as the xnli task builds them."""
    from layalign.tasks import get_task

    langs = [lang for lang, _ in SOURCES if lang in get_task("xnli").languages]
    langs += [lang for lang in ("ar", "hi", "ur", "vi") if lang not in langs][:len(SOURCES) - len(langs)]
    examples = get_task("xnli").read(data, langs=langs, limit=per_lang)
    return [(lang, ex.source, ex.prompt) for lang in langs for ex in examples[lang]]


def make_llm(vllm_dir: str | Path, dtype: str = "float32", renderer: bool = True):
    """vllm.LLM on an exported directory, eager (no torch.compile: the CPU build compiles for minutes), with the
    plugin's renderer (plain text prompts become source + templated prompt; explicit requests pass through) or,
    `renderer=False`, vLLM's default one."""
    from vllm import LLM

    return LLM(str(vllm_dir), dtype=dtype, max_model_len=1024, enforce_eager=True, seed=0,
               tokenizer_mode="layalign" if renderer else "auto")


def close_llm(llm) -> None:
    del llm
    gc.collect()


def vllm_greedy(llm, cases, max_new_tokens: int = MAX_NEW_TOKENS, plain: bool = False
                ) -> tuple[list[list[int]], list[list[dict]]]:
    """Explicit requests (source + prompt), or with `plain` the text alone, as an OpenAI client sends it (the
    renderer makes it the source and, through the template "{query}", the prompt)."""
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, logprobs=2)
    requests = [source if plain else {"prompt": prompt, "multi_modal_data": {"source": source}}
                for _, source, prompt in cases]
    outputs = llm.generate(requests, params, use_tqdm=False)
    return [list(o.outputs[0].token_ids) for o in outputs], [list(o.outputs[0].logprobs) for o in outputs]


def reference_greedy(model, cases, max_new_tokens: int | list[int] = MAX_NEW_TOKENS, ignore_eos: bool = False
                     ) -> tuple[list[list[int]], list]:
    """LayAlignModel.generate one example at a time (greedy), with the top-2 logits of every step; a list of
    `max_new_tokens` gives each case its own; `ignore_eos` goes on past eos, as vLLM's SamplingParams(ignore_eos)."""
    from layalign import LayAlignProcessor

    processor = LayAlignProcessor.from_model(model, **model.config.extra.get("lengths", {}))
    tokens, scores = [], []
    eos = processor.eos_token_id
    lengths = [max_new_tokens] * len(cases) if isinstance(max_new_tokens, int) else max_new_tokens
    no_stop = {"eos_token_id": None} if ignore_eos else {}
    for (_, source, prompt), length in zip(cases, lengths, strict=True):
        batch = processor([source], prompts=[prompt] if prompt else None)
        out = model.generate(**batch, max_new_tokens=length, do_sample=False, output_scores=True,
                             return_dict_in_generate=True, **no_stop)
        ids = out.sequences[0].tolist()
        if eos in ids and not ignore_eos:  # vLLM stops at eos and returns it; transformers pads after it
            ids = ids[:ids.index(eos) + 1]
        tokens.append(ids)
        scores.append([torch.topk(s[0].float(), 2).values for s in out.scores])  # all compare() reads
    return tokens, scores


def compare(cases, vllm_tokens, vllm_logprobs, ref_tokens, ref_scores) -> list[CaseResult]:
    results = []
    for case, v, v_lp, r, r_sc in zip(cases, vllm_tokens, vllm_logprobs, ref_tokens, ref_scores, strict=True):
        result = CaseResult(*case, vllm=v, reference=r)
        if v != r:
            step = next((i for i, (a, b) in enumerate(zip(v, r)) if a != b), min(len(v), len(r)))
            result.diverged_at = step
            if step < len(v_lp) and v_lp[step]:
                top = sorted((lp.logprob for lp in v_lp[step].values()), reverse=True)
                result.gap_vllm = top[0] - top[1] if len(top) > 1 else None
            if step < len(r_sc):
                top2 = torch.topk(r_sc[step].float(), 2).values
                result.gap_reference = float(top2[0] - top2[1])
        results.append(result)
    return results


def summary_table(results: list[CaseResult], tokenizer) -> str:
    lines = ["| lang | prompt | identical | first diff | top-2 gap vLLM / reference | vLLM output |",
             "|---|---|---|---|---|---|"]
    for r in results:
        text = tokenizer.decode(r.vllm).replace("\n", "\\n").replace("|", "\\|")[:60]
        gap = "" if r.identical else f"{r.gap_vllm:.2e} / {r.gap_reference:.2e}"
        lines.append(f"| {r.lang} | {r.prompt.splitlines()[0][:24]} | {'yes' if r.identical else 'no'} | "
                     f"{'' if r.identical else r.diverged_at} | {gap} | `{text}` |")
    return "\n".join(lines)


def randomised(variant: str, directory, seed: int = 0, **config_fields):
    """A LayAlignModel with randomised adapters and its gates spread over [-1, 1] (well away from zero, both signs,
    so that the fusion branch changes the output), saved in `directory`."""
    from layalign import LayAlignConfig, LayAlignModel
    from layalign.testing import randomize_adapters

    model = LayAlignModel(LayAlignConfig(variant=variant, **config_fields)).eval()
    randomize_adapters(model, scale=0.05, seed=seed)
    if model.gates is not None:
        with torch.no_grad():
            model.gates.copy_(torch.linspace(-1.0, 1.0, model.gates.numel()))
    model.save_pretrained(directory)
    return model


def _main(argv: list[str]) -> int:
    import argparse
    import platform
    import tempfile
    import time

    import vllm

    from layalign import LayAlignModel
    from layalign.integrations.vllm.export import export

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--out", default=None, help="write a markdown report here")
    parser.add_argument("--xnli", default=None, metavar="DIR", help="requests from XNLI dev in DIR instead")
    parser.add_argument("--random", default=None, metavar="LLM",
                        help="write model_dir first: the default encoder + LLM, adapters randomised, gates in [-1, 1]")
    args = parser.parse_args(argv)
    cases = xnli_cases(args.xnli) if args.xnli else CASES
    torch.manual_seed(0)
    model = randomised("layalign", args.model_dir, llm=args.random) if args.random else \
        LayAlignModel.from_pretrained(args.model_dir).eval()
    zero = None
    if model.gates is not None:  # does the fusion branch change anything? the reference with zero gates
        saved = model.gates.detach().clone()
        with torch.no_grad():
            model.gates.zero_()
        zero, _ = reference_greedy(model, cases)
        with torch.no_grad():
            model.gates.copy_(saved)
    ref_tokens, ref_scores = reference_greedy(model, cases)
    with tempfile.TemporaryDirectory() as tmp:
        llm = make_llm(export(args.model_dir, Path(tmp) / "vllm"))
        start = time.perf_counter()
        vllm_tokens, vllm_logprobs = vllm_greedy(llm, cases)
        seconds = time.perf_counter() - start
    results = compare(cases, vllm_tokens, vllm_logprobs, ref_tokens, ref_scores)
    identical = sum(r.identical for r in results)
    ok = all(r.within_tolerance for r in results)
    changed = None if zero is None else sum(z != t for z, t in zip(zero, ref_tokens))
    gates = "none (no fusion)" if model.gates is None else (
        f"{model.gates.numel()} gates, |g| from {model.gates.abs().min():.4f} to {model.gates.abs().max():.4f}")
    report = [
        "# vLLM vs LayAlignModel.generate: greedy parity",
        "",
        f"Command: `.ci/venv-vllm/bin/python tests/vllm_plugin/parity.py {args.model_dir}"
        f"{' --random ' + args.random if args.random else ''}{' --xnli ' + args.xnli if args.xnli else ''}"
        f"{' --out ' + args.out if args.out else ''}`",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU; vLLM {vllm.__version__} (CPU build), "
        f"torch {torch.__version__}; float32; {len(cases)} requests in one vLLM batch ({seconds:.1f} s), the "
        f"reference one example at a time; {MAX_NEW_TOKENS} new tokens at most.",
        f"Model: `{args.model_dir}` (variant {model.config.variant}; {gates}"
        f"{'; adapters randomised, not trained' if args.random else ''}; encoder {model.config.encoder}, LLM "
        f"{model.config.llm}, {model.llm.config.model_type}).",
        "Requests: " + (f"XNLI dev from {args.xnli}, the first 2 rows of {len(cases) // 2} languages, source and "
                        "prompt as `layalign evaluate` builds them." if args.xnli else
                        "one short sentence in 9 languages, with 2 prompts each."),
        "",
        f"**{identical} of {len(results)} identical token for token**; "
        f"{'all' if ok else 'NOT all'} within the tie tolerance {TOLERANCE:g} (top-2 logit gap at the first "
        "differing step, both sides).",
    ]
    if changed is not None:
        report.append(f"With the gates set to zero, the reference output changes for {changed} of {len(cases)} "
                      "requests: the fusion branch is exercised.")
    report += ["", summary_table(results, model.llm_tokenizer), ""]
    text = "\n".join(report)
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
