"""BEIR folders and loose qrels files: queries + qrels + corpus, several positives per query from qrels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from negforge.records import Corpus, Query, SkipLog, TrainingInput
from negforge.sources.columns import ColumnMatch, canonical, match_columns, note_unread
from negforge.sources.corpus import read_corpus
from negforge.sources.readers import InputError, iter_lines, iter_rows, require_file
from negforge.sources.values import id_value, number_value, text_value

QUERY_ID_KEYS = ("query-id", "query_id", "qid", "queryid", "topic")
DOC_ID_KEYS = ("corpus-id", "corpus_id", "doc_id", "docid", "doc-id", "pid", "did", "docno")
GRADE_KEYS = (
    "score",
    "relevance",
    "label",
    "rel",
    "grade",
    "relevance_score",
    "judgment",
    "judgement",
    "qrel",
)
QUERY_KEYS = ("_id", "id", "query_id", "qid", "query-id")
QUERY_ROLES = {"id": QUERY_KEYS, "text": ("text",)}
QRELS_ROLES = {"query id": QUERY_ID_KEYS, "document id": DOC_ID_KEYS, "grade": GRADE_KEYS}


def read_queries(path: str | Path, skips: SkipLog) -> dict[str, str]:
    """Query id → text; empty or missing (NaN, null) texts and repeated ids are counted skips; each column
    other than the id and `text` is named in `skips.unread`; names match ignoring case and spaces.

    Raises InputError when a text cell holds a list, number or mapping (named by file:line and column), or
    when two columns are one name up to case (`text` and `Text`).
    """
    out: dict[str, str] = {}
    rows = iter_rows(
        path, skips, what="queries file", headerless=("_id", "text"), header_keys=(*QUERY_KEYS, "text")
    )
    matches: dict[tuple, ColumnMatch] = {}
    noted: set[str] = set()
    for where, row in rows:
        m = matches.get(tuple(row))
        if m is None:
            m = matches[tuple(row)] = match_columns(row, QUERY_ROLES, where, what="a queries file")
            note_unread(skips, noted, m, where, f"an id ({', '.join(QUERY_KEYS)}) and text")
        key, tkey = m["id"], m["text"]
        qid = id_value(row[key], where, key) if key else None
        if qid is None or tkey is None:
            skips.add("missing_field", where, "a query needs `_id` and `text`")
            continue
        text = text_value(row[tkey], where, tkey)
        if text is None:
            skips.add("empty_text", where, f"query {qid}")
            continue
        if qid in out:
            skips.add("duplicate_id", where, f"query {qid}")
            continue
        out[qid] = text
    return out


@dataclass(frozen=True)
class Judgement:
    """One relevant qrels row: where it was read, the query id and the document id."""

    where: str
    query_id: str
    doc_id: str


@dataclass(frozen=True)
class QrelsLayout:
    """How a qrels file was understood: header or not, which column holds ids and the grade."""

    header: bool
    query_col: str
    doc_col: str
    grade_col: str
    rule: str  # "by name", "by position (3-column BEIR)", "by position (4-column TREC)"

    def describe(self) -> str:
        head = "header" if self.header else "no header"
        return f"{head}; query id {self.query_col!r}, doc id {self.doc_col!r}, grade {self.grade_col!r} ({self.rule})"


def _grade_rule(names: list[str], where: str) -> tuple[str, str, str, str]:
    """(query col, doc col, grade col, rule) for a header; raises InputError when the grade is unknown."""
    m = match_columns(names, QRELS_ROLES, where, what="a qrels file", one_per_role=True)
    q, d, g = m["query id"], m["document id"], m["grade"]
    if q is None or d is None:
        raise InputError(
            f"{where}: qrels header {names} has no query id ({', '.join(QUERY_ID_KEYS)}) "
            f"or document id ({', '.join(DOC_ID_KEYS)}) column"
        )
    if g is not None:
        return q, d, g, "by name"
    if len(names) == 3 and names.index(q) == 0 and names.index(d) == 1:
        return q, d, names[2], "by position (3-column BEIR)"
    if len(names) == 4 and names.index(q) == 0 and names.index(d) == 2:
        return q, d, names[3], "by position (4-column TREC)"
    raise InputError(
        f"{where}: qrels has no grade column: header {names}; name it one of {', '.join(GRADE_KEYS)} "
        "(negforge never takes every row as relevant)"
    )


def _text_qrels(p: Path, skips: SkipLog) -> tuple[QrelsLayout, list[tuple[str, dict[str, str]]]]:
    """Rows of a TSV/whitespace qrels file, read by its header or by the BEIR/TREC column layout."""
    rows: list[tuple[str, dict[str, str]]] = []
    layout: QrelsLayout | None = None
    cols: list[str] = []
    for where, line in iter_lines(p, skips):
        fields = line.split("\t") if "\t" in line else line.split()
        fields = [f.strip() for f in fields]
        if layout is None:
            if any(canonical(f) in QUERY_ID_KEYS or canonical(f) in DOC_ID_KEYS for f in fields):
                q, d, g, rule = _grade_rule(fields, where)
                layout, cols = QrelsLayout(True, q, d, g, rule), fields
                continue
            if len(fields) == 4 and _numeric(fields[3]):
                cols = ["query-id", "iteration", "corpus-id", "score"]
                layout = QrelsLayout(False, "query-id", "corpus-id", "score", "by position (4-column TREC)")
            elif len(fields) == 3 and _numeric(fields[2]):
                cols = ["query-id", "corpus-id", "score"]
                layout = QrelsLayout(False, "query-id", "corpus-id", "score", "by position (3-column BEIR)")
            else:
                raise InputError(
                    f"{where}: cannot tell the qrels layout of {line[:80]!r}: expected a header naming the "
                    f"grade column ({', '.join(GRADE_KEYS)}), or 3 columns (query, doc, grade: BEIR) or "
                    "4 columns (query, iteration, doc, grade: TREC)"
                )
        if len(fields) != len(cols):
            skips.add("bad_row", where, f"{len(fields)} fields, expected {len(cols)}")
            continue
        rows.append((where, dict(zip(cols, fields, strict=True))))
    if layout is None:
        raise InputError(f"{p}: qrels file is empty")
    return layout, rows


def _numeric(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return True


def read_qrels_layout(
    path: str | Path, skips: SkipLog, min_relevance: int
) -> tuple[QrelsLayout, list[Judgement]]:
    """The relevant judgements (grade >= min_relevance) in file order, and how the file was read.

    TSV/TXT files are read by header, or by the 3-column BEIR / 4-column TREC layout; JSONL and Parquet by
    key names. Raises InputError when no grade column can be identified (never "every row relevant").
    """
    p = require_file(path, "qrels file")
    name = p.name.lower().removesuffix(".gz")
    if name.endswith((".tsv", ".txt", ".qrels", ".trec")) or "." not in name:
        layout, rows = _text_qrels(p, skips)
    else:
        rows = list(iter_rows(p, skips, what="qrels file"))
        if not rows:
            raise InputError(f"{p}: qrels file has no rows")
        q, d, g, rule = _grade_rule(list(rows[0][1]), f"{p}:1")
        layout = QrelsLayout(True, q, d, g, rule)
    out = []
    grades: dict[tuple[str, str], tuple[float, str]] = {}
    for where, row in rows:
        qid = id_value(row.get(layout.query_col), where, layout.query_col)
        did = id_value(row.get(layout.doc_col), where, layout.doc_col)
        if qid is None or did is None:
            skips.add("missing_field", where, "qrels need a query id and a document id")
            continue
        raw = row.get(layout.grade_col)
        try:
            grade = number_value(raw, where, layout.grade_col)
        except InputError:
            grade = None
        if grade is None or not float(grade).is_integer():
            skips.add("bad_row", where, f"grade {raw!r} in column {layout.grade_col!r} is not an integer")
            continue
        prev = grades.setdefault((qid, did), (grade, where))
        if prev[0] != grade:
            skips.add(
                "conflicting_judgement",
                where,
                f"query {qid}, document {did}: grade {int(grade)} here, {int(prev[0])} at {prev[1]}; "
                "the document is a positive if any judgement reaches min_relevance",
            )
        if grade < min_relevance:
            skips.add("below_min_relevance", where, f"grade {int(grade)} < min_relevance {min_relevance}")
            continue
        out.append(Judgement(where, qid, did))
    return layout, out


def read_qrels(path: str | Path, skips: SkipLog, min_relevance: int) -> list[Judgement]:
    """The relevant judgements of a qrels file (see read_qrels_layout)."""
    return read_qrels_layout(path, skips, min_relevance)[1]


def assemble(corpus: Corpus, queries: dict[str, str], qrels: list[Judgement], skips: SkipLog) -> list[Query]:
    """Group judgements by query (file order), dropping those that name unknown queries or documents."""
    positives: dict[str, list[int]] = {}
    for j in qrels:
        where, qid, did = j.where, j.query_id, j.doc_id
        if qid not in queries:
            skips.add("qrels_unknown_query", where, f"query {qid}")
            continue
        row = corpus.index.get(did)
        if row is None:
            skips.add("qrels_unknown_doc", where, f"document {did}")
            continue
        rows = positives.setdefault(qid, [])
        if row not in rows:
            rows.append(row)
    return [Query(qid, queries[qid], tuple(rows)) for qid, rows in positives.items()]


def load_qrels_input(
    qrels: str | Path,
    queries: str | Path,
    corpus: str | Path,
    *,
    join_title: bool = True,
    min_relevance: int = 1,
) -> TrainingInput:
    """Corpus, queries and qrels files in; one Query per query with a relevant judgement (file order).

    Raises InputError for a missing file, a qrels file without an identifiable grade column, a wrongly typed
    cell, or when no query has a usable positive.
    """
    skips = SkipLog()
    c = read_corpus(corpus, skips, join_title=join_title)
    q = read_queries(queries, skips)
    layout, judged = read_qrels_layout(qrels, skips, min_relevance)
    out = assemble(c, q, judged, skips)
    if not out:
        raise InputError(f"{qrels}: no query has a usable positive (skips: {skips.counts()})")
    understood = [
        f"qrels {qrels}: {layout.describe()}; positives are grades >= {min_relevance}",
        f"corpus {corpus}: {len(c)} documents, title {'joined to' if join_title else 'not joined to'} the text",
        f"queries {queries}: {len(q)} read, {len(out)} with a positive",
    ]
    return TrainingInput(
        corpus=c, queries=out, skips=skips, layout=understood, files=[str(corpus), str(queries), str(qrels)]
    )


def load_beir(
    folder: str | Path, split: str, *, join_title: bool = True, min_relevance: int = 1
) -> TrainingInput:
    f = Path(folder).expanduser()
    if not f.is_dir():
        raise InputError(f"{f}: BEIR folder not found")
    qrels = f / "qrels" / f"{split}.tsv"
    if not qrels.is_file():
        have = sorted(p.stem for p in (f / "qrels").glob("*.tsv")) if (f / "qrels").is_dir() else []
        raise InputError(f"{qrels}: no qrels for split {split!r}; available: {', '.join(have) or 'none'}")
    return load_qrels_input(
        qrels, f / "queries.jsonl", f / "corpus.jsonl", join_title=join_title, min_relevance=min_relevance
    )
