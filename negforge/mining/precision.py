"""`backend: auto`: the fastest encoder path that stays exact enough, checked once per model and machine.

Paths (`EncoderPath` names):

- `torch-fp32`: sentence-transformers as is (CUDA when present). The reference every other path is checked
  against, and what `backend: torch` always means.
- `torch-fp16`: weights in half precision on a CUDA GPU.
- `torch-bf16`: weights in bfloat16 on a CPU with AVX512-BF16 or AMX (oneDNN runs bf16 GEMMs natively there;
  elsewhere bf16 is emulated and slower than fp32, so it is not tried).
- `onnx-fp32`: an onnxruntime export of the same weights (`backend: onnx`).
- `onnx-int8`: that export with weights quantised to int8 per output channel and activations quantised per
  batch (onnxruntime `quantize_dynamic`), tried where the CPU has VNNI.

The parity gate (after the checks the sentence-transformers docs give for quantised and half-precision
backends, made strict because a retriever's neighbours are what negforge mines): a seeded sample of the corpus
is encoded by fp32 and by every candidate path. A candidate passes when the mean cosine between its embedding
and fp32's of the same text is ≥ 0.999 and its top-10 neighbour lists within the sample overlap fp32's by
≥ 0.98 on average. Among the paths that pass, the one that encoded the sample fastest is chosen; fp32 when none
is faster. The verdict is cached in `<cache_dir>/parity/` under the model's weights fingerprint and a machine
identity (CPU model and flags, GPU name, torch and onnxruntime versions), so it is paid once, and the manifest
records the chosen path with every candidate's figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from negforge.mining.encoders import TextEncoder
from negforge.versions import package_version

GATE_VERSION = 1
MIN_MEAN_COSINE = 0.999
MIN_TOP10_OVERLAP = 0.98
GATE_SAMPLE = 256
GATE_SEED = 0
#: below this many distinct texts the neighbour overlap says little: such a corpus is encoded in fp32
MIN_GATE_SAMPLE = 64
NEIGHBOURS = 10

#: every path negforge can run, by name; `backend:` in the config also accepts each of them to force one
PATHS = ("torch-fp32", "torch-fp16", "torch-bf16", "onnx-fp32", "onnx-int8")
#: the CPU flags (as /proc/cpuinfo spells them) that decide which paths are tried
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of this machine (Linux /proc/cpuinfo); empty where the OS does not say."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: device nodes and driver folders that exist wherever a GPU driver torch can use is loaded (NVIDIA CUDA, AMD ROCm)
GPU_DRIVER_PATHS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")


def gpu_driver_present() -> bool:
    """True where a GPU driver is loaded (see GPU_DRIVER_PATHS); False proves torch sees no GPU, so a warm
    run on a CPU machine never pays torch's ~4 s import only to learn there is none."""
    return any(os.path.exists(p) for p in GPU_DRIVER_PATHS)


def cuda_device_name() -> str | None:
    """torch's name of GPU 0 (`torch.cuda.get_device_name`), None on a machine without one."""
    if not gpu_driver_present():
        return None
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def machine_identity() -> dict[str, str | list[str] | None]:
    """What makes a parity verdict valid on this machine and not another: hardware and runtime versions (read
    from the installed packages' metadata, without importing them)."""
    flags = cpu_flags()
    return {
        "cpu": cpu_model(),
        "cpu_flags": sorted(f for f in (*BF16_FLAGS, *VNNI_FLAGS) if f in flags),
        "gpu": cuda_device_name(),
        "torch": package_version("torch"),
        "onnxruntime": package_version("onnxruntime"),
    }


def candidate_paths(machine: dict) -> list[str]:
    """Paths worth trying on `machine` (see `machine_identity`), fp32 first as the reference."""
    if machine.get("gpu"):
        return ["torch-fp32", "torch-fp16"]
    flags = set(machine.get("cpu_flags") or [])
    paths = ["torch-fp32"]
    if flags & set(BF16_FLAGS):
        paths.append("torch-bf16")
    if flags & set(VNNI_FLAGS):
        paths.append("onnx-int8")
    return paths


@dataclass
class PathCheck:
    """One candidate path's figures on the gate sample; `error` is set when it could not run at all.

    `metrics`: for encoders mean_cosine, min_cosine, top10_overlap; for pair scorers correlation and
    mean_abs_prob_diff (see `embedding_parity` and `negforge.filters.scorer_precision`).
    """

    path: str
    items_per_s: float
    metrics: dict[str, float] = field(default_factory=dict)
    passed: bool = False
    error: str | None = None


