"""The few types everything passes around: a corpus, the queries with their positives, candidates, skips."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


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

    def add(self, reason: str, where: str, detail: str = "") -> None:
        self.items.append(Skip(reason, where, detail))

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
    """Documents by position; `index` maps a doc id to its row, so miners work with integer rows."""

    ids: list[str]
    texts: list[str]
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.index:
            self.index = {d: i for i, d in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Query:
    """A query with every positive it has (from qrels), by corpus row."""

    id: str
    text: str
    positive_rows: tuple[int, ...]


@dataclass
class TrainingInput:
    """What the sources hand to the miners: the corpus, the queries, and what was skipped on the way in."""

    corpus: Corpus
    queries: list[Query]
    skips: SkipLog


@dataclass
class Candidate:
    """One candidate negative for one query, with the score and rank each source gave it."""

    row: int
    scores: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        return [s for s in ("bm25", "dense", "random") if s in self.ranks]


@dataclass
class Selected:
    """A chosen negative: its candidate, the source it is credited to, and its rank in the selection pool."""

    candidate: Candidate
    source: str
    rank: int
