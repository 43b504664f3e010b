"""The `rich` config: one row per query with ids, texts, and every negative's provenance and scores.

The Arrow schema is explicit so shards written by different processes concatenate without surprises.
"""

from __future__ import annotations

from dataclasses import asdict

import pyarrow as pa

from negforge.generators.synthesize import SyntheticNegative
from negforge.mining.pool import QueryResult
from negforge.records import Corpus

SCORES = pa.struct([("bm25", pa.float32()), ("dense", pa.float32()), ("hybrid", pa.float32())])
RANKS = pa.struct([("bm25", pa.int32()), ("dense", pa.int32()), ("random", pa.int32())])
ATTRIBUTES = pa.struct(
    [("domain", pa.string()), ("difficulty", pa.string()), ("length", pa.string()), ("style", pa.string())]
)
GENERATION = pa.struct(
    [
        ("model", pa.string()),
        ("model_fingerprint", pa.string()),
        ("template", pa.string()),
        ("template_version", pa.string()),
        ("template_sha", pa.string()),
        ("mode", pa.string()),
        ("perturbation", pa.string()),
        ("perturbation_kind", pa.string()),
        ("attributes", ATTRIBUTES),
        ("reasoning", pa.string()),
        ("base_doc_id", pa.string()),
        ("seed", pa.int64()),
        ("prompt_tokens", pa.int32()),
        ("completion_tokens", pa.int32()),
        ("latency_s", pa.float32()),
        ("request_key", pa.string()),
    ]
)
NEGATIVE = pa.struct(
    [
        ("doc_id", pa.string()),
        ("text", pa.string()),
        ("source", pa.string()),
        ("sources", pa.list_(pa.string())),
        ("rank", pa.int32()),
        ("scores", SCORES),
        ("ranks", RANKS),
        ("generation", GENERATION),
    ]
)
POS_SCORES = pa.struct(
    [("bm25", pa.list_(pa.float32())), ("dense", pa.list_(pa.float32())), ("hybrid", pa.list_(pa.float32()))]
)
RICH_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("query", pa.string()),
        ("positive_ids", pa.list_(pa.string())),
        ("positives", pa.list_(pa.string())),
        ("positive_scores", POS_SCORES),
        ("topic", pa.int64()),
        ("negatives", pa.list_(NEGATIVE)),
        ("short", pa.bool_()),
    ]
)


def rich_rows(results: list[QueryResult], corpus: Corpus) -> list[dict]:
    rows = []
    for r in results:
        rows.append(
            {
                "query_id": r.query.id,
                "query": r.query.text,
                "positive_ids": [corpus.ids[p] for p in r.query.positive_rows],
                "positives": [corpus.texts[p] for p in r.query.positive_rows],
                "positive_scores": {k: r.positive_scores.get(k) for k in ("bm25", "dense", "hybrid")},
                "topic": r.topic,
                "negatives": [
                    {
                        "doc_id": corpus.ids[s.candidate.row],
                        "text": corpus.texts[s.candidate.row],
                        "source": s.source,
                        "sources": s.candidate.sources,
                        "rank": s.rank,
                        "scores": {k: s.candidate.scores.get(k) for k in ("bm25", "dense", "hybrid")},
                        "ranks": {k: s.candidate.ranks.get(k) for k in ("bm25", "dense", "random")},
                        "generation": None,
                    }
                    for s in r.selected
                ]
                + [_synthetic_row(g, score) for g, score in r.synthetic],
                "short": r.short,
            }
        )
    return rows


def _synthetic_row(g: SyntheticNegative, dense_score: float | None) -> dict:
    gen = asdict(g)
    gen.pop("text")
    return {
        "doc_id": None,
        "text": g.text,
        "source": "llm",
        "sources": ["llm"],
        "rank": 0,
        "scores": {"bm25": None, "dense": dense_score, "hybrid": None},
        "ranks": {"bm25": None, "dense": None, "random": None},
        "generation": gen,
    }


def rich_table(results: list[QueryResult], corpus: Corpus) -> pa.Table:
    return pa.Table.from_pylist(rich_rows(results, corpus), schema=RICH_SCHEMA)
