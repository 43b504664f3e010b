"""Train a bi-encoder on a negforge dataset and measure it on a BEIR split: the proof that the negatives help.

Library code only (no Prefect): `train.train` fine-tunes, `evaluate.evaluate` scores, `checkpoint` records
what a checkpoint is and what it was trained on.
"""

from negforge.training.checkpoint import CHECKPOINT_FILE, checkpoint_fingerprint, read_checkpoint_info
from negforge.training.evaluate import EvalResult, compare_table, evaluate
from negforge.training.train import TrainConfig, TrainResult, train

__all__ = [
    "CHECKPOINT_FILE",
    "EvalResult",
    "TrainConfig",
    "TrainResult",
    "checkpoint_fingerprint",
    "compare_table",
    "evaluate",
    "read_checkpoint_info",
    "train",
]
