"""Text encoders behind one small protocol, so the dense miner does not care which runtime embeds.

`torch-*` paths run sentence-transformers (CUDA when present) with weights in fp32, fp16 or bf16; `onnx-*`
paths run an onnxruntime export of the same weights (fp32, or int8-quantised). Which path a run uses is
decided by `negforge.mining.precision` (the parity gate); `build_encoder` makes one from its name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np


class TextEncoder(Protocol):
    """Embeds texts; prompts are prepended by the caller, length sorting is the encoder's own business."""

    dim: int
    backend: str

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        """Return float32 embeddings of shape (len(texts), dim), normalised when the model says so."""
        ...


def length_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Batches of text positions in which every text has the same token count, longest first.

    No batch is padded, so a text's embedding is the one it gets alone, bit for bit (measured on CPU in fp32
    and bf16: padding to a batch neighbour's length moved bf16 embeddings by up to 2e-3), and it never
    depends on which texts share its shard, its batch or the run (faiss#1808 is the same fault in search).
    Padding is also wasted compute. Returns index arrays covering range(len(lengths)) once each.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(-lengths, kind="stable")
    out: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and lengths[order[end]] == lengths[order[start]]:
            end += 1
        out.extend(order[s : min(s + batch_size, end)] for s in range(start, end, batch_size))
        start = end
    return out


def pick_device() -> str:
    """CUDA when torch sees a GPU, else CPU: the same config runs on a laptop and on a GPU node."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


TORCH_DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchEncoder:
    """sentence-transformers SentenceTransformer, on CUDA when available, weights in `dtype` (fp32|fp16|bf16).

    Embeddings come back as float32 whatever the weights' dtype.
    """

    def __init__(
        self,
        model_path: str,
        *,
        max_seq_length: int | None,
        normalize: bool,
        device: str | None = None,
        dtype: str = "fp32",
    ):
        import torch
        from sentence_transformers import SentenceTransformer

        if dtype not in TORCH_DTYPES:
            raise ValueError(f"dtype must be one of {sorted(TORCH_DTYPES)}, got {dtype!r}")
        self.device = device or pick_device()
        self.backend = f"torch-{dtype}"
        self.model = SentenceTransformer(model_path, device=self.device, local_files_only=True)
        if dtype != "fp32":
            self.model.to(getattr(torch, TORCH_DTYPES[dtype]))
        if max_seq_length:
            self.model.max_seq_length = max_seq_length
        self.normalize = normalize
        dim = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        self.dim = int(dim())

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        """Float32 embeddings (len(texts), dim) in input order, batched by exact token count
        (`length_batches`): each text's embedding is independent of the other texts."""
        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        tok = self.model.tokenizer(
            texts, truncation=True, max_length=self.model.max_seq_length, padding=False
        )
        for idx in length_batches([len(x) for x in tok["input_ids"]], batch_size):
            out[idx] = self.model.encode(
                [texts[i] for i in idx],
                batch_size=len(idx),
                convert_to_numpy=True,
                normalize_embeddings=self.normalize,
                show_progress_bar=False,
            )
        return np.ascontiguousarray(out, dtype=np.float32)


def build_encoder(
    path: str,
    model_path: str | Path,
    *,
    max_seq_length: int | None,
    normalize: bool,
    export_dir: str | Path,
) -> TextEncoder:
    """The encoder for a path name from `negforge.mining.precision.PATHS` (e.g. "torch-bf16", "onnx-int8").

    `export_dir` holds ONNX exports (made once per model). Raises ValueError for an unknown path name.
    """
    runtime, _, dtype = path.partition("-")
    if runtime == "torch" and dtype in TORCH_DTYPES:
        return TorchEncoder(str(model_path), max_seq_length=max_seq_length, normalize=normalize, dtype=dtype)
    if runtime == "onnx" and dtype in ("fp32", "int8"):
        from negforge.mining.onnx_encoder import OnnxEncoder

        return OnnxEncoder(
            str(model_path),
            max_seq_length=max_seq_length,
            normalize=normalize,
            export_dir=export_dir,
            quantize=dtype == "int8",
        )
    raise ValueError(f"unknown encoder path {path!r}")
