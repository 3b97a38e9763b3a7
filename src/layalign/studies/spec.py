"""A study declared in YAML: which systems (each a list of training stages, each a recipe with overrides), how many
seeds each, the benchmark and its rows, the evaluation settings, and how every trained system's learning rate is
chosen. Reading the file checks it and gives one-line errors naming the file and the field.

A study's paths: recipes are found beside the YAML file first, else under the study's root; the root is the nearest
folder above the YAML file that holds a `pyproject.toml` or `.git` (a repository), else the YAML file's own folder.
Every path a study records (commands, unit.json) is written relative to that root, never absolute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STUDIES_DIR = Path("configs") / "studies"  # where a study named by name lives, under the repository root
SCORINGS = ("choices", "generate")
PROTOCOLS = ("lenient", "paper")
# what a study may leave out, and the value it then gets
DEFAULTS: dict[str, Any] = {
    "eval_data": None, "data": "../shared/data", "rows": 200, "languages": None, "eval_dtype": "float32",
    "scorings": ["choices", "generate"], "steps": 300, "stage1_steps": None, "dev_size": None,
    "batch": {"choices": 8, "generate": 16}, "max_new_tokens": 5, "max_source_length": 160,
    "max_prompt_length": 160, "llm": None, "train_settings": [], "finish_lanes": 1, "lr_sweep": None,
    "dry": {"steps": 2, "stage1_steps": 2, "dev_size": 8, "rows": 2, "languages": ["en", "sw"]},
    "title": None, "models": None, "texts": {}, "order": None, "groups": None, "gain_over": None,
    "all_languages": None, "more_seeds": None, "equivalence_margin": None,
}
KNOWN = set(DEFAULTS) | {"name", "benchmark", "systems", "recipes", "work", "results", "report"}


class StudyError(ValueError):
    """A study file that cannot be read as a study: names the file and the field."""


@dataclass(frozen=True)
class Stage:
    name: str  # "translation" or "task"
    recipe: str  # a file under the study's recipes folder
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class LearningRate:
    """How a system's learning rate was chosen: swept on dev (the study's lr_sweep) or fixed with a reason."""

    swept: bool
    reason: str = ""  # why it is fixed (a fixed rate needs one)
    tuned: bool = True  # False: the study says this rate was never tuned for this system
    same_as: str = ""  # an ablation: trains with this system's swept rate, so that it changes one thing only


@dataclass(frozen=True)
class System:
    name: str
    label: str
    stages: tuple[Stage, ...]
    seeds: int = 0
    variant: str | None = None  # what a one-stage recipe's model.variant must say
    learning_rate: LearningRate | None = None  # None for a system that trains nothing

    @property
    def seeded(self) -> bool:
        return bool(self.stages)


@dataclass(frozen=True)
class LRSweep:
    """The same small sweep for every trained system: each value, one seed, `steps` task steps, scored on the first
    `rows` dev rows per language with the study's first scoring."""

    values: tuple[float, ...]
    steps: int
    seed: int = 0
    rows: int = 50
    note: str = ""  # how the grid came to be, when it changed after units ran (the report prints it)


@dataclass(frozen=True)
class Study:
    name: str
    path: Path  # the YAML file
    root: Path  # what recorded paths are relative to
    benchmark: str
    eval_data: str  # relative to the data folder
    systems: dict[str, System]  # the report's order
    order: tuple[str, ...]  # the seeded systems in the order a seed runs them
    recipes: Path
    work: Path
    results: Path
    report: Path
    settings: dict[str, Any] = field(default_factory=dict)  # every other field, defaults filled in
    lr_sweep: LRSweep | None = None

    @property
    def scorings(self) -> tuple[str, ...]:
        return tuple(self.settings["scorings"])

    @property
    def dry_work(self) -> Path:
        return self.work.with_name(self.work.name + "-dry")

    def relative(self, path: str | Path) -> str:
        """`path` as the records write it: relative to the study's root."""
        return relative_path(path, self.root)


