"""Cell values in: a text is a text, a missing value is missing, anything else is refused by name.

Every reader (JSONL, TSV/CSV, Parquet, Hugging Face datasets) hands its cells to these functions, so the same
rules hold whatever the file format:

- `None`, a float NaN, `pandas.NA`/`NaT` are *missing*, never the texts "None" or "nan"; so is a text or id
  cell that is exactly what str() makes of one when a table is stringified before export (`df.astype(str)`:
  `"nan"`, `"NaN"`, `"None"`, `"<NA>"`, `"NaT"`; and `"null"`/`"NULL"`), case-sensitive: `"NA"`, `"N/A"`,
  `"Na"`, `"Nan"` and `"Null"` are real values (an element, a title, an id); answers never use the spellings;
- a text field holding a list, a mapping, a number or a bool is an `InputError` that names where (file:line
  or dataset row), the column and the type found: it is never stringified into "['...']" or "3.0";
- a list column exported as text is read as the list it spells: pandas' `to_csv` of a list (`"['a', 'b']"`)
  or of a numpy array (`"['a' 'b']"`, no commas: never read as the one text `"ab"` that Python's implicit
  string concatenation would make of it); numpy's elided form (`['a' ... 'z']`) is refused; a parenthesised
  text (`"('Hello', 'World')"`) is a text;
- ids may be strings or integers (an integral float such as `12.0`, pandas' way of storing an int column with
  gaps, is read as `12`); a fractional or boolean id is refused.

Lists of texts (FlagEmbedding `pos`/`neg`) and lists of passages (Tevatron `positive_passages`) have their own
readers returning typed `Passage` records; a passage mapping's keys match ignoring case and spaces
(`Text`, `DocID`), as columns do (`negforge.sources.columns`).
"""

from __future__ import annotations

import ast
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from negforge.sources.columns import match_columns
from negforge.sources.errors import InputError

PASSAGE_TEXT_KEYS = ("text", "contents", "passage", "body")
PASSAGE_ID_KEYS = ("docid", "doc_id", "_id", "id", "pid", "corpus-id")
PASSAGE_ROLES = {"text": PASSAGE_TEXT_KEYS, "title": ("title",), "id": PASSAGE_ID_KEYS}
# how a missing value reads once a table was stringified (pandas str()/astype(str), R write.csv, SQL dumps)
#: exactly (case-sensitive, surrounding spaces aside) what str() makes of Python's None, a float or numpy NaN,
#: pandas' NA and NaT, and JSON's or SQL's null; not "NA", "N/A", "Na" (sodium) or "Nan", "Null" (real words,
#: titles and ids)
MISSING_SPELLINGS = frozenset({"nan", "NaN", "None", "<NA>", "NaT", "null", "NULL"})
_PY_STR = r"""(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")"""
_NUMPY_STR_ARRAY = re.compile(rf"\[\s*{_PY_STR}(?:\s+{_PY_STR})+\s*\]")
_NUMPY_ELIDED = re.compile(rf"\[\s*{_PY_STR}(?:\s+(?:{_PY_STR}|\.\.\.))*\s*\]")


@dataclass(frozen=True)
class Passage:
    """A passage as the input gave it: its text, optional title and optional document id."""

    text: str
    title: str = ""
    doc_id: str | None = None


def is_missing(value: Any, spellings: bool = True) -> bool:
    """True for None, float NaN, numpy NaN, pandas NA/NaT, and (with `spellings`) a text that is only a
    missing value's stringified form (`MISSING_SPELLINGS`: "nan", "None", "<NA>", ...; a table stringified
    before export). `spellings=False` where such a text is a legitimate value (an answer "None")."""
    if value is None:
        return True
    if isinstance(value, str):
        return spellings and value.strip() in MISSING_SPELLINGS
    if isinstance(value, float):
        return math.isnan(value)
    cls = type(value).__name__
    if cls in ("NAType", "NaTType"):
        return True
    if isinstance(value, np.floating):  # numpy floating scalars (a parquet or pandas cell)
        return bool(np.isnan(value))
    return False


