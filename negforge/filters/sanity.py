"""Cheap checks that need no model: length ratio, letters share, language, boilerplate and refusals.

They run first in a typical stack, so the model-based filters score fewer candidates.
"""

from __future__ import annotations

import re
from typing import Any

from negforge.config import SanityFilterConfig
from negforge.filters.base import CandidateBatch, Verdict
from negforge.generators.checks import _META, _REFUSAL

_BOILERPLATE = re.compile(
    r"(lorem ipsum|all rights reserved|cookie(s)? (policy|settings)|click here|subscribe to|sign up for"
    r"|page not found|javascript (is )?(disabled|required)|terms of (use|service)|privacy policy)",
    re.I,
)


def alpha_ratio(text: str) -> float:
    """Share of letters among non-space characters (low for tables, encodings, markup)."""
    chars = [ch for ch in text if not ch.isspace()]
    return sum(ch.isalpha() for ch in chars) / len(chars) if chars else 0.0


LANGID_CHARS = 600  # a few sentences identify the language; whole abstracts only cost time


class SanityFilter:
    def __init__(self, cfg: SanityFilterConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type

    def describe(self) -> dict[str, Any]:
        return self.cfg.model_dump(exclude={"name"})

    @staticmethod
    def _language(text: str) -> str:
        import py3langid

        return py3langid.classify(text[:LANGID_CHARS])[0]

    def apply(self, batch: CandidateBatch) -> list[Verdict]:
        cfg = self.cfg
        pos_words = {
            i: sum(len(p.split()) for p in q.positives) / max(1, len(q.positives))
            for i, q in enumerate(batch.queries)
        }
        out = []
        for c in batch.candidates:
            text = c.text.strip()
            words = len(text.split())
            ratio = words / max(1.0, pos_words[c.qi])
            alpha = alpha_ratio(text)
            scores: dict[str, Any] = {"length_ratio": round(ratio, 4), "alpha_ratio": round(alpha, 4)}
            reason = None
            if words < cfg.min_words:
                reason = "too_few_words"
            elif cfg.min_length_ratio is not None and ratio < cfg.min_length_ratio:
                reason = "too_short"
            elif cfg.max_length_ratio is not None and ratio > cfg.max_length_ratio:
                reason = "too_long"
            elif cfg.min_alpha_ratio is not None and alpha < cfg.min_alpha_ratio:
                reason = "few_letters"
            elif cfg.boilerplate and c.source == "llm" and _REFUSAL.search(text):
                reason = "refusal"  # a model declining; a corpus passage may argue about someone refusing
            elif (cfg.boilerplate and c.source == "llm" and _META.search(text)) or (
                cfg.boilerplate and _BOILERPLATE.search(text)
            ):
                reason = "boilerplate"
            if reason is None and cfg.languages:
                lang = self._language(text)
                scores["language"] = lang
                if lang not in cfg.languages:
                    reason = "language"
            out.append(Verdict(reason is None, reason, scores))
        return out
