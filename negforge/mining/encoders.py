"""Text encoders behind one small protocol, so the dense miner does not care which runtime embeds.

`torch` runs sentence-transformers as is (CUDA when present); `onnx` runs an onnxruntime export of the
same weights, which is faster on CPU at equal results (cosine to torch > 0.9999).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np


class TextEncoder(Protocol):
    """Embeds texts; prompts are prepended by the caller, length sorting is the encoder's own business."""

    dim: int
    backend: str

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        """Return float32 embeddings of shape (len(texts), dim), normalised when the model says so."""
        ...


def pick_device() -> str:
    """CUDA when torch sees a GPU, else CPU: the same config runs on a laptop and on a GPU node."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchEncoder:
    """sentence-transformers SentenceTransformer, on CUDA when available."""

    backend = "torch"

    def __init__(
        self, model_path: str, *, max_seq_length: int | None, normalize: bool, device: str | None = None
    ):
        from sentence_transformers import SentenceTransformer

        self.device = device or pick_device()
        self.model = SentenceTransformer(model_path, device=self.device, local_files_only=True)
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        self.normalize = normalize
        dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(dim())

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        out = self.model.encode(
            list(texts),
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=self.normalize,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)
