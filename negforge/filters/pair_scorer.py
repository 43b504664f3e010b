"""Cross-encoder scoring for the `cross_encoder` and `nli` filters, in the precision the parity gate allows.

All pairs of a shard go through one sentence-transformers `CrossEncoder.predict` call: it sorts every pair by
length across queries, tokenises each pair once and fills every batch, so padding and half-empty batches are
gone (a per-query loop pads each query's pairs to its own longest and leaves a short last batch). On CPU with
length-capped passages that alone is worth little (1.1x measured on SciFact); the rest of the gain is
precision: weights in bf16 on CPUs with AVX512-BF16/AMX, fp16 on CUDA, each only after the parity gate
(`negforge.mining.precision`) accepted it for this model on this machine. The gate for pair scores compares
the raw logits with fp32's on a seeded sample of the first pairs scored: Pearson correlation ≥ 0.999 and
mean absolute change of the probability (sigmoid for one output, softmax for several) ≤ 0.005.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from negforge.mining.fingerprint import model_fingerprint, resolve_model_path
from negforge.mining.precision import BackendChoice, cuda_device_name, gate_sample, resolve_backend

MIN_CORRELATION = 0.999
MAX_MEAN_PROB_DIFF = 0.005
TORCH_PATHS = ("torch-fp32", "torch-fp16", "torch-bf16")


def _probabilities(logits: np.ndarray) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    if x.ndim == 1:
        return 1.0 / (1.0 + np.exp(-x))
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def score_parity(
    min_correlation: float = MIN_CORRELATION, max_mean_prob_diff: float = MAX_MEAN_PROB_DIFF
) -> Callable[[np.ndarray, np.ndarray], tuple[bool, dict[str, float]]]:
    """The pair-scorer gate: logits (n,) or (n, labels) against fp32's on the same pairs."""

    def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[bool, dict[str, float]]:
        ref, cand = np.asarray(reference, np.float64).ravel(), np.asarray(candidate, np.float64).ravel()
        if ref.std() == 0 or cand.std() == 0:
            corr = 1.0 if np.allclose(ref, cand) else 0.0
        else:
            corr = float(np.corrcoef(ref, cand)[0, 1])
        diff = float(np.abs(_probabilities(reference) - _probabilities(candidate)).mean())
        metrics = {"correlation": round(corr, 6), "mean_abs_prob_diff": round(diff, 6)}
        return corr >= min_correlation and diff <= max_mean_prob_diff, metrics

    compare.thresholds = {"min_correlation": min_correlation, "max_mean_prob_diff": max_mean_prob_diff}  # type: ignore[attr-defined]
    return compare


def load_cross_encoder(model: str, num_labels: int | None, max_length: int | None, device: str | None):
    """A sentence-transformers CrossEncoder from a local folder or hub id (offline: the hub is not asked)."""
    from sentence_transformers import CrossEncoder

    path = resolve_model_path(model)
    return CrossEncoder(str(path), max_length=max_length, device=device, num_labels=num_labels), path


def scorer_key(fc: Any) -> str:
    """What makes two filters' scorers interchangeable: model, max_length, device and batch size of a
    cross-encoder or NLI filter config (precision aside: a shared scorer runs in the path it resolved)."""
    return f"{fc.model}|max_length={fc.max_length}|device={fc.device}|batch_size={fc.batch_size}"


