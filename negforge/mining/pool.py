"""Per-query candidate pools: BM25 and dense hits merged, every candidate scored by every scorer.

BM25 scores come from the full score vector and dense scores from cached embeddings, so a candidate found by
one source still carries the other's score; the hybrid score is the mean of per-query min-max normalised
source scores, applied identically to the positives so margins work on it too.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from negforge.config import RunConfig
from negforge.mining.bm25 import BM25Miner, top_k_excluding
from negforge.mining.dense import DenseMiner
from negforge.mining.identity import IdentityIndex
from negforge.mining.selection import candidate_margin_reason, gap_cut
from negforge.mining.topics import Topics
from negforge.records import (
    SAME_AS_POSITIVE,
    Candidate,
    Corpus,
    Query,
    QueryIdentity,
    QueryResult,
    Refused,
    Selected,
)
from negforge.text_identity import text_key

SCORERS = ("bm25", "dense")


@dataclass
class MiningContext:
    """Everything shard mining reads; built once per run, shared by all shards."""

    cfg: RunConfig
    corpus: Corpus
    queries: list[Query]
    bm25: BM25Miner | None = None
    dense: DenseMiner | None = None
    query_emb: np.ndarray | None = None
    topics: Topics | None = None
    filters: Any = None  # negforge.filters.FilterStack, built once per run
    notes: list[str] = field(default_factory=list)
    identity: IdentityIndex | None = None  # built on first use (the identity rule is always on)
    given_only: frozenset[int] = frozenset()  # corpus rows that are only some query's given negative
    entity_pool: dict[str, list[str]] | None = None  # same-shape entity terms for rule edits (built lazily)
    calibration: dict | None = None  # the hidden-positive calibration's record (negforge.calibration.in_run)
    _siblings: dict[int, frozenset[int]] | None = None

    def bm25_miner(self) -> BM25Miner:
        """The run's BM25 index; RuntimeError when sources.bm25 is off (a caller asked for what is not built)."""
        if self.bm25 is None:
            raise RuntimeError("sources.bm25 is off: this run has no BM25 index")
        return self.bm25

    def dense_miner(self) -> DenseMiner:
        """The run's dense miner; RuntimeError when sources.dense is off."""
        if self.dense is None:
            raise RuntimeError("sources.dense is off: this run has no dense index")
        return self.dense

    def query_embeddings(self) -> np.ndarray:
        """Every query's embedding, shape (n_queries, dim), float32; RuntimeError when sources.dense is off."""
        if self.query_emb is None:
            raise RuntimeError("sources.dense is off: this run has no query embeddings")
        return self.query_emb

    def identity_index(self) -> IdentityIndex:
        """The corpus's text keys, built once per context."""
        if self.identity is None:
            self.identity = IdentityIndex(self.corpus, self.cfg.cache_path / "identity")
        return self.identity

    def query_identity(self, q: Query) -> QueryIdentity:
        """`q`'s identity-rule exclusions, counting positives of queries with the same normalised text."""
        if self._siblings is None:
            self._siblings = IdentityIndex.siblings(self.queries)
        return self.identity_index().for_query(q, self._siblings.get(text_key(q.text), frozenset()))

    def fetch_depth(self, max_positives: int) -> int:
        sel = self.cfg.selection
        k = (sel.skip_top + sel.depth) * (sel.topics.overfetch if self.topics else 1) + max_positives
        return min(k, len(self.corpus))


def query_rng(seed: int, query_id: str) -> np.random.Generator:
    """Per-query generator: results do not depend on shard size or order."""
    return np.random.default_rng([seed, int(hashlib.sha1(query_id.encode()).hexdigest()[:8], 16)])


def _fuse(cands: list[Candidate], pos_scores: dict[str, list[float]]) -> list[float]:
    """Min-max normalise each scorer over this query's pool, average; returns the positives' hybrid scores."""
    pos_h = np.zeros(len(next(iter(pos_scores.values()))), dtype=np.float64)
    cand_h = np.zeros(len(cands), dtype=np.float64)
    for s in SCORERS:
        vals = np.array([c.scores[s] for c in cands], dtype=np.float64)
        lo, hi = (vals.min(), vals.max()) if len(vals) else (0.0, 1.0)
        span = hi - lo if hi > lo else 1.0
        cand_h += (vals - lo) / span / len(SCORERS)
        pos_h += (np.asarray(pos_scores[s], dtype=np.float64) - lo) / span / len(SCORERS)
    for c, h in zip(cands, cand_h, strict=True):
        c.scores["hybrid"] = float(h)
    return [float(x) for x in pos_h]


