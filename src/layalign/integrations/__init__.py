"""Bridges from this library's models to other evaluation tools.

`layalign.integrations.lm_eval`: every model `layalign.systems.load_system` loads (LayAlign / MindMerger /
LangBridge directories, llm-lora directories, the bare LLM as `llm:REF`) as the lm-evaluation-harness model
"layalign", with task YAMLs for MGSM, MSVAMP, XNLI and X-CSQA in `lm_eval_tasks/` (see docs/lm-eval.md). It needs
the optional extra: `pip install -e ".[lmeval]"`.
"""
