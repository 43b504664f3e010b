r"""Reject negatives that contain a known answer of their query (extractive QA data, key spans).

An answer is matched as the user wrote it, normalised exactly like the passage (`negforge.text_identity.
norm_span`: case, Unicode form, HTML, quotes and dashes, whitespace; operators, signs, in-token punctuation and
combining marks kept), at token boundaries: `C++` is found in "written in C++." but not as `C` in "C#", `-40`
in "at -40 degrees" but not in "B-40", `.NET` in "the .NET runtime" but not in "ASP.NET", and `दिन` (day) never
in `दान` (donation). A word character here is any letter, digit or combining mark of any script (the
`regex` module's Unicode `\w`), so a Devanagari or Arabic answer ends where its word ends. In scripts written
without spaces between words (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) a character of such a script
is a boundary on its own: `北京` is found in `我去北京了`.

An answer the filter cannot use (empty once normalised, shorter than `min_chars`, or a stop word such as "the"
or "yes" that would reject nearly every passage) is counted and named in the manifest, never silently dropped.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Collection
from pathlib import Path
from typing import Any

import regex

from negforge.config import AnswerLeakFilterConfig
from negforge.filters.base import CandidateBatch, Verdict
from negforge.records import SkipLog
from negforge.sources.readers import InputError, iter_lines, iter_rows, refuse_utf16
from negforge.sources.values import id_value, text_value
from negforge.text_identity import norm_span

_ID_HEADERS = ("query_id", "query-id", "qid", "_id", "id")
# scripts written without spaces between words: one of their characters is a token boundary by itself
_NOSPACE = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
_LEFT = rf"(?:(?<!\w)|(?<=[{_NOSPACE}]))"
_RIGHT = rf"(?:(?!\w)|(?=[{_NOSPACE}]))"
# answers that would match nearly every passage: an answer of only these words is reported, not used
_TOO_COMMON = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "had",
        "has",
        "have",
        "he",
        "her",
        "his",
        "i",
        "if",
        "in",
        "is",
        "it",
        "its",
        "no",
        "not",
        "of",
        "on",
        "or",
        "she",
        "so",
        "that",
        "the",
        "their",
        "them",
        "there",
        "they",
        "this",
        "to",
        "true",
        "false",
        "was",
        "we",
        "were",
        "which",
        "who",
        "will",
        "with",
        "yes",
        "you",
    ]
)


def answer_width(answer: str) -> int:
    """The length `min_chars` is compared with: characters, a wide (CJK) character counting two, so a
    two-character Chinese name passes the default of 3 like a three-letter English word."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in answer)


def answer_pattern(answer: str) -> regex.Pattern[str]:
    """The search pattern of one normalised answer: the answer's text at token boundaries (module doc)."""
    left = "" if regex.match(rf"[{_NOSPACE}]", answer) else _LEFT
    right = "" if regex.search(rf"[{_NOSPACE}]$", answer) else _RIGHT
    return regex.compile(left + regex.escape(answer) + right)


def unusable_reason(answer: str, min_chars: int) -> str | None:
    """Why a normalised answer cannot be matched usefully ("empty", "shorter_than_min_chars",
    "too_common"), or None when it can."""
    if not answer:
        return "empty"
    if answer_width(answer) < min_chars:
        return "shorter_than_min_chars"
    if all(w in _TOO_COMMON for w in answer.split()):
        return "too_common"
    return None


def read_answers(path: str | Path) -> dict[str, list[str]]:
    """query_id → answers, from JSONL ({"query_id", "answers"}) or TSV (query_id<TAB>answer per line).

    Read like every input file: a UTF-8 byte-order mark and CRLF line ends are dropped, UTF-16 is refused by
    name, a TSV header line (`query_id<TAB>answer`) is skipped, ids are read as ids (`7`, `7.0` and `"7"` are
    query 7; spaces stripped) and answers as texts (a number is its digits; a missing value, JSON `null` or a
    NaN, is no answer; the text "None" or "NA" is an answer). A line that cannot be read, a nested list or a mapping is an InputError naming
    file:line: an answer file read wrongly would silently let a negative containing the answer through.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: answers file not found (filters answer_leak.answers)")
    refuse_utf16(p)
    skips = SkipLog()
    out: dict[str, list[str]] = {}
    if p.name.lower().removesuffix(".gz").endswith((".jsonl", ".ndjson", ".json")):
        for where, rec in iter_rows(p, skips, what="answers file"):
            if "query_id" not in rec or "answers" not in rec:
                raise InputError(f'{where}: expected {{"query_id", "answers"}}; found keys {", ".join(rec)}')
            qid = id_value(rec["query_id"], where, "query_id")
            if qid is None:
                raise InputError(f"{where}: no query_id")
            raw = rec["answers"]
            items = raw if isinstance(raw, list) else [raw]
            answers = [a for i, v in enumerate(items) if (a := _answer(v, where, f"answers[{i}]"))]
            out.setdefault(qid, []).extend(answers)
    else:
        for n, (where, line) in enumerate(iter_lines(p, skips), 1):
            qid_raw, _, ans = line.partition("\t")
            if (
                n == 1
                and qid_raw.strip().lower() in _ID_HEADERS
                and ans.strip().lower() in ("answer", "answers")
            ):
                continue
            qid = id_value(qid_raw, where, "query_id")
            if qid is None or not ans.strip():
                raise InputError(f"{where}: expected query_id<TAB>answer")
            answer = _answer(ans, where, "answer")
            if answer:
                out.setdefault(qid, []).append(answer)
    if skips.items:
        first = skips.items[0]
        raise InputError(f"{first.where}: {first.detail or first.reason} (answers file)")
    return out


def _answer(value: object, where: str, column: str) -> str | None:
    """One answer as text: a text, or an integer (a year, a count) as its digits; None when missing."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return text_value(value, where, column, spellings=False)  # "None", "NA" are answers


