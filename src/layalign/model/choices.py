"""Choice scoring: log P(choice | prompt) for every (prompt, choice) of a batch, from one pass over the prompts.

The prompts run once (left-padded, as generation runs them). A choice's first token is scored from the prompt's
last logits. Its later tokens need the LLM to read the choice's earlier tokens after the prompt; all choices do that
together in one short second pass over the prompts' key/value cache:

- **one row per prompt** (the default): the choices' tokens, each choice without its last token (no logits are
  needed after it), stand one after another in the prompt's own row; a block-diagonal causal mask lets each token
  see the prompt and its own choice's earlier tokens only, and each choice's positions start where the prompt ends.
  The cache is read as it is, never copied per choice.
- **one row per (prompt, choice)**: the cache repeated for every choice, each choice in a row of its own. Only for
  LLMs with a sliding attention window shorter than the scored sequence, where one mask cannot serve both the
  windowed and the full layers.

Both give the same numbers up to floating-point rounding (a test checks them against scoring every prompt + choice
in a pass of its own): attention masks out exactly what a separate pass would not see, and positions are the same.
"""

from __future__ import annotations

import inspect

import torch

LAYOUTS = ("auto", "one_row", "per_choice")


def choice_logprobs(llm, prefix: dict[str, torch.Tensor], choices: list[list[int]], greedy: bool = False,
                    layout: str = "auto") -> list[list[float]] | list[list[tuple[float, bool]]]:
    """Sum of log P(choice token | prefix, earlier choice tokens) for every (example, choice): `prefix` holds the
    LLM's keyword arguments for the left-padded prompts (attention_mask and position_ids included). `greedy=True`:
    (sum, whether every choice token is the most likely one at its step) per pair, as lm-evaluation-harness's
    loglikelihood reports it. `layout`: how the second pass lays the choices out (see the module docstring): "auto"
    (one row per prompt unless a sliding window forbids it), or either layout by name (tests, benchmarks)."""
    if not choices or any(not c for c in choices):
        raise ValueError("every choice needs at least one token")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    mask = prefix["attention_mask"]
    out = llm(**prefix, use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V): the choices' first tokens
    firsts = torch.tensor([c[0] for c in choices], device=mask.device)
    scores = first[:, firsts]  # (B, n)
    greedy_so_far = first.argmax(dim=-1, keepdim=True) == firsts
    if max(map(len, choices)) > 1:
        cache = out.cache if hasattr(out, "cache") else out.past_key_values  # renamed in transformers 5.x
        per_choice = _window_matters(llm, mask.shape[1] + sum(len(c) - 1 for c in choices))
        if layout == "per_choice" or (layout == "auto" and per_choice):
            rest, where = _later_tokens_per_choice(llm, mask, cache, choices)
        else:
            rest, where = _later_tokens_in_one_row(llm, mask, cache, choices)
        best = rest.argmax(dim=-1)
        # added one step at a time, in the order a token-by-token sum takes
        for k in range(1, max(map(len, choices))):
            for j, tokens in enumerate(choices):
                if k < len(tokens):
                    row, col = where(j, k - 1)
                    scores[:, j] = scores[:, j] + rest[row, col, tokens[k]]
                    greedy_so_far[:, j] &= best[row, col] == tokens[k]
    if greedy:
        return [list(zip(s, g, strict=True)) for s, g in zip(scores.tolist(), greedy_so_far.tolist(), strict=True)]
    return scores.tolist()


def _later_tokens_in_one_row(llm, mask: torch.Tensor, cache, choices: list[list[int]]):
    """Log-probs (B, T, V) after each fed choice token, all choices in the prompt's row; where(j, k) -> the
    (rows, column) of choice j's token k."""
    batch, width = mask.shape
    fed = [(j, k, tokens[k]) for j, tokens in enumerate(choices) for k in range(len(tokens) - 1)]
    column = {(j, k): c for c, (j, k, _) in enumerate(fed)}
    device = mask.device
    owner = torch.tensor([j for j, _, _ in fed], device=device)
    step = torch.tensor([k for _, k, _ in fed], device=device)
    own = (owner[:, None] == owner[None, :]) & (step[None, :] <= step[:, None])  # (T, T): same choice, not later
    allowed = torch.cat([mask.bool()[:, None, :].expand(-1, len(fed), -1), own.expand(batch, -1, -1)], dim=2)
    dtype = llm.get_input_embeddings().weight.dtype
    bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill_(~allowed, torch.finfo(dtype).min)
    ids = torch.tensor([t for _, _, t in fed], device=device).expand(batch, -1)
    logits = llm(input_ids=ids, attention_mask=bias[:, None], position_ids=mask.sum(dim=1, keepdim=True) + step,
                 use_cache=True, **{_cache_argument(llm): cache}).logits
    rows = torch.arange(batch, device=device)
    return torch.log_softmax(logits.float(), dim=-1), lambda j, k: (rows, column[j, k])


def _later_tokens_per_choice(llm, mask: torch.Tensor, cache, choices: list[list[int]]):
    """Log-probs (B * n, W, V), row i * n + j holding choice j after prompt i (the cache repeated n times); where(j,
    k) -> the (rows, column) of choice j's token k."""
    batch, n, width = mask.shape[0], len(choices), max(map(len, choices)) - 1
    ids = torch.zeros(n, width, dtype=torch.long, device=mask.device)
    choice_mask = torch.zeros(n, width, dtype=mask.dtype, device=mask.device)
    for j, tokens in enumerate(choices):  # right-padded: a choice's own positions never see its padding
        ids[j, : len(tokens) - 1] = torch.tensor(tokens[:-1], device=mask.device)
        choice_mask[j, : len(tokens) - 1] = 1
    cache.batch_repeat_interleave(n)
    start = mask.sum(dim=1).repeat_interleave(n)[:, None]  # the next position after each prompt
    logits = llm(input_ids=ids.repeat(batch, 1), attention_mask=torch.cat(
        [mask.repeat_interleave(n, dim=0), choice_mask.repeat(batch, 1)], dim=1),
        position_ids=start + torch.arange(width, device=mask.device), use_cache=True,
        **{_cache_argument(llm): cache}).logits
    rows = torch.arange(batch, device=mask.device) * n
    return torch.log_softmax(logits.float(), dim=-1), lambda j, k: (rows + j, k)


def _window_matters(llm, length: int) -> bool:
    """Whether some layer of the LLM attends through a sliding window shorter than `length` tokens."""
    config = llm.config
    window = getattr(config, "sliding_window", None)
    if not window or getattr(config, "use_sliding_window", True) is False:
        return False
    layer_types = getattr(config, "layer_types", None)
    if layer_types is not None and "sliding_attention" not in layer_types:
        return False
    return length > window


def _cache_argument(llm) -> str:
    """The forward's name for the key/value cache: `cache` from the transformers release that deprecated
    `past_key_values` (removed in 5.40), `past_key_values` before it."""
    return "cache" if "cache" in inspect.signature(llm.forward).parameters else "past_key_values"
