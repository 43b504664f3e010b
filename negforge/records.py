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
