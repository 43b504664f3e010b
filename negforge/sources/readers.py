"""Row readers for JSONL, TSV/CSV and Parquet that say where every row came from (file:line).

Dialects: a UTF-8 byte-order mark is ignored and CRLF line ends are stripped in every text format; a file whose
lines end in CR alone (classic Mac OS exports) is split at its CRs; a BOM left in a Parquet column name (a BOM CSV
read without utf-8-sig, then saved) is dropped. A TSV field
is taken literally (a `"` is a character, as in BEIR and MS MARCO files), except a field that carries CSV
quoting's proof, as pandas' `to_csv(sep="\t")` writes a text with quotes in it: wrapped in `"` with every inner
`"` doubled (the field `"say ""hi"" now"` is the text `say "hi" now`); CSV follows RFC 4180 quoting.
Bad lines (not UTF-8, not JSON) become counted skips whose detail names the line and column; a missing file or
column is an error that names it.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
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
    path: str | Path,
    skips: SkipLog,
    *,
    what: str = "file",
    headerless: tuple[str, ...] | None = None,
    header_keys: tuple[str, ...] = (),
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (where, row) for each usable row; `where` is `file:line` (1-based) or `file:row N` for Parquet.

    JSONL (.jsonl/.ndjson, or .json holding one object per line or one array of objects), Parquet, TSV/TXT
    (literal fields), CSV (RFC 4180, quoted fields may span lines), each optionally gzip-compressed (.gz).
    A TSV/CSV whose first line names none of `header_keys` is read as headerless with the column names
    `headerless` (MS MARCO `collection.tsv`: id, text), when given. Raises InputError for a missing file,
    an unknown type, or a UTF-16/32 file.
    """
    p = require_file(path, what)
    name = p.name.lower().removesuffix(".gz")
    refuse_utf16(p)
    if name.endswith((".jsonl", ".ndjson")):
        yield from _iter_jsonl(p, skips)
    elif name.endswith(".json"):
        yield from _iter_json(p, skips)
    elif name.endswith(".parquet"):
        yield from _iter_parquet(p)
    elif name.endswith((".tsv", ".txt")):
        yield from _iter_delimited(p, skips, "\t", headerless, header_keys)
    elif name.endswith(".csv"):
        yield from _iter_csv(p, skips, headerless, header_keys)
    else:
        raise InputError(
            f"{p}: unknown file type; use .jsonl, .json, .parquet, .tsv or .csv (optionally .gz)"
        )


def open_bytes(p: Path):
    """The file opened for reading bytes, decompressed when its name ends in .gz."""
    if p.name.lower().endswith(".gz"):
        import gzip

        return gzip.open(p, "rb")
    return p.open("rb")


def refuse_utf16(p: Path) -> None:
    """Raise InputError when the file starts with a UTF-16/UTF-32 byte-order mark."""
    with open_bytes(p) as f:
        head = f.read(4)
    if head.startswith((b"\xff\xfe", b"\xfe\xff")) or head.startswith((b"\x00\x00\xfe\xff",)):
        raise InputError(
            f"{p}: the file is UTF-16/UTF-32 (byte-order mark {head[:2].hex()}); save it as UTF-8"
        )


