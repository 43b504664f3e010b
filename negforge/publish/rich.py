"""The `rich` config: one row per query with ids, texts, and every negative's provenance and scores.

The Arrow schema is explicit so shards written by different processes concatenate without surprises.
"""

from __future__ import annotations

import pyarrow as pa

from negforge.records import Corpus, FilterCandidate, QueryResult

SCORES = pa.struct([("bm25", pa.float32()), ("dense", pa.float32()), ("hybrid", pa.float32())])
RANKS = pa.struct(
    [("bm25", pa.int32()), ("dense", pa.int32()), ("random", pa.int32()), ("given", pa.int32())]
)
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
        ("source", pa.string()),
        ("span", pa.string()),
        ("replacement", pa.string()),
        ("verified", pa.bool_()),
    ]
)
FILTER_SCORES = pa.struct(
    [
        ("length_ratio", pa.float32()),
        ("alpha_ratio", pa.float32()),
        ("language", pa.string()),
        ("duplicate_of", pa.string()),
        ("dup_ratio", pa.float32()),
        ("sim_positive", pa.float32()),
        ("sim_query", pa.float32()),
        ("sim_query_positive", pa.float32()),
        ("ce_score", pa.float32()),
        ("ce_prob", pa.float32()),
        ("ce_positive", pa.float32()),
        ("nli_entailment", pa.float32()),
        ("nli_contradiction", pa.float32()),
        ("leak_span", pa.string()),
        ("judge_p_yes", pa.float32()),
    ]
)
FILTER_SCORE_KEYS = tuple(f.name for f in FILTER_SCORES)
_CANDIDATE_FIELDS = [
    ("doc_id", pa.string()),
    ("text", pa.string()),
    ("source", pa.string()),
    ("sources", pa.list_(pa.string())),
    ("rank", pa.int32()),
    ("scores", SCORES),
    ("ranks", RANKS),
    ("generation", GENERATION),
    ("filter_scores", FILTER_SCORES),
]
NEGATIVE = pa.struct([*_CANDIDATE_FIELDS, ("difficulty", pa.string())])
DROPPED = pa.struct([*_CANDIDATE_FIELDS, ("filter", pa.string()), ("reason", pa.string())])
#: a candidate a filter judged a likely positive and, on request, kept as one: the evidence is the filter that
#: judged it, its reason and every score computed for it (filter_scores), beside its retrieval scores
RELABELED = DROPPED
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
        ("dropped", pa.list_(DROPPED)),
        ("short", pa.bool_()),
        ("relabeled_positives", pa.list_(RELABELED)),
    ]
)


def _candidate(c: FilterCandidate, filter_scores: dict, keep_text: bool = True) -> dict:
    return {
        "doc_id": c.doc_id,
        "text": c.text if keep_text or c.doc_id is None else None,
        "source": c.source,
        "sources": c.sources or [c.source],
        "rank": c.rank,
        "scores": {k: c.scores.get(k) for k in ("bm25", "dense", "hybrid")},
        "ranks": {k: c.meta.get("ranks", {}).get(k) for k in ("bm25", "dense", "random", "given")},
        "generation": c.meta.get("generation"),
        "filter_scores": {k: filter_scores.get(k) for k in FILTER_SCORE_KEYS},
    }


def rich_rows(results: list[QueryResult], corpus: Corpus, dropped_text: bool = False) -> list[dict]:
    """One row per query: kept negatives in mix order, every dropped candidate with its verdict, and the
    candidates relabeled as positives (filters with `on_false_negative: relabel`), text always kept."""
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
                "negatives": [{**_candidate(c, sc), "difficulty": None} for c, sc in r.negatives],
                "dropped": [
                    {
                        **_candidate(c, o.scores, dropped_text),
                        "filter": o.filter,
                        "reason": o.reason,
                    }
                    for c, o in r.dropped
                ],
                "short": r.short,
                "relabeled_positives": [
                    {**_candidate(c, o.scores), "filter": o.filter, "reason": o.reason}
                    for c, o in r.relabeled
                ],
            }
        )
    return rows


def rich_table(results: list[QueryResult], corpus: Corpus, dropped_text: bool = False) -> pa.Table:
    return pa.Table.from_pylist(rich_rows(results, corpus, dropped_text), schema=RICH_SCHEMA)
