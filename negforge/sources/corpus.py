"""Corpus files in: JSONL or Parquet documents with an id, an optional title and a text."""

from __future__ import annotations

from pathlib import Path

from negforge.records import Corpus, SkipLog
from negforge.sources.readers import InputError, columns_of, iter_rows, require_columns

ID_KEYS = ("_id", "id", "doc_id", "docid", "corpus-id")


def _pick(row: dict, keys: tuple[str, ...]) -> tuple[str | None, object]:
    for k in keys:
        if k in row:
            return k, row[k]
    return None, None


def doc_text(title: object, text: object, join_title: bool) -> str:
    """BEIR convention: title and body joined with a space when a title exists."""
    body = str(text or "").strip()
    head = str(title or "").strip() if join_title else ""
    return f"{head} {body}".strip() if head else body


def read_corpus(path: str | Path, skips: SkipLog, *, join_title: bool = True) -> Corpus:
    """Read documents; empty texts and repeated ids are skipped and counted (the first copy wins)."""
    cols = columns_of(path)
    if cols is not None:
        if not any(k in cols for k in ID_KEYS):
            raise InputError(f"{path}: no id column (one of {', '.join(ID_KEYS)}); found {', '.join(cols)}")
        require_columns(path, ["text"], cols)
    ids: list[str] = []
    texts: list[str] = []
    seen: dict[str, str] = {}
    for where, row in iter_rows(path, skips, what="corpus file"):
        key, did = _pick(row, ID_KEYS)
        if key is None or did is None or str(did).strip() == "":
            skips.add("missing_field", where, f"no document id (one of {', '.join(ID_KEYS)})")
            continue
        if "text" not in row:
            skips.add("missing_field", where, "no `text` field")
            continue
        did = str(did).strip()
        text = doc_text(row.get("title"), row.get("text"), join_title)
        if not text:
            skips.add("empty_text", where, f"document {did}")
            continue
        if did in seen:
            skips.add("duplicate_id", where, f"document {did} already at {seen[did]}")
            continue
        seen[did] = where
        ids.append(did)
        texts.append(text)
    if not ids:
        raise InputError(f"{path}: no usable documents (see skips: {skips.counts()})")
    return Corpus(ids=ids, texts=texts)
