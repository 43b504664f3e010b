"""Reject negatives that contain a known answer of their query (extractive QA data, key spans)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from negforge.config import AnswerLeakFilterConfig
from negforge.filters.base import CandidateBatch, Verdict
from negforge.filters.duplicate import normalize
from negforge.sources.readers import InputError


def read_answers(path: str | Path) -> dict[str, list[str]]:
    """query_id → answers, from JSONL ({"query_id", "answers"}) or TSV (query_id<TAB>answer per line)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: answers file not found (filters answer_leak.answers)")
    out: dict[str, list[str]] = {}
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        if p.suffix == ".jsonl":
            try:
                rec = json.loads(line)
                qid, answers = str(rec["query_id"]), rec["answers"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise InputError(f'{p}:{n}: expected {{"query_id", "answers"}} ({e})') from None
            if isinstance(answers, str):
                answers = [answers]
        else:
            qid, _, ans = line.partition("\t")
            if not ans:
                raise InputError(f"{p}:{n}: expected query_id<TAB>answer")
            answers = [ans]
        out.setdefault(qid, []).extend(str(a) for a in answers)
    return out


class AnswerLeakFilter:
    def __init__(self, cfg: AnswerLeakFilterConfig, answers: dict[str, list[str]] | None = None) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        raw = answers if answers is not None else read_answers(cfg.answers)
        self.patterns = {
            qid: [
                (n, re.compile(rf"(?<!\w){re.escape(n)}(?!\w)"))
                for a in ans
                if len(n := normalize(a)) >= cfg.min_chars
            ]
            for qid, ans in raw.items()
        }

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
