"""Imports go one way: a module imports only from its own part of the package or from the parts below it, imports
inside functions included, so that no import circle can hide behind a function-level import."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "layalign"

# The parts of the package from the bottom up, written down once. A part may import itself and the layers below
# its own; parts that share a layer import none of each other. model.config holds the model's settings and file
# names (no torch): the backbones read its dtype names and the shipped models its file name, below the model itself.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("layalign.files", "layalign.model.config", "layalign.allocator"),
    ("layalign.data",),  # readers take what they need as arguments; the registry is read by their callers
    ("layalign.tasks",),
    ("layalign.backbones",),
    ("layalign.pretrained",),  # locating a shipped model: a path lookup
    ("layalign.model",),
    ("layalign.training",),
    ("layalign.systems",),
    ("layalign.evaluation",),  # checking a shipped model's regression is an evaluation (evaluation.regression)
    ("layalign.inspection", "layalign.testing"),
    ("layalign.integrations", "layalign.quickstart", "layalign.studies"),
    ("layalign.cli",),
    ("layalign.__main__", "layalign"),  # "layalign": the package's own __init__ only
)


def part_of(module: str) -> tuple[int, str] | None:
    """(layer, part) of a module: the longest part that is the module or a package holding it."""
    found = [(len(part), layer, part) for layer, parts in enumerate(LAYERS) for part in parts
             if module == part or (part != "layalign" and module.startswith(part + "."))]
    return max(found)[1:] if found else None


def imports(module: str, source: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every layalign import in `source`, at any depth (module level, functions, branches)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, one level up per extra dot
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from layalign.model import fusion` imports the module layalign.model.fusion
            found += [(node.lineno, f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base)
                      for alias in node.names]
    return sorted({(line, name) for line, name in found if name == "layalign" or name.startswith("layalign.")})


def _is_module(name: str) -> bool:
    path = ROOT / "src" / Path(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def package_modules() -> dict[str, tuple[str, bool]]:
    """module name -> (source, is a package) for every module of src/layalign."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT / "src").with_suffix("").parts
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path.read_text(encoding="utf-8"), is_package)
    return out


def violations(modules: dict[str, tuple[str, bool]]) -> list[str]:
    found = []
    for module, (source, is_package) in modules.items():
        here = part_of(module)
        for line, target in imports(module, source, is_package):
            there = part_of(target)
            if here is None or there is None or there[1] == here[1]:
                continue  # the same part; unplaced modules are the other test's
            if there[0] >= here[0]:
                found.append(f"{module} (line {line}) imports {target}: {here[1]} is not above {there[1]}")
    return found


def test_every_module_has_a_place_in_the_layers():
    unplaced = [m for m in package_modules() if part_of(m) is None]
    assert not unplaced, f"add these to LAYERS in {Path(__file__).name}: {unplaced}"


def test_imports_go_down_the_layers_only():
    found = violations(package_modules())
    assert not found, "imports that reach up (or sideways within a layer):\n" + "\n".join(found)


def test_a_function_level_import_that_reaches_up_is_seen():
    reader = ("def read(path):\n    from layalign.tasks import TASKS  # the circle that used to hide here\n"
              "    return TASKS\n")
    located = "from ..model import modeling\n\ndef check():\n    from layalign import evaluation\n"
    assert violations({"layalign.data.toy": (reader, False), "layalign.pretrained": (located, True)}) == [
        "layalign.data.toy (line 2) imports layalign.tasks: layalign.data is not above layalign.tasks",
        "layalign.pretrained (line 1) imports layalign.model.modeling: layalign.pretrained is not above "
        "layalign.model",
        "layalign.pretrained (line 4) imports layalign.evaluation: layalign.pretrained is not above "
        "layalign.evaluation"]
    assert violations({"layalign.tasks": ("from layalign.data.io import PathLike\n", False)}) == []
