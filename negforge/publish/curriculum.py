"""Difficulty buckets for curriculum training: cut one score at run-wide quantiles, easy to hard."""

from __future__ import annotations

from collections import Counter

import numpy as np

from negforge.config import CurriculumConfig

FILTER_SCORES = ("ce_prob", "ce_score", "sim_positive")


def difficulty_score(neg: dict, key: str) -> float | None:
    """A negative's score under `key` (retrieval scores or filter scores): higher means harder."""
    src = neg.get("filter_scores") if key in FILTER_SCORES else neg.get("scores")
    v = (src or {}).get(key)
    return None if v is None else float(v)


def assign_buckets(rows: list[dict], cfg: CurriculumConfig) -> dict:
    """Set `difficulty` on every negative in place; returns the cuts and counts for the manifest.

    Negatives without the score (e.g. an LLM negative when scoring by bm25) get no bucket and are counted.
    """
    vals = [v for r in rows for n in r["negatives"] if (v := difficulty_score(n, cfg.score)) is not None]
    k = len(cfg.buckets)
    cuts = [float(x) for x in np.quantile(vals, [i / k for i in range(1, k)])] if vals else []
    counts: Counter = Counter()
    for r in rows:
        for n in r["negatives"]:
            v = difficulty_score(n, cfg.score)
            if v is None:
                n["difficulty"] = None
                counts["unscored"] += 1
                continue
            n["difficulty"] = cfg.buckets[int(np.searchsorted(cuts, v, side="right"))]
            counts[n["difficulty"]] += 1
    return {"score": cfg.score, "buckets": cfg.buckets, "cuts": cuts, "counts": dict(counts)}


def rows_in_bucket(rows: list[dict], bucket: str) -> list[dict]:
    """The rows with only the negatives of one bucket (rows left without any are dropped)."""
    out = []
    for r in rows:
        negs = [n for n in r["negatives"] if n.get("difficulty") == bucket]
        if negs:
            out.append({**r, "negatives": negs})
    return out
