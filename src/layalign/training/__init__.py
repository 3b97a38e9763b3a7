"""Two-stage training of the adapters (method notes, "Training recipe"), on one CPU or many GPUs.

    layalign train --config configs/small/translation.yaml            # stage 1: X -> English pairs
    layalign train --config configs/small/xnli-task.yaml              # stage 2: starts from stage 1's best/
    accelerate launch -m layalign train --config ...                  # the same, data-parallel

Modules:
    config       TrainConfig: one stage's recipe, from YAML with `key=value` overrides
    recipe       reader specs of a recipe -> training examples (the table of readers)
    batching     the data order (a pure function of seed and step), micro-batches, texts -> tensors
    loop         `train`: set up, `train_step` until the end, dev evaluation, logs; `cli_train`
    checkpoint   checkpoints (resume exactly), best/ and final/, the model a stage starts from
"""

from layalign.training.batching import Batcher, plan_batches
from layalign.training.checkpoint import load_model, resolve_model_dir
from layalign.training.config import STAGES, TrainConfig, apply_overrides
from layalign.training.loop import NonFiniteLoss, cli_train, dev_perplexity, train
from layalign.training.recipe import READERS, read_examples

__all__ = [
    "READERS",
    "STAGES",
    "Batcher",
    "NonFiniteLoss",
    "TrainConfig",
    "apply_overrides",
    "cli_train",
    "dev_perplexity",
    "load_model",
    "plan_batches",
    "read_examples",
    "resolve_model_dir",
    "train",
]
