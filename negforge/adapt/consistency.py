"""Filters for written queries: Promptagator's round-trip consistency (Dai et al. 2022, §3.2: keep a query
only when the retriever ranks the passage it was written for within the top k) and InPars' log-probability
filter (Bonifacio et al. 2022: keep the share of queries the generator was most confident in).

Ranks are 1-based. BM25 ranks are exact over the whole corpus (1 + documents scoring strictly higher);
dense ranks come from the run's faiss index searched to depth max(k, 100); hybrid is reciprocal rank fusion
(Cormack et al. 2009, k=60) of the BM25 and dense lists at that depth. A passage beyond the depth has no rank.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from negforge.adapt.querygen import GeneratedQuery
from negforge.config.adapt import ConsistencyConfig
from negforge.mining.bm25 import BM25Miner, top_k_excluding
from negforge.mining.dense import DenseMiner
from negforge.records import Corpus

RRF_K = 60


@dataclass
class ConsistencyReport:
    """What the filters did: counts by outcome (`kept`, `not_found_in_top_k`, `low_logprob`, and
    `no_logprobs`: kept by the logprob filter for want of logprobs), the round trip's pass rate over the
    queries it judged, and up to 10 examples of each outcome."""

    counts: Counter = field(default_factory=Counter)
    judged: int = 0
    round_trip_passed: int = 0
    examples: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def pass_rate(self) -> float | None:
        """Share of the judged queries whose passage ranked within k (before the logprob filter)."""
        return self.round_trip_passed / self.judged if self.judged else None


def bm25_ranks(miner: BM25Miner, texts: list[str], rows: list[int]) -> list[int | None]:
    """Exact BM25 rank of `rows[i]` for query `texts[i]` (1 + documents scoring strictly higher); None when
    the passage shares no term with the query (BM25 does not retrieve it at all)."""
    out = []
    for toks, row in zip(miner.query_token_ids(texts), rows, strict=True):
        s = miner.score_all(toks)
        out.append(int(np.count_nonzero(s > s[row])) + 1 if s[row] > 0 else None)
    return out


def _bm25_lists(miner: BM25Miner, texts: list[str], depth: int) -> list[list[int]]:
    return [top_k_excluding(miner.score_all(t), depth, ())[0].tolist() for t in miner.query_token_ids(texts)]


def _dense_lists(miner: DenseMiner, texts: list[str], depth: int) -> list[list[int]]:
    qemb = miner.embed(texts, "query")
    ids, _ = miner.search(qemb, depth)
    return [[int(i) for i in r if i >= 0] for r in ids]


def rrf(lists: list[list[int]]) -> list[int]:
    """Reciprocal rank fusion of ranked row lists, best first (ties by row)."""
    score: dict[int, float] = {}
    for ranked in lists:
        for r, row in enumerate(ranked, 1):
            score[row] = score.get(row, 0.0) + 1.0 / (RRF_K + r)
    return sorted(score, key=lambda d: (-score[d], d))


def round_trip_ranks(
    queries: list[GeneratedQuery],
    retriever: str,
    k: int,
    bm25: BM25Miner | None = None,
    dense: DenseMiner | None = None,
) -> list[int | None]:
    """The rank of each query's own passage under `retriever` (bm25, dense or hybrid; see module doc).

    Raises ValueError when the retriever's miner is not given."""
    texts = [q.text or "" for q in queries]
    rows = [q.passage_row for q in queries]
    depth = max(k, 100)
    if retriever == "bm25":
        if bm25 is None:
            raise ValueError("adapt.consistency.retriever=bm25 needs sources.bm25.enabled")
        return list(bm25_ranks(bm25, texts, rows))
    if dense is None:
        raise ValueError(f"adapt.consistency.retriever={retriever} needs sources.dense.enabled")
    lists = _dense_lists(dense, texts, depth)
    if retriever == "hybrid":
        if bm25 is None:
            raise ValueError("adapt.consistency.retriever=hybrid needs sources.bm25.enabled")
        lists = [rrf([a, b]) for a, b in zip(_bm25_lists(bm25, texts, depth), lists, strict=True)]
    return [ranked.index(row) + 1 if row in ranked else None for ranked, row in zip(lists, rows, strict=True)]


def apply_consistency(
    queries: list[GeneratedQuery],
    cfg: ConsistencyConfig,
    corpus: Corpus,
    bm25: BM25Miner | None = None,
    dense: DenseMiner | None = None,
) -> ConsistencyReport:
    """Judge the `kept` queries in place: a query whose passage ranks beyond `cfg.k` becomes
    `not_found_in_top_k`; then (when `cfg.logprob_keep` is set) all but the top share by mean logprob become
    `low_logprob` (queries without logprobs are kept and counted as `no_logprobs`). Each query's
    `consistency_rank` is set. Returns the report."""
    rep = ConsistencyReport()
    live = [q for q in queries if q.status == "kept"]
    if cfg.retriever != "none" and live:
        ranks = round_trip_ranks(live, cfg.retriever, cfg.k, bm25, dense)
        rep.judged = len(live)
        for q, r in zip(live, ranks, strict=True):
            q.consistency_rank = r
            if r is None or r > cfg.k:
                q.status = "not_found_in_top_k"
        live = [q for q in live if q.status == "kept"]
        rep.round_trip_passed = len(live)
    if cfg.logprob_keep is not None and live:
        scored = [q for q in live if q.mean_logprob is not None]
        rep.counts["no_logprobs"] = len(live) - len(scored)
        keep = max(1, round(cfg.logprob_keep * len(scored))) if scored else 0
        ranked = sorted(scored, key=lambda q: (-q.mean_logprob, q.id))  # type: ignore[operator]
        for q in ranked[keep:]:
            q.status = "low_logprob"
    for q in queries:
        if q.status in ("kept", "not_found_in_top_k", "low_logprob"):
            rep.counts[q.status] += 1
            ex = rep.examples.setdefault(q.status, [])
            if len(ex) < 10:
                ex.append(
                    {"query": q.text, "passage_id": q.passage_id, "rank": q.consistency_rank,
                     "passage": corpus.texts[q.passage_row][:300], "mean_logprob": q.mean_logprob}
                )  # fmt: skip
    if cfg.retriever == "none":
        rep.judged = 0
    return rep