def random_rows(n_docs: int, count: int, exclude: set[int], rng: np.random.Generator) -> list[int]:
    """`count` distinct uniform rows not in `exclude` (fewer only when the corpus runs out)."""
    avail = n_docs - len(exclude)
    count = min(count, max(avail, 0))
    out: list[int] = []
    seen = set(exclude)
    while len(out) < count:
        for r in rng.integers(0, n_docs, size=2 * (count - len(out)) + 8):
            r = int(r)
            if r not in seen:
                seen.add(r)
                out.append(r)
                if len(out) == count:
                    break
    return out


def mine_queries(ctx: MiningContext, qidx: list[int]) -> list[QueryResult]:
    """Mine, score and select negatives for the queries at positions `qidx` of `ctx.queries`."""
    cfg, sel = ctx.cfg, ctx.cfg.selection
    queries = [ctx.queries[i] for i in qidx]
    idents = [ctx.query_identity(q) for q in queries]
    foreign = min(len(ctx.given_only), 2 * (cfg.selection.skip_top + cfg.selection.depth))
    # each query's own fetch depth: over-fetch by every row it excludes (its positives and the rows the identity
    # rule removes), never by its shard neighbours', so its pool is the same whatever shares its shard
    depths = [
        ctx.fetch_depth(len(q.positive_rows) + len(i.excluded) + foreign)
        for q, i in zip(queries, idents, strict=True)
    ]
    dense_rows = None
    if ctx.dense is not None and ctx.query_emb is not None and cfg.sources.dense.enabled:
        dense_rows = _dense_search(ctx, qidx, depths)
    bm25_ids = ctx.bm25.query_token_ids([q.text for q in queries]) if ctx.bm25 is not None else None
    score_by = cfg.score_by
    out = []
    for j, (qi, q) in enumerate(zip(qidx, queries, strict=True)):
        pos = q.positive_rows
        posset = set(pos)
        qident = idents[j]
        k = depths[j]
        excluded = posset | set(qident.excluded)
        if ctx.given_only:  # documents known only as another query's given negative are not mined
            excluded |= ctx.given_only - {g.row for g in q.given}
        cands: dict[int, Candidate] = {}
        pool_sizes: Counter = Counter()
        funnel: Counter = Counter()
        if dense_rows is not None:
            for rank, (r, s) in enumerate(_dense_hits(ctx, qi, dense_rows[j], k, excluded), 1):
                cands[r] = Candidate(r, {"dense": s}, {"dense": rank})
        bm25_all = None
        if bm25_ids is not None:
            bm25_all = ctx.bm25_miner().score_all(bm25_ids[j])
            rows, scores = top_k_excluding(bm25_all, k - len(excluded), sorted(excluded))
            for rank, (r, s) in enumerate(zip(rows, scores, strict=True), 1):
                c = cands.setdefault(int(r), Candidate(int(r)))
                c.scores["bm25"], c.ranks["bm25"] = float(s), rank
        topics = ctx.topics
        topic = int(topics.query_topic[qi]) if topics is not None else None
        if topics is not None and topic is not None:
            before = len(cands)
            cands = {r: c for r, c in cands.items() if topics.doc_topic[r] == topic}
            funnel["other_topic"] += before - len(cands)
        pool = list(cands.values())
        for c in pool:
            for src in c.ranks:
                pool_sizes[src] += 1
        identity_dropped = [
            Refused(Selected(Candidate(r, {}, {}), "identity", 0), reason)
            for r, reason in sorted(qident.excluded.items())
        ]
        for refused in identity_dropped:
            funnel[refused.reason] += 1
        given: list[Selected] = []
        for gi, g in enumerate(q.given, 1):
            if g.row in posset or g.row in qident.excluded:
                why = qident.excluded.get(g.row, SAME_AS_POSITIVE)
                identity_dropped.append(
                    Refused(Selected(Candidate(g.row, {}, {"given": gi}), "given", gi), why)
                )
                funnel[why] += 1
                continue
            given.append(Selected(Candidate(g.row, {}, {"given": gi}), "given", gi))
        if given:
            pool_sizes["given"] += len(given)
        pos_scores = _score_all(ctx, qi, pool + [s.candidate for s in given], pos, bm25_all)
        if score_by == "hybrid":
            fused = pool + [s.candidate for s in given]
            pos_scores["hybrid"] = _fuse(fused, pos_scores) if fused else [0.0] * len(pos)
        rng = query_rng(cfg.seed, q.id)
        window: list[Selected] = []
        margin_dropped: list[Refused] = []
        pos_min = float("nan")
        if score_by is not None:
            pool.sort(key=lambda c: (-c.scores[score_by], c.row))
            funnel["pool"] += len(pool)
            funnel["skipped_top"] += min(sel.skip_top, len(pool))
            funnel["below_window"] += max(0, len(pool) - sel.skip_top - sel.depth)
            pos_min = min(pos_scores[score_by]) if pos_scores.get(score_by) else float("nan")
            ranked = pool[sel.skip_top : sel.skip_top + sel.depth]
            cut = gap_cut([c.scores[score_by] for c in ranked]) if sel.gap_cut else None
            for rank, c in enumerate(ranked, sel.skip_top + 1):
                picked = Selected(c, min(c.ranks, key=lambda src: c.ranks[src]), rank)
                reason = candidate_margin_reason(c.scores, pos_scores, score_by, sel) or _above(
                    c, cut, score_by
                )
                if reason:
                    funnel[reason] += 1
                    margin_dropped.append(Refused(picked, reason))
                else:
                    window.append(picked)
            funnel["window"] += len(window)
            kept_given = []
            for g_sel in given:
                reason = candidate_margin_reason(g_sel.candidate.scores, pos_scores, score_by, sel) or _above(
                    g_sel.candidate, cut, score_by
                )
                if reason:
                    funnel[reason] += 1
                    margin_dropped.append(Refused(g_sel, reason))
                else:
                    kept_given.append(g_sel)
            given = kept_given
        random: list[Selected] = []
        if cfg.sources.random.enabled:
            taken = excluded | {s.candidate.row for s in window}
            extra = [
                Candidate(r, {}, {"random": i})
                for i, r in enumerate(random_rows(len(ctx.corpus), cfg.sources.random.count, taken, rng), 1)
            ]
            pool_sizes["random"] += len(extra)
            _score_all(ctx, qi, extra, (), bm25_all)
            random = [Selected(c, "random", 0) for c in extra]
        out.append(
            QueryResult(
                q,
                topic,
                pos_scores,
                window,
                dict(pool_sizes),
                funnel,
                random,
                margin_dropped,
                pos_min,
                given=given,
                identity_dropped=identity_dropped,
                identity=qident,
            )
        )
    return out


