"""Per-query retrieval metrics and the paired bootstrap for benchmarks/quality.py.

Metrics come from ir-measures (pytrec_eval underneath, trec_eval's definitions, as BEIR reports them):
nDCG@10 with graded qrels and *linear* gains (gain = grade, trec_eval's `ndcg_cut`, BEIR's convention),
RR@10 and R@100 with relevance = grade >= 1. The run handed to it is already ranked (score = -rank), so
trec_eval's own tie-breaking never reorders it: the ranking is sentence-transformers' (-score, corpus_id).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

METRICS = ("ndcg@10", "mrr@10", "recall@100")


def rank_corpus(scores: np.ndarray, corpus_ids: Sequence[str], k: int = 100) -> list[list[str]]:
    """Top-k corpus ids per query row of `scores`, ordered by (-score, corpus_id) like the ST evaluator."""
    id_rank = np.empty(len(corpus_ids), dtype=np.int64)
    id_rank[np.argsort(np.asarray(corpus_ids, dtype=object), kind="stable")] = np.arange(len(corpus_ids))
    k = min(k, scores.shape[1])
    out = []
    for row in scores:
        cand = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
        thr = row[cand].min()
        cand = np.flatnonzero(row >= thr)  # every tie at the cut-off, then the total order decides
        order = cand[np.lexsort((id_rank[cand], -row[cand]))][:k]
        out.append([corpus_ids[i] for i in order])
    return out


def per_query_metrics(
    ranked: Mapping[str, Sequence[str]], qrels: Mapping[str, Mapping[str, int]]
) -> dict[str, dict[str, float]]:
    """{qid: {ndcg@10 (graded, linear gain), ndcg@10_binary, mrr@10, recall@100}} for every ranked query."""
    import ir_measures
    from ir_measures import RR, R, nDCG

    run = {q: {d: float(-i) for i, d in enumerate(docs)} for q, docs in ranked.items()}
    graded = {q: {d: int(g) for d, g in qrels[q].items() if g >= 1} for q in ranked}
    binary = {q: dict.fromkeys(rel, 1) for q, rel in graded.items()}
    out: dict[str, dict[str, float]] = {q: {} for q in ranked}
    names = {str(nDCG @ 10): "ndcg@10", str(RR @ 10): "mrr@10", str(R @ 100): "recall@100"}
    for m in ir_measures.iter_calc([nDCG @ 10, RR @ 10, R @ 100], graded, run):
        out[m.query_id][names[str(m.measure)]] = float(m.value)
    for m in ir_measures.iter_calc([nDCG @ 10], binary, run):
        out[m.query_id]["ndcg@10_binary"] = float(m.value)
    for v in out.values():  # a query trec_eval skipped (nothing relevant retrieved) scores 0
        for name in (*METRICS, "ndcg@10_binary"):
            v.setdefault(name, 0.0)
    return out


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def paired_bootstrap(
    a: np.ndarray, b: np.ndarray, *, resamples: int = 10_000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Paired bootstrap over test queries of mean(a - b).

    `a`, `b`: [seeds, queries] per-query scores of two rows, the same queries in the same column order and
    the same seeds in the same row order. Per query the difference is averaged over seeds, then queries are
    resampled with replacement `resamples` times (seeded); returns (observed mean, low, high) of the
    percentile interval at `level`.
    """
    a, b = np.atleast_2d(np.asarray(a, np.float64)), np.atleast_2d(np.asarray(b, np.float64))
    if a.shape != b.shape:
        raise ValueError(f"paired bootstrap needs equal shapes, got {a.shape} and {b.shape}")
    diff = (a - b).mean(axis=0)
    n = diff.shape[0]
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for start in range(0, resamples, 1000):  # chunks keep the index matrix small on large query sets
        stop = min(start + 1000, resamples)
        stats[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(stats, [tail, 100 - tail])
    return float(diff.mean()), float(lo), float(hi)


def fmt_ci(est: float, lo: float, hi: float, scale: float = 100) -> str:
    if any(math.isnan(x) for x in (est, lo, hi)):
        return "-"
    return f"{scale * est:+.2f} [{scale * lo:+.2f}, {scale * hi:+.2f}]"
