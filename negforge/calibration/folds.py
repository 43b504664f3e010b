"""Hidden-positive folds: which known positive each query hides in each fold.

A query with two or more positives hides one of them per fold (seeded, and a different one each fold while
it has any left), so that mining sees it as an ordinary corpus passage. If it comes back as a kept negative,
that is a measured false negative: the "validate on a subset with exhaustive labels" step, with the labels
the user already has. Queries with one positive cannot hide one without losing their only positive, and are
left out of calibration (counted).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from negforge.records import Query, TrainingInput


@dataclass(frozen=True)
class HiddenFold:
    """One fold: `hidden[query_id]` is the corpus row hidden from that query's positives."""

    index: int
    hidden: dict[str, int]


def calibratable(queries: Sequence[Query]) -> list[Query]:
    """The queries with at least two positives (one can be hidden and one stays)."""
    return [q for q in queries if len(q.positive_rows) >= 2]


def hide_positives(queries: Sequence[Query], folds: int, seed: int) -> list[HiddenFold]:
    """`folds` folds over the calibratable queries; each query hides a seeded permutation's fold-th positive
    (cycling when it has fewer positives than folds). Deterministic in (query ids, positives, seed).
    Raises ValueError when `folds` < 1."""
    if folds < 1:
        raise ValueError(f"folds must be >= 1, got {folds}")
    out: list[HiddenFold] = []
    orders = {}
    for q in calibratable(queries):
        rng = np.random.default_rng([seed, *q.id.encode()])
        rows = sorted(q.positive_rows)
        orders[q.id] = [rows[i] for i in rng.permutation(len(rows))]
    for k in range(folds):
        out.append(HiddenFold(k, {qid: order[k % len(order)] for qid, order in orders.items()}))
    return out


def apply_fold(data: TrainingInput, fold: HiddenFold) -> TrainingInput:
    """`data` restricted to the fold's queries, each without its hidden positive (a new object; `data` is
    not changed)."""
    queries = []
    for q in data.queries:
        row = fold.hidden.get(q.id)
        if row is None:
            continue
        queries.append(replace(q, positive_rows=tuple(r for r in q.positive_rows if r != row)))
    return replace(data, queries=queries)
