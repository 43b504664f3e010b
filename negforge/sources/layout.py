"""Which column of a pairs file or dataset plays which role (query, positives, given negatives, grade).

Columns are found by name unless `data.columns` names them; names match ignoring case and surrounding spaces
(`Query`, ` positive `), and two columns with one role's name up to case are refused
(`negforge.sources.columns`). A grade column that is not recognised is never
silently ignored: a labeled-pair file whose grade column has another name (`rel`, `grade`, `is_relevant`, ...)
would otherwise make every judged row, the non-relevant ones too, a positive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from negforge.config import Columns
from negforge.sources.columns import canonical, find_column, match_columns
from negforge.sources.errors import InputError
from negforge.sources.qrels import GRADE_KEYS
from negforge.sources.values import is_missing

QUERY_COLS = ("query", "anchor", "question")
POSITIVE_COLS = ("positive", "pos", "positive_passages", "positives", "passage")
NEGATIVE_COLS = ("negative", "neg", "negative_passages", "negatives")
QUERY_ID_COLS = ("query_id", "qid")
# the qrels grade names, and the usual names of a binary relevance label
LABEL_COLS = (
    "label",
    "score",
    *(k for k in GRADE_KEYS if k not in ("label", "score")),
    "labels",
    "is_relevant",
)
# names that say "grade" in a column no role took: refused when its first value is an integer grade
_GRADE_LIKE = re.compile(
    r"label|grade|relevan|judg|qrel|score|rating|^rel$|^rel[_-]|[_-]rel$|^target$|^y$", re.I
)
KNOWN_EXTRA = ("prompt", "pos_scores", "neg_scores", "type")
_NEG_N = re.compile(r"^negative_(\d+)$")


@dataclass(frozen=True)
class PairLayout:
    """Which column plays which role in a pairs file or dataset."""

    name: str
    query: str
    positive: str
    negatives: tuple[str, ...] = ()
    query_id: str | None = None
    positive_id: str | None = None
    label: str | None = None
    pos_scores: str | None = None
    neg_scores: str | None = None
    ignored: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [f"{self.name} layout: query {self.query!r}, positives {self.positive!r}"]
        if self.negatives:
            parts.append(f"given negatives {', '.join(map(repr, self.negatives))}")
        if self.query_id:
            parts.append(f"query id {self.query_id!r}")
        if self.label:
            parts.append(f"grade {self.label!r} (below min_relevance: a given negative)")
        if self.ignored:
            parts.append(f"ignored columns {', '.join(map(repr, self.ignored))}")
        return "; ".join(parts)


def detect_layout(found: list[str], cols: Columns, source: str) -> PairLayout:
    """Map column names to roles; `cols` (data.columns) wins over detection.

    Raises InputError naming the source and the columns found when no query or positive column exists.
    """

    def pick(explicit: str | None, names: tuple[str, ...], role: str, required: bool) -> str | None:
        if explicit is not None:
            hit = find_column(found, explicit, source)
            if hit is None:
                raise InputError(
                    f"{source}: data.columns.{role}={explicit!r} is not a column; found {', '.join(found)}"
                )
            return hit
        hit = match_columns(found, {role: names}, source, what="a pairs file")[role]
        if hit is None and required:
            raise InputError(
                f"{source}: no {role} column (looked for {', '.join(names)}); found {', '.join(found) or 'none'}; "
                f"set data.columns.{role}"
            )
        return hit

    q = pick(cols.query, QUERY_COLS, "query", True)
    p = pick(cols.positive, POSITIVE_COLS, "positive", True)
    assert q is not None and p is not None  # required picks raise InputError when absent
    if cols.negative is not None:
        negs = tuple(
            pick(n, (), "negative", True) or n
            for n in ([cols.negative] if isinstance(cols.negative, str) else cols.negative)
        )
    else:
        numbered = sorted((int(m.group(1)), c) for c in found if (m := _NEG_N.match(canonical(c))))
        single = pick(None, NEGATIVE_COLS, "negative", False)
        negs = tuple(([single] if single else []) + [c for _, c in numbered])
    qid = pick(cols.query_id, QUERY_ID_COLS, "query_id", False)
    pid = pick(cols.positive_id, (), "positive_id", False)
    label = None
    if not negs:  # `Label`, `Relevance`: a grade column's name in another case is still the grade
        label = pick(cols.label, LABEL_COLS, "label", False)
        if label in (q, p):
            label = None
    pos_scores = pick(None, ("pos_scores",), "pos_scores", False)
    neg_scores = pick(None, ("neg_scores",), "neg_scores", False)
    used = {q, p, *negs, qid, pid, label, pos_scores, neg_scores}
    ignored = tuple(c for c in found if c not in used)
    kp, kn = canonical(p or ""), {canonical(n) for n in negs}
    if kp == "pos" or "neg" in kn:
        name = "FlagEmbedding"
    elif kp == "positive_passages":
        name = "Tevatron"
    elif label:
        name = "labeled-pair"
    elif len(negs) > 1 or any(_NEG_N.match(n) for n in kn):
        name = "sentence-transformers n-tuple"
    elif negs:
        name = "sentence-transformers triplet"
    else:
        name = "sentence-transformers pair"
    return PairLayout(name, q, p, negs, qid, pid, label, pos_scores, neg_scores, ignored)


def _integer_grade(value: Any) -> bool:
    """True for an int, an integral float or a text spelling an integer (a TSV/CSV cell), or a bool."""
    if isinstance(value, bool) or is_missing(value):
        return isinstance(value, bool)
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return False
    try:
        return float(value).is_integer()
    except (TypeError, ValueError):
        return False


def refuse_unread_grade(layout: PairLayout, first: dict[str, Any], where: str) -> None:
    """Refuse a pair layout (no grade, no given negatives) that leaves a grade-like column unread.

    A column named like a grade (`rel`, `grade`, `is_relevant`, `rating`, ...) whose first value is an integer
    grade would otherwise be ignored, and every row, the ones judged non-relevant too, made a positive.
    Raises InputError naming the column and the two ways out.
    """
    if layout.label is not None or layout.negatives:
        return
    for c in layout.ignored:
        if canonical(c) not in KNOWN_EXTRA and _GRADE_LIKE.search(c) and _integer_grade(first.get(c)):
            raise InputError(
                f"{where}: column {c!r} looks like a relevance grade ({first.get(c)!r}) but is not read as one, "
                f"so every row would be a positive; set data.columns.label: {c} (rows below min_relevance become "
                "given negatives), or remove the column"
            )
