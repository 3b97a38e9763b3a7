"""LayAlign: layer-wise fusion of a multilingual encoder into an English-centric LLM."""

from layalign.config import LayAlignConfig
from layalign.modeling import LayAlignModel, LayAlignOutput

__all__ = ["LayAlignConfig", "LayAlignModel", "LayAlignOutput"]
__version__ = "0.1.0"
