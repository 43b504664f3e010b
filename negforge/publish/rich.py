"""The `rich` config's rows built from a shard's query results (schema and row types: negforge/rich_schema.py)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, cast

import pyarrow as pa

from negforge.records import Corpus, FilterCandidate, Outcome, QueryResult
from negforge.rich_schema import (
    FILTER_SCORE_KEYS,
    RICH_SCHEMA,
    FilterScores,
    GenerationRecord,
    RichCandidate,
    RichRow,
    RichVerdict,
)


def _generation(c: FilterCandidate) -> GenerationRecord | None:
    if c.generation is None:
        return None
    record = asdict(c.generation)
    record.pop("text")
    return record  # type: ignore[return-value]  # SyntheticNegative's fields are GenerationRecord's


def _candidate(c: FilterCandidate, filter_scores: dict[str, Any], keep_text: bool = True) -> RichCandidate:
    return {
        "doc_id": c.doc_id,
        "text": c.text if keep_text or c.doc_id is None else None,
        "source": c.source,
        "sources": c.sources or [c.source],
        "rank": c.rank,
        "scores": {
            "bm25": c.scores.get("bm25"),
            "dense": c.scores.get("dense"),
            "hybrid": c.scores.get("hybrid"),
        },
        "ranks": {
            "bm25": c.ranks.get("bm25"),
            "dense": c.ranks.get("dense"),
            "random": c.ranks.get("random"),
            "given": c.ranks.get("given"),
        },
        "generation": _generation(c),
        "filter_scores": cast(FilterScores, {k: filter_scores.get(k) for k in FILTER_SCORE_KEYS}),
        "merged": list(c.merged),
    }


def _verdict(c: FilterCandidate, o: Outcome, keep_text: bool = True) -> RichVerdict:
    return {**_candidate(c, o.scores, keep_text), "filter": o.filter, "reason": o.reason}


def rich_rows(results: list[QueryResult], corpus: Corpus, dropped_text: bool = False) -> list[RichRow]:
    """One row per query: kept negatives in mix order, every dropped candidate with its verdict, and the
    candidates relabeled as positives (filters with `on_false_negative: relabel`), text always kept."""
    return [
        {
            "query_id": r.query.id,
            "query": r.query.text,
            "positive_ids": [corpus.ids[p] for p in r.query.positive_rows],
            "positives": [corpus.texts[p] for p in r.query.positive_rows],
            "positive_scores": {
                "bm25": r.positive_scores.get("bm25"),
                "dense": r.positive_scores.get("dense"),
                "hybrid": r.positive_scores.get("hybrid"),
            },
            "topic": r.topic,
            "negatives": [{**_candidate(c, sc), "difficulty": None} for c, sc in r.negatives],
            "dropped": [_verdict(c, o, dropped_text) for c, o in r.dropped],
            "short": r.short,
            "relabeled_positives": [_verdict(c, o) for c, o in r.relabeled],
        }
        for r in results
    ]


def rich_table(results: list[QueryResult], corpus: Corpus, dropped_text: bool = False) -> pa.Table:
    """`rich_rows` as an Arrow table of RICH_SCHEMA."""
    return pa.Table.from_pylist(rich_rows(results, corpus, dropped_text), schema=RICH_SCHEMA)
