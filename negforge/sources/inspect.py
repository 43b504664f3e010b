"""What the reading layer understood of an input, before any mining: `negforge inspect CONFIG`.

The input is loaded exactly as a run loads it (same `load_input`), then summarised: the layout detected,
counts, positives per query, given negatives, skips by reason with `file:line` examples, texts shared by
several documents, identity-rule hits (queries that are themselves corpus documents), and example rows.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from negforge.config import DataConfig
from negforge.mining.identity import IdentityIndex
from negforge.records import REASONS as IDENTITY_REASONS
from negforge.records import TrainingInput
from negforge.sources import load_input
from negforge.text_identity import text_key


@dataclass
class InputReport:
    """A summary of one loaded input; `examples` are full rows (query, positives, given negatives)."""

    format: str
    layout: list[str]
    documents: int
    queries: int
    positives: int
    positives_per_query: dict[str, float]
    given_negatives: int
    skips: dict[str, int]
    skip_examples: dict[str, list[str]]
    shared_texts: dict
    identity: dict[str, int]
    examples: list[dict] = field(default_factory=list)
    #: "file:line: column 'x' is not read: ..." for each column of the input that nothing reads
    unread_columns: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(vars(self))


def inspect_data(cfg: DataConfig, examples: int = 2) -> InputReport:
    """Load `cfg` as a run would and summarise it. Raises InputError exactly where a run would."""
    data = load_input(cfg)
    return summarise(cfg.format, data, examples)


def summarise(fmt: str, data: TrainingInput, examples: int = 2) -> InputReport:
    """The report of an already loaded input (see `inspect_data`)."""
    c = data.corpus
    per = [len(q.positive_rows) for q in data.queries]
    ident = IdentityIndex(c)
    hits = dict.fromkeys(IDENTITY_REASONS, 0)
    siblings = IdentityIndex.siblings(data.queries)
    for q in data.queries:
        for reason in ident.for_query(q, siblings.get(text_key(q.text), frozenset())).excluded.values():
            hits[reason] += 1
    rows = []
    for q in data.queries[:examples]:
        rows.append(
            {
                "query_id": q.id,
                "query": q.text,
                "positives": [{"doc_id": c.ids[r], "text": c.texts[r]} for r in q.positive_rows],
                "given_negatives": [
                    {"doc_id": c.ids[g.row], "text": c.texts[g.row], "score": g.score, "read_at": g.where}
                    for g in q.given
                ],
            }
        )
    return InputReport(
        format=fmt,
        layout=list(data.layout),
        documents=len(c),
        queries=len(data.queries),
        positives=sum(per),
        positives_per_query={
            "min": min(per, default=0),
            "median": statistics.median(per) if per else 0,
            "max": max(per, default=0),
        },
        given_negatives=sum(len(q.given) for q in data.queries),
        skips=data.skips.counts(),
        skip_examples=data.skips.examples(3),
        shared_texts=ident.shared_texts(),
        identity=hits,
        examples=rows,
        unread_columns=data.skips.unread_columns(),
    )