@dataclass
class BackendChoice:
    """The path a model runs with and why (recorded in the manifest beside the model)."""

    requested: str
    path: str
    reason: str
    checks: list[PathCheck] = field(default_factory=list)
    machine: dict = field(default_factory=dict)
    sample: int = 0
    thresholds: dict = field(default_factory=dict)
    gate_cached: bool = False

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> BackendChoice:
        return cls(**{**d, "checks": [PathCheck(**c) for c in d.get("checks", [])]})


def neighbour_overlap(reference: np.ndarray, candidate: np.ndarray, k: int = NEIGHBOURS) -> float:
    """Mean over rows of |top-k(ref) ∩ top-k(cand)| / k, neighbours searched within the sample itself.

    Shapes: both (n, dim), rows the same texts; self-matches excluded. Inner product on unit vectors.
    """
    n = len(reference)
    k = min(k, n - 1)
    if k < 1:
        return 1.0
    ref, cand = _unit(reference), _unit(candidate)
    s_ref, s_cand = ref @ ref.T, cand @ cand.T
    np.fill_diagonal(s_ref, -np.inf)
    np.fill_diagonal(s_cand, -np.inf)
    top_ref = np.argpartition(-s_ref, k - 1, axis=1)[:, :k]
    top_cand = np.argpartition(-s_cand, k - 1, axis=1)[:, :k]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(top_ref, top_cand, strict=True)]))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def parity(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float, float]:
    """(mean cosine, min cosine, top-10 neighbour overlap) of `candidate` against `reference`, both (n, dim)."""
    cos = np.einsum("ij,ij->i", _unit(reference), _unit(candidate))
    return float(cos.mean()), float(cos.min()), neighbour_overlap(reference, candidate)


#: compares a candidate's outputs with fp32's on the same sample: (passed, metrics)
Comparison = Callable[[np.ndarray, np.ndarray], tuple[bool, dict[str, float]]]


def embedding_parity(
    min_mean_cosine: float = MIN_MEAN_COSINE, min_top10_overlap: float = MIN_TOP10_OVERLAP
) -> Comparison:
    """The encoder gate: mean cosine to fp32 ≥ `min_mean_cosine` and top-10 overlap ≥ `min_top10_overlap`."""

    def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[bool, dict[str, float]]:
        mean_cos, min_cos, overlap = parity(reference, candidate)
        metrics = {
            "mean_cosine": round(mean_cos, 6),
            "min_cosine": round(min_cos, 6),
            "top10_overlap": round(overlap, 4),
        }
        return mean_cos >= min_mean_cosine and overlap >= min_top10_overlap, metrics

    compare.thresholds = {"min_mean_cosine": min_mean_cosine, "min_top10_overlap": min_top10_overlap}  # type: ignore[attr-defined]
    return compare


def _timed(run: Callable[[list], np.ndarray], items: list) -> tuple[np.ndarray, float]:
    run(items[: min(8, len(items))])  # warm-up: first-call allocations
    t0 = time.perf_counter()
    out = np.asarray(run(items))
    return out, len(items) / max(time.perf_counter() - t0, 1e-9)


def run_gate(
    items: Sequence,
    make_runner: Callable[[str], Callable[[list], np.ndarray]],
    paths: Sequence[str],
    *,
    compare: Comparison | None = None,
    progress: Callable[[str], None] | None = None,
) -> BackendChoice:
    """Run `items` through every path in `paths` (the first is the fp32 reference); pick the fastest that passes.

    `make_runner(path)` builds a function from a list of items to an output array (embeddings (n, dim), or
    scores). `compare` judges a candidate's outputs against the reference's (default `embedding_parity()`).
    A path that raises while building or running is recorded with its error and not used.
    Returns a `BackendChoice` with `requested="auto"`. Raises whatever the reference path raises.
    """
    compare = compare or embedding_parity()
    items = list(items)
    reference_path, *others = paths
    if progress:
        progress(reference_path)
    ref_out, ref_speed = _timed(make_runner(reference_path), items)
    checks = [PathCheck(reference_path, round(ref_speed, 2), compare(ref_out, ref_out)[1], True)]
    for path in others:
        if progress:
            progress(path)
        try:
            out, speed = _timed(make_runner(path), items)
        except Exception as err:  # a path this machine cannot run is a refused path, not a failed run
            checks.append(PathCheck(path, 0.0, error=f"{type(err).__name__}: {err}"[:300]))
            continue
        ok, metrics = compare(ref_out, out)
        checks.append(PathCheck(path, round(speed, 2), metrics, ok))
    best = max((c for c in checks if c.passed), key=lambda c: c.items_per_s)
    refused = [c.path for c in checks if not c.passed]
    reason = (
        f"fastest path that passed the parity gate ({best.items_per_s:.1f}/s vs fp32 {ref_speed:.1f}/s)"
        if best.path != reference_path
        else "no other path passed the parity gate and ran faster than fp32"
    )
    if refused:
        reason += f"; refused: {', '.join(refused)}"
    return BackendChoice(
        requested="auto",
        path=best.path,
        reason=reason,
        checks=checks,
        sample=len(items),
        thresholds=dict(getattr(compare, "thresholds", {})),
    )


