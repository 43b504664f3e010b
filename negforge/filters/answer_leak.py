"""Reject negatives that contain a known answer of their query (extractive QA data, key spans)."""

from __future__ import annotations

import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from negforge.config import AnswerLeakFilterConfig
from negforge.filters.base import CandidateBatch, Verdict
from negforge.filters.duplicate import normalize
from negforge.records import SkipLog
from negforge.sources.readers import InputError, iter_lines, iter_rows, refuse_utf16
from negforge.sources.values import id_value, text_value

_ID_HEADERS = ("query_id", "query-id", "qid", "_id", "id")


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
        self.patterns = {
            qid: [
                (n, re.compile(rf"(?<!\w){re.escape(n)}(?!\w)"))
                for a in ans
                if len(n := normalize(a)) >= cfg.min_chars
            ]
            for qid, ans in raw.items()
        }
        if not any(self.patterns.values()):  # an empty file, a header alone, or only too-short answers
            raise InputError(
                f"{cfg.answers}: no answer of at least {cfg.min_chars} characters (filters.{self.name}."
                "min_chars): the filter would check no negative; fix the file or remove the filter"
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
        if not unknown:
            return []
        theirs = ", ".join(repr(x) for x in unknown[:3])
        if len(unknown) == len(self.answer_ids) and not subset:
            ours = ", ".join(repr(x) for x in sorted(known)[:3])
            raise InputError(
                f"{self.cfg.answers}: none of its {len(unknown)} query ids is a query of this run (it has "
                f"{theirs}; the run's ids are like {ours}): filters.{self.name} would check no negative"
            )
        return [
            f"filters.{self.name}: {len(unknown)} of {len(self.answer_ids)} query ids in {self.cfg.answers} "
            f"are not queries of this run (e.g. {theirs}); their answers are not used"
        ]

    def describe(self) -> dict[str, Any]:
        return {**self.cfg.model_dump(exclude={"name"}), "queries_with_answers": len(self.patterns)}

    def apply(self, batch: CandidateBatch) -> list[Verdict]:
        out = []
        for c in batch.candidates:
            pats = self.patterns.get(batch.queries[c.qi].id, [])
            text = normalize(c.text) if pats else ""
            hit = next((n for n, p in pats if p.search(text)), None)
            out.append(
                Verdict(
                    hit is None, None if hit is None else "contains_answer", {"leak_span": hit} if hit else {}
                )
            )
        return out
