"""The filter protocol: a batch of candidates in, one verdict per candidate out.

Candidates from every source (mined rows and LLM-written passages) share one shape, so one filter stack
judges them all. A batch spans many queries: filters score it in one go (model calls batched across
queries), never one query at a time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from negforge.records import FilterCandidate


@dataclass
class FilterQuery:
    """A query as filters see it: its text, its positives' texts (and corpus rows), known answer strings."""

    id: str
    text: str
    positives: list[str]
    positive_rows: tuple[int, ...] = ()
    answers: tuple[str, ...] = ()
    emb_index: int | None = None  # row in the run's query embeddings, when dense is on


@dataclass
class Verdict:
    """Keep or reject, why, and what the filter measured (kept in the `rich` output either way)."""

    keep: bool
    reason: str | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    duplicate_of: int | None = None  # index (in the batch) of the candidate this one duplicates
    out_of_scope: bool = (
        False  # the filter does not judge this candidate's source (kept, not counted as seen)
    )


KEEP = Verdict(True)


@dataclass
class CandidateBatch:
    queries: list[FilterQuery]
    candidates: list[FilterCandidate]

    def by_query(self) -> dict[int, list[int]]:
        """Candidate indexes grouped by query, in batch order."""
        out: dict[int, list[int]] = {}
        for i, c in enumerate(self.candidates):
            out.setdefault(c.qi, []).append(i)
        return out


class Filter(Protocol):
    """Anything with a name, a description of its settings, and a batched `apply`."""

    name: str

    def apply(self, batch: CandidateBatch) -> list[Verdict]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class FilterStats:
    """Per filter: how many it saw, kept and rejected by reason, split by source (for the funnel)."""

    seen: Counter[str] = field(default_factory=Counter)  # by source
    kept: Counter[str] = field(default_factory=Counter)  # by source
    rejected: Counter[str] = field(default_factory=Counter)  # by reason
    rejected_by_source: Counter[str] = field(default_factory=Counter)  # "source/reason"
    seconds: float = 0.0
    relabeled: Counter[str] = field(default_factory=Counter)  # by reason: rejected ones kept as positives

    def as_dict(self) -> dict[str, Any]:
        return {
            "seen": dict(self.seen),
            "kept": dict(self.kept),
            "rejected": dict(self.rejected),
            "rejected_by_source": dict(self.rejected_by_source),
            "seconds": round(self.seconds, 3),
            "relabeled": dict(self.relabeled),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FilterStats:
        return cls(
            Counter(d.get("seen", {})),
            Counter(d.get("kept", {})),
            Counter(d.get("rejected", {})),
            Counter(d.get("rejected_by_source", {})),
            float(d.get("seconds", 0.0)),
            Counter(d.get("relabeled", {})),
        )

    def merge(self, other: FilterStats) -> None:
        self.seen.update(other.seen)
        self.kept.update(other.kept)
        self.rejected.update(other.rejected)
        self.rejected_by_source.update(other.rejected_by_source)
        self.seconds += other.seconds
        self.relabeled.update(other.relabeled)


def relabels(f: Any, reason: str, c: FilterCandidate) -> bool:
    """Whether filter `f` keeps candidate `c`, rejected for `reason`, as an extra positive of its query.

    Only with `on_false_negative: relabel` in the filter's config, only for a reason the filter lists in
    `FALSE_NEGATIVE_REASONS` (it scored the candidate like a positive: not junk, not a copy), and only for a
    corpus document: an LLM-written passage judged relevant is a failed negative, never a positive.
    """
    variants = getattr(f, "variants", None)  # a SourceScopedFilter: the setting of the candidate's own source
    if isinstance(variants, dict):
        f = variants.get(c.source, f.base)
    cfg = getattr(f, "cfg", None)
    return (
        getattr(cfg, "on_false_negative", "drop") == "relabel"
        and reason in getattr(f, "FALSE_NEGATIVE_REASONS", ())
        and c.row is not None
    )