class PairScorer:
    """One CrossEncoder, scoring (text_a, text_b) pairs in the precision its `backend` resolves to.

    `backend`: "auto" (gate on the first ≥64 distinct pairs given to `resolve` or scored: a run's driver
    resolves it on the (query, positive) pairs, see negforge.precision_pin; verdict cached under
    `<cache_root>/parity/`; without a cache_root, fp32), "torch" / "torch-fp32" (exact), "torch-bf16",
    "torch-fp16" (forced, no gate). `logits(pairs)` returns raw outputs, float32 of shape (n,) for a
    one-output model or (n, labels). Raises ValueError for a backend this scorer cannot run (ONNX paths).
    """

    def __init__(
        self,
        model: str,
        *,
        max_length: int | None,
        device: str | None,
        batch_size: int,
        backend: str = "auto",
        cache_root: str | Path | None = None,
    ) -> None:
        self.model, self.model_path = load_cross_encoder(model, None, max_length, device)
        self.fingerprint = model_fingerprint(self.model_path)
        self.max_length, self.device, self.batch_size = max_length, device, batch_size
        self.backend, self.cache_root = backend, cache_root
        self.choice: BackendChoice | None = None
        self._lock = threading.Lock()
        if backend not in ("auto", "torch", *TORCH_PATHS):
            raise ValueError(f"cross-encoder backend {backend!r}: choose auto, torch or one of {TORCH_PATHS}")
        if backend != "auto" or cache_root is None:
            path = "torch-fp32" if backend in ("auto", "torch") else backend
            reason = "no cache_dir for the gate's verdict: fp32" if backend == "auto" else "set in the config"
            self._use(BackendChoice(requested=backend, path=path, reason=reason))

    @property
    def num_labels(self) -> int:
        return int(self.model.num_labels)

    @property
    def config(self) -> Any:
        return self.model.config

    def _use(self, choice: BackendChoice) -> None:
        import torch

        self.choice = choice
        dtype = {"torch-fp16": torch.float16, "torch-bf16": torch.bfloat16}.get(choice.path)
        if dtype is not None:
            self.model.to(dtype)

    def _predict(self, model: Any, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        import torch

        out = model.predict(
            list(pairs),
            batch_size=self.batch_size,
            activation_fn=torch.nn.Identity(),
            apply_softmax=False,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(out, dtype=np.float32)

    def _runner(self, path: str) -> Callable[[list], np.ndarray]:
        import torch

        if path == "torch-fp32":
            return lambda pairs: self._predict(self.model, pairs)
        model, _ = load_cross_encoder(str(self.model_path), None, self.max_length, self.device)
        model.to({"torch-fp16": torch.float16, "torch-bf16": torch.bfloat16}[path])
        return lambda pairs: self._predict(model, pairs)

    def resolve(self, pairs: Sequence[tuple[str, str]]) -> BackendChoice:
        """Decide the precision once, on a seeded sample of `pairs` (the gate runs or its verdict is read)."""
        with self._lock:  # shard threads share one scorer: one gate, and no cast while another thread scores
            return self._resolve(pairs)

    def _resolve(self, pairs: Sequence[tuple[str, str]]) -> BackendChoice:
        if self.choice is None:
            # an explicit CPU device on a GPU machine must not take the GPU's fp16 verdict
            on_cpu = self.device == "cpu" or (self.device is None and cuda_device_name() is None)
            allowed = ("torch-fp32", "torch-bf16") if on_cpu else TORCH_PATHS
            choice = resolve_backend(
                "auto",
                cache_root=self.cache_root or ".",
                model_fingerprint=self.fingerprint,
                settings={"kind": "cross_encoder", "max_length": self.max_length, "device": self.device},
                sample=lambda: gate_sample([tuple(p) for p in pairs]),
                make_runner=self._runner,
                allowed=allowed,
                compare=score_parity(),
            )
            self._use(choice)
        assert self.choice is not None
        return self.choice

    def logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """Raw outputs for `pairs`, batched across everything given (see the module docstring)."""
        if not pairs:
            return np.zeros((0,) if self.num_labels == 1 else (0, self.num_labels), dtype=np.float32)
        self.resolve(pairs)
        return self._predict(self.model, pairs)

    def describe(self) -> dict[str, Any]:
        """For the manifest: the model's fingerprint and the precision used (with the gate's figures)."""
        c = self.choice
        return {
            "model_fingerprint": self.fingerprint,
            "backend": c.path if c else "not decided (nothing scored)",
            "backend_choice": c.as_dict() if c else None,
        }