def encoder_runner(encoder: TextEncoder, batch_size: int) -> Callable[[list], np.ndarray]:
    """A gate runner over a TextEncoder."""
    return lambda texts: encoder.encode(texts, batch_size=batch_size)


def gate_sample(items: Sequence, size: int = GATE_SAMPLE, seed: int = GATE_SEED) -> list:
    """A seeded sample of `size` distinct non-empty items (texts or text pairs; all of them when fewer)."""
    pool = sorted({t for t in items if (t.strip() if isinstance(t, str) else all(x.strip() for x in t))})
    if len(pool) <= size:
        return pool
    rng = np.random.default_rng(seed)
    return [pool[i] for i in sorted(rng.choice(len(pool), size=size, replace=False))]


def gate_cache_path(cache_root: str | Path, model_fingerprint: str, settings: dict, machine: dict) -> Path:
    """Where the verdict for this model, these encoder settings and this machine is kept."""
    blob = json.dumps(
        {"v": GATE_VERSION, "model": model_fingerprint, "settings": settings, "machine": machine},
        sort_keys=True,
    )
    key = hashlib.sha256(blob.encode()).hexdigest()[:24]
    return Path(cache_root).expanduser() / "parity" / f"{model_fingerprint[:12]}-{key}.json"


def resolve_backend(
    requested: str,
    *,
    cache_root: str | Path,
    model_fingerprint: str,
    settings: dict,
    sample: Callable[[], Sequence],
    make_runner: Callable[[str], Callable[[list], np.ndarray]],
    allowed: Sequence[str] = PATHS,
    compare: Comparison | None = None,
    progress: Callable[[str], None] | None = None,
) -> BackendChoice:
    """The path a model runs with: `auto` through the (cached) gate; a named backend as asked.

    `requested`: "auto", "torch" (= torch-fp32), "onnx" (= onnx-fp32) or a path name from `PATHS`, which is
    used without a gate (the user asked for it). `settings` (max_seq_length, normalize, role, ...) key the
    verdict with the model's fingerprint and `machine_identity()`. `allowed` limits `auto` to the paths the
    caller can run. `sample()` gives the gate's items (called only when the gate runs; fewer than
    MIN_GATE_SAMPLE items means fp32, not cached). Raises ValueError for an unknown backend name.
    """
    alias = {"torch": "torch-fp32", "onnx": "onnx-fp32"}
    if requested != "auto":
        path = alias.get(requested, requested)
        if path not in PATHS:
            raise ValueError(f"unknown backend {requested!r}; choose auto, torch, onnx or one of {PATHS}")
        return BackendChoice(requested=requested, path=path, reason="set in the config (no parity gate)")
    machine = machine_identity()
    compare = compare or embedding_parity()
    # what the caller may run and how it judges are part of the verdict: an evaluation limited to torch paths
    # must not read a verdict that chose onnx-int8 for mining, nor mining one that never tried int8
    keyed = {
        **settings,
        "allowed": sorted(allowed),
        "thresholds": dict(getattr(compare, "thresholds", {})),
    }
    cache_file = gate_cache_path(cache_root, model_fingerprint, keyed, machine)
    if cache_file.exists():
        choice = BackendChoice.from_dict(json.loads(cache_file.read_text()))
        choice.gate_cached = True
        return choice
    paths = [p for p in candidate_paths(machine) if p in allowed]
    if len(paths) == 1:
        choice = BackendChoice(
            requested="auto", path=paths[0], reason="no faster path to try on this machine", machine=machine
        )
    else:
        items = list(sample())
        if len(items) < MIN_GATE_SAMPLE:  # not cached: a larger input later gets a real verdict
            return BackendChoice(
                requested="auto",
                path=paths[0],
                reason=f"{len(items)} sample items, fewer than the gate's {MIN_GATE_SAMPLE}: fp32",
                machine=machine,
                sample=len(items),
            )
        choice = run_gate(items, make_runner, paths, compare=compare, progress=progress)
        choice.machine = machine
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(choice.as_dict(), indent=1))
    os.replace(tmp, cache_file)
    return choice
