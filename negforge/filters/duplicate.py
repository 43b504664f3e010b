"""Exact and near duplicates among a query's candidates, against its positives, and across sources.

Exact: a hash of the normalised text (`norm_text`: HTML, Unicode form, case, quotes, spacing; operators,
punctuation and combining marks kept). Near:
rapidfuzz ratio over each query's candidates (a few dozen per query, so all pairs is cheap and exact, where
MinHash would only estimate). The first copy in batch order stays (mined before LLM, better ranked first) and
inherits the others' sources.
"""

from __future__ import annotations

import hashlib
from typing import Any

from rapidfuzz import fuzz

from negforge.config import DuplicateFilterConfig
from negforge.filters.base import CandidateBatch, Verdict
from negforge.text_identity import norm_text


def normalize(text: str) -> str:
    """The identity rule's normalisation (`negforge.text_identity.norm_text`: HTML entities and tags, NFKC,
    case, quotes, spacing; never operators or combining marks), so "the same text" means one thing in every
    filter."""
    return norm_text(text)


def text_hash(text: str) -> str:
    return hashlib.sha1(normalize(text).encode()).hexdigest()


class DuplicateFilter:
    def __init__(self, cfg: DuplicateFilterConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type

    def describe(self) -> dict[str, Any]:
        return self.cfg.model_dump(exclude={"name"})

    def _near(self, a: str, b: str) -> float:
        return fuzz.ratio(a, b, score_cutoff=self.cfg.near_threshold or 0)

    def apply(self, batch: CandidateBatch) -> list[Verdict]:
        cfg = self.cfg
        out: list[Verdict] = [Verdict(True) for _ in batch.candidates]
        for qi, idx in batch.by_query().items():
            q = batch.queries[qi]
            pos_norm = [normalize(p) for p in q.positives]
            pos_hash = {hashlib.sha1(p.encode()).hexdigest() for p in pos_norm}
            seen_hash: dict[str, int] = {}
            kept: list[tuple[int, str]] = []  # (batch index, normalised text)
            for i in idx:
                c = batch.candidates[i]
                norm = normalize(c.text)
                h = hashlib.sha1(norm.encode()).hexdigest()
                if cfg.against_positives and h in pos_hash:
                    out[i] = Verdict(False, "copy_of_positive", {"duplicate_of": "positive"})
                    continue
                if h in seen_hash:
                    j = seen_hash[h]
                    out[i] = Verdict(
                        False, "exact_duplicate", {"duplicate_of": batch.candidates[j].key}, duplicate_of=j
                    )
                    continue
                if cfg.near_threshold is not None:
                    if cfg.against_positives:
                        best = max((self._near(norm, p) for p in pos_norm), default=0.0)
                        if best >= cfg.near_threshold:
                            out[i] = Verdict(
                                False,
                                "near_copy_of_positive",
                                {"duplicate_of": "positive", "dup_ratio": best},
                            )
                            continue
                    hit = next(
                        ((j, r) for j, t in kept if (r := self._near(norm, t)) >= cfg.near_threshold), None
                    )
                    if hit is not None:
                        j, r = hit
                        out[i] = Verdict(
                            False,
                            "near_duplicate",
                            {"duplicate_of": batch.candidates[j].key, "dup_ratio": r},
                            duplicate_of=j,
                        )
                        continue
                seen_hash[h] = i
                kept.append((i, norm))
        return out
