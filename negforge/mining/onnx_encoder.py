"""onnxruntime encoder for sentence-transformers folders, exported by us with `torch.onnx.export`.

Why not optimum: it does not work with transformers 5. Results equal sentence-transformers (cosine > 0.9999).
Speed: fp32 MiniLM on 2 CPU cores measured on par with torch (both are GEMM bound, ~24 texts/s on SciFact
abstracts), so pick this backend for deployment reasons (no torch at inference, CUDA EP), not for CPU speed.
The int8 copy (`quantize=True`) ran 2.1x fp32 on the Zen 4 CPU here but at mean cosine 0.9947 to fp32 on
MiniLM, so the parity gate (negforge.mining.precision) refuses it there; it is tried wherever VNNI exists.

Only the HF transformer goes into the graph (output `last_hidden_state`); pooling and normalisation run in
numpy, so one export serves every pooling config. The module list must be Transformer, Pooling and
optionally Normalize: anything else (Dense, LayerNorm, ...) raises instead of silently embedding wrong.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from negforge.mining.batching import length_batches

logger = logging.getLogger(__name__)

#: Bump when the export recipe changes, so stale exports in a shared export_dir are not reused.
EXPORT_VERSION = 1
ONNX_OPSET = 17
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "lasttoken")
# Legacy sentence-transformers pooling flags, in the order it concatenates their outputs.
_LEGACY_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_INPUT_ORDER = ("input_ids", "attention_mask", "token_type_ids")
# Texts of different lengths: the export trace must see padding, else the mask path is constant-folded.
_TRACE_TEXTS = ("a short text", "a somewhat longer text, so that the traced batch contains padding")
_CHECK_TEXTS = ("one", "three words here", "and a fourth text that is longer than the three others are")


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as f:
        return json.load(f)


def _module_kind(type_name: str) -> str:
    """Last component of a sentence-transformers module type, stable across its module reshuffles."""
    return type_name.rsplit(".", 1)[-1]


def _pooling_modes(config: dict[str, Any]) -> tuple[str, ...]:
    """Pooling modes from either config format (new `pooling_mode`, or legacy `pooling_mode_*` flags)."""
    if "pooling_mode" in config:
        mode = config["pooling_mode"]
        modes = (mode,) if isinstance(mode, str) else tuple(mode)
    else:
        modes = tuple(name for key, name in _LEGACY_POOLING_KEYS.items() if config.get(key))
    if not modes:
        raise ValueError(f"no pooling mode set in pooling config {config}")
    unsupported = [m for m in modes if m not in POOLING_MODES]
    if unsupported:
        raise NotImplementedError(f"pooling mode(s) {unsupported} not supported; supported: {POOLING_MODES}")
    if config.get("include_prompt") is False:
        raise NotImplementedError("include_prompt=False pooling is not supported (prompt length is unknown)")
    return modes


def _available_threads() -> int:
    """CPUs this process may run on (cgroup/affinity aware where the OS says so), else os.cpu_count()."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def pool(hidden: np.ndarray, mask: np.ndarray, modes: Sequence[str]) -> np.ndarray:
    """sentence-transformers pooling on numpy: `hidden` (b, s, h) float32, `mask` (b, s) 0/1.

    Several modes are concatenated in the given order, as sentence-transformers does.
    """
    maskf = mask.astype(np.float32)[..., None]
    out: list[np.ndarray] = []
    for mode in modes:
        if mode == "cls":
            # First real token, which is position 0 unless the tokenizer pads on the left.
            first = mask.argmax(axis=1)
            out.append(hidden[np.arange(hidden.shape[0]), first])
        elif mode == "max":
            out.append(np.where(maskf > 0, hidden, -np.inf).max(axis=1))
        elif mode in ("mean", "mean_sqrt_len_tokens"):
            summed = (hidden * maskf).sum(axis=1)
            count = np.maximum(maskf.sum(axis=1), 1e-9)
            out.append(summed / (count if mode == "mean" else np.sqrt(count)))
        elif mode == "lasttoken":
            # Last real token, whichever side the padding is on.
            seq_len = mask.shape[1]
            last = seq_len - 1 - mask[:, ::-1].argmax(axis=1)
            out.append(hidden[np.arange(hidden.shape[0]), last])
        else:
            raise NotImplementedError(f"pooling mode {mode!r}")
    return np.concatenate(out, axis=1) if len(out) > 1 else out[0]


