"""Data: record types, prompt templates, readers for training sets and benchmarks, and batching."""

from layalign.data.examples import EvalExample, TrainExample

__all__ = ["EvalExample", "TrainExample"]
