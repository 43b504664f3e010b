"""On-disk embedding cache, keyed by model fingerprint, runtime settings and the exact texts.

Encoding is the slowest step of dense mining, so it is done once per (model weights, settings, texts) and
survives crashes: rows are written in length-sorted chunks into a memory-mapped .npy, and a rerun after a
kill resumes at the first unfinished chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from negforge.mining.encoders import TextEncoder
from negforge.mining.fingerprint import texts_digest
from negforge.progress import progress_bar

CHUNK = 1024
#: bumped when encoders change how they batch (2: batches of one token count, no padding: every embedding is
#: the text's own; 3: torch pads each text to a 16-token bucket, whatever its neighbours), so an entry encoded
#: the older way is never mixed with new ones
ENCODING_VERSION = 3


@dataclass(frozen=True)
class EmbeddingSpec:
    """Everything besides the texts that changes an embedding."""

    model_fingerprint: str
    backend: str
    max_seq_length: int | None
    normalize: bool
    prompt: str

    def key(self, digest: str) -> str:
        blob = json.dumps({**asdict(self), "texts": digest, "encoding": ENCODING_VERSION}, sort_keys=True)
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

    def adopt(
        self,
        spec: EmbeddingSpec,
        texts: list[str],
        embeddings: np.ndarray | str | Path,
        *,
        chunk: int = 65536,
    ) -> Path:
        """Bring your own embeddings: make `embeddings` the cache entry for (`spec`, `texts`), so that
        `get_or_encode` with the same spec and texts returns them (memory-mapped) and never loads a model.

        `embeddings`: an array, or the path of a .npy file (copied into the cache, read memory-mapped in
        chunks, so a file larger than memory is fine), one row per text in the same order. Rows must be
        finite and, when `spec.normalize`, of unit length: the cache promises the spec's settings, so
        embeddings that break them are refused with ValueError. An existing entry for the same key (complete
        or half-encoded) is replaced. Returns the entry folder.
        """
        src_path = Path(embeddings).expanduser() if isinstance(embeddings, str | Path) else None
        arr = np.load(src_path, mmap_mode="r") if src_path is not None else np.asarray(embeddings)
        if arr.ndim != 2 or arr.shape[0] != len(texts):
            raise ValueError(
                f"embeddings of shape {arr.shape} for {len(texts)} texts: want ({len(texts)}, dim)"
            )
        for s in range(0, len(arr), chunk):
            block = np.asarray(arr[s : s + chunk], dtype=np.float32)
            if not np.isfinite(block).all():
                raise ValueError(f"embeddings rows {s}..{s + len(block) - 1}: not all finite")
            if spec.normalize:
                bad = np.flatnonzero(np.abs(np.linalg.norm(block, axis=1) - 1.0) > 1e-3)
                if len(bad):
                    raise ValueError(
                        f"embeddings row {s + int(bad[0])} has norm "
                        f"{float(np.linalg.norm(block[bad[0]])):.4f}; the spec says normalize=True"
                    )
        entry = self.root / spec.key(texts_digest(texts))
        entry.mkdir(parents=True, exist_ok=True)
        (entry / "complete.json").unlink(missing_ok=True)
        (entry / "progress.json").unlink(missing_ok=True)
        tmp = entry / "embeddings.npy.tmp"
        if src_path is not None and arr.dtype == np.float32 and arr.flags.c_contiguous:
            shutil.copyfile(src_path, tmp)
        else:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=arr.shape)
            for s in range(0, len(arr), chunk):
                out[s : s + chunk] = arr[s : s + chunk]
            out.flush()
            del out
        os.replace(tmp, entry / "embeddings.npy")
        _write_json_atomic(
            entry / "complete.json",
            {**asdict(spec), "rows": int(arr.shape[0]), "dim": int(arr.shape[1]), "adopted": True},
        )
        return entry