class AnswerLeakFilter:
    def __init__(self, cfg: AnswerLeakFilterConfig, answers: dict[str, list[str]] | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        raw = answers if answers is not None else read_answers(cfg.answers)
        self.answer_ids = set(raw)
        self.patterns: dict[str, list[tuple[str, regex.Pattern[str]]]] = {}
        #: reason -> (query_id, answer as written) for every answer the filter cannot use
        self.unusable: dict[str, list[tuple[str, str]]] = {}
        for qid, ans in raw.items():
            pats = self.patterns.setdefault(qid, [])
            for a in ans:
                n = norm_span(a)
                why = unusable_reason(n, cfg.min_chars)
                if why:
                    self.unusable.setdefault(why, []).append((qid, a))
                elif all(n != have for have, _ in pats):
                    pats.append((n, answer_pattern(n)))
        if not any(self.patterns.values()):  # an empty file, a header alone, or only unusable answers
            raise InputError(
                f"{cfg.answers}: no usable answer ({self._unusable_summary() or 'the file has none'}; "
                f"filters.{self.name}.min_chars is {cfg.min_chars}): the filter would check no negative; "
                "fix the file or remove the filter"
            )

    def _unusable_summary(self) -> str:
        return "; ".join(
            f"{len(v)} {why.replace('_', ' ')} (e.g. {', '.join(repr(a) for _, a in v[:3])})"
            for why, v in sorted(self.unusable.items())
        )

    def check_queries(self, query_ids: Collection[str], subset: bool = False) -> list[str]:
        """Match the answers file's query ids against the run's; returns notes for the manifest.

        Answers keyed by ids the run does not have are never used, and the filter then checks nothing for
        the queries the user meant (ids written `1` against a run's `q01`): a silent no-op. Raises InputError
        naming the file when none of its ids is a query of the run (unless `subset`: the run reads only some
        of its queries, `data.max_queries`); returns a note with the count and examples when some are not.
        """
        known = set(query_ids)
        unknown = sorted(self.answer_ids - known)
        notes = []
        if self.unusable:
            notes.append(
                f"filters.{self.name}: answers in {self.cfg.answers} that cannot be matched and are not "
                f"used: {self._unusable_summary()}"
            )
        if not unknown:
            return notes
        theirs = ", ".join(repr(x) for x in unknown[:3])
        if len(unknown) == len(self.answer_ids) and not subset:
            ours = ", ".join(repr(x) for x in sorted(known)[:3])
            raise InputError(
                f"{self.cfg.answers}: none of its {len(unknown)} query ids is a query of this run (it has "
                f"{theirs}; the run's ids are like {ours}): filters.{self.name} would check no negative"
            )
        return [
            *notes,
            f"filters.{self.name}: {len(unknown)} of {len(self.answer_ids)} query ids in {self.cfg.answers} "
            f"are not queries of this run (e.g. {theirs}); their answers are not used",
        ]

    def describe(self) -> dict[str, Any]:
        return {
            **self.cfg.model_dump(exclude={"name"}),
            "queries_with_answers": sum(1 for p in self.patterns.values() if p),
            "unusable_answers": {
                why: {"count": len(v), "examples": [{"query_id": q, "answer": a} for q, a in v[:3]]}
                for why, v in sorted(self.unusable.items())
            },
        }

    def apply(self, batch: CandidateBatch) -> list[Verdict]:
        out = []
        for c in batch.candidates:
            pats = self.patterns.get(batch.queries[c.qi].id, [])
            text = norm_span(c.text) if pats else ""
            hit = next((n for n, p in pats if p.search(text)), None)
            out.append(
                Verdict(
                    hit is None, None if hit is None else "contains_answer", {"leak_span": hit} if hit else {}
                )
            )
        return out
