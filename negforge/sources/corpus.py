"""Corpus files in: JSONL or Parquet documents with an id, an optional title and a text.

Columns are found by name, ignoring case and surrounding spaces (`Title`, `TEXT`, `_ID`; see
`negforge.sources.columns`); two columns with one name up to case are refused, and every other column is
named once in the manifest's `unread_columns` (a `heading` or `summary` column is never dropped
silently; BEIR's `metadata` is not read, by design).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from negforge.records import Corpus, SkipLog
from negforge.sources.columns import ColumnMatch, match_columns, note_unread
from negforge.sources.readers import InputError, columns_of, iter_rows
from negforge.sources.values import id_value, is_missing, text_value

ID_KEYS = ("_id", "id", "doc_id", "docid", "corpus-id")
CORPUS_ROLES = {"id": ID_KEYS, "title": ("title",), "text": ("text",)}
_READS = f"an id ({', '.join(ID_KEYS)}), title and text"


def corpus_columns(found: list[str], where: str) -> ColumnMatch:
    """The id, title and text columns among `found` (see module doc). Raises InputError naming `where` and
    the columns when two are one name up to case or spaces."""
    return match_columns(found, CORPUS_ROLES, where, what="a corpus")


def _spelled(value: object) -> str:
    """` spelled {value!r}` for a text cell that is a missing value's spelling ("nan", "None"), else ""."""
    return (
        f" spelled {value.strip()!r}"
        if isinstance(value, str) and value.strip() and is_missing(value)
        else ""
    )


def doc_text(title: str | None, body: str | None, join_title: bool) -> str:
    """BEIR convention: title and body joined with a space when a title exists (a missing title is none)."""
    body = (body or "").strip()
    head = (title or "").strip() if join_title else ""
    return f"{head} {body}".strip() if head and body else body


def read_corpus(path: str | Path, skips: SkipLog, *, join_title: bool = True) -> Corpus:
    """Read documents; empty or missing texts and repeated ids are skipped and counted (the first copy wins).

    A missing (NaN, null) title is no title; so is one spelled as text ("nan", "None"), counted as
    `missing_title`. Raises InputError when the file is missing, has no id column, or a title/text cell holds
    a list, number or mapping (named by file:line and column).
    """
    cols = columns_of(path)
    if cols is not None:
        m = corpus_columns(cols, str(path))
        if m["id"] is None:
            raise InputError(f"{path}: no id column (one of {', '.join(ID_KEYS)}); found {', '.join(cols)}")
        if m["text"] is None:
            raise InputError(f"{path}: missing column(s) text; found {', '.join(cols) or 'none'}")
    rows = iter_rows(
        path, skips, what="corpus file", headerless=("_id", "text"), header_keys=(*ID_KEYS, "text")
    )
    return corpus_from_rows(rows, skips, str(path), join_title=join_title)


def corpus_from_rows(
    rows: Iterable[tuple[str, dict]], skips: SkipLog, origin: str, *, join_title: bool = True
) -> Corpus:
    """Documents from (where, row) pairs (a file's rows, or a dataset's as `name:row N`); the rules of
    `read_corpus`. Raises InputError when no row is usable or a cell has the wrong type."""
    ids: list[str] = []
    texts: list[str] = []
    titles: list[str] = []
    seen: dict[str, str] = {}
    matches: dict[tuple, ColumnMatch] = {}
    noted: set[str] = set()
    for where, row in rows:
        m = matches.get(tuple(row))
        if m is None:
            m = matches[tuple(row)] = corpus_columns(list(row), where)
            note_unread(skips, noted, m, where, _READS)
        key, tkey, hkey = m["id"], m["text"], m["title"]
        did = id_value(row[key], where, key) if key is not None else None
        if did is None:
            skips.add("missing_field", where, f"no document id (one of {', '.join(ID_KEYS)})")
            continue
        if tkey is None:
            skips.add("missing_field", where, "no `text` field")
            continue
        body = text_value(row[tkey], where, tkey)
        title = (text_value(row[hkey], where, hkey) or "") if hkey is not None else ""
        if body is None:
            skips.add("empty_text", where, f"document {did}" + _spelled(row[tkey]))
            continue
        if hkey is not None and _spelled(row[hkey]):
            skips.add("missing_title", where, f"document {did}: title{_spelled(row[hkey])}, kept untitled")
        text = doc_text(title, body, join_title)
        if did in seen:
            skips.add("duplicate_id", where, f"document {did} already at {seen[did]}")
            continue
        seen[did] = where
        ids.append(did)
        texts.append(text)
        titles.append(title if join_title else "")
    if not ids:
        raise InputError(f"{origin}: no usable documents (see skips: {skips.counts()})")
    return Corpus(ids=ids, texts=texts, titles=titles)
