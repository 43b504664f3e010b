"""Bi-encoder distances: candidate to positive (near-copies, paraphrases) and to query (a band).

Corpus candidates and positives read the run's cached corpus embeddings; only LLM-written passages are
encoded (once: the generator stores their embedding). All similarities are cosine.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from negforge.config import EmbeddingFilterConfig
from negforge.filters.base import CandidateBatch, FilterQuery, Verdict
from negforge.mining.dense import DenseMiner


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def _emb_index(q: FilterQuery) -> int:
    """The query's row in the run's query embeddings; ValueError for a query built without one."""
    if q.emb_index is None:
        raise ValueError(f"query {q.id!r}: the embedding filter needs its embedding row (emb_index)")
    return q.emb_index


class EmbeddingFilter:
    def __init__(self, cfg: EmbeddingFilterConfig, dense: DenseMiner, query_emb: np.ndarray) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        self.dense = dense
        self.query_emb = query_emb

    def describe(self) -> dict[str, Any]:
        return {**self.cfg.model_dump(exclude={"name"}), "model_fingerprint": self.dense.fingerprint}

    def _candidate_emb(self, batch: CandidateBatch) -> np.ndarray:
        cands = batch.candidates
        corpus = self.dense.encoded()
        out = np.zeros((len(cands), corpus.shape[1]), dtype=np.float32)
        rows = [i for i, c in enumerate(cands) if c.row is not None]
        if rows:
            out[rows] = corpus[np.array([cands[i].row for i in rows])]
        need = [i for i, c in enumerate(cands) if c.row is None and c.embedding is None]
        if need:
            enc = self.dense.encode_passages([cands[i].text for i in need])  # corpus_prompt, one space
            for i, e in zip(need, enc, strict=True):
                cands[i].embedding = np.asarray(e, dtype=np.float32)
        for i, c in enumerate(cands):
            if c.row is None:
                out[i] = c.embedding
        return _unit(out)

    def apply(self, batch: CandidateBatch) -> list[Verdict]:
        cfg = self.cfg
        cand = self._candidate_emb(batch)
        corpus = self.dense.encoded()
        q_emb = _unit(self.query_emb[[_emb_index(q) for q in batch.queries]])
        out: list[Verdict] = []
        sims_q = np.einsum("ij,ij->i", cand, q_emb[[c.qi for c in batch.candidates]])
        pos_emb = {qi: _unit(corpus[np.array(q.positive_rows)]) for qi, q in enumerate(batch.queries)}
        qpos = {qi: float((pos_emb[qi] @ q_emb[qi]).max()) for qi in pos_emb}
        band: dict[int, tuple[float, float]] = {}
        if cfg.query_percentile is not None:
            for qi, idx in batch.by_query().items():
                lo, hi = np.percentile(sims_q[idx], cfg.query_percentile)
                band[qi] = (float(lo), float(hi))
        for i, c in enumerate(batch.candidates):
            sp = float((pos_emb[c.qi] @ cand[i]).max())
            sq = float(sims_q[i])
            scores = {
                "sim_positive": round(sp, 5),
                "sim_query": round(sq, 5),
                "sim_query_positive": qpos[c.qi],
            }
            reason = None
            if cfg.max_positive_sim is not None and sp >= cfg.max_positive_sim:
                reason = "near_positive"
            elif cfg.max_query_sim is not None and sq > cfg.max_query_sim:
                reason = "above_query_band"
            elif cfg.min_query_sim is not None and sq < cfg.min_query_sim:
                reason = "below_query_band"
            elif c.qi in band and not (band[c.qi][0] <= sq <= band[c.qi][1]):
                reason = "outside_query_percentile"
            elif cfg.trisampler and sp > cfg.tri_max_positive_sim:
                reason = "trisampler_close_to_positive"
            elif cfg.trisampler and sq < cfg.tri_min_query_ratio * qpos[c.qi]:
                reason = "trisampler_uninformative"
            out.append(Verdict(reason is None, reason, scores))
        return out