def _type_name(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"list ({len(value)} items)"
    if isinstance(value, dict):
        return f"mapping with keys {', '.join(map(str, list(value)[:5]))}"
    return type(value).__name__


def text_value(value: Any, where: str, column: str, spellings: bool = True) -> str | None:
    """The stripped text of a cell, None when missing or empty (`spellings`: see `is_missing`).

    Raises InputError naming `where` (file:line or row) and `column` when the cell is not a string.
    """
    if is_missing(value, spellings):
        return None
    if isinstance(value, str):
        if _spelled_list(value, where, column) is not None:
            raise InputError(
                f"{where}: column {column!r} holds a list written as text ({_preview(value)}), as pandas' "
                "to_csv writes list columns; one text is expected here"
            )
        return value.strip() or None
    raise InputError(
        f"{where}: column {column!r} must be a text, found {_type_name(value)}: {_preview(value)} "
        "(negforge never turns a list, number or mapping into text; see README 'Input layouts')"
    )


def list_in_text(value: str) -> list | None:
    """The list a text cell spells out, else None: a Python/JSON list literal (`"['a', 'b']"`, pandas' to_csv
    of a list column) or numpy's str() of a string array (`"['a' 'b']"`, items separated by whitespace only,
    possibly over several lines). A parenthesised text (`"('Hello', 'World')"`) is a text, never a tuple.

    Only a cell that parses whole counts: "[citation needed]" is text. Raises InputError (no location; the
    callers add it) for numpy's elided form `['a' 'b' ... 'z']`, whose middle items are lost.
    """
    v = value.strip()
    if not (v.startswith("[") and v.endswith("]")):
        return None
    if _NUMPY_STR_ARRAY.fullmatch(v):  # ['a' 'b']: literal_eval would concatenate them into ['ab']
        return [ast.literal_eval(s) for s in re.findall(_PY_STR, v)]
    if "..." in v and _NUMPY_ELIDED.fullmatch(v):
        raise InputError(
            f"a numpy array printed with its middle items elided ({_preview(v)}); export the list column as "
            "JSON or Parquet instead"
        )
    try:
        out = ast.literal_eval(v)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        try:
            out = json.loads(v)
        except ValueError:
            return None
    return out if isinstance(out, list) else None


def _spelled_list(value: str, where: str, column: str) -> list | None:
    """`list_in_text` with the cell's location added to its error."""
    try:
        return list_in_text(value)
    except InputError as e:
        raise InputError(f"{where}: column {column!r} holds {e}") from None


def id_value(value: Any, where: str, column: str) -> str | None:
    """An id as a string: strings stripped, ints as written, integral floats as ints; None when missing.

    Raises InputError for a fractional float, a bool, a list or a mapping.
    """
    if is_missing(value):
        return None
    if isinstance(value, bool):
        raise InputError(f"{where}: column {column!r} must be an id, found bool {value!r}")
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, np.integer):
        return str(int(value))
    raise InputError(f"{where}: column {column!r} must be an id (text or integer), found {_type_name(value)}")


def number_value(value: Any, where: str, column: str) -> float | None:
    """A score as a float (None when missing); a text that parses as a number is accepted (TSV cells)."""
    if is_missing(value):
        return None
    if isinstance(value, bool):
        raise InputError(f"{where}: column {column!r} must be a number, found bool {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise InputError(f"{where}: column {column!r} must be a number, found text {value!r}") from None
    if isinstance(value, (np.integer, np.floating)):
        return float(value)
    raise InputError(f"{where}: column {column!r} must be a number, found {_type_name(value)}")


def passage_value(value: Any, where: str, column: str) -> Passage | None:
    """One passage from a text cell or a `{docid, title, text}` mapping (Tevatron); None when missing/empty."""
    if isinstance(value, dict):
        m = match_columns(value, PASSAGE_ROLES, f"{where}: column {column!r}", what="a passage")
        key, tkey, id_key = m["text"], m["title"], m["id"]
        if key is None:
            raise InputError(
                f"{where}: column {column!r}: a passage mapping needs one of {', '.join(PASSAGE_TEXT_KEYS)}; "
                f"found keys {', '.join(map(str, value))}"
            )
        text = text_value(value[key], where, f"{column}.{key}")
        if text is None:
            return None
        title = (text_value(value[tkey], where, f"{column}.{tkey}") or "") if tkey is not None else ""
        doc_id = id_value(value[id_key], where, f"{column}.{id_key}") if id_key else None
        return Passage(text, title, doc_id)
    text = text_value(value, where, column)
    return None if text is None else Passage(text)


def passage_list(value: Any, where: str, column: str) -> tuple[list[Passage], int]:
    """Passages from a list cell (texts or mappings) or a single text cell; returns (passages, empty count).

    A string cell is one passage (never split into characters). Raises InputError for other types.
    """
    if is_missing(value):
        return [], 0
    if isinstance(value, str) and (spelled := _spelled_list(value, where, column)) is not None:
        value = spelled  # a list column exported to CSV/TSV as its repr: read the list it spells out
    if isinstance(value, dict) and value and all(_as_list(v) is not None for v in value.values()):
        # Hugging Face Sequence({...}): a dict of lists
        cols = {k: lst for k, v in value.items() if (lst := _as_list(v)) is not None}
        n = {len(v) for v in cols.values()}
        if len(n) != 1:
            raise InputError(f"{where}: column {column!r}: nested fields have different lengths {sorted(n)}")
        value = [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]
    if isinstance(value, (str, dict)):
        p = passage_value(value, where, column)
        return ([p], 0) if p else ([], 1)
    items = _as_list(value)
    if items is None:
        raise InputError(
            f"{where}: column {column!r} must be a text or a list of texts/passages, found {_type_name(value)}"
        )
    out: list[Passage] = []
    empty = 0
    for i, item in enumerate(items):
        if isinstance(item, (list, tuple)):
            raise InputError(
                f"{where}: column {column!r} item {i} is a nested list; expected a text or passage"
            )
        p = passage_value(item, where, f"{column}[{i}]")
        if p is None:
            empty += 1
        else:
            out.append(p)
    return out, empty


def number_list(value: Any, where: str, column: str) -> list[float | None]:
    """A list of scores (FlagEmbedding `pos_scores`), each a float or None."""
    if is_missing(value):
        return []
    items = _as_list(value)
    if items is None:
        return [number_value(value, where, column)]
    return [number_value(v, where, f"{column}[{i}]") for i, v in enumerate(items)]


def _as_list(value: Any) -> list | None:
    if isinstance(value, (list, tuple)):
        return list(value)
    tolist = getattr(value, "tolist", None)  # numpy arrays from Parquet / pandas
    if callable(tolist) and not isinstance(value, (str, bytes)):
        out = tolist()
        return out if isinstance(out, list) else None
    return None


def _preview(value: Any) -> str:
    s = repr(value)
    return s if len(s) <= 60 else s[:57] + "..."
