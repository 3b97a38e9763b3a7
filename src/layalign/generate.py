"""`layalign generate`: answer one question from the command line."""

from __future__ import annotations

import argparse
import sys

from layalign.data.prompts import format_prompt
from layalign.systems import load_system


def answer(system, question: str, task: str = "math", max_new_tokens: int = 128) -> str:
    """The system's answer to one question. The encoder reads the question; the LLM prompt is the task's template
    around it (task "none": the question alone)."""
    if not question.strip():
        raise ValueError("the question is empty")
    prompt = format_prompt(task, query=question)
    return system.generate([question], [prompt], max_new_tokens=max_new_tokens)[0]


def cli_generate(args: argparse.Namespace) -> int:
    try:
        system = load_system(args.model, device=args.device)
        text = answer(system, args.question, task=args.task, max_new_tokens=args.max_new_tokens)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"layalign generate: {err}", file=sys.stderr)
        return 2
    lang = f" [{args.lang}]" if args.lang else ""
    print(f"{system.name}{lang}: {text}")
    return 0
