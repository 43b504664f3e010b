"""The `rich` row: one row per query as the shards store it, typed twice over: its Arrow schema (explicit, so
shards written by different processes concatenate without surprises) and the TypedDicts a reader of
`table.to_pylist()` gets (`RichRow`, `RichCandidate`, ...). Change one, change the other and bump
`RICH_SCHEMA_VERSION`: a run folder whose shards hold another version judges every query again
(tests/test_rich_schema.py pins the schema to its version). No stage is imported here.
"""

from __future__ import annotations

from typing import TypedDict

import pyarrow as pa

#: bumped with every change of RICH_SCHEMA (v2: candidates carry `merged`, the keys of duplicates merged in)
RICH_SCHEMA_VERSION = 2

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
    ("merged", pa.list_(pa.string())),
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


class RetrievalScores(TypedDict):
    """A candidate's retrieval scores (None where that retriever did not score it)."""

    bm25: float | None
    dense: float | None
    hybrid: float | None


class Ranks(TypedDict):
    """A candidate's rank per source (0-based; None where that source did not return it)."""

    bm25: int | None
    dense: int | None
    random: int | None
    given: int | None


class Attributes(TypedDict):
    """The SyNeg attribute menu a written passage was asked for."""

    domain: str | None
    difficulty: str | None
    length: str | None
    style: str | None


class GenerationRecord(TypedDict):
    """A written passage's provenance (`records.SyntheticNegative` without its text)."""

    model: str
    model_fingerprint: str
    template: str
    template_version: str
    template_sha: str
    mode: str
    perturbation: str
    perturbation_kind: str
    attributes: Attributes
    reasoning: str
    base_doc_id: str | None
    seed: int
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    request_key: str
    source: str
    span: str | None
    replacement: str | None
    verified: bool | None


class FilterScores(TypedDict):
    """Every score a filter recorded for a candidate (None where that filter did not run or score it)."""

    length_ratio: float | None
    alpha_ratio: float | None
    language: str | None
    duplicate_of: str | None
    dup_ratio: float | None
    sim_positive: float | None
    sim_query: float | None
    sim_query_positive: float | None
    ce_score: float | None
    ce_prob: float | None
    ce_positive: float | None
    nli_entailment: float | None
    nli_contradiction: float | None
    leak_span: str | None
    judge_p_yes: float | None


class RichCandidate(TypedDict):
    """One candidate of a rich row: a corpus passage (doc_id) or a written one (generation)."""

    doc_id: str | None
    text: str | None  # None for a dropped corpus passage when dropped texts are not kept
    source: str
    sources: list[str]
    rank: int
    scores: RetrievalScores
    ranks: Ranks
    generation: GenerationRecord | None
    filter_scores: FilterScores
    merged: list[str]  # keys of the duplicates merged into this copy (their sources are in `sources`)


class RichNegative(RichCandidate):
    """A kept negative; `difficulty` is its curriculum bucket once assigned."""

    difficulty: str | None


class RichVerdict(RichCandidate):
    """A dropped or relabeled candidate: the filter (or stage) that judged it and why."""

    filter: str | None
    reason: str | None


class PositiveScores(TypedDict):
    """Each positive's score per retriever, in positive order (None where that retriever is off)."""

    bm25: list[float] | None
    dense: list[float] | None
    hybrid: list[float] | None


class RichRow(TypedDict):
    """One query's row: its positives with their scores, kept negatives in mix order, every dropped
    candidate with its verdict, and the candidates relabeled as positives."""

    query_id: str
    query: str
    positive_ids: list[str]
    positives: list[str]
    positive_scores: PositiveScores
    topic: int | None
    negatives: list[RichNegative]
    dropped: list[RichVerdict]
    short: bool
    relabeled_positives: list[RichVerdict]
