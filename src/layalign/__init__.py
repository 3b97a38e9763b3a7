"""LayAlign: layer-wise fusion of a multilingual encoder into an English-centric LLM."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["LayAlignConfig", "LayAlignModel", "LayAlignOutput", "LayAlignProcessor"]
__version__ = "0.1.0"

# Lazy: `layalign models list` should not pay for importing torch and transformers.
_HOMES = {"LayAlignConfig": "layalign.model.config", "LayAlignModel": "layalign.model.modeling",
          "LayAlignOutput": "layalign.model.modeling", "LayAlignProcessor": "layalign.model.processing"}

if TYPE_CHECKING:
    from layalign.model.config import LayAlignConfig
    from layalign.model.modeling import LayAlignModel, LayAlignOutput
    from layalign.model.processing import LayAlignProcessor


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'layalign' has no attribute {name!r}")
