"""The few types everything passes around: a corpus, the queries with their positives, candidates, skips."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from negforge.text_identity import text_key


@dataclass(frozen=True)
class Skip:
    """An input row that was not used, and why: counted in the manifest, never lost silently."""

    reason: str
    where: str  # "file:line" or a key path
    detail: str = ""


@dataclass
class SkipLog:
    """Collects skips from every stage; the manifest shows counts per reason and the first examples."""

    items: list[Skip] = field(default_factory=list)
    #: columns an input has that nothing reads (named to the user; no row is lost, so not counted as skips)
    unread: list[Skip] = field(default_factory=list)

    def add(self, reason: str, where: str, detail: str = "") -> None:
        self.items.append(Skip(reason, where, detail))

    def add_unread(self, where: str, detail: str) -> None:
        """Name a column nothing reads (once per column and input): shown beside the skips, not among them."""
        self.unread.append(Skip("unread_column", where, detail))

    def unread_columns(self) -> list[str]:
        """ "file:line: column 'x' is not read: ..." for every unread column, in the order found."""
        return [f"{s.where}: {s.detail}" for s in self.unread]

    def counts(self) -> dict[str, int]:
        return dict(Counter(s.reason for s in self.items))

    def examples(self, per_reason: int = 5) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for s in self.items:
            bucket = out.setdefault(s.reason, [])
            if len(bucket) < per_reason:
                bucket.append(f"{s.where}: {s.detail}" if s.detail else s.where)
        return out


@dataclass
class Corpus:
    """Documents by position; `index` maps a doc id to its row, so miners work with integer rows.

    `texts` are what miners and trainers see (title and body joined when `join_title`); `titles` keeps each
    row's title ("" when none, or when titles are not joined) so a text can be compared without it.
    """

    ids: list[str]
    texts: list[str]
    index: dict[str, int] = field(default_factory=dict)
    titles: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {d: i for i, d in enumerate(self.ids)}
        if len(self.titles) < len(self.ids):
            self.titles = list(self.titles) + [""] * (len(self.ids) - len(self.titles))

    def __len__(self) -> int:
        return len(self.ids)

    def body(self, row: int) -> str:
        """The text of a row without its joined title."""
        t, title = self.texts[row], self.titles[row]
        return t[len(title) :].strip() if title and t.startswith(title + " ") else t

    def add(self, doc_id: str, text: str, title: str = "") -> int:
        """Append a document (text already joined with its title) and return its row."""
        self.ids.append(doc_id)
        self.texts.append(text)
        self.titles.append(title)
        self.index[doc_id] = len(self.ids) - 1
        return len(self.ids) - 1


@dataclass(frozen=True)
class GivenNegative:
    """A negative that arrived with the input (FlagEmbedding `neg`, Tevatron `negative_passages`, an n-tuple
    dataset's `negative_*` columns): its corpus row, where it was read, and the score the input gave it."""

    row: int
    where: str
    score: float | None = None


@dataclass(frozen=True)
class Query:
    """A query with every positive it has (from qrels), by corpus row, and any negatives the input gave."""

    id: str
    text: str
    positive_rows: tuple[int, ...]
    given: tuple[GivenNegative, ...] = ()


@dataclass
class TrainingInput:
    """What the sources hand to the miners: the corpus, the queries, and what was skipped on the way in.

    `layout` says in words how the input was understood (format, columns, qrels grade column), for
    `negforge inspect` and the manifest; `files` lists every file read. `given_only` rows joined the corpus
    only as some query's given negative (a corpus file was given): they are candidates for that query alone.
    """

    corpus: Corpus
    queries: list[Query]
    skips: SkipLog
    layout: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    given_only: frozenset[int] = (
        frozenset()
    )  # corpus rows added only as given negatives: never mined for others


@dataclass
class Candidate:
    """One candidate negative for one query, with the score and rank each source gave it."""

    row: int
    scores: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        return [s for s in ("bm25", "dense", "random", "given") if s in self.ranks]


@dataclass
class Selected:
    """A chosen negative: its candidate, the source it is credited to, and its rank in the selection pool."""

    candidate: Candidate
    source: str
    rank: int


#: sources whose candidates are written, not corpus rows: they have no BM25 score or rank of their own
WRITTEN_SOURCES = ("llm", "rules")


def score_on(candidate: Mapping[str, Any], key: str | None) -> float | None:
    """A rich candidate's score on scale `key` (its `scores[key]`) as a float; None when `key` is None or the
    candidate has no such score. The strict form: training labels (MarginMSE) and exports use it, so no label
    is ever taken from another scale."""
    if key is None:
        return None
    v = (candidate.get("scores") or {}).get(key)
    return None if v is None else float(v)


def selection_key(source: str, key: str | None) -> str | None:
    """The scale a candidate of `source` is shown and compared on when the run selects by `key`: `key`, except
    for written candidates (WRITTEN_SOURCES) under a scale other than dense, which are shown by their dense score
    (the one space every candidate and positive is embedded in)."""
    return "dense" if source in WRITTEN_SOURCES and key not in (None, "dense") else key


def selection_score(candidate: Mapping[str, Any], key: str | None) -> float | None:
    """A rich candidate's score on the run's selection scale `key`, as report.md, report.html and the score
    summary show it: `score_on(candidate, selection_key(candidate["source"], key))`. None when it has none."""
    return score_on(candidate, selection_key(str(candidate.get("source")), key))


# ---- per-query records: what mining hands to generation, filters, the mixer and the rich table ----------

#: the identity rule's reasons (negforge.mining.identity): why a corpus row or text is never a query's negative
SAME_AS_POSITIVE = "same_text_as_positive"
SAME_AS_QUERY = "same_text_as_query"
QUERY_DOCUMENT = "query_document"
SAME_QUERY_POSITIVE = "positive_of_same_query_text"
REASONS = (SAME_AS_POSITIVE, SAME_AS_QUERY, QUERY_DOCUMENT, SAME_QUERY_POSITIVE)


@dataclass(frozen=True)
class QueryIdentity:
    """One query's forbidden texts (keys) and the corpus rows excluded from its negatives, by reason."""

    positive_keys: frozenset[int]
    query_key: int
    excluded: dict[int, str] = field(default_factory=dict)  # corpus row -> reason (positives not included)

    def text_reason(self, text: str) -> str | None:
        """Why a text (a synthetic or given passage) cannot be this query's negative, or None."""
        k = text_key(text)
        if k and k in self.positive_keys:
            return SAME_AS_POSITIVE
        if k and k == self.query_key:
            return SAME_AS_QUERY
        return None


@dataclass
class SyntheticNegative:
    """One synthetic negative with its provenance (request, template, model, seed; edit modes: span)."""

    text: str
    perturbation: str
    perturbation_kind: str
    reasoning: str
    attributes: dict[str, str]
    mode: str
    base_doc_id: str | None
    seed: int
    template: str
    template_version: str
    template_sha: str
    model: str
    model_fingerprint: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    request_key: str
    source: str = "llm"  # "llm" (model text) or "rules" (rule-based counterfactual edit, no model)
    span: str | None = None  # edit modes: the sentence of the base passage that was rewritten
    replacement: str | None = None  # edit modes: what replaced it
    verified: bool | None = None  # edit modes: the perturbation passed its verifier (None: no verifier)


@dataclass
class FilterCandidate:
    """One candidate negative of query `qi` (index into the batch's queries)."""

    qi: int
    text: str
    source: str  # bm25, dense, random or llm: the source it is credited to
    row: int | None = None  # corpus row; None for LLM-written passages
    doc_id: str | None = None
    rank: int = 0
    scores: dict[str, float] = field(default_factory=dict)  # retrieval scores (bm25, dense, hybrid)
    sources: list[str] = field(default_factory=list)
    ranks: dict[str, int] = field(default_factory=dict)  # rank per retriever: bm25, dense, random, given
    generation: SyntheticNegative | None = None  # a written passage's record; None for corpus passages
    embedding: np.ndarray | None = None  # a written passage's embedding, shape (dim,) float32, once computed
    merged: list[str] = field(default_factory=list)  # keys of the duplicates merged into this copy

    @property
    def request_key(self) -> str:
        """The generation request that wrote this passage ("" for a corpus passage)."""
        return self.generation.request_key if self.generation is not None else ""

    @property
    def perturbation_kind(self) -> str | None:
        """What the writer was asked to change (e.g. "contradicting"); None for a corpus passage."""
        return self.generation.perturbation_kind if self.generation is not None else None

    @property
    def key(self) -> str:
        """How a verdict names this candidate (corpus id, or an llm tag)."""
        return self.doc_id if self.doc_id is not None else f"{self.source}:{self.request_key[:12]}"


@dataclass
class Outcome:
    """The stack's final word on one candidate: kept, or which filter rejected it and why."""

    kept: bool
    filter: str | None = None
    reason: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    duplicate_of: int | None = None
    relabeled: bool = False  # rejected as a likely positive, and kept as one (on_false_negative: relabel)


class Refused(NamedTuple):
    """A mined candidate refused before the filters: by the identity rule or the selection margins."""

    selected: Selected
    reason: str


class Written(NamedTuple):
    """A synthetic negative attached to its query: its dense score against the query (None without dense) and
    its passage embedding (shape (dim,), float32; None without dense)."""

    negative: SyntheticNegative
    dense: float | None
    embedding: np.ndarray | None


class Kept(NamedTuple):
    """A negative the mixer chose, with the scores its filters recorded (`Outcome.scores`)."""

    candidate: FilterCandidate
    filter_scores: dict[str, Any]


class Judged(NamedTuple):
    """A candidate with the verdict that dropped (or relabeled) it."""

    candidate: FilterCandidate
    outcome: Outcome


@dataclass
class QueryResult:
    """One query after mining: its ranked candidate window, and later its verdicts and mixed negatives."""

    query: Query
    topic: int | None
    positive_scores: dict[str, list[float]]
    window: list[Selected]  # mined candidates inside the rank window that passed the margins, best first
    pool_sizes: dict[str, int] = field(default_factory=dict)
    funnel: Counter[str] = field(default_factory=Counter)
    random: list[Selected] = field(default_factory=list)
    margin_dropped: list[Refused] = field(default_factory=list)  # outside the selection margins: the reason
    pos_min: float = float("nan")  # weakest positive's selection score (SimANS centre)
    synthetic: list[Written] = field(default_factory=list)  # attached by the generation stage
    negatives: list[Kept] = field(default_factory=list)  # filled by the mixer, in mix order
    dropped: list[Judged] = field(
        default_factory=list
    )  # filled by the identity rule, margins, filters, mixer
    relabeled: list[Judged] = field(default_factory=list)  # likely positives kept as such (relabel)
    llm_asked: bool = False  # whether synthetic negatives were requested for this query
    short: bool = False
    given: list[Selected] = field(default_factory=list)  # negatives the input gave, past identity and margins
    identity_dropped: list[Refused] = field(default_factory=list)  # never negatives: the identity reason
    identity: QueryIdentity | None = None