@dataclass(frozen=True)
class Unit:
    system: System
    seed: int | None
    learning_rate: float | None = None  # a sweep unit's rate (its seed is the sweep's)
    # the study's `all_languages` unit: no training; the system's best finished seed evaluated on every language of
    # the benchmark, with its gates and with every gate at zero
    all_languages: bool = False

    @property
    def name(self) -> str:
        if self.all_languages:
            return f"{self.system.name}-all-languages"
        if self.learning_rate is not None:
            return f"{self.system.name}-lr{self.learning_rate:g}"
        return self.system.name if self.seed is None else f"{self.system.name}-s{self.seed}"

    @property
    def label(self) -> str:
        if self.all_languages:
            return f"{self.system.label} (best seed, every language)"
        if self.learning_rate is not None:
            return f"{self.system.label} (lr {self.learning_rate:g})"
        return self.system.label if self.seed is None else f"{self.system.label} (seed {self.seed})"

    @property
    def sweep(self) -> bool:
        return self.learning_rate is not None


def relative_path(path: str | Path, root: Path) -> str:
    """A path written relative to `root`; an absolute path of an older record that lies under another checkout is
    cut to its part from the first of runs/, configs/, docs/, src/ (or written as ../shared/... for shared data),
    so that old and new records read alike."""
    path = str(path)
    if not os.path.isabs(path):
        return path
    try:
        return Path(os.path.relpath(path, root)).as_posix() if Path(path).is_relative_to(root) else _cut(path, root)
    except ValueError:
        return path


def _cut(path: str, root: Path) -> str:
    parts = Path(path).parts
    if "shared" in parts:
        return "/".join(("..", *parts[parts.index("shared"):]))
    for top in ("runs", "configs", "docs", "src"):
        if top in parts:
            return "/".join(parts[parts.index(top):])
    return Path(os.path.relpath(path, root)).as_posix()


def find_root(start: Path) -> Path:
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file() or (folder / ".git").exists():
            return folder
    return start


