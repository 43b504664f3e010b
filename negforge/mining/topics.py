"""TAS-Balanced topics: k-means over query embeddings; documents join the topic of their nearest centroid."""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np


@dataclass
class Topics:
    query_topic: np.ndarray  # (n_queries,) int
    doc_topic: np.ndarray  # (n_docs,) int
    k: int


def cluster_topics(
    query_emb: np.ndarray, corpus_emb: np.ndarray, k: int, *, iterations: int, seed: int
) -> Topics:
    """Seeded spherical k-means; k is clamped to the number of queries."""
    q = np.ascontiguousarray(query_emb, dtype=np.float32)
    k = max(1, min(k, len(q)))
    km = faiss.Kmeans(
        q.shape[1], k, niter=iterations, seed=seed, spherical=True, verbose=False, min_points_per_centroid=1
    )
    km.train(q)
    _, qt = km.index.search(q, 1)
    topics = np.empty(len(corpus_emb), dtype=np.int64)
    for s in range(0, len(corpus_emb), 65536):
        _, dt = km.index.search(np.ascontiguousarray(corpus_emb[s : s + 65536], dtype=np.float32), 1)
        topics[s : s + len(dt)] = dt[:, 0]
    return Topics(query_topic=qt[:, 0].astype(np.int64), doc_topic=topics, k=k)
