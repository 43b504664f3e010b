"""On-disk embedding cache, keyed by model fingerprint, runtime settings and the exact texts.

Encoding is the slowest step of dense mining, so it is done once per (model weights, settings, texts) and
survives crashes: rows are written in length-sorted chunks into a memory-mapped .npy, and a rerun after a
kill resumes at the first unfinished chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from negforge.mining.encoders import TextEncoder
from negforge.mining.fingerprint import texts_digest
from negforge.progress import progress_bar

CHUNK = 1024


@dataclass(frozen=True)
class EmbeddingSpec:
    """Everything besides the texts that changes an embedding."""

    model_fingerprint: str
    backend: str
    max_seq_length: int | None
    normalize: bool
    prompt: str

    def key(self, digest: str) -> str:
        blob = json.dumps({**asdict(self), "texts": digest}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    encoded: int = 0
    encode_seconds: float = 0.0


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


class EmbeddingCache:
    def __init__(self, root: str | Path, chunk_size: int = CHUNK):
        self.root = Path(root).expanduser() / "embeddings"
        self.chunk_size = chunk_size
        self.stats = CacheStats()

    def get_or_encode(
        self,
        spec: EmbeddingSpec,
        texts: list[str],
        encoder: Callable[[], TextEncoder],
        *,
        batch_size: int,
        description: str = "encoding",
    ) -> np.ndarray:
        """Embeddings for `texts` (prompt prepended), from cache when present; `encoder()` is only called on a miss."""
        entry = self.root / spec.key(texts_digest(texts))
        done_marker = entry / "complete.json"
        if done_marker.exists():
            self.stats.hits += 1
            return np.load(entry / "embeddings.npy", mmap_mode="r")
        self.stats.misses += 1
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        enc = encoder()
        entry.mkdir(parents=True, exist_ok=True)
        order = np.argsort(
            [-len(t) for t in texts], kind="stable"
        )  # long first: padding-light batches, OOM early
        progress_file = entry / "progress.json"
        arr_path = entry / "embeddings.npy"
        done = 0
        if progress_file.exists() and arr_path.exists():
            done = int(json.loads(progress_file.read_text()).get("done_rows", 0))
            arr = np.load(arr_path, mmap_mode="r+")
        else:
            arr = np.lib.format.open_memmap(
                arr_path, mode="w+", dtype=np.float32, shape=(len(texts), enc.dim)
            )
        t0 = time.perf_counter()
        with progress_bar(description, len(texts)) as advance:
            advance(done)
            for start in range(done, len(texts), self.chunk_size):
                idx = order[start : start + self.chunk_size]
                arr[idx] = enc.encode([spec.prompt + texts[i] for i in idx], batch_size=batch_size)
                arr.flush()
                _write_json_atomic(progress_file, {"done_rows": start + len(idx)})
                self.stats.encoded += len(idx)
                advance(len(idx))
        self.stats.encode_seconds += time.perf_counter() - t0
        del arr
        _write_json_atomic(done_marker, {**asdict(spec), "rows": len(texts), "dim": enc.dim})
        progress_file.unlink(missing_ok=True)
        return np.load(arr_path, mmap_mode="r")