def study_path(name_or_path: str | Path, root: Path | None = None) -> Path:
    """A study's YAML file: a path to one, or a name in configs/studies/ of the repository (`root`, else the one this
    package is checked out in, else the working directory)."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise FileNotFoundError(f"study file {path} does not exist")
        return path.resolve()
    roots = [root] if root else [find_root(Path(__file__).resolve().parent), Path.cwd()]
    for base in roots:
        candidate = base / STUDIES_DIR / f"{name_or_path}.yaml"
        if candidate.is_file():
            return candidate.resolve()
    known = sorted({p.stem for base in roots for p in (base / STUDIES_DIR).glob("*.yaml")})
    raise FileNotFoundError(f"no study named {name_or_path!r} (studies: {', '.join(known) or 'none found'}; or give a "
                            "path to a YAML file)")


def load_study(name_or_path: str | Path) -> Study:
    """Read and check a study file."""
    import yaml

    path = study_path(name_or_path)
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    where = str(path)
    if not isinstance(raw, dict):
        raise StudyError(f"{where}: a study is a mapping of fields, not {type(raw).__name__}")
    if unknown := sorted(set(raw) - KNOWN):
        raise StudyError(f"{where}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(KNOWN))}")
    for required in ("benchmark", "systems"):
        if required not in raw:
            raise StudyError(f"{where}: the field {required!r} is missing")
    from layalign.tasks import TASKS

    if raw["benchmark"] not in TASKS:
        raise StudyError(f"{where}: benchmark {raw['benchmark']!r} is not one of {', '.join(TASKS)}")
    settings = {k: raw.get(k, v) for k, v in DEFAULTS.items()}
    settings["batch"] = DEFAULTS["batch"] | (raw.get("batch") or {})
    settings["dry"] = DEFAULTS["dry"] | (raw.get("dry") or {})
    if bad := [s for s in settings["scorings"] if s not in SCORINGS]:
        raise StudyError(f"{where}: scorings {bad} not among {', '.join(SCORINGS)}")
    root = find_root(path.parent)
    sweep = _sweep(raw.get("lr_sweep"), where)
    systems = {s.name: s for s in (_system(entry, i, where, sweep) for i, entry in enumerate(raw["systems"]))}
    order = tuple(raw.get("order") or [name for name, s in systems.items() if s.seeded])
    if bad := [name for name in order if name not in systems or not systems[name].seeded]:
        raise StudyError(f"{where}: order names {bad}, which are not trained systems of the study")
    for system in systems.values():
        source = system.learning_rate.same_as if system.learning_rate else ""
        target = systems.get(source)
        if source and (target is None or not target.seeded or target.learning_rate.same_as):
            raise StudyError(f"{where}: {system.name} takes the swept rate of {source!r}, which is not a trained "
                             "system that sweeps its own rate")
    _check_groups(settings, systems, where)
    _check_verdict_rules(settings, where)
    best = settings["all_languages"]
    if best is not None and (best not in systems or not systems[best].seeded):
        raise StudyError(f"{where}: all_languages names {best!r}, which is not a trained system of the study")
    name = str(raw.get("name") or path.stem)

    def folder(key: str, default: str) -> Path:
        return _under(root, raw.get(key) or default)

    recipes = Path(raw.get("recipes") or ".")
    recipes = (path.parent / recipes) if (path.parent / recipes).is_dir() else (root / recipes)
    return Study(name=name, path=path, root=root, benchmark=raw["benchmark"],
                 eval_data=settings["eval_data"] or raw["benchmark"], systems=systems, order=order,
                 recipes=recipes.resolve(), work=folder("work", f"runs/studies/{name}"),
                 results=folder("results", f"runs/studies/{name}/units"),
                 report=folder("report", f"runs/studies/{name}/report.md"), settings=settings, lr_sweep=sweep)


def _check_groups(settings: dict, systems: dict[str, System], where: str) -> None:
    """The report's language groups (name -> list of languages, or "rest" once) and the system gains are over."""
    groups = settings["groups"]
    if groups is not None:
        if not isinstance(groups, dict) or not all(
                value == "rest" or isinstance(value, list) and all(isinstance(v, str) for v in value)
                for value in groups.values()):
            raise StudyError(f"{where}: groups maps each group's name to a list of languages, or to 'rest' (the "
                             "study's languages no other group holds)")
        if list(groups.values()).count("rest") > 1:
            raise StudyError(f"{where}: groups has more than one 'rest'")
    base = settings["gain_over"]
    if base is not None and (base not in systems or not systems[base].seeded):
        trained = ", ".join(n for n, s in systems.items() if s.seeded)
        raise StudyError(f"{where}: gain_over {base!r} is not a trained system of the study ({trained})")


def _check_verdict_rules(settings: dict, where: str) -> None:
    """more_seeds: {over: POINTS, seeds: N}, the seeds of a system whose planned seeds spread more than POINTS;
    equivalence_margin: POINTS, within which a pair that does not differ is called no difference."""
    rule = settings["more_seeds"]
    if rule is not None:
        try:
            over, count = float(rule["over"]), int(rule["seeds"])
        except (KeyError, TypeError, ValueError):
            over = count = None
        if over is None or over <= 0 or count < 2 or set(rule) != {"over", "seeds"}:
            raise StudyError(f"{where}: more_seeds is {{over: POINTS, seeds: N}}, e.g. {{over: 2.0, seeds: 5}}: a "
                             "trained system whose planned seeds spread more than POINTS gets N seeds")
        settings["more_seeds"] = {"over": over, "seeds": count}
    margin = settings["equivalence_margin"]
    if margin is not None and (isinstance(margin, bool) or not isinstance(margin, int | float) or margin <= 0):
        raise StudyError(f"{where}: equivalence_margin is a number of points above 0 (e.g. 1.5), not {margin!r}")


def _under(root: Path, path: str) -> Path:
    return (root / path).resolve() if not os.path.isabs(path) else Path(path)


