"""(query, positives[, negatives]) rows from JSONL/Parquet/TSV files or a Hugging Face dataset: one code path.

Recognised layouts (columns are found by name unless `data.columns` names them):

- sentence-transformers pair / triplet / n-tuple: `anchor|query`, `positive`, `negative` or `negative_1..n`;
- FlagEmbedding: `query`, `pos: [texts]`, `neg: [texts]`, optional `pos_scores`, `neg_scores`, `prompt`;
- Tevatron: `query_id`, `query`, `positive_passages` / `negative_passages` as lists of `{docid, title, text}`;
- labeled pairs: `query`, `positive|passage`, `label` (no negative column): grade >= `min_relevance` is a
  positive, lower grades are given negatives.

A cell holding a list is read as several passages, never as the text of its Python repr; a value of another
type is refused by row and column. Rows of one query are grouped by query id (or text), so several positives
stay one training example. Positives and given negatives are matched to the corpus by id, then by normalised
text (with or without the title); those not in it are added to it (counted), so the identity rule and the
miners see them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negforge.config import Columns
from negforge.records import Corpus, GivenNegative, Query, SkipLog, TrainingInput
from negforge.sources.corpus import doc_text, read_corpus
from negforge.sources.readers import InputError, columns_of, iter_rows
from negforge.sources.values import (
    Passage,
    id_value,
    is_missing,
    number_list,
    number_value,
    passage_list,
    text_value,
)
from negforge.text_identity import norm_text, text_key

QUERY_COLS = ("query", "anchor", "question")
POSITIVE_COLS = ("positive", "pos", "positive_passages", "positives", "passage")
NEGATIVE_COLS = ("negative", "neg", "negative_passages", "negatives")
QUERY_ID_COLS = ("query_id", "qid")
LABEL_COLS = ("label", "score", "relevance")
KNOWN_EXTRA = ("prompt", "pos_scores", "neg_scores", "type")
_NEG_N = re.compile(r"^negative_(\d+)$")


def text_id(prefix: str, text: str) -> str:
    """A stable id for a text that came without one."""
    return f"{prefix}{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"


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
            if explicit not in found:
                raise InputError(
                    f"{source}: data.columns.{role}={explicit!r} is not a column; found {', '.join(found)}"
                )
            return explicit
        hit = next((n for n in names if n in found), None)
        if hit is None and required:
            raise InputError(
                f"{source}: no {role} column (looked for {', '.join(names)}); found {', '.join(found) or 'none'}; "
                f"set data.columns.{role}"
            )
        return hit

    q = pick(cols.query, QUERY_COLS, "query", True)
    p = pick(cols.positive, POSITIVE_COLS, "positive", True)
    if cols.negative is not None:
        negs = tuple([cols.negative] if isinstance(cols.negative, str) else cols.negative)
        for n in negs:
            pick(n, (), "negative", True)
    else:
        numbered = sorted((int(m.group(1)), c) for c in found if (m := _NEG_N.match(c)))
        single = next((n for n in NEGATIVE_COLS if n in found), None)
        negs = tuple(([single] if single else []) + [c for _, c in numbered])
    qid = pick(cols.query_id, QUERY_ID_COLS, "query_id", False)
    pid = pick(cols.positive_id, (), "positive_id", False)
    label = None
    if not negs:
        label = pick(cols.label, LABEL_COLS, "label", False)
    pos_scores = "pos_scores" if "pos_scores" in found else None
    neg_scores = "neg_scores" if "neg_scores" in found else None
    used = {q, p, *negs, qid, pid, label, pos_scores, neg_scores}
    ignored = tuple(c for c in found if c not in used)
    if p == "pos" or "neg" in negs:
        name = "FlagEmbedding"
    elif p == "positive_passages":
        name = "Tevatron"
    elif label:
        name = "labeled-pair"
    elif len(negs) > 1 or any(_NEG_N.match(n) for n in negs):
        name = "sentence-transformers n-tuple"
    elif negs:
        name = "sentence-transformers triplet"
    else:
        name = "sentence-transformers pair"
    return PairLayout(name, q, p, negs, qid, pid, label, pos_scores, neg_scores, ignored)


@dataclass
class _Grouper:
    """Builds the corpus and the queries row by row."""

    corpus: Corpus
    skips: SkipLog
    has_corpus_file: bool
    queries: dict[str, tuple[str, list[int], list[GivenNegative]]] = field(default_factory=dict)
    by_key: dict[int, int] = field(default_factory=dict)
    added: dict[str, int] = field(default_factory=dict)
    given_only: set[int] = field(
        default_factory=set
    )  # rows in the corpus only as some query's given negative

    def __post_init__(self) -> None:
        for r in range(len(self.corpus)):
            for t in (self.corpus.texts[r], self.corpus.body(r)):
                self.by_key.setdefault(text_key(t), r)

    def row_of(self, p: Passage, kind: str, join_title: bool, where: str) -> int | None:
        """The corpus row of a passage: by id, else by normalised text; added to the corpus when absent.

        Raises InputError when the passage's id names a corpus document with another text (an off-by-one
        docid would otherwise swap the user's positive for an unrelated document).
        """
        text = doc_text(p.title, p.text, join_title)
        if p.doc_id is not None and p.doc_id in self.corpus.index:
            r = self.corpus.index[p.doc_id]
            have = {text_key(self.corpus.texts[r]), text_key(self.corpus.body(r))}
            if not have & {text_key(text), text_key(p.text)}:
                raise InputError(
                    f"{where}: {kind.replace('_', ' ')} docid {p.doc_id!r} has the text {p.text[:60]!r}, but the "
                    f"corpus document {p.doc_id!r} reads {self.corpus.texts[r][:60]!r}; fix the id or the text"
                )
            return r
        r = self.by_key.get(text_key(text))
        if r is None:
            r = self.by_key.get(text_key(p.text))
        if r is not None:
            return r
        did = p.doc_id or text_id("d-", text)
        if did in self.corpus.index:
            return None  # an id we minted names another text: a hash collision cannot happen in practice
        r = self.corpus.add(did, text, p.title if join_title else "")
        self.by_key.setdefault(text_key(text), r)
        self.by_key.setdefault(text_key(p.text), r)
        if self.has_corpus_file:
            self.added[kind] = self.added.get(kind, 0) + 1
            if kind == "given_negative":
                self.given_only.add(r)
        return r


def group_rows(
    rows: Iterable[tuple[str, dict[str, Any]]],
    cols: Columns,
    corpus: Corpus | None,
    skips: SkipLog,
    source: str,
    *,
    join_title: bool = True,
    min_relevance: int = 1,
    found: list[str] | None = None,
) -> TrainingInput:
    """Group rows into queries with positives and given negatives (see module doc for the layouts).

    Raises InputError when there are no rows, a role's column is missing, a cell has the wrong type, or no row
    gives a usable (query, positive).
    """
    it = iter(rows)
    first = next(it, None)
    if first is None:
        raise InputError(f"{source}: no rows")
    layout = detect_layout(found if found is not None else list(first[1]), cols, source)
    g = _Grouper(corpus or Corpus([], []), skips, corpus is not None)
    n_rows = 0
    for where, row in _chain(first, it):
        n_rows += 1
        _add_row(g, layout, where, row, join_title, min_relevance)
    if not g.queries:
        raise InputError(f"{source}: no usable (query, positive) rows (skips: {skips.counts()})")
    for kind, n in g.added.items():
        skips.add(f"{kind}_added_to_corpus", source, f"{n} {kind.replace('_', ' ')}s were not in the corpus")
    qs = [Query(qid, q, tuple(rs), tuple(gv)) for qid, (q, rs, gv) in g.queries.items()]
    n_given = sum(len(q.given) for q in qs)
    understood = [
        f"{source}: {layout.describe()}",
        f"{n_rows} rows → {len(qs)} queries, {sum(len(q.positive_rows) for q in qs)} positives, "
        f"{n_given} given negatives",
        f"corpus: {len(g.corpus)} documents"
        + ("" if corpus is not None else " (no corpus file: the positives and given negatives)"),
    ]
    return TrainingInput(g.corpus, qs, skips, layout=understood, given_only=frozenset(g.given_only))


def _chain(first: tuple[str, dict[str, Any]], rest: Iterator) -> Iterator[tuple[str, dict[str, Any]]]:
    yield first
    yield from rest


def _add_row(
    g: _Grouper, layout: PairLayout, where: str, row: dict[str, Any], join_title: bool, min_relevance: int
) -> None:
    missing = [c for c in (layout.query, layout.positive) if c not in row]
    if missing:
        raise InputError(f"{where}: missing column {', '.join(map(repr, missing))}; found {', '.join(row)}")
    q = text_value(row[layout.query], where, layout.query)
    pos, pos_empty = passage_list(row[layout.positive], where, layout.positive)
    if pos_empty:
        g.skips.add("empty_text", where, f"{pos_empty} empty positive(s) in {layout.positive!r}")
    elif is_missing(row[layout.positive]) and layout.label is None:
        g.skips.add("empty_text", where, f"no positive in {layout.positive!r}")
    if q is None:
        g.skips.add("empty_text", where, "empty query")
        return
    negs: list[tuple[Passage, float | None]] = []
    neg_scores = (
        number_list(row.get(layout.neg_scores), where, layout.neg_scores) if layout.neg_scores else []
    )
    for col in layout.negatives:
        ps, empty = passage_list(row.get(col), where, col)
        if empty:
            g.skips.add("empty_text", where, f"{empty} empty negative(s) in {col!r}")
        for i, p in enumerate(ps):
            sc = neg_scores[i] if col == layout.negatives[0] and i < len(neg_scores) else None
            negs.append((p, sc))
    if layout.label is not None:
        grade = number_value(row.get(layout.label), where, layout.label)
        if grade is None:
            g.skips.add("missing_field", where, f"no grade in {layout.label!r}")
            return
        if not float(grade).is_integer():
            raise InputError(
                f"{where}: column {layout.label!r} = {grade!r} is not an integer relevance grade; "
                "set data.columns.label to a grade column, or remove it"
            )
        if grade < min_relevance:
            negs += [(p, None) for p in pos]
            pos = []
    if not pos and not negs:
        g.skips.add("empty_text", where, "no positive")
        return
    if layout.positive_id is not None and len(pos) == 1:
        pid = id_value(row.get(layout.positive_id), where, layout.positive_id)
        if pid is not None:
            pos = [Passage(pos[0].text, pos[0].title, pid)]
    qid = id_value(row.get(layout.query_id), where, layout.query_id) if layout.query_id else None
    if qid is None:  # rows of one query text (up to case, spacing, punctuation, Unicode form) are one query
        qid = text_id("q-", norm_text(q))
    entry = g.queries.get(qid)
    if entry is None:
        entry = g.queries[qid] = (q, [], [])
    elif entry[0] != q and layout.query_id is not None:
        g.skips.add("duplicate_id", where, f"query id {qid} has two different texts")
        return
    for p in pos:
        r = g.row_of(p, "positive", join_title, where)
        if r is None:
            g.skips.add("duplicate_id", where, f"positive id {p.doc_id} names a different text")
        else:
            g.given_only.discard(r)  # a positive of some query is a real document for everyone
            if r not in entry[1]:
                entry[1].append(r)
    for p, sc in negs:
        r = g.row_of(p, "given_negative", join_title, where)
        if r is not None and all(x.row != r for x in entry[2]):
            entry[2].append(GivenNegative(r, where, sc))


def load_pairs(
    path: str | Path,
    cols: Columns,
    corpus_path: str | None,
    *,
    join_title: bool = True,
    min_relevance: int = 1,
) -> TrainingInput:
    """A pairs file (JSONL, Parquet, TSV/CSV) in any recognised layout, plus an optional corpus file.

    Raises InputError for a missing file or column, a wrongly typed cell (named by file:line and column), or
    no usable row.
    """
    skips = SkipLog()
    corpus = read_corpus(corpus_path, skips, join_title=join_title) if corpus_path else None
    out = group_rows(
        iter_rows(path, skips, what="pairs file"),
        cols,
        corpus,
        skips,
        str(path),
        join_title=join_title,
        min_relevance=min_relevance,
        found=columns_of(path),
    )
    out.queries = _with_positives(out.queries, skips, str(path))
    out.files = [str(path)] + ([str(corpus_path)] if corpus_path else [])
    return out


def _with_positives(queries: list[Query], skips: SkipLog, source: str) -> list[Query]:
    """Queries that ended with negatives only (labeled pairs, all grades low) are counted skips."""
    keep = []
    for q in queries:
        if q.positive_rows:
            keep.append(q)
        else:
            skips.add("no_positive", source, f"query {q.id}: only non-relevant rows")
    if not keep:
        raise InputError(f"{source}: no query has a positive (skips: {skips.counts()})")
    return keep


def _hf_rows(ds: Any, label: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for i, row in enumerate(ds):
        yield f"{label} row {i}", row


def load_hf(
    name_or_path: str,
    split: str,
    cols: Columns,
    corpus_path: str | None,
    *,
    config: str | None,
    join_title: bool,
    min_relevance: int = 1,
) -> TrainingInput:
    """A Hub dataset (cached or reachable) or a local dataset folder saved with save_to_disk or as files.

    Rows go through the same reader as files (`group_rows`). Raises InputError when it cannot be loaded, the
    split is missing, or a row is unusable as for files.
    """
    import datasets

    p = Path(name_or_path).expanduser()
    try:
        if p.is_dir() and ((p / "dataset_info.json").exists() or (p / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise InputError(f"{p}: no split {split!r}; available: {', '.join(ds)}")
                ds = ds[split]
        else:
            ds = datasets.load_dataset(name_or_path, config, split=split)
    except InputError:
        raise
    except Exception as e:
        raise InputError(
            f"{name_or_path}: could not load Hugging Face dataset ({type(e).__name__}: {e})"
        ) from None
    skips = SkipLog()
    corpus = read_corpus(corpus_path, skips, join_title=join_title) if corpus_path else None
    label = f"{name_or_path}[{split}]"
    out = group_rows(
        _hf_rows(ds, label),
        cols,
        corpus,
        skips,
        label,
        join_title=join_title,
        min_relevance=min_relevance,
        found=list(ds.column_names),
    )
    out.queries = _with_positives(out.queries, skips, label)
    out.files = [str(p)] if p.exists() else []
    if corpus_path:
        out.files.append(str(corpus_path))
    return out
