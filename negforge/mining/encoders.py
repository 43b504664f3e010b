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

from negforge.mining.batching import length_batches, padded_length


class TextEncoder(Protocol):
    """Embeds texts; prompts are prepended by the caller, length sorting is the encoder's own business."""

    dim: int
    backend: str

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        """Return float32 embeddings of shape (len(texts), dim), normalised when the model says so."""
        ...


#: token bucket of the torch encoder: texts pad to a multiple of 16 tokens (at most 15 padding tokens, a few
#: percent of a 256-token passage), so batches are full even on a small corpus
PAD_BUCKET = 16


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
        d = dim()
        if d is None:
            raise ValueError(f"{model_path}: the model does not state its embedding dimension")
        self.dim = int(d)

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        """Float32 embeddings (len(texts), dim) in input order. Texts are tokenized once (the model's own
        preprocessing: truncation at max_seq_length, its casing), batched by padded length
        (`length_batches` with PAD_BUCKET) and run through the model directly: each text's embedding is
        independent of the other texts."""
        import torch

        texts = list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        pre = getattr(self.model, "preprocess", None) or self.model.tokenize
        feats = pre(texts)
        lengths = feats["attention_mask"].sum(1).tolist()
        cap = self.model.max_seq_length or None
        pad_id = self.model.tokenizer.pad_token_id or 0
        with torch.inference_mode():
            for idx in length_batches(lengths, batch_size, PAD_BUCKET):
                pad = padded_length(int(lengths[idx[0]]), PAD_BUCKET)
                pad = min(pad, cap) if cap else pad
                rows = torch.from_numpy(np.asarray(idx))
                batch = {
                    k: (_to_width(v[rows], pad, pad_id if k == "input_ids" else 0).to(self.device)
                        if torch.is_tensor(v) and v.dim() == 2 else v)
                    for k, v in feats.items()
                }  # fmt: skip
                emb = self.model(batch)["sentence_embedding"].float()
                if self.normalize:
                    emb = torch.nn.functional.normalize(emb, p=2, dim=1)
                out[idx] = emb.cpu().numpy()
        return np.ascontiguousarray(out, dtype=np.float32)


def _to_width(t, width: int, value: int):
    """A (rows, length) tensor cut or right-padded with `value` to (rows, width)."""
    import torch

    if t.shape[1] >= width:
        return t[:, :width]
    return torch.nn.functional.pad(t, (0, width - t.shape[1]), value=value)


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