def _sweep(raw: Any, where: str) -> LRSweep | None:
    if raw is None:
        return None
    try:
        return LRSweep(values=tuple(float(v) for v in raw["values"]), steps=int(raw["steps"]),
                       seed=int(raw.get("seed", 0)), rows=int(raw.get("rows", 50)), note=str(raw.get("note", "")))
    except (KeyError, TypeError, ValueError) as err:
        raise StudyError(f"{where}: lr_sweep needs values (a list of rates) and steps, optionally seed, rows and note "
                         f"({err})") from None


def _system(raw: Any, index: int, where: str, sweep: LRSweep | None) -> System:
    if not isinstance(raw, dict) or "name" not in raw:
        raise StudyError(f"{where}: systems[{index}] needs at least a name")
    name = raw["name"]
    stages = []
    for j, stage in enumerate(raw.get("stages") or []):
        if not isinstance(stage, dict) or not {"name", "recipe"} <= set(stage):
            raise StudyError(f"{where}: systems[{index}] ({name}) stages[{j}] needs a name and a recipe")
        stages.append(Stage(stage["name"], stage["recipe"], tuple(stage.get("overrides") or ())))
    rate = None
    if stages:
        policy = raw.get("learning_rate")
        if sweep is None and not (isinstance(policy, dict) and policy.get("reason")):
            raise StudyError(f"{where}: {name} trains, so the study either sweeps its learning rate (lr_sweep) or "
                             "fixes it with a reason (learning_rate: {reason: ...})")
        same_as = str(policy.get("as", "")) if isinstance(policy, dict) else ""
        if sweep is not None and policy and not (same_as and set(policy) == {"as"}):
            raise StudyError(f"{where}: {name} sets learning_rate, but the study sweeps every system's (lr_sweep); "
                             "an ablation may take another system's swept rate (learning_rate: {as: SYSTEM})")
        rate = LearningRate(swept=sweep is not None, reason=(policy or {}).get("reason", ""),
                            tuned=bool((policy or {}).get("tuned", True)), same_as=same_as)
    return System(name=name, label=raw.get("label", name), stages=tuple(stages),
                  seeds=int(raw.get("seeds", 1 if stages else 0)), variant=raw.get("variant"), learning_rate=rate)


def plan(study: Study, seeds: dict[str, int] | None = None) -> list[Unit]:
    """Every unit of `study`: the learning-rate sweep first (when the study sweeps; rate-major), then seed-major (one
    seed of every system before the next seed, so that a partial run already compares every system), the untrained
    systems last. `seeds` overrides a system's number of seeds."""
    counts = {name: (seeds or {}).get(name, s.seeds) for name, s in study.systems.items()}
    units = []
    if study.lr_sweep:  # rate-major: lanes start on different systems, which share no first stage
        units += [Unit(study.systems[name], study.lr_sweep.seed, value) for value in study.lr_sweep.values
                  for name in study.order if not study.systems[name].learning_rate.same_as]
    for seed in range(max((counts[n] for n in study.order), default=0)):
        units += [Unit(study.systems[name], seed) for name in study.order if seed < counts[name]]
    units += [Unit(s, None) for s in study.systems.values() if not s.seeded]
    if name := study.settings["all_languages"]:  # last: it needs every seed of its system
        units.append(Unit(study.systems[name], None, all_languages=True))
    return units


def parse_unit(name: str, study: Study) -> Unit:
    systems = study.systems
    system, sep, seed = name.rpartition("-s")
    if sep and seed.isdigit() and system in systems and systems[system].seeded:
        return Unit(systems[system], int(seed))
    system, sep, rate = name.rpartition("-lr")
    if sep and study.lr_sweep and system in systems and systems[system].seeded:
        for value in study.lr_sweep.values:
            if f"{value:g}" == rate:
                return Unit(systems[system], study.lr_sweep.seed, value)
    if name in systems and not systems[name].seeded:
        return Unit(systems[name], None)
    if (best := study.settings["all_languages"]) and name == f"{best}-all-languages":
        return Unit(systems[best], None, all_languages=True)
    known = ", ".join(f"{s}-sN" if systems[s].seeded else s for s in systems)
    raise ValueError(f"unknown unit {name!r} in the {study.name} study; units are {known}")
