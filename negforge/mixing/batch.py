"""A shard's candidates as one filter batch: mined windows, given and random negatives, and synthetic passages,
each with its provenance; identity and selection-margin refusals judged before any filter runs."""

from __future__ import annotations

import numpy as np

from negforge.filters import CandidateBatch, FilterQuery
from negforge.mining.pool import MiningContext
from negforge.records import FilterCandidate, Judged, Outcome, QueryResult, Selected, SyntheticNegative


def _mined(ctx: MiningContext, s: Selected) -> FilterCandidate:
    c = s.candidate
    return FilterCandidate(
        qi=-1,
        text=ctx.corpus.texts[c.row],
        source=s.source,
        row=c.row,
        doc_id=ctx.corpus.ids[c.row],
        rank=s.rank,
        scores=dict(c.scores),
        sources=list(c.sources),
        ranks=dict(c.ranks),
    )


def _synthetic(g: SyntheticNegative, score: float | None, emb: np.ndarray | None) -> FilterCandidate:
    return FilterCandidate(
        qi=-1,
        text=g.text,
        source=g.source,
        scores={} if score is None else {"dense": score},
        sources=[g.source],
        generation=g,
        embedding=emb,
    )


def build_batch(ctx: MiningContext, results: list[QueryResult]) -> tuple[CandidateBatch, list[list[int]]]:
    """All of a shard's candidates in one batch (mined first, then random, then LLM), indexes per query."""
    qpos = {q.id: i for i, q in enumerate(ctx.queries)}
    queries: list[FilterQuery] = []
    cands: list[FilterCandidate] = []
    per_query: list[list[int]] = []
    for qi, r in enumerate(results):
        queries.append(
            FilterQuery(
                r.query.id,
                r.query.text,
                [ctx.corpus.texts[p] for p in r.query.positive_rows],
                r.query.positive_rows,
                emb_index=qpos[r.query.id],
            )
        )
        mine = [_mined(ctx, s) for s in [*r.window, *r.given, *r.random]]
        identity = [
            Judged(_with_qi(_mined(ctx, s), qi), Outcome(False, "identity", reason))
            for s, reason in r.identity_dropped
        ]
        margin_out: list[Judged] = []
        for x in r.synthetic:
            c = _synthetic(x.negative, x.dense, x.embedding)
            reason = r.identity.text_reason(c.text) if r.identity is not None else None
            if reason:
                identity.append(Judged(_with_qi(c, qi), Outcome(False, "identity", reason)))
            elif (m := synthetic_margin_reason(ctx, r, c)) is not None:
                margin_out.append(Judged(_with_qi(c, qi), Outcome(False, "selection", m)))
            else:
                mine.append(c)
        for c in mine:
            c.qi = qi
        per_query.append(list(range(len(cands), len(cands) + len(mine))))
        cands += mine
        r.dropped = (
            identity
            + [
                Judged(_with_qi(_mined(ctx, s), qi), Outcome(False, "selection", reason))
                for s, reason in r.margin_dropped
            ]
            + margin_out
        )
    return CandidateBatch(queries, cands), per_query


def synthetic_margin_reason(ctx: MiningContext, r: QueryResult, c: FilterCandidate) -> str | None:
    """The selection margin of a synthetic passage, on its dense score against the query (the run's scorer,
    same prompt and precision as the positives), or None when it passes.

    A verified edit of a positive is close to that positive by design, so the TopK-PercPos margins do not
    apply to it; it must instead score below the very positive it edits by `selection.edit_margin` (an edit
    the scorer ranks at or above its base has likely not moved the meaning: `edit_margin`). Any other
    synthetic passage (rewrites, edits of a mined negative, unverified kinds) gets the mined candidates'
    margins against the weakest positive (`absolute_margin`, `relative_margin`)."""
    sel = ctx.cfg.selection
    pos = r.positive_scores.get("dense") or []
    score = c.scores.get("dense")
    if score is None or not pos:
        return None
    gen = c.generation
    if gen is not None and gen.verified:
        if sel.edit_margin is None:
            return None
        rows = [i for i, row in enumerate(r.query.positive_rows) if ctx.corpus.ids[row] == gen.base_doc_id]
        if not rows:
            return None  # not an edit of one of this query's positives: nothing to compare with
        base = pos[rows[0]]
        return "edit_margin" if score >= base - sel.edit_margin else None
    weakest = min(pos)
    if sel.absolute_margin is not None and score > weakest - sel.absolute_margin:
        return "absolute_margin"
    relative = sel.margin()
    if relative is not None and score > weakest - abs(weakest) * relative:
        return "relative_margin"
    return None


def _with_qi(c: FilterCandidate, qi: int) -> FilterCandidate:
    c.qi = qi
    return c
