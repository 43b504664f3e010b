"""Replay selection settings on a calibration run's recorded candidates, and measure leak and fill.

A calibration run mines with the positive-aware margins and the embedding filter's threshold off, a deep rank
window and `sampling: top`, so every candidate of the window reaches the filters with its scores recorded in
`rich` (selection scores, `filter_scores.sim_positive`). Which negatives a setting keeps is then a function of
those numbers alone: the same margin rule as the run (`mining.selection.candidate_margin_reason`, NV-Retriever's
TopK-PercPos and its absolute variant, on the selection score and, for hybrid selection, on the dense score
too), the embedding filter's `max_positive_sim`, the rank window `depth` (sentence-transformers'
`range_max`), and the per-query gap cut (`selection.gap_cut`, `mining.selection.gap_cut`). A replayed
setting keeps the first `num_negatives` survivors in rank order, as `sampling: top` does.

Leak = hidden positives among the kept negatives / hidden positives (95% Wilson interval); fill = share of
queries keeping all `num_negatives`; `false_negative_share` = leaked / kept negatives (the output's own rate).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from negforge.config import SelectionConfig
from negforge.mining.selection import candidate_margin_reason, gap_cut


@dataclass(frozen=True)
class RecordedCandidate:
    """One mined candidate as the calibration run recorded it. `rank`: 1-based pool position (best first);
    `scores`: the sources' scores ("dense", "bm25", "hybrid"); `sim_positive`: the embedding filter's
    highest cosine to a positive (None without an embedding filter); `passed_filters`: not dropped by anything in the
    calibration run (whose margins and embedding threshold are off)."""

    doc_id: str
    rank: int
    scores: Mapping[str, float]
    sim_positive: float | None
    passed_filters: bool


@dataclass(frozen=True)
class RecordedQuery:
    """A query's visible positives' scores, its candidates best first, and its hidden positives' doc ids."""

    query_id: str
    positive_scores: Mapping[str, list[float]]
    candidates: tuple[RecordedCandidate, ...]
    hidden: frozenset[str]


@dataclass(frozen=True)
class Setting:
    """One point of the grid: the settings that trade leak against fill."""

    relative_margin: float | None = 0.05
    absolute_margin: float | None = None
    max_positive_sim: float | None = None
    depth: int = 30
    gap: bool = False
    skip_top: int = 0  # the config's, not a grid axis: the window is ranks skip_top+1 .. skip_top+depth

    def label(self) -> str:
        parts = [f"relative_margin={self.relative_margin}", f"depth={self.depth}"]
        if self.absolute_margin is not None:
            parts.insert(1, f"absolute_margin={self.absolute_margin}")
        if self.max_positive_sim is not None:
            parts.append(f"max_positive_sim={self.max_positive_sim}")
        if self.gap:
            parts.append("gap_cut")
        return ", ".join(parts)


@dataclass(frozen=True)
class LeakFill:
    """What one setting does on the calibration queries (all folds pooled)."""

    setting: Setting
    queries: int
    hidden: int
    leaked: int
    leak: float
    leak_ci: tuple[float, float]
    fill: float
    negatives_per_query: float
    false_negative_share: float
    examples: list[tuple[str, str]] = field(default_factory=list, compare=False)  # (query id, leaked doc id)


# A calibration run applies none of what the grid replays (margins off, no embedding threshold), so whatever
# it dropped (identity, sanity, duplicate, max_score, an embedding filter's query-similarity bounds ...) was
# dropped by something no setting changes: it stays dropped.


