"""Row readers for JSONL, TSV/CSV and Parquet that say where every row came from (file:line).

Dialects: a UTF-8 byte-order mark is ignored and CRLF line ends are stripped in every text format. A TSV field
is taken literally (a `"` is a character, as in BEIR and MS MARCO files); CSV follows RFC 4180 quoting.
Bad lines (not UTF-8, not JSON) become counted skips whose detail names the line and column; a missing file or
column is an error that names it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from negforge.records import SkipLog
from negforge.sources.errors import InputError

BOM = b"\xef\xbb\xbf"


__all__ = ["InputError", "columns_of", "iter_rows", "require_columns", "require_file"]


def require_file(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"{p}: {what} not found")
    return p


def iter_rows(
    path: str | Path, skips: SkipLog, *, what: str = "file"
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (where, row) for each usable row; `where` is `file:line` (1-based) or `file:row N` for Parquet."""
    p = require_file(path, what)
    name = p.name.lower()
    if name.endswith((".jsonl", ".json", ".ndjson")):
        yield from _iter_jsonl(p, skips)
    elif name.endswith(".parquet"):
        yield from _iter_parquet(p)
    elif name.endswith((".tsv", ".csv", ".txt")):
        yield from _iter_delimited(p, skips, "\t" if not name.endswith(".csv") else ",")
    else:
        raise InputError(f"{p}: unknown file type; use .jsonl, .parquet, .tsv or .csv")


def _iter_jsonl(p: Path, skips: SkipLog) -> Iterator[tuple[str, dict[str, Any]]]:
    with p.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{p}:{lineno}"
            if lineno == 1 and raw.startswith(BOM):
                raw = raw[len(BOM) :]
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                skips.add("not_utf8", where, f"column {e.start + 1}: byte 0x{raw[e.start]:02x} is not UTF-8")
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                skips.add("bad_json", f"{where}:{e.colno}", f"column {e.colno}: {e.msg}")
                continue
            if not isinstance(row, dict):
                skips.add("bad_json", where, "line is not a JSON object")
                continue
            yield where, row


def _iter_delimited(p: Path, skips: SkipLog, delimiter: str) -> Iterator[tuple[str, dict[str, Any]]]:
    data = p.read_bytes()
    lines = data.split(b"\n")
    header: list[str] | None = None
    for lineno, raw in enumerate(lines, 1):
        where = f"{p}:{lineno}"
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            skips.add("not_utf8", where, f"column {e.start + 1}: byte 0x{raw[e.start]:02x} is not UTF-8")
            continue
        if not line.strip():
            continue
        if delimiter == "\t":  # literal fields: BEIR/MS MARCO TSVs do not quote
            fields = line.split("\t")
        else:
            fields = next(csv.reader(io.StringIO(line), delimiter=delimiter))
        if header is None:
            header = [h.strip() for h in fields]
            continue
        if len(fields) != len(header):
            skips.add("bad_row", where, f"{len(fields)} fields, header has {len(header)}")
            continue
        yield where, dict(zip(header, fields, strict=True))


def _iter_parquet(p: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise InputError(f"{p}: not a readable Parquet file ({e})") from None
    for i, row in enumerate(table.to_pylist()):
        yield f"{p}:row {i}", row


def columns_of(path: str | Path) -> list[str] | None:
    """Column names when the format declares them up front (Parquet, TSV header); None for JSONL."""
    p = Path(path)
    if p.name.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        return list(pq.read_schema(p).names)
    return None


def require_columns(path: str | Path, needed: list[str], found: list[str]) -> None:
    missing = [c for c in needed if c not in found]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(found) or 'none'}"
        )
