"""BEIR folders and loose qrels files: queries + qrels + corpus, several positives per query from qrels."""

from __future__ import annotations

from pathlib import Path

from negforge.records import Corpus, Query, SkipLog, TrainingInput
from negforge.sources.corpus import read_corpus
from negforge.sources.readers import InputError, iter_rows

QUERY_ID_KEYS = ("query-id", "query_id", "qid", "query-id ")
DOC_ID_KEYS = ("corpus-id", "corpus_id", "doc_id", "docid", "pid")


def read_queries(path: str | Path, skips: SkipLog) -> dict[str, str]:
    """Query id → text; empty texts and repeated ids are counted skips."""
    out: dict[str, str] = {}
    for where, row in iter_rows(path, skips, what="queries file"):
        qid = row.get("_id", row.get("id", row.get("query_id")))
        if qid is None or str(qid).strip() == "" or "text" not in row:
            skips.add("missing_field", where, "a query needs `_id` and `text`")
            continue
        qid, text = str(qid).strip(), str(row["text"] or "").strip()
        if not text:
            skips.add("empty_text", where, f"query {qid}")
            continue
        if qid in out:
            skips.add("duplicate_id", where, f"query {qid}")
            continue
        out[qid] = text
    return out


def read_qrels(path: str | Path, skips: SkipLog, min_relevance: int) -> list[tuple[str, str, str]]:
    """(where, query id, doc id) for each relevant judgement, in file order."""
    out = []
    for where, row in iter_rows(path, skips, what="qrels file"):
        qid = next((row[k] for k in QUERY_ID_KEYS if k in row), None)
        did = next((row[k] for k in DOC_ID_KEYS if k in row), None)
        if qid is None or did is None:
            skips.add("missing_field", where, "qrels need query-id and corpus-id")
            continue
        score = row.get("score", 1)
        try:
            score = int(float(score))
        except (TypeError, ValueError):
            skips.add("bad_row", where, f"score {score!r} is not a number")
            continue
        if score < min_relevance:
            skips.add("below_min_relevance", where, f"score {score}")
            continue
        out.append((where, str(qid).strip(), str(did).strip()))
    return out


def assemble(
    corpus: Corpus, queries: dict[str, str], qrels: list[tuple[str, str, str]], skips: SkipLog
) -> list[Query]:
    """Group judgements by query (file order), dropping those that name unknown queries or documents."""
    positives: dict[str, list[int]] = {}
    for where, qid, did in qrels:
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
    skips = SkipLog()
    c = read_corpus(corpus, skips, join_title=join_title)
    q = read_queries(queries, skips)
    judged = read_qrels(qrels, skips, min_relevance)
    out = assemble(c, q, judged, skips)
    if not out:
        raise InputError(f"{qrels}: no query has a usable positive (skips: {skips.counts()})")
    return TrainingInput(corpus=c, queries=out, skips=skips)


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
