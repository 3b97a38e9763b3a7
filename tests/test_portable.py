"""Records travel: no tracked file names a path of the machine it was written on, `relative_to_root` writes such
paths relative to the repository root, and a training run's train_config.yaml does so itself."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from layalign.files import relative_to_root
from layalign.training import train
from training_helpers import recipe, save_tiny_pair

ROOT = Path(__file__).resolve().parents[1]
# the prefixes of users' and machines' folders; written in pieces so that this file does not name them itself
MACHINE_PREFIXES = ["/" + name for name in ("work", "root", "home", "Users")] + ["C:" + "\\" + "Users"]
# /tmp/... stays allowed: a scratch path in a usage example or a recorded command names no user and no checkout


def machine_paths() -> list[str]:
    """This checkout, its parent (where ../shared lives), $HOME, and the usual prefixes of users' folders."""
    own = [str(ROOT), str(ROOT.parent), os.path.expanduser("~")]
    # longest first: the alternation then reports the most specific path
    return sorted({p.rstrip("/\\") for p in own if len(p.rstrip("/\\")) > 1} | set(MACHINE_PREFIXES), key=len,
                  reverse=True)


def path_pattern(paths: list[str]) -> re.Pattern:
    # a whole path that begins a token: not inside a longer path or a URL (src/home/x, github.com/work/x), nor
    # the start of a longer name (/workspace)
    return re.compile(r"(?<![\w.~/\\-])(?:" + "|".join(re.escape(p) for p in paths) + r")(?=[/\\]|[^\w.~-]|$)",
                      re.IGNORECASE)


def test_no_tracked_file_names_a_path_of_this_machine():
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    pattern = path_pattern(machine_paths())
    found = []
    for name in listed.stdout.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if b"\0" in data:  # binary: images, safetensors
            continue
        for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{name}:{number}: {line.strip()[:160]}")
    assert not found, ("absolute machine paths (write them relative to the repository root, "
                       "layalign.files.relative_to_root):\n" + "\n".join(found))


def test_the_scan_sees_what_it_must_and_passes_what_it_may():
    pattern = path_pattern(machine_paths())
    for line in (f"data_dir: {ROOT.parent}/shared/data", f"--model {ROOT}/runs/x", f'"{ROOT}"',
                 "output_dir=" + "/" + "home/ann/runs", "C:" + "\\" + "Users\\ann\\data"):
        assert pattern.search(line), line
    for line in ("data_dir: ../shared/data", "--report /tmp/page.md", "src/layalign/pretrained/x",
                 "https://github.com/" + "home/x", "~/.cache/layalign"):
        assert not pattern.search(line), line


def test_relative_to_root_rewrites_paths_under_the_root_and_its_parent():
    root = Path("/srv/repo")
    command = ("layalign train --config /srv/repo/configs/a.yaml data_dir=/srv/shared/data output_dir=/srv/repo/runs/x "
               "init_from=/srv/repo --out '/srv/repo/runs/a b' /srv/repo-old/x /opt/repo/x /tmp/y")
    assert relative_to_root(command, root) == (
        "layalign train --config configs/a.yaml data_dir=../shared/data output_dir=runs/x init_from=. "
        "--out 'runs/a b' ../repo-old/x /opt/repo/x /tmp/y")
    record = {"model_dir": "/srv/repo/runs/x/best", "steps": 300, "seeds": [0, 1], "path": Path("/srv/repo/runs"),
              "/srv/repo/key": "/srv", "nested": [{"data": "/srv/shared/data"}, ("/srv/repo/c",)], "none": None}
    assert relative_to_root(record, root) == {
        "model_dir": "runs/x/best", "steps": 300, "seeds": [0, 1], "path": Path("runs"), "/srv/repo/key": "..",
        "nested": [{"data": "../shared/data"}, ("c",)], "none": None}
    # under the file system's root the parent is "/": only the root's own paths are rewritten
    assert relative_to_root("/repo/runs/x /etc/y", Path("/repo")) == "runs/x /etc/y"
    assert relative_to_root("runs/x ../shared/data", root) == "runs/x ../shared/data"


def test_a_training_run_records_its_paths_relative_to_the_current_directory(tmp_path, monkeypatch):
    pair = save_tiny_pair(tmp_path / "pair")
    monkeypatch.chdir(tmp_path)
    config = recipe(pair, tmp_path / "runs" / "stage", max_steps=1)
    train(config)
    text = (tmp_path / "runs" / "stage" / "train_config.yaml").read_text(encoding="utf-8")
    assert str(tmp_path) not in text
    recorded = yaml.safe_load(text)
    assert recorded["output_dir"] == "runs/stage"
    assert recorded["model"] == {"encoder": "pair/encoder", "llm": "pair/llm"}
    # read from the repository root (here: the current directory), the record names the same folders
    assert (tmp_path / recorded["output_dir"]).resolve() == Path(config.output_dir).resolve()
    assert (tmp_path / recorded["data_dir"]).resolve() == Path(config.data_dir).resolve()


def test_a_shipped_models_card_names_paths_relative_to_the_repository(tmp_path):
    """scripts/ship_model.py's card, from a committed unit whose record names this checkout's absolute paths (as an
    older runner wrote them): the card (it ships in the wheel) names them relative to the repository root."""
    import importlib.util
    import json
    import shutil

    script = ROOT / "scripts" / "ship_model.py"
    spec = importlib.util.spec_from_file_location("ship_model", script)
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    unit = tmp_path / "layalign-s2"
    shutil.copytree(ROOT / "docs" / "results" / "comparison" / "units" / "layalign-s2", unit)
    config = unit / "train" / "task" / "train_config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("data_dir: ../shared/data",
                                                                 f"data_dir: {ROOT.parent}/shared/data"))
    record = json.loads((unit / "unit.json").read_text(encoding="utf-8"))
    record["model_dir"] = f"{ROOT}/{record['model_dir']}"
    record["settings"] |= {"data": f"{ROOT.parent}/shared/data", "recipes": f"{ROOT}/configs/reproduction"}
    record["commands"][0]["command"] += f" init_from={ROOT}/runs/x"
    card = ship.build_card("a-name", unit, record, ship.dev_scores(unit), {"layalign-s2": 45.9})
    text = json.dumps(card)
    assert str(ROOT.parent) not in text
    assert (card["settings"]["data"], card["settings"]["recipes"]) == ("../shared/data", "configs/reproduction")
    assert card["commands"][0]["command"].endswith(" init_from=runs/x")
    assert "data_dir: ../shared/data\n" in card["train"]["task"]["config"]
    assert card["dev"] == ship.dev_scores(unit)  # the numbers as the unit recorded them