def _iter_json(p: Path, skips: SkipLog) -> Iterator[tuple[str, dict[str, Any]]]:
    """A .json file: one array of objects (read whole), else one object per line."""
    with open_bytes(p) as f:
        data = f.read()
    text = data.removeprefix(BOM).lstrip()
    if not text.startswith(b"["):
        yield from _iter_jsonl(p, skips)
        return
    try:
        items = json.loads(text.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not UTF-8 (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{p}:{e.lineno}:{e.colno}: not valid JSON ({e.msg})") from None
    for i, row in enumerate(items):
        if not isinstance(row, dict):
            skips.add("bad_json", f"{p}:item {i}", "array item is not a JSON object")
            continue
        yield f"{p}:item {i}", row


def _raw_lines(f: Any) -> Iterator[bytes]:
    """The byte lines of an open file, streamed: LF or CRLF ends, or CR alone (classic Mac OS, Excel for Mac's
    "CSV (Macintosh)") when the file holds a CR but no LF at all (a long first record with a stray CR in an
    LF file is not mistaken for one)."""
    head = f.read(1 << 16)
    if b"\n" not in head and b"\r" in head:
        rest = f.read()
        if b"\n" not in rest:
            yield from (head + rest).split(b"\r")
            return
        *lines, last = (head + rest).split(b"\n")  # an LF file after all (read whole: it was already)
        yield from (line + b"\n" for line in lines)
        if last:
            yield last
        return
    lines = head.split(b"\n")
    tail = lines.pop()  # the line the first read cut in two
    for line in lines:
        yield line + b"\n"
    for raw in f:
        yield tail + raw
        tail = b""
    if tail:
        yield tail


def _iter_jsonl(p: Path, skips: SkipLog) -> Iterator[tuple[str, dict[str, Any]]]:
    with open_bytes(p) as f:
        for lineno, raw in enumerate(_raw_lines(f), 1):
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


def _is_header(fields: list[str], header_keys: tuple[str, ...], headerless: tuple[str, ...] | None) -> bool:
    if headerless is None:
        return True
    return any(f.strip().lower() in header_keys for f in fields)


def iter_lines(p: Path, skips: SkipLog) -> Iterator[tuple[str, str]]:
    """(`file:line`, text) of each non-blank line: BOM dropped, CRLF stripped, a CR-only file split at its CRs,
    gzip opened; a line that is not UTF-8 is a counted skip naming its column."""
    with open_bytes(p) as f:
        data = f.read()
    sep = b"\r" if b"\n" not in data and b"\r" in data else b"\n"
    for lineno, raw in enumerate(data.split(sep), 1):
        where = f"{p}:{lineno}"
        if lineno == 1 and raw.startswith(BOM):
            raw = raw[len(BOM) :]
        try:
            line = raw.decode("utf-8").rstrip("\r")
        except UnicodeDecodeError as e:
            skips.add("not_utf8", where, f"column {e.start + 1}: byte 0x{raw[e.start]:02x} is not UTF-8")
            continue
        if line.strip():
            yield where, line


def _with_header(
    rows: Iterable[tuple[str, list[str]]],
    skips: SkipLog,
    headerless: tuple[str, ...] | None,
    header_keys: tuple[str, ...],
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Field lists to dicts keyed by the header (the first row, or `headerless` when it names no known key);
    a row with another field count is a counted skip."""
    header: list[str] | None = None
    for where, fields in rows:
        if header is None:
            if _is_header(fields, header_keys, headerless):
                header = [h.strip() for h in fields]
                continue
            header = list(headerless or ())
        if len(fields) != len(header):
            skips.add("bad_row", where, f"{len(fields)} fields, header has {len(header)}")
            continue
        yield where, dict(zip(header, fields, strict=True))


def _tsv_field(field: str) -> str:
    """A TSV field as written: literal, unless it is CSV-quoted (wrapped in quotes, inner quotes all doubled
    and at least one pair of them), which only a CSV writer produces; then the quoting is undone."""
    if len(field) >= 2 and field[0] == field[-1] == '"':
        inner = field[1:-1]
        if '""' in inner and '"' not in inner.replace('""', ""):
            return inner.replace('""', '"')
    return field


def _iter_delimited(
    p: Path,
    skips: SkipLog,
    delimiter: str,
    headerless: tuple[str, ...] | None = None,
    header_keys: tuple[str, ...] = (),
) -> Iterator[tuple[str, dict[str, Any]]]:
    # literal fields (BEIR/MS MARCO TSVs do not quote), but CSV-quoted ones from pandas read as meant
    lines = ((where, [_tsv_field(f) for f in line.split(delimiter)]) for where, line in iter_lines(p, skips))
    yield from _with_header(lines, skips, headerless, header_keys)


def _iter_csv(
    p: Path, skips: SkipLog, headerless: tuple[str, ...] | None = None, header_keys: tuple[str, ...] = ()
) -> Iterator[tuple[str, dict[str, Any]]]:
    """RFC 4180 CSV through the csv module, so a quoted field may hold commas and line breaks."""
    with open_bytes(p) as fb:
        try:
            text = fb.read().decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise InputError(f"{p}: not UTF-8 (byte {e.start}); save it as UTF-8") from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)

    def records() -> Iterator[tuple[str, list[str]]]:
        start = 1
        for fields in reader:
            where = f"{p}:{start}"
            start = reader.line_num + 1
            if fields and any(f.strip() for f in fields):
                yield where, fields

    try:
        yield from _with_header(records(), skips, headerless, header_keys)
    except csv.Error as e:
        raise InputError(f"{p}:{reader.line_num}: not valid CSV ({e})") from None


def _iter_parquet(p: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(p)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise InputError(f"{p}: not a readable Parquet file ({e})") from None
    if any(
        n.startswith("\ufeff") for n in table.column_names
    ):  # a BOM CSV read without utf-8-sig, then saved
        table = table.rename_columns([n.removeprefix("\ufeff") for n in table.column_names])
    for i, row in enumerate(table.to_pylist()):
        yield f"{p}:row {i}", row


def columns_of(path: str | Path) -> list[str] | None:
    """Column names when the format declares them up front (Parquet, TSV header); None for JSONL."""
    p = Path(path)
    if p.name.lower().endswith(".parquet"):
        import pyarrow.parquet as pq

        return [n.removeprefix("\ufeff") for n in pq.read_schema(p).names]
    return None


def require_columns(path: str | Path, needed: list[str], found: list[str]) -> None:
    missing = [c for c in needed if c not in found]
    if missing:
        raise InputError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(found) or 'none'}"
        )
