"""The share of a dataset's kept negatives that outscore their query's weakest positive.

A negative the run's own scorer ranks above a known positive is, more often than one below, an unlisted
positive (the reason for TopK-PercPos margins, NV-Retriever); with a margin on, the share is 0 by
construction for mined negatives of the margin's score, so a non-zero share points at given, random or
written negatives, or at a score the margin did not use.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def outscoring(rows: Iterable[Mapping], score_key: str | None) -> dict:
    """{"negatives", "outscoring", "share"} over kept negatives with a `score_key` score, against the
    weakest positive's score of their row (rows without positive scores are skipped)."""
    total = above = 0
    if score_key is not None:
        for r in rows:
            pos = [s for s in ((r.get("positive_scores") or {}).get(score_key) or []) if s is not None]
            if not pos:
                continue
            weakest = min(pos)
            for n in r.get("negatives") or []:
                s = (n.get("scores") or {}).get(score_key)
                if s is None:
                    continue
                total += 1
                above += s > weakest
    return {"score": score_key, "negatives": total, "outscoring": above,
            "share": round(above / total, 6) if total else None}  # fmt: skip
