"""NLLB and M2M100 encoders read every source with its own language's tag. Both tokenizers are built offline: NLLB
from a tiny vocabulary (transformers' tokenizers backend needs no files), M2M100 from a sentencepiece model
trained here on a few lines."""

import io
import json

import pytest

from layalign.model.processing import NLLB_CODES, LayAlignProcessor, encoder_lang_code
from layalign.testing import byte_tokenizer


def nllb_tokenizer():
    from transformers import NllbTokenizer

    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁", *"abcdefghijklmnopqrstuvwxyz"]
    return NllbTokenizer(vocab={p: i for i, p in enumerate(pieces)}, merges=[])


def m2m100_tokenizer(tmp_path):
    import sentencepiece as spm
    from transformers import M2M100Tokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(["habari ya dunia", "hello world", "guten tag"] * 20),
                                   model_writer=model, vocab_size=30, model_type="char", bos_id=-1, eos_id=-1,
                                   unk_id=0, pad_id=-1, minloglevel=2)
    (tmp_path / "spm.model").write_bytes(model.getvalue())
    pieces = spm.SentencePieceProcessor(model_file=str(tmp_path / "spm.model"))
    vocab = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    for i in range(pieces.get_piece_size()):
        vocab.setdefault(pieces.id_to_piece(i), len(vocab))
    (tmp_path / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    return M2M100Tokenizer(str(tmp_path / "vocab.json"), str(tmp_path / "spm.model"), src_lang="en")


def encoder_rows(tokenizer, sources, langs):
    batch = LayAlignProcessor(tokenizer, byte_tokenizer())(sources, langs=langs)
    return [row[mask.bool()].tolist() for row, mask in zip(batch["encoder_input_ids"],
                                                            batch["encoder_attention_mask"], strict=True)]


def test_nllb_sources_carry_their_own_language_tag():
    tok = nllb_tokenizer()
    default = tok.src_lang
    rows = encoder_rows(tok, ["habari", "habari", "hello"], ["sw", "en", "en"])
    assert tok.convert_ids_to_tokens(rows[0][:1]) == ["swh_Latn"]
    assert tok.convert_ids_to_tokens(rows[1][:1]) == ["eng_Latn"]
    assert rows[0][1:] == rows[1][1:] and rows[0] != rows[1]  # the same text, only the tag differs
    assert tok.src_lang == default  # the tokenizer's own tag is restored for its other users
    # without languages, the tokenizer's current tag, for every source
    assert encoder_rows(tok, ["habari"], None)[0] == rows[1]


def test_m2m100_sources_carry_their_own_language_tag(tmp_path):
    tok = m2m100_tokenizer(tmp_path)
    rows = encoder_rows(tok, ["habari", "habari"], ["sw", "de"])
    assert tok.convert_ids_to_tokens([rows[0][0], rows[1][0]]) == ["__sw__", "__de__"]
    assert rows[0][1:] == rows[1][1:]
    with pytest.raises(ValueError, match="no language code 'te'"):  # M2M100 has no Telugu
        encoder_rows(tok, ["habari"], ["te"])
    assert tok.src_lang == "en"


def test_encoders_without_tags_ignore_languages_and_the_codes_are_mapped():
    assert encoder_rows(byte_tokenizer(), ["abc"], ["sw"]) == encoder_rows(byte_tokenizer(), ["abc"], None)
    assert encoder_lang_code(byte_tokenizer(), "sw") is None
    assert encoder_lang_code(nllb_tokenizer(), "sw") == "swh_Latn"
    assert encoder_lang_code(nllb_tokenizer(), "zh") == "zho_Hans"
    assert all(code in nllb_tokenizer().get_vocab() for code in NLLB_CODES.values())  # all real NLLB codes
    with pytest.raises(ValueError, match="no NLLB language code for 'xx'"):
        encoder_lang_code(nllb_tokenizer(), "xx")
    with pytest.raises(ValueError, match="2 languages for 1 sources"):
        LayAlignProcessor(byte_tokenizer(), byte_tokenizer())(["abc"], langs=["sw", "en"])