def _above(c: Candidate, cut: float | None, score_by: str) -> str | None:
    """`gap_cut` when the query's gap cut is set and `c` scores at or above it."""
    return "gap_cut" if cut is not None and c.scores[score_by] >= cut else None


#: rows searched beyond a query's depth, so a near-tie at the cut that faiss orders differently for another
#: batch (its BLAS path starts at 20 queries) still reaches the rescoring in `_dense_hits`
_SEARCH_SLACK = 8


def _dense_search(ctx: MiningContext, qidx: list[int], depths: list[int]) -> list[np.ndarray]:
    """Each query's searched rows, searched together only with queries of the same depth: an approximate index
    (HNSW's ef is at least k, IVF's lists) answers a query the same only when asked for the same k."""
    out: list[np.ndarray] = [np.zeros(0, dtype=np.int64)] * len(qidx)
    groups: dict[int, list[int]] = {}
    for j, k in enumerate(depths):
        groups.setdefault(k, []).append(j)
    for k, js in sorted(groups.items()):
        rows, _ = ctx.dense_miner().search(
            np.asarray(ctx.query_embeddings()[[qidx[j] for j in js]]), min(k + _SEARCH_SLACK, len(ctx.corpus))
        )
        for jj, j in enumerate(js):
            out[j] = rows[jj]
    return out


def _dense_hits(
    ctx: MiningContext, qi: int, rows: np.ndarray, k: int, excluded: set[int]
) -> list[tuple[int, float]]:
    """One query's dense hits: the first `k` of its searched rows, rescored from the cached embeddings
    (`pair_scores`, one query at a time, so a score never depends on how many queries faiss searched together:
    faiss#1808), ranked by (score, row), excluded rows dropped. Returns (row, score) best first."""
    rows = np.asarray([int(r) for r in rows if r >= 0], dtype=np.int64)
    if not len(rows):
        return []
    scores = ctx.dense_miner().pair_scores(ctx.query_embeddings()[qi], rows)
    order = np.lexsort((rows, -scores))[:k]
    return [(int(rows[o]), float(scores[o])) for o in order if int(rows[o]) not in excluded]


def _score_all(
    ctx: MiningContext, qi: int, cands: list[Candidate], pos: tuple[int, ...], bm25_all: np.ndarray | None
) -> dict[str, list[float]]:
    """Fill every enabled scorer's score on `cands`; return the positives' scores per scorer."""
    pos_scores: dict[str, list[float]] = {}
    if bm25_all is not None:
        for c in cands:
            c.scores.setdefault("bm25", float(bm25_all[c.row]))
        pos_scores["bm25"] = [float(bm25_all[r]) for r in pos]
    if ctx.dense is not None and ctx.query_emb is not None:
        need = [c for c in cands if "dense" not in c.scores]
        if need:
            vals = ctx.dense.pair_scores(ctx.query_emb[qi], np.array([c.row for c in need]))
            for c, v in zip(need, vals, strict=True):
                c.scores["dense"] = float(v)
        pos_scores["dense"] = [
            float(v) for v in ctx.dense.pair_scores(ctx.query_emb[qi], np.array(pos, dtype=np.int64))
        ]
    return pos_scores
