"""Dense miner: embeddings from the cache, a faiss index (flat, IVF or HNSW; GPU when present), chunked search.

Search goes in chunks of queries, so memory stays at chunk × k, never queries × corpus.
"""

from __future__ import annotations

import json
import mmap
import threading
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from negforge import progress
from negforge.config import DenseConfig, IndexConfig
from negforge.mining.embedding_cache import EmbeddingCache, EmbeddingSpec
from negforge.mining.encoders import TextEncoder, build_encoder
from negforge.mining.fingerprint import model_fingerprint, resolve_model_path
from negforge.mining.precision import (
    GATE_SAMPLE,
    BackendChoice,
    encoder_runner,
    gate_sample,
    resolve_backend,
)


def gpu_count() -> int:
    """GPUs faiss can use: 0 with faiss-cpu, which lacks the GPU symbols altogether."""
    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


ADD_CHUNK = 65536  # rows per faiss add call


def _file_mapping(arr: np.ndarray) -> mmap.mmap | None:
    """The file mapping under a memory-mapped array (np.load(..., mmap_mode="r") and its views), else None."""
    base: Any = arr
    while isinstance(base, np.ndarray):
        base = base.base
    return base if isinstance(base, mmap.mmap) else None


def release_pages(arr: np.ndarray) -> None:
    """Drop this process's resident pages of a file-mapped array (they stay in the page cache, so a later
    read costs no disk I/O): reading every row of a large memory-mapped corpus would otherwise keep all of
    it in the process's RSS. No-op for ordinary arrays, and for writable mappings (a copy-on-write mapping
    would lose its changes)."""
    m = None if arr.flags.writeable else _file_mapping(arr)
    if m is not None and hasattr(m, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        m.madvise(mmap.MADV_DONTNEED)


def build_index(emb: np.ndarray, cfg: IndexConfig, seed: int = 13) -> tuple[faiss.Index, dict]:
    """An inner-product index over `emb`; returns the index and what was actually built (for the manifest).

    Rows are added in chunks of ADD_CHUNK, so a memory-mapped `emb` is never copied whole: the index holds
    its own copy of the vectors (flat, IVF-flat, HNSW), and the mapped pages read for it are released.
    """
    n, d = emb.shape
    info: dict = {"type": cfg.type, "rows": n, "dim": d}
    if cfg.type == "flat":
        index: faiss.Index = faiss.IndexFlatIP(d)
    elif cfg.type == "ivf":
        nlist = max(1, min(cfg.nlist, n // 39))  # faiss wants ≥39 training points per list
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = seed
        # faiss trains on at most max_points_per_centroid (256) rows per list: sample them here, seeded, so
        # only the sample is copied (faiss would copy the whole input first)
        cap = nlist * index.cp.max_points_per_centroid
        rows = np.sort(np.random.default_rng(seed).choice(n, cap, replace=False)) if n > cap else slice(None)
        index.train(np.ascontiguousarray(emb[rows], dtype=np.float32))
        release_pages(emb)
        index.nprobe = min(cfg.nprobe, nlist)
        info.update(nlist=nlist, nprobe=index.nprobe)
    else:
        index = faiss.IndexHNSWFlat(d, cfg.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = cfg.ef_construction
        index.hnsw.efSearch = cfg.ef_search
        info.update(m=cfg.hnsw_m, ef_search=cfg.ef_search)
    for s in range(0, n, ADD_CHUNK):
        index.add(np.ascontiguousarray(emb[s : s + ADD_CHUNK], dtype=np.float32))
        release_pages(emb)
    if cfg.gpu == "auto" and cfg.type != "hnsw" and gpu_count() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
        info["gpu"] = True
    else:
        info["gpu"] = False
    return index, info


def search(index: faiss.Index, queries: np.ndarray, k: int, batch: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows and scores for each query, searched `batch` queries at a time; -1 rows mark no hit."""
    n = len(queries)
    k = min(k, index.ntotal)
    rows = np.full((n, k), -1, dtype=np.int64)
    scores = np.full((n, k), -np.inf, dtype=np.float32)
    for s in range(0, n, batch):
        q = np.ascontiguousarray(queries[s : s + batch], dtype=np.float32)
        d, i = index.search(q, k)
        rows[s : s + len(q)], scores[s : s + len(q)] = i, d
    return rows, scores


class DenseMiner:
    """Holds one model's embeddings of the corpus and its index; the model loads only on a cache miss."""

    def __init__(self, cfg: DenseConfig, cache_root: str | Path):
        self.cfg = cfg
        self.cache_root = Path(cache_root).expanduser()
        self.cache = EmbeddingCache(self.cache_root)
        self.model_path = resolve_model_path(cfg.model)
        self.fingerprint = model_fingerprint(self.model_path)
        self._encoder: TextEncoder | None = None
        self.corpus_emb: np.ndarray | None = None
        self.index: faiss.Index | None = None
        self.index_info: dict = {}
        self._search_lock = threading.Lock()
        self.backend_choice: BackendChoice | None = None
        self._resolve_lock = threading.Lock()

    def resolve_backend(self, sample_texts: list[str]) -> BackendChoice:
        """Decide the encoder path once (`backend: auto` runs or reads the parity gate on `sample_texts`)."""
        with self._resolve_lock:  # shard threads share one miner: one gate, one path
            return self._resolve_backend(sample_texts)

    def _resolve_backend(self, sample_texts: list[str]) -> BackendChoice:
        if self.backend_choice is None:
            cfg = self.cfg

            def note(path: str) -> None:
                progress.emit(f"parity gate ({cfg.model}): encoding {GATE_SAMPLE} sample texts with {path}")

            self.backend_choice = resolve_backend(
                cfg.backend,
                cache_root=self.cache_root,
                model_fingerprint=self.fingerprint,
                settings={"max_seq_length": cfg.max_seq_length, "normalize": cfg.normalize,
                          "prompt": cfg.corpus_prompt},
                sample=lambda: gate_sample([cfg.corpus_prompt + t for t in sample_texts]),
                make_runner=lambda path: encoder_runner(self._build_encoder(path), cfg.batch_size),
                progress=note,
            )  # fmt: skip
        return self.backend_choice

    def _build_encoder(self, path: str) -> TextEncoder:
        return build_encoder(
            path,
            self.model_path,
            max_seq_length=self.cfg.max_seq_length,
            normalize=self.cfg.normalize,
            export_dir=self.cache_root / "onnx" / self.fingerprint,
        )

    @property
    def path(self) -> str:
        """The encoder path in use (e.g. "torch-bf16"); resolve_backend (or prepare) must have run."""
        assert self.backend_choice is not None, "call prepare() or resolve_backend() first"
        return self.backend_choice.path

    def encoder(self) -> TextEncoder:
        if self._encoder is None:
            self._encoder = self._build_encoder(self.path)
        return self._encoder

    def embedding_spec(self, role: str) -> EmbeddingSpec:
        """What besides the texts keys this model's embeddings of `role` ("query" or "corpus") in the cache."""
        prompt = self.cfg.query_prompt if role == "query" else self.cfg.corpus_prompt
        return EmbeddingSpec(self.fingerprint, self.path, self.cfg.max_seq_length, self.cfg.normalize, prompt)

    def embed(self, texts: list[str], role: str) -> np.ndarray:
        """Embeddings (len(texts), dim) float32 of `role` texts ("query" or "corpus"), from the cache when there."""
        self.resolve_backend(texts)
        return self.cache.get_or_encode(
            self.embedding_spec(role),
            texts,
            self.encoder,
            batch_size=self.cfg.batch_size,
            description=f"encode {role}",
        )

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """Embeddings (len(texts), dim) float32 of passages that are not corpus rows (rule edits, LLM passages,
        sentences of a positive), in the corpus's own space: `corpus_prompt` prepended, through the one encoder
        (same path, precision, max length and normalisation as the cached corpus embeddings), so a written
        negative's score means what a mined one's does. Not cached on disk (written texts are run-specific).
        sentence-transformers PR #3334 splits mining prompts the same way."""
        if not texts:
            return np.zeros((0, self.corpus_emb.shape[1] if self.corpus_emb is not None else 0), np.float32)
        self.resolve_backend(texts)
        enc = self.encoder().encode(
            [self.cfg.corpus_prompt + t for t in texts], batch_size=self.cfg.batch_size
        )
        return np.asarray(enc, dtype=np.float32)

    def prepare(self, corpus_texts: list[str], seed: int = 13) -> None:
        """Pick the encoder path (parity gate on a sample of this corpus), embed the corpus, build its index."""
        self.resolve_backend(corpus_texts)
        self.corpus_emb = self.embed(corpus_texts, "corpus")
        self.index, self.index_info = self._load_or_build_index(corpus_texts, seed)

    def encoded(self) -> np.ndarray:
        """The corpus embeddings, shape (n_docs, dim), float32, row = corpus row (memory-mapped from the
        cache). Raises RuntimeError before `prepare` has encoded the corpus."""
        if self.corpus_emb is None:
            raise RuntimeError("the dense miner has not encoded the corpus yet (call prepare first)")
        return self.corpus_emb

    def _load_or_build_index(self, corpus_texts: list[str], seed: int) -> tuple[faiss.Index, dict]:
        corpus_emb = self.encoded()
        icfg = self.cfg.index
        if icfg.type == "flat":  # building from cached embeddings is a copy: cheaper than reading a file
            return build_index(corpus_emb, icfg, seed)
        from negforge.mining.fingerprint import texts_digest

        key = self.embedding_spec("corpus").key(texts_digest(corpus_texts))
        folder = (
            self.cache_root / "faiss" / f"{key}-{icfg.type}-{icfg.nlist}-{icfg.hnsw_m}-{icfg.ef_construction}"
        )
        path, meta = folder / "index.faiss", folder / "info.json"
        if path.exists() and meta.exists():
            index: Any = faiss.read_index(str(path))  # an IVF or HNSW index: its own search knob
            info = json.loads(meta.read_text())
            if icfg.type == "ivf":
                index.nprobe = min(icfg.nprobe, info["nlist"])
            else:
                index.hnsw.efSearch = icfg.ef_search
            info["loaded_from_cache"] = True
        else:
            # trained on CPU so the file on disk serves CPU and GPU workers alike
            index, info = build_index(corpus_emb, icfg.model_copy(update={"gpu": "never"}), seed)
            folder.mkdir(parents=True, exist_ok=True)
            faiss.write_index(index, str(path) + ".tmp")
            Path(str(path) + ".tmp").replace(path)
            meta.write_text(json.dumps(info))
        if icfg.gpu == "auto" and icfg.type != "hnsw" and gpu_count() > 0:
            index, info = faiss.index_cpu_to_all_gpus(index), {**info, "gpu": True}
        return index, info

    def search(self, query_emb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        assert self.index is not None, "call prepare() first"
        # faiss GPU indexes are not thread-safe, and CPU search is already parallel inside faiss: one at a time
        with self._search_lock:
            return search(self.index, query_emb, k, self.cfg.search_batch)

    def pair_scores(self, query_emb: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Scores of given corpus rows for one query (dot products of cached embeddings)."""
        corpus_emb = self.encoded()
        if len(rows) == 0:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(corpus_emb[np.asarray(rows)], dtype=np.float32) @ np.asarray(
            query_emb, dtype=np.float32
        )
