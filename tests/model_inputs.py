"""Shared inputs and checks for the model tests: three examples of different lengths, tokenised by the byte
tokenizer, and the zero-gates identity every dtype and family must keep."""

import torch

from layalign.testing import byte_tokenizer, randomize_adapters

TOK = byte_tokenizer()

SOURCES = ["Bata wa Janet hutaga mayai 16 kila siku.", "珍妮特的鸭子每天下 16 颗蛋。", "Hallo"]
PROMPTS = ["Question: how many eggs?\nAnswer:", "Q: eggs?\nA:", "Say hi:"]
TARGETS = ["16 eggs.", "sixteen", "hi there"]


def batch(sources=SOURCES, prompts=PROMPTS, targets=TARGETS, pad_extra=0):
    enc = TOK(sources, padding=True, return_tensors="pt")
    out = {"encoder_input_ids": enc.input_ids, "encoder_attention_mask": enc.attention_mask}
    if pad_extra:  # more padding than the batch needs
        for key in list(out):
            out[key] = torch.nn.functional.pad(out[key], (0, pad_extra))
    if prompts is not None:
        p = TOK(prompts, padding=True, return_tensors="pt", add_special_tokens=False)
        out.update(prompt_input_ids=p.input_ids, prompt_attention_mask=p.attention_mask)
    if targets is not None:
        t = TOK(targets, padding=True, return_tensors="pt", add_special_tokens=False)
        out.update(labels=t.input_ids, labels_attention_mask=t.attention_mask)
    return out


def without_labels(inputs):
    return {k: v for k, v in inputs.items() if not k.startswith("labels")}


def pick(inputs, i):
    """Example i alone, with its own padding removed."""
    out = {}
    for prefix in ("encoder_", "prompt_", "labels"):
        ids_key = next(k for k in inputs if k.startswith(prefix) and not k.endswith("attention_mask"))
        mask_key = next(k for k in inputs if k.startswith(prefix) and k.endswith("attention_mask"))
        keep = inputs[mask_key][i].bool()
        out[ids_key] = inputs[ids_key][i][keep][None]
        out[mask_key] = inputs[mask_key][i][keep][None]
    return out


def assert_zero_gates_leave_the_llm_unchanged(model) -> torch.Tensor:
    """With every gate at zero (adapters otherwise random), the model's logits and greedy tokens equal the bare
    LLM's on the same assembled input, bit for bit; returns the model's logits for further checks."""
    import copy

    bare = copy.deepcopy(model.llm)
    bare.config._attn_implementation = "sdpa"
    randomize_adapters(model)
    with torch.no_grad():
        model.gates.zero_()
    inputs = batch()
    states, final = model.encode(inputs["encoder_input_ids"], inputs["encoder_attention_mask"])
    llm_in = model.build_inputs(final, inputs["encoder_attention_mask"], inputs["prompt_input_ids"],
                                inputs["prompt_attention_mask"])
    with torch.no_grad():
        ours = model(**without_labels(inputs)).logits
        theirs = bare(inputs_embeds=llm_in.embeds, attention_mask=llm_in.attention_mask,
                      position_ids=llm_in.position_ids).logits
    assert torch.equal(ours, theirs)

    generated = model.generate(**without_labels(inputs), max_new_tokens=6, do_sample=False)
    reference = bare.generate(inputs_embeds=llm_in.embeds, attention_mask=llm_in.attention_mask, max_new_tokens=6,
                              do_sample=False, pad_token_id=0)
    assert torch.equal(generated, reference)
    return ours
