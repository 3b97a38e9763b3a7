"""Shared inputs for the model tests: three examples of different lengths, tokenised by the byte tokenizer."""

import torch

from layalign.testing import byte_tokenizer

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
