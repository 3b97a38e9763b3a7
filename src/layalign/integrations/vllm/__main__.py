"""python -m layalign.integrations.vllm export DIR [--out OUT]: write the vLLM directory of a trained model."""

from __future__ import annotations

import argparse

from layalign.integrations.vllm.export import export


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m layalign.integrations.vllm")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("export", help="write the directory vLLM loads for a trained LayAlign directory")
    cmd.add_argument("model_dir")
    cmd.add_argument("--out", default=None, help="default: MODEL_DIR/vllm")
    args = parser.parse_args(argv)
    print(export(args.model_dir, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
