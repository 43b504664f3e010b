"""(query, positive) pairs from JSONL/Parquet files or a Hugging Face dataset.

Rows of one query are grouped by query id (or text), so several positives stay one training example.
Positives missing from the corpus are added to it, so they can be excluded from their query's negatives.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from negforge.config import Columns
from negforge.records import Corpus, Query, SkipLog, TrainingInput
from negforge.sources.corpus import read_corpus
from negforge.sources.readers import InputError, columns_of, iter_rows, require_columns


def text_id(prefix: str, text: str) -> str:
    """A stable id for a text that came without one."""
    return f"{prefix}{hashlib.sha1(text.encode('utf-8')).hexdigest()[:12]}"


def group_pairs(
    rows: Iterable[tuple[str, dict[str, Any]]],
    cols: Columns,
    corpus: Corpus | None,
    skips: SkipLog,
    source: str,
) -> TrainingInput:
    ids = list(corpus.ids) if corpus else []
    texts = list(corpus.texts) if corpus else []
    by_id = dict(corpus.index) if corpus else {}
    by_text = {t: i for i, t in enumerate(texts)}
    queries: dict[str, tuple[str, list[int]]] = {}
    added = 0
    seen_any = False
    for where, row in rows:
        seen_any = True
        if cols.query not in row or cols.positive not in row:
            raise InputError(
                f"{where}: missing column {cols.query!r} or {cols.positive!r}; found {', '.join(row)} "
                f"(set data.columns.query / data.columns.positive)"
            )
        q, pos = str(row[cols.query] or "").strip(), str(row[cols.positive] or "").strip()
        if not q or not pos:
            skips.add("empty_text", where, "empty query" if not q else "empty positive")
            continue
        qid = (
            str(row[cols.query_id])
            if cols.query_id and row.get(cols.query_id) is not None
            else text_id("q-", q)
        )
        pid = (
            str(row[cols.positive_id]) if cols.positive_id and row.get(cols.positive_id) is not None else None
        )
        r = by_id.get(pid) if pid is not None else by_text.get(pos)
        if r is None:
            pid = pid or text_id("d-", pos)
            if pid in by_id:
                skips.add("duplicate_id", where, f"positive id {pid} names a different text")
                continue
            r = len(ids)
            ids.append(pid)
            texts.append(pos)
            by_id[pid] = r
            by_text.setdefault(pos, r)
            added += corpus is not None
        prev = queries.get(qid)
        if prev is None:
            queries[qid] = (q, [r])
        elif prev[0] != q:
            skips.add("duplicate_id", where, f"query id {qid} has two different texts")
        elif r not in prev[1]:
            prev[1].append(r)
    if not seen_any:
        raise InputError(f"{source}: no rows")
    if not queries:
        raise InputError(f"{source}: no usable (query, positive) rows (skips: {skips.counts()})")
    if added:
        skips.add("positive_added_to_corpus", source, f"{added} positives were not in the corpus")
    c = Corpus(ids=ids, texts=texts, index=by_id)
    return TrainingInput(c, [Query(qid, q, tuple(rs)) for qid, (q, rs) in queries.items()], skips)


def load_pairs(
    path: str | Path, cols: Columns, corpus_path: str | None, *, join_title: bool = True
) -> TrainingInput:
    skips = SkipLog()
    found = columns_of(path)
    if found is not None:
        require_columns(path, [cols.query, cols.positive], found)
    corpus = read_corpus(corpus_path, skips, join_title=join_title) if corpus_path else None
    return group_pairs(iter_rows(path, skips, what="pairs file"), cols, corpus, skips, str(path))


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
) -> TrainingInput:
    """A Hub dataset (cached or reachable) or a local dataset folder saved with save_to_disk or as files."""
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
    require_columns(name_or_path, [cols.query, cols.positive], list(ds.column_names))
    skips = SkipLog()
    corpus = read_corpus(corpus_path, skips, join_title=join_title) if corpus_path else None
    return group_pairs(_hf_rows(ds, f"{name_or_path}[{split}]"), cols, corpus, skips, name_or_path)
