"""From mined windows and synthetic passages to each query's final negatives: filters, then the mixer.

Every candidate leaves with a verdict: dropped by the selection margins, by a filter (with its reason and
scores), by the mixer (quota full, or the same text already chosen from another source), or kept.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from negforge.config import RunConfig
from negforge.filters import FilterStack, FilterStats
from negforge.filters.duplicate import text_hash
from negforge.mining.pool import MiningContext, query_rng
from negforge.mining.selection import sample
from negforge.mixing.batch import build_batch
from negforge.records import FilterCandidate, Judged, Kept, Outcome, QueryResult

MINED = ("bm25", "dense")
GROUP_ORDER = ("given", "mined", "dense", "bm25", "random", "rules", "llm")


def quotas_for(cfg: RunConfig, r: QueryResult) -> tuple[dict[str, int], int]:
    """This query's quota per source group (the LLM quota only where synthetic negatives were requested) and
    how many negatives it should end with: with explicit quotas the fallback fills an LLM slot not asked for,
    so every query gets the configured total."""
    src = cfg.sources
    if cfg.mix.quotas:
        q = dict(cfg.mix.quotas)
    else:
        q = {"mined": cfg.selection.num_negatives if cfg.score_by else 0}
        if src.random.enabled:
            q["random"] = src.random.count
        if src.llm.enabled:
            q["llm"] = src.llm.count
        if src.rules.enabled:
            q["rules"] = src.rules.count
    want = sum(v for k, v in q.items() if k != "llm" or r.llm_asked or cfg.mix.quotas)
    if "llm" in q and not r.llm_asked:
        q["llm"] = 0
    return {k: v for k, v in q.items() if v > 0}, want


def ntuple_width(cfg: RunConfig) -> int:
    """Negatives per n-tuple row: what a fully served query ends with.

    With explicit quotas that is their sum (the fallback fills short sources and unasked LLM slots); without,
    the mined count plus random, plus LLM only when every query asks for it (fraction < 1 leaves most queries
    without synthetic ones, and a width they cannot reach would drop them all).
    """
    if cfg.mix.quotas:
        return sum(cfg.mix.quotas.values())
    src = cfg.sources
    return (
        (cfg.selection.num_negatives if cfg.score_by else 0)
        + (src.random.count if src.random.enabled else 0)
        + (src.llm.count if src.llm.enabled and src.llm.fraction >= 1 else 0)
        + (src.rules.count if src.rules.enabled else 0)
    )


def _group(source: str, mined_mode: bool, given_own: bool = False) -> str:
    """The quota group of a source: bm25/dense pool as `mined` unless quotas name them; given negatives join
    the mined group unless `given` has its own quota."""
    if source == "given" and not given_own:
        return "mined" if mined_mode else "dense"
    return "mined" if mined_mode and source in MINED else source


@dataclass
class MixedQuery:
    """One query after the mixer: its negatives (candidate, scores) in mix order, the dropped candidates with
    their verdicts, the relabeled positives (on_false_negative: relabel), and whether it fell short."""

    negatives: list[Kept]
    dropped: list[Judged]
    relabeled: list[Judged]
    short: bool


def _one_relabel_per_document(cands: list[FilterCandidate], outcomes: list[Outcome]) -> list[Outcome]:
    """`outcomes` with every other copy of a relabeled document (same row or same normalised text), kept or
    relabeled, turned into a `mixer/relabeled_positive` drop; the first relabeled copy stays."""
    first: dict[object, int] = {}
    for i, (c, o) in enumerate(zip(cands, outcomes, strict=True)):
        if o.relabeled:
            for key in (("row", c.row), ("text", text_hash(c.text))):
                first.setdefault(key, i)
    if not first:
        return outcomes
    keepers = set(first.values())
    out = []
    for i, (c, o) in enumerate(zip(cands, outcomes, strict=True)):
        twin = ("row", c.row) in first or ("text", text_hash(c.text)) in first
        if twin and i not in keepers and (o.kept or o.relabeled):
            o = Outcome(False, "mixer", "relabeled_positive", o.scores)
        out.append(o)
    return out


def mix_query(
    cfg: RunConfig, r: QueryResult, cands: list[FilterCandidate], outcomes: list[Outcome]
) -> MixedQuery:
    """Choose this query's negatives from the filter survivors: quotas first, then the fallback order.

    A corpus document relabeled as a positive is never a negative of this query, even where another
    candidate carries the same document or the same text (a given negative, a corpus duplicate): that one
    is dropped as `relabeled_positive`, as is a second relabeled copy of one document.
    """
    outcomes = _one_relabel_per_document(cands, outcomes)
    quotas, want = quotas_for(cfg, r)
    mined_mode = "mined" in quotas or not cfg.mix.quotas
    given_own = "given" in cfg.mix.quotas
    groups: dict[str, list[int]] = {}
    for i, (c, o) in enumerate(zip(cands, outcomes, strict=True)):
        if o.kept:
            groups.setdefault(_group(c.source, mined_mode, given_own), []).append(i)
    rng = query_rng(cfg.seed, "mix:" + r.query.id)
    score_by = cfg.score_by
    chosen: list[int] = []
    seen_text: set[str] = set()
    dup: dict[int, int] = {}

    def take(i: int) -> bool:
        h = text_hash(cands[i].text)
        if h in seen_text:
            dup[i] = next(j for j in chosen if text_hash(cands[j].text) == h)
            return False
        seen_text.add(h)
        chosen.append(i)
        return True

    # corpus documents before LLM passages, so a text found both ways is credited to the real document
    for g, k in sorted(quotas.items(), key=lambda kv: GROUP_ORDER.index(kv[0])):
        pool = [i for i in groups.get(g, []) if i not in chosen]
        if g in ("mined", "given", *MINED) and score_by is not None and pool:
            scores = np.array([cands[i].scores.get(score_by, -math.inf) for i in pool], dtype=np.float64)
            picked = [pool[int(p)] for p in sample(scores, k, cfg.selection, r.pos_min, rng)]
            order = picked + [i for i in pool if i not in picked]  # the rest replace text duplicates
        else:
            order = pool
        got = 0
        for i in order:
            if got == k:
                break
            got += take(i)
    fallback = []
    for f in cfg.mix.fallback:
        g = _group(f, mined_mode, given_own)
        for gg in MINED if (g == "mined" and not mined_mode) else (g,):
            if gg not in fallback:
                fallback.append(gg)
    for g in fallback:
        for i in groups.get(g, []):
            if len(chosen) >= want:
                break
            if i not in chosen and i not in dup:
                take(i)
    negatives = [Kept(cands[i], outcomes[i].scores) for i in chosen]
    dropped: list[Judged] = []
    relabeled: list[Judged] = []
    for i, (c, o) in enumerate(zip(cands, outcomes, strict=True)):
        if o.relabeled:
            relabeled.append(Judged(c, o))
        elif not o.kept:
            dropped.append(Judged(c, o))
        elif i in dup:
            dup_scores = {**o.scores, "duplicate_of": cands[dup[i]].key}
            dropped.append(Judged(c, Outcome(False, "mixer", "duplicate_text", dup_scores, dup[i])))
        elif i not in chosen:
            dropped.append(Judged(c, Outcome(False, "mixer", "not_mixed", o.scores)))
    return MixedQuery(negatives, dropped, relabeled, len(chosen) < want)


def judge_and_mix(
    cfg: RunConfig, ctx: MiningContext, results: list[QueryResult], stack: FilterStack | None
) -> dict[str, Any]:
    """Run the filter stack over the shard in one batch, mix each query; returns the shard's verdict counts."""
    batch, per_query = build_batch(ctx, results)
    if stack is not None and stack.filters:
        outcomes, fstats = stack.run(batch)
    else:
        outcomes, fstats = [Outcome(True) for _ in batch.candidates], {}
    entering: Counter = Counter(c.source for c in batch.candidates)  # what the filters saw
    margin: Counter = Counter()
    verdicts: Counter = Counter()
    mixed: Counter = Counter()
    identity: Counter = Counter()
    for r, idx in zip(results, per_query, strict=True):
        for c, o in r.dropped:  # identity and margin drops, recorded before the filters
            verdicts[f"{o.filter}/{o.reason}"] += 1
            if o.filter == "identity":
                identity[o.reason] += 1
            else:
                margin[c.source] += 1
        m = mix_query(cfg, r, [batch.candidates[i] for i in idx], [outcomes[i] for i in idx])
        r.negatives, r.short, r.relabeled = m.negatives, m.short, m.relabeled
        r.dropped = r.dropped + m.dropped
        for _, o in m.dropped:
            verdicts[f"{o.filter}/{o.reason}"] += 1
        for _, o in m.relabeled:
            verdicts[f"relabeled/{o.filter}/{o.reason}"] += 1
        mixed.update(c.source for c, _ in m.negatives)
        verdicts["kept/mixed"] += len(m.negatives)
    return {
        "entering": dict(entering),
        "margin_dropped": dict(margin),
        "filters": {name: st.as_dict() for name, st in fstats.items()},
        "verdicts": dict(verdicts),
        "mixed": dict(mixed),
        "identity": dict(identity),
    }


def merge_filter_stats(shard_stats: list[dict]) -> dict[str, FilterStats]:
    out: dict[str, FilterStats] = {}
    for s in shard_stats:
        for name, d in ((s.get("verdicts") or {}).get("filters") or {}).items():
            out.setdefault(name, FilterStats()).merge(FilterStats.from_dict(d))
    return out
