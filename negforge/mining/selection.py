"""From a ranked candidate pool to the chosen negatives: rank window, positive-aware margins, sampling.

Margins follow NV-Retriever's TopK-PercPos, written so it stays right for negative scores
(threshold = pos - |pos| * r), and the weakest positive bounds when a query has several.
"""

from __future__ import annotations

import math

import numpy as np

from negforge.config import SelectionConfig


def margin_reason(score: float, pos_min: float, cfg: SelectionConfig) -> str | None:
    """Why a candidate with this selection score is not a safe negative, or None when it is. Raises
    RuntimeError on `relative_margin: auto` (the run resolves it before selecting: negforge.calibration)."""
    relative = cfg.margin()
    if cfg.max_score is not None and score > cfg.max_score:
        return "above_max_score"
    if cfg.min_score is not None and score < cfg.min_score:
        return "below_min_score"
    if math.isfinite(pos_min):
        if cfg.absolute_margin is not None and score > pos_min - cfg.absolute_margin:
            return "absolute_margin"
        if relative is not None and score > pos_min - abs(pos_min) * relative:
            return "relative_margin"
    return None


def candidate_margin_reason(
    scores: dict[str, float], pos_scores: dict[str, list[float]], score_by: str, cfg: SelectionConfig
) -> str | None:
    """Margins on the selection score, and with hybrid selection also on the dense score alone: a candidate
    that the dense model scores at or above (1 - r) of the weakest positive is dropped even when BM25 pulls
    its hybrid score down (`relative_margin_dense` / `absolute_margin_dense`)."""
    pos = pos_scores.get(score_by) or []
    reason = margin_reason(scores[score_by], min(pos) if pos else float("nan"), cfg)
    if reason or score_by != "hybrid" or "dense" not in scores or not pos_scores.get("dense"):
        return reason
    weakest = min(pos_scores["dense"])
    s = scores["dense"]
    if cfg.absolute_margin is not None and s > weakest - cfg.absolute_margin:
        return "absolute_margin_dense"
    relative = cfg.margin()
    if relative is not None and s > weakest - abs(weakest) * relative:
        return "relative_margin_dense"
    return None


GAP_TOP = 20  # the per-query gap is looked for among the first GAP_TOP scores of the window
GAP_FACTOR = 3.0  # ... and must be at least GAP_FACTOR times the median drop there to count


def gap_cut(scores: list[float]) -> float | None:
    """The per-query gap threshold (`selection.gap_cut`): the score just above the largest drop among the
    first GAP_TOP of `scores` sorted best first, when that drop is at least GAP_FACTOR times their median
    drop (a cluster of near-positives on top of the window); candidates scoring at or above it are dropped
    (reason `gap_cut`). None when there is no such gap (fewer than 3 scores, or even steps).

    negforge's own knee rule on the sorted scores, not a published method: it is measured against the margins
    on hidden positives (`negforge calibrate`; benchmarks/results/frontier_scifact.txt)."""
    top = sorted(scores, reverse=True)[:GAP_TOP]
    if len(top) < 3:
        return None
    drops = -np.diff(top)
    i = int(np.argmax(drops))
    med = float(np.median(drops))
    if drops[i] <= 0 or drops[i] < GAP_FACTOR * max(med, 1e-9):
        return None
    return float(top[i])


def simans_weights(scores: np.ndarray, pos_score: float, a: float, b: float) -> np.ndarray:
    """SimANS: p ∝ exp(-a (s(q,d) - s(q,d+) - b)^2), favouring the ambiguous zone around the positive."""
    logits = -a * (scores - pos_score - b) ** 2
    w = np.exp(logits - logits.max())
    return w / w.sum()


def sample(
    scores: np.ndarray, k: int, cfg: SelectionConfig, pos_score: float, rng: np.random.Generator
) -> np.ndarray:
    """Positions (into `scores`, which is ranked best first) of the chosen candidates, in rank order."""
    n = len(scores)
    if n <= k:
        return np.arange(n)
    if cfg.sampling == "top":
        return np.arange(k)
    if cfg.sampling == "uniform" or not math.isfinite(pos_score):
        picked = rng.choice(n, size=k, replace=False)
    else:
        p = simans_weights(scores.astype(np.float64), pos_score, cfg.simans.a, cfg.simans.b)
        nonzero = int((p > 0).sum())
        if nonzero < k:  # kernel underflowed for far candidates: fill from the nearest remaining ones
            picked = np.concatenate([np.flatnonzero(p > 0), np.argsort(-p, kind="stable")[nonzero:k]])
        else:
            picked = rng.choice(n, size=k, replace=False, p=p)
    return np.sort(picked)


def margin_advice(
    funnel: dict[str, int], short_queries: int, queries: int, sel: SelectionConfig
) -> str | None:
    """A run note when the positive-aware margins starve the run, else None.

    `funnel`: the run's summed funnel counts (`window` = candidates in the rank window that passed the
    margins; keys with "margin" = those the margins dropped). Fires when at least 20% of `queries` got fewer
    negatives than asked *and* the margins dropped at least half of the window: most candidates outscore a
    known positive, as on NFCorpus (about 40 relevant documents per query, few of them listed), where SciFact's
    depth-100 recipe left 432 of 500 queries short (benchmarks/quality.py). The margin is right to drop them
    (likely false negatives); the remedy is reaching below them, not loosening it.
    """
    dropped = sum(v for k, v in funnel.items() if "margin" in k)
    seen = dropped + funnel.get("window", 0)
    if not queries or not seen or short_queries < 0.2 * queries or dropped < 0.5 * seen:
        return None
    return (
        f"{short_queries} of {queries} queries got fewer negatives than asked, and the positive-aware margins "
        f"dropped {dropped} of the {seen} candidates in the rank window ({100 * dropped / seen:.0f}%): most "
        "candidates outscore a known positive (unlisted relevant documents, or weak positives). They are "
        f"likely false negatives, so keep the margin and reach below them: a deeper selection.depth (now "
        f"{sel.depth}), or train on the triplet config, which keeps short queries"
    )
