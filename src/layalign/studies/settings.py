"""What a run of a study's units uses: the study's settings, with a command line's options over them (or the
study's dry-run sizes), recorded in every unit.json with paths relative to the study's root."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from layalign.studies.spec import Study


@dataclass
class Settings:
    """What a run of units uses; recorded in every unit.json (paths relative to the study's root)."""

    steps: int
    stage1_steps: int | None  # None: the translation recipe's own
    dev_size: int | None  # None: each recipe's own
    limit: int  # eval rows per language
    langs: list[str] | None  # None: all the benchmark's
    choice_batch: int
    generate_batch: int
    max_new_tokens: int
    max_source_length: int
    max_prompt_length: int
    llm: str | None  # the untrained system's LLM
    data: str
    recipes: str
    train_settings: list[str] = field(default_factory=list)
    eval_dtype: str = "float32"
    dry_run: bool = False
    study: str = ""
    device: str | None = None  # None: the recipes' own (train) and the CLI's default (evaluate)

    def record(self) -> dict:
        """What unit.json records: every field, less the device where it is the default."""
        out = vars(self).copy()
        if out["device"] is None:
            del out["device"]
        return out


def settings_for(study: Study, dry_run: bool = False, **given) -> Settings:
    """A study's settings: `given` (a command line's options, None = not given), else the study's dry-run sizes when
    `dry_run`, else the study's own."""
    s, dry = study.settings, study.settings["dry"]

    def pick(key: str, study_key: str | None = None):
        if given.get(key) is not None:
            return given[key]
        study_key = study_key or key
        return dry[study_key] if dry_run and study_key in dry else s.get(study_key)

    data = given.get("data") or s["data"]
    return Settings(steps=pick("steps"), stage1_steps=pick("stage1_steps"), dev_size=pick("dev_size"),
                    limit=pick("limit", "rows"), langs=pick("langs", "languages"),
                    choice_batch=given.get("choice_batch") or s["batch"]["choices"],
                    generate_batch=given.get("generate_batch") or s["batch"]["generate"],
                    max_new_tokens=pick("max_new_tokens"), max_source_length=s["max_source_length"],
                    max_prompt_length=s["max_prompt_length"], llm=pick("llm"),
                    data=study.relative(Path(data).resolve()) if os.path.isabs(data) else data,
                    recipes=study.relative(study.recipes), train_settings=list(pick("train_settings") or []),
                    eval_dtype=pick("eval_dtype"), dry_run=dry_run, study=study.name, device=given.get("device"))