def recorded_queries(rows: Iterable[Mapping], hidden: Mapping[str, Iterable[str]]) -> list[RecordedQuery]:
    """RecordedQuery per rich row (kept and dropped candidates, by rank; written negatives, which have no
    doc id, are left out). `hidden`: query id -> hidden doc ids; rows of other queries are skipped."""
    out = []
    for r in rows:
        qid = r["query_id"]
        if qid not in hidden:
            continue
        cands = []
        for c in [*r["negatives"], *r["dropped"]]:
            if not c.get("doc_id"):
                continue
            fs = c.get("filter_scores") or {}
            cands.append(
                RecordedCandidate(
                    c["doc_id"],
                    int(c["rank"]),
                    {k: float(v) for k, v in (c.get("scores") or {}).items() if v is not None},
                    fs.get("sim_positive"),
                    c.get("filter") is None,
                )
            )
        cands.sort(key=lambda c: c.rank)
        pos = {k: [float(x) for x in v] for k, v in (r.get("positive_scores") or {}).items() if v}
        out.append(RecordedQuery(qid, pos, tuple(cands), frozenset(hidden[qid])))
    return out


def margin_ok(q: RecordedQuery, relative: float | None, absolute: float | None, score_by: str) -> list[bool]:
    """Per candidate of `q` (in order): passes the run's positive-aware margins with these values."""
    sel = SelectionConfig(relative_margin=relative, absolute_margin=absolute)
    pos = dict(q.positive_scores)
    return [
        score_by in c.scores and candidate_margin_reason(dict(c.scores), pos, score_by, sel) is None
        for c in q.candidates
    ]


def kept(
    q: RecordedQuery, s: Setting, score_by: str, num_negatives: int, margins: list[bool] | None = None
) -> list[RecordedCandidate]:
    """The negatives setting `s` keeps for `q`: rank window, margins, embedding threshold, per-query gap,
    then the first `num_negatives` in rank order. `margins`: `margin_ok`'s answer for s's margins, when the
    caller has it already."""
    if margins is None:
        margins = margin_ok(q, s.relative_margin, s.absolute_margin, score_by)
    ranked = [
        (c, ok) for c, ok in zip(q.candidates, margins, strict=True)
        if s.skip_top < c.rank <= s.skip_top + s.depth and score_by in c.scores
    ]  # fmt: skip
    # the run cuts at the gap in its whole window, before any filter: so does the replay
    cut = gap_cut([c.scores[score_by] for c, _ in ranked]) if s.gap else None
    window = [(c, ok) for c, ok in ranked if c.passed_filters]
    out = []
    for c, ok in window:
        if not ok:
            continue
        if (
            s.max_positive_sim is not None
            and c.sim_positive is not None
            and c.sim_positive >= s.max_positive_sim
        ):
            continue
        if cut is not None and c.scores[score_by] >= cut:
            continue
        out.append(c)
        if len(out) == num_negatives:
            break
    return out


def wilson(k: int, n: int) -> tuple[float, float]:
    """95% Wilson score interval of k successes in n trials ((nan, nan) when n is 0)."""
    if n == 0:
        return (math.nan, math.nan)
    from scipy.stats import binomtest  # ~2 s to import: only a run that measures a leak pays it

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    return (float(ci.low), float(ci.high))


def measure(
    queries: list[RecordedQuery], s: Setting, score_by: str, num_negatives: int, cache: dict | None = None
) -> LeakFill:
    """Leak, fill and negatives per query of setting `s` over `queries` (every fold's queries pooled).
    `cache`: a dict shared across calls, holding `margin_ok` per (query position, margins)."""
    cache = {} if cache is None else cache
    leaked = hidden = filled = total = 0
    examples: list[tuple[str, str]] = []
    for i, q in enumerate(queries):
        key = (i, s.relative_margin, s.absolute_margin)
        if key not in cache:
            cache[key] = margin_ok(q, s.relative_margin, s.absolute_margin, score_by)
        ks = kept(q, s, score_by, num_negatives, cache[key])
        total += len(ks)
        filled += len(ks) >= num_negatives
        hidden += len(q.hidden)
        for c in ks:
            if c.doc_id in q.hidden:
                leaked += 1
                if len(examples) < 5:
                    examples.append((q.query_id, c.doc_id))
    n = len(queries)
    return LeakFill(
        s, n, hidden, leaked, leaked / hidden if hidden else math.nan, wilson(leaked, hidden),
        filled / n if n else math.nan, total / n if n else math.nan, leaked / total if total else 0.0, examples,
    )  # fmt: skip