class OnnxEncoder:
    """A sentence-transformers model run by onnxruntime (CUDA when available, else CPU).

    Implements `negforge.mining.encoders.TextEncoder`. The export is made once per model into `export_dir`
    and reused afterwards (file name keyed on the model's config and weights, and on `optimize`).
    `optimize=True` also fuses attention/layernorm/gelu with onnxruntime's transformer optimizer.
    `quantize=True` runs an int8 copy of the export: weights quantised per output channel, activations per
    batch (onnxruntime `quantize_dynamic`); fast where the CPU has VNNI, and lossy: `backend: auto` uses it
    only when it passes the parity gate (negforge.mining.precision).
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_seq_length: int | None,
        normalize: bool,
        export_dir: str | Path,
        optimize: bool = False,
        quantize: bool = False,
    ) -> None:
        self.optimize = optimize
        self.backend = "onnx-int8" if quantize else "onnx-fp32"
        self.model_path = Path(model_path)
        modules = _read_json(self.model_path / "modules.json")
        kinds = [_module_kind(m["type"]) for m in modules]
        if not kinds or kinds[0] != "Transformer" or "Pooling" not in kinds:
            raise NotImplementedError(f"expected Transformer + Pooling modules, got {kinds}")
        unsupported = [k for k in kinds if k not in ("Transformer", "Pooling", "Normalize")]
        if unsupported:
            raise NotImplementedError(f"sentence-transformers module(s) {unsupported} are not supported")
        if kinds.index("Pooling") != 1:
            raise NotImplementedError(f"Pooling must directly follow Transformer, got {kinds}")
        self.transformer_dir = self.model_path / modules[0].get("path", "")
        pooling_entry = modules[1]
        # Normalize is a module in the folder: the model's embeddings are unit length by definition.
        self.normalize = bool(normalize) or "Normalize" in kinds

        st_config_path = self.transformer_dir / "sentence_bert_config.json"
        st_config = _read_json(st_config_path) if st_config_path.exists() else {}
        self.pooling_modes = _pooling_modes(
            _read_json(self.model_path / pooling_entry["path"] / "config.json")
        )

        from transformers import AutoConfig, AutoTokenizer

        self.config = AutoConfig.from_pretrained(self.transformer_dir, local_files_only=True)
        self.tokenizer = AutoTokenizer.from_pretrained(
            self.transformer_dir, local_files_only=True, use_fast=True
        )
        if not self.tokenizer.is_fast:
            raise NotImplementedError("a fast tokenizer is required")
        self.lowercase = bool(st_config.get("do_lower_case", False))
        self.max_seq_length = max_seq_length or self._default_max_seq_length(st_config)
        self.dim = int(self.config.hidden_size) * len(self.pooling_modes)

        self.export_dir = Path(export_dir)
        self.onnx_path = self.export_dir / f"{self._export_name()}.onnx"
        if not self.onnx_path.exists():
            self._export()
        run_path = self.onnx_path
        if quantize:
            run_path = self.onnx_path.with_name(f"{self.onnx_path.stem}-int8.onnx")
            if not run_path.exists():
                self._quantize(run_path)

        import onnxruntime as ort

        self.providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"]
            if "CUDAExecutionProvider" in ort.get_available_providers()
            else ["CPUExecutionProvider"]
        )
        options = ort.SessionOptions()
        options.intra_op_num_threads = _available_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(run_path), options, providers=self.providers)
        self.input_names = [i.name for i in self.session.get_inputs()]

    # -- setup ----------------------------------------------------------------------------------------------

    def _default_max_seq_length(self, st_config: dict[str, Any]) -> int:
        """sentence-transformers' rule: its config, else the tokenizer's limit capped at the position table."""
        if st_config.get("max_seq_length"):
            return int(st_config["max_seq_length"])
        limit = int(self.tokenizer.model_max_length)
        positions = getattr(self.config, "max_position_embeddings", -1)
        return min(limit, int(positions)) if positions and positions > 0 else limit

    def _export_name(self) -> str:
        """Model-specific name, so several models (or an updated checkpoint) can share one export_dir."""
        digest = hashlib.sha256(f"v{EXPORT_VERSION} opset{ONNX_OPSET} fused{self.optimize}".encode())
        digest.update(str(self.transformer_dir.resolve()).encode())
        for path in sorted(self.transformer_dir.iterdir()):
            if path.is_file() and (path.suffix in (".safetensors", ".bin") or path.name == "config.json"):
                stat = path.stat()
                digest.update(f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}".encode())
        return f"{self.transformer_dir.resolve().name}-{digest.hexdigest()[:16]}"

    def _export(self) -> None:
        """Trace the HF transformer to ONNX; write to a temp file in export_dir and rename it into place.

        The legacy TorchScript exporter is used: the dynamo one needs onnxscript and is slower to run.
        Eager attention gives the plain MatMul/Softmax graph that onnxruntime knows how to fuse.
        """
        import torch
        from transformers import AutoModel

        model = AutoModel.from_pretrained(
            self.transformer_dir, local_files_only=True, attn_implementation="eager", dtype=torch.float32
        ).eval()
        accepted = set(inspect.signature(model.forward).parameters)
        names = [n for n in _INPUT_ORDER if n in self.tokenizer.model_input_names and n in accepted]

        class _LastHiddenState(torch.nn.Module):
            def __init__(self, inner: torch.nn.Module) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, *args: torch.Tensor) -> torch.Tensor:
                return self.inner(**dict(zip(names, args, strict=True))).last_hidden_state

        wrapper = _LastHiddenState(model)
        trace = self.tokenizer(list(_TRACE_TEXTS), padding=True, return_tensors="pt")
        if bool(trace["attention_mask"].all()):
            raise RuntimeError("export trace batch has no padding; the attention mask would be folded away")
        dynamic = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
        # Reference computed before exporting: the export can leave the model in training mode (dropout on).
        check = self.tokenizer(list(_CHECK_TEXTS), padding=True, return_tensors="pt")
        with torch.no_grad():
            expected = (check, wrapper(*(check[n] for n in names)).numpy())

        self.export_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.export_dir, prefix=f".{self.onnx_path.stem}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapper,
                    tuple(trace[n] for n in names),
                    str(tmp),
                    input_names=names,
                    output_names=["last_hidden_state"],
                    dynamic_axes=dynamic,
                    opset_version=ONNX_OPSET,
                    do_constant_folding=True,
                    dynamo=False,
                )
            self._check_export(tmp, names, expected)
            if self.optimize:
                self._fuse(tmp, names, expected)
            os.replace(tmp, self.onnx_path)
        finally:
            tmp.unlink(missing_ok=True)

    def _fuse(self, path: Path, names: list[str], expected: tuple[Any, np.ndarray]) -> None:
        """Fuse attention, skip-layernorm and bias-gelu in place with onnxruntime's transformer optimizer.

        onnxruntime's own session-time passes do not fuse attention in this graph; the offline optimizer does.
        Off by default: on the 2-core CPU it measured was no faster (GEMMs dominate), it may help on CUDA.
        opt_level=1 only applies provider-independent rewrites, so the file runs on CPU and CUDA alike.
        Kept only when the fused graph still matches torch; otherwise the plain export is used.
        """
        from onnxruntime.transformers.optimizer import optimize_model

        fused = path.with_suffix(".fused.tmp")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                optimized = optimize_model(
                    str(path),
                    model_type="bert",
                    num_heads=int(self.config.num_attention_heads),
                    hidden_size=int(self.config.hidden_size),
                    opt_level=1,
                    use_gpu=False,
                )
                optimized.save_model_to_file(str(fused))
            self._check_export(fused, names, expected)
            os.replace(fused, path)
        except Exception as err:  # the plain export is correct, only slower: keep it
            logger.warning("ONNX transformer fusion skipped for %s: %s", self.model_path, err)
        finally:
            fused.unlink(missing_ok=True)

    def _quantize(self, target: Path) -> None:
        """int8 copy of the fp32 export: per-channel int8 weights, dynamic per-batch activation scales."""
        from onnxruntime.quantization import QuantType, quantize_dynamic

        fd, tmp_name = tempfile.mkstemp(dir=self.export_dir, prefix=f".{target.stem}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        root = logging.getLogger()
        level = root.level
        root.setLevel(
            max(level, logging.ERROR)
        )  # quantize_dynamic warns on the root logger about pre-processing
        try:
            quantize_dynamic(str(self.onnx_path), str(tmp), per_channel=True, weight_type=QuantType.QInt8)
            os.replace(tmp, target)
        finally:
            root.setLevel(level)
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _check_export(path: Path, names: list[str], expected: tuple[Any, np.ndarray]) -> None:
        """Compare the export with torch on a batch of another shape: catches shapes frozen by the trace."""
        import onnxruntime as ort

        batch, want = expected
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {n: batch[n].numpy().astype(np.int64) for n in names})[0]
        mask = batch["attention_mask"].numpy().astype(bool)
        err = float(np.abs(got - want)[mask].max()) if got.shape == want.shape else float("inf")
        if err > 1e-3:
            raise RuntimeError(f"ONNX export disagrees with torch (max abs error {err:.2e})")

    # -- inference ------------------------------------------------------------------------------------------

    def _pad(self, encoded: list[list[int]], name: str) -> np.ndarray:
        """Pad one batch to its own longest sequence, on the side the tokenizer pads."""
        if name == "input_ids":
            value = self.tokenizer.pad_token_id or 0
        elif name == "token_type_ids":
            value = getattr(self.tokenizer, "pad_token_type_id", 0)
        else:
            value = 0
        width = max(len(seq) for seq in encoded)
        out = np.full((len(encoded), width), value, dtype=np.int64)
        left = self.tokenizer.padding_side == "left"
        for row, seq in enumerate(encoded):
            if left:
                out[row, width - len(seq) :] = seq
            else:
                out[row, : len(seq)] = seq
        return out

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        """Embed texts as float32 (len(texts), dim) in input order.

        Texts are tokenized once and batched by exact token count (`length_batches`), so no batch is padded:
        a text's embedding does not depend on its neighbours, and no compute goes to padding.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        texts = [t.lower() for t in texts] if self.lowercase else list(texts)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encoded = self.tokenizer(
            texts,
            truncation=True,
            max_length=self.max_seq_length,
            padding=False,
            return_attention_mask=True,
            return_token_type_ids="token_type_ids" in self.input_names,
        )
        lengths = np.fromiter((len(ids) for ids in encoded["input_ids"]), dtype=np.int64, count=len(texts))
        for idx in length_batches(lengths, batch_size):
            feeds = {name: self._pad([encoded[name][i] for i in idx], name) for name in self.input_names}
            hidden = self.session.run(None, feeds)[0]
            out[idx] = pool(
                hidden.astype(np.float32, copy=False), feeds["attention_mask"], self.pooling_modes
            )
        if self.normalize:
            out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(out, dtype=np.float32)
