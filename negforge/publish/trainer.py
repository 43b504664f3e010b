"""Trainer configs that sentence-transformers reads as they are: column order sets the roles.

Only anchor/positive/negative columns (and an optional `label` for MarginMSE, which sentence-transformers
treats as the label, not an input) go in; any other column would be taken as one more negative.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from negforge.records import score_on

CE_LABEL = "cross_encoder"  # label key: GPL margins from the cross-encoder filter's recorded scores


def training_positives(row: dict) -> list[str]:
    """A rich row's positives for training: the input's, then those the filters relabeled (RLHN-style)."""
    return [*row["positives"], *(p["text"] for p in row.get("relabeled_positives") or [])]


def _neg_label(neg: dict, key: str | None) -> float | None:
    if key == CE_LABEL:
        return (neg.get("filter_scores") or {}).get("ce_score")
    return score_on(neg, key)


def _pos_labels(row: dict, key: str | None) -> list | None:
    """Label scores of `training_positives(row)`, in that order, or None when one is missing.

    For CE_LABEL: the recorded CE(q, positive) when the query has exactly one input positive (the filter
    records the weakest positive's score only), then each relabeled positive's own `ce_score`; without the
    first the row has no label and `prepare_stage` leaves it out of MarginMSE training. For a retriever score
    key: the positives' recorded scores, then the relabeled ones' scores on that key. A relabeled positive
    without a score gets None in its place: only its own pairs go unlabeled, never the input positives'.
    """
    relabeled = row.get("relabeled_positives") or []
    if key == CE_LABEL:
        if len(row["positives"]) != 1:
            return None
        first = next(
            (
                v
                for n in row["negatives"]
                if (v := (n.get("filter_scores") or {}).get("ce_positive")) is not None
            ),
            None,
        )
        extra = [(p.get("filter_scores") or {}).get("ce_score") for p in relabeled]
        return None if first is None else [first, *extra]
    if not key:
        return None
    given = (row["positive_scores"] or {}).get(key)
    if given is None:
        return None
    return [*given, *((p.get("scores") or {}).get(key) for p in relabeled)]


def triplet_table(rows: Iterable[dict], score_key: str | None, with_label: bool) -> pa.Table:
    """(anchor, positive, negative) for every positive × negative of every query; with `label` =
    score(q, pos) − score(q, neg) under `score_key` (a retriever score, or CE_LABEL: GPL's cross-encoder
    margins, Wang et al. 2022) when `with_label`."""
    cols: dict[str, list] = {"anchor": [], "positive": [], "negative": []}
    if with_label:
        cols["label"] = []
    for row in rows:
        pos_scores = _pos_labels(row, score_key)
        for pi, pos in enumerate(training_positives(row)):
            for neg in row["negatives"]:
                cols["anchor"].append(row["query"])
                cols["positive"].append(pos)
                cols["negative"].append(neg["text"])
                if with_label:
                    p, n = (pos_scores[pi] if pos_scores else None), _neg_label(neg, score_key)
                    cols["label"].append(None if p is None or n is None else float(p - n))
    return _typed(cols)


def _typed(cols: dict[str, list]) -> pa.Table:
    """Explicit types, so an empty config still has string columns (and a float or list label)."""
    fields = []
    for name, values in cols.items():
        if name != "label":
            fields.append(pa.field(name, pa.string()))
        elif values and isinstance(values[0], list):
            fields.append(pa.field(name, pa.list_(pa.float32())))
        else:
            fields.append(pa.field(name, pa.float32()))
    return pa.table(cols, schema=pa.schema(fields))


def ntuple_table(
    rows: Iterable[dict], n: int, score_key: str | None, with_label: bool
) -> tuple[pa.Table, int]:
    """(anchor, positive, negative_1..n) per positive; rows with fewer than n negatives are left out and counted."""
    names = ["anchor", "positive", *[f"negative_{i}" for i in range(1, n + 1)]]
    cols: dict[str, list] = {c: [] for c in names}
    if with_label:
        cols["label"] = []
    dropped = 0
    for row in rows:
        negs = row["negatives"]
        positives = training_positives(row)
        if len(negs) < n:
            dropped += len(positives)
            continue
        pos_scores = _pos_labels(row, score_key)
        for pi, pos in enumerate(positives):
            cols["anchor"].append(row["query"])
            cols["positive"].append(pos)
            for i, neg in enumerate(negs[:n], 1):
                cols[f"negative_{i}"].append(neg["text"])
            if with_label:
                cols["label"].append(
                    [
                        pos_scores[pi] if pos_scores else None,
                        *[_neg_label(x, score_key) for x in negs[:n]],
                    ]
                )
    return _typed(cols), dropped


def labeled_pair_table(rows: Iterable[dict]) -> pa.Table:
    """(query, passage, label): positives 1, negatives 0, for cross-encoder training (BinaryCrossEntropy)."""
    cols: dict[str, list] = {"query": [], "passage": [], "label": []}
    for row in rows:
        for text, label in [(p, 1) for p in training_positives(row)] + [
            (n["text"], 0) for n in row["negatives"]
        ]:
            cols["query"].append(row["query"])
            cols["passage"].append(text)
            cols["label"].append(label)
    schema = pa.schema([("query", pa.string()), ("passage", pa.string()), ("label", pa.int8())])
    return pa.table(cols, schema=schema)


def labeled_list_table(rows: Iterable[dict]) -> pa.Table:
    """(query, docs, labels) per query: positives first, for listwise cross-encoder losses."""
    cols: dict[str, list] = {"query": [], "docs": [], "labels": []}
    for row in rows:
        cols["query"].append(row["query"])
        positives = training_positives(row)
        cols["docs"].append([*positives, *(n["text"] for n in row["negatives"])])
        cols["labels"].append([1] * len(positives) + [0] * len(row["negatives"]))
    schema = pa.schema(
        [("query", pa.string()), ("docs", pa.list_(pa.string())), ("labels", pa.list_(pa.int8()))]
    )
    return pa.table(cols, schema=schema)
