"""Known column names found in a header or a row's keys: one rule for every reader.

A column plays a role (a corpus document's id, title or text; a query's id; a qrels grade; a pair's query,
positive, ...) when its name, stripped of surrounding whitespace (and a stray byte-order mark) and case-folded,
is one of the role's names: `Title`, `TEXT`, ` _ID ` are `title`, `text`, `_id`. A role's names are tried in
order, so a file with both `_id` and `id` reads `_id` (and `id` is reported unread). Two columns that are the
same known name up to case or whitespace (`title` and `Title`) are refused with an InputError naming both:
negforge never guesses which one the user meant. Columns no role took are returned as `unread`, for the
reader to name to the user (`SkipLog.unread`, shown beside the skips, or the layout notes), never dropped
silently; BEIR's `metadata` is the one column known not to be read (`KNOWN_UNREAD`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from negforge.records import SkipLog
from negforge.sources.errors import InputError


def canonical(name: str) -> str:
    """A column name as matched: a leading BOM and surrounding whitespace dropped, case-folded."""
    return str(name).strip().removeprefix("\ufeff").strip().casefold()


@dataclass(frozen=True)
class ColumnMatch:
    """Which found column plays each role (its name as found, None when absent), and the columns left unread
    (in the order found)."""

    roles: dict[str, str | None]
    unread: tuple[str, ...]

    def __getitem__(self, role: str) -> str | None:
        return self.roles[role]


def match_columns(
    found: Iterable[str],
    roles: Mapping[str, Sequence[str]],
    where: str,
    *,
    what: str = "a column",
    one_per_role: bool = False,
) -> ColumnMatch:
    """Map `found` column names to `roles` (role -> accepted names, lower case, in priority order).

    `where` (a file, `file:line` or dataset row) and `what` ("a corpus", ...) go into the error. Raises
    InputError naming the columns when two of them are one role's name up to case or whitespace, and, with
    `one_per_role`, when two different names of one role are both present (a qrels file with `label` and
    `score`: which one grades relevance is the user's call, never the priority order's).
    """
    found = list(found)
    by_name: dict[str, list[str]] = {}
    for c in found:
        by_name.setdefault(canonical(c), []).append(c)
    out: dict[str, str | None] = {}
    for role, names in roles.items():
        out[role] = None
        for n in names:
            hits = by_name.get(n)
            if not hits:
                continue
            if len(hits) > 1:
                raise InputError(
                    f"{where}: columns {', '.join(map(repr, hits))} are all {n!r} (names are matched "
                    f"ignoring case and surrounding spaces): {what} must have one {role} column; "
                    "rename or drop the others"
                )
            if out[role] is None:
                out[role] = hits[0]
                if not one_per_role:
                    break
                continue
            raise InputError(
                f"{where}: columns {out[role]!r} and {hits[0]!r} could both be {what}'s {role} column; "
                "keep one (rename or drop the other)"
            )
    taken = {c for c in out.values() if c is not None}
    return ColumnMatch(out, tuple(c for c in found if c not in taken))


def find_column(found: Iterable[str], name: str, where: str) -> str | None:
    """The found column whose name is `name` up to case and surrounding spaces (an exact match wins);
    None when none is. Raises InputError naming `where` when several are and none matches exactly."""
    found = list(found)
    if name in found:
        return name
    return match_columns(found, {name: (canonical(name),)}, where)[name]


#: columns of the standard formats that negforge knowingly does not read: BEIR's per-document `metadata`
#: (urls, dates), not text a retriever is trained on; named in the README, not reported on every BEIR run
KNOWN_UNREAD = frozenset({"metadata"})


def note_unread(skips: SkipLog, noted: set[str], match: ColumnMatch, where: str, reads: str) -> None:
    """Name each column of `match.unread` not in `noted` yet (one note per column and input, at `where`) in
    `skips.unread` (the manifest's `unread_columns`; no row is lost, so it is not a skip). `reads` says
    what the reader does read ("an id (_id, id, ...), title, text"). `KNOWN_UNREAD` columns are not named."""
    for c in match.unread:
        if c not in noted and canonical(c) not in KNOWN_UNREAD:
            noted.add(c)
            skips.add_unread(where, f"column {c!r} is not read: it reads {reads} (any case)")
