"""(query, positives[, negatives]) rows from JSONL/Parquet/TSV files or a Hugging Face dataset: one code path.

Recognised layouts (columns are found by name unless `data.columns` names them):

- sentence-transformers pair / triplet / n-tuple: `anchor|query`, `positive`, `negative` or `negative_1..n`;
- FlagEmbedding: `query`, `pos: [texts]`, `neg: [texts]`, optional `pos_scores`, `neg_scores`, `prompt`;
- Tevatron: `query_id`, `query`, `positive_passages` / `negative_passages` as lists of `{docid, title, text}`;
- labeled pairs: `query`, `positive|passage`, `label` (no negative column): grade >= `min_relevance` is a
  positive, lower grades are given negatives.

A cell holding a list is read as several passages, never as the text of its Python repr; a value of another
type is refused by row and column. Rows of one query are grouped by query id, so several positives stay one
training example. Rows without a query id are grouped by the query's exact text, up to whitespace runs and
Unicode normalisation form (`negforge.text_identity.query_key`): texts that differ in a letter, a digit, a
symbol, punctuation or case ("C++ compiler" / "C compiler", "Paris" / "paris") are separate queries, since
merging them would give one query the other's positives. Such near-identical queries are counted in the layout
notes, and the identity rule still keeps each one's positives out of the other's negatives. The id minted for
a text is `q-` and 12 hex digits of the SHA-1 of that key (the full 40 when those 12 name another text). Positives and given negatives are matched to the corpus by id, then by normalised
text (with or without the title); those not in it are added to it (counted), so the identity rule and the
miners see them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negforge.config import Columns
from negforge.records import Corpus, GivenNegative, Query, SkipLog, TrainingInput
from negforge.sources.corpus import doc_text, read_corpus
from negforge.sources.layout import PairLayout, detect_layout, refuse_unread_grade
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
from negforge.text_identity import query_key, text_key


def text_id(prefix: str, text: str, digits: int = 12) -> str:
    """A stable id for a text that came without one: `prefix` and the first `digits` hex digits of its SHA-1."""
    return f"{prefix}{hashlib.sha1(text.encode('utf-8')).hexdigest()[:digits]}"


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

    keys: dict[str, str] = field(default_factory=dict)  # query id -> query_key of its text

    def minted_id(self, key: str) -> str:
        """The id of a query text given without one: `q-` and 12 hex digits of the SHA-1 of its `query_key`
        (stable across runs), the full 40 when those 12 already name another text. Raises InputError in the
        impossible case that both do, so two query texts never share an id."""
        for n in (12, 40):
            qid = text_id("q-", key, n)
            if self.keys.setdefault(qid, key) == key:
                return qid
        raise InputError(f"query id {qid} would name two texts: {key[:60]!r} and {self.keys[qid][:60]!r}")

    def __post_init__(self) -> None:
        for r in range(len(self.corpus)):
            for t in (self.corpus.texts[r], self.corpus.body(r)):
                self.by_key.setdefault(text_key(t), r)

    def row_of(self, p: Passage, kind: str, join_title: bool, where: str) -> int | None:
        """The corpus row of a passage: by id, else by normalised text; added to the corpus when absent.

        Raises InputError when the passage's id names a corpus document with another text (an off-by-one
        docid would otherwise swap the user's positive for an unrelated document), or when a passage without id
        matches no corpus text but is a corpus document's id (a column of ids read as texts would make "d1" a
        positive and leave document d1 free to be mined as its negative).
        """
        text = doc_text(p.title, p.text, join_title)
        if p.doc_id is not None and p.doc_id in self.corpus.index:
            at = self.corpus.index[p.doc_id]
            have = {text_key(self.corpus.texts[at]), text_key(self.corpus.body(at))}
            if not have & {text_key(text), text_key(p.text)}:
                raise InputError(
                    f"{where}: {kind.replace('_', ' ')} docid {p.doc_id!r} has the text {p.text[:60]!r}, but the "
                    f"corpus document {p.doc_id!r} reads {self.corpus.texts[at][:60]!r}; fix the id or the text"
                )
            return at
        r = self.by_key.get(text_key(text))
        if r is None:
            r = self.by_key.get(text_key(p.text))
        if r is not None:
            return r
        if p.doc_id is None and self.has_corpus_file and p.text in self.corpus.index:
            raise InputError(
                f"{where}: the {kind.replace('_', ' ')} {p.text!r} is no corpus text but the id of corpus document "
                f"{p.text!r}; this column must hold passage texts (or {{docid, text}} passages), not document ids"
            )
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
    refuse_unread_grade(layout, first[1], first[0])
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
    understood += _near_same_queries(qs)
    return TrainingInput(g.corpus, qs, skips, layout=understood, given_only=frozenset(g.given_only))


def _near_same_queries(qs: list[Query]) -> list[str]:
    """A layout note when some queries' texts differ only in case, quotes or Unicode form (one `norm_text`,
    several `query_key`s): they stay separate queries; [] when none do."""
    groups: dict[int, dict[str, str]] = {}
    for q in qs:
        groups.setdefault(text_key(q.text), {}).setdefault(query_key(q.text), q.text)
    near = [list(v.values()) for k, v in groups.items() if k and len(v) > 1]
    if not near:
        return []
    return [
        f"{sum(map(len, near))} queries differ from another only in case, quotes or Unicode form (e.g. "
        f"{' / '.join(repr(t[:60]) for t in near[0][:2])}): kept as separate queries; the identity rule keeps "
        "each one's positives out of the other's negatives"
    ]


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
        raw = row.get(layout.label)  # a boolean label (`is_relevant: true`, CSV `True`) is the grade 1 or 0
        if isinstance(raw, str) and raw.strip().lower() in ("true", "false"):
            raw = raw.strip().lower() == "true"
        grade = float(raw) if isinstance(raw, bool) else number_value(raw, where, layout.label)
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
    key = query_key(q)
    qid = id_value(row.get(layout.query_id), where, layout.query_id) if layout.query_id else None
    if qid is None:  # rows of one query text (up to whitespace and Unicode form, see query_key) are one query
        qid = g.minted_id(key)
    elif g.keys.setdefault(qid, key) != key:
        g.skips.add("duplicate_id", where, f"query id {qid} has two different texts")
        return
    entry = g.queries.get(qid)
    if entry is None:
        entry = g.queries[qid] = (q, [], [])
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
