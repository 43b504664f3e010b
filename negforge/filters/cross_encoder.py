"""RocketQA-style denoising: a cross-encoder reads query and candidate together and catches unlabeled
positives that retrieval scores cannot tell apart from hard negatives.

Every (query, candidate) and (query, positive) pair of a batch goes through one `PairScorer.logits` call:
sorted by length across queries, in the precision the parity gate allows (see negforge.filters.pair_scorer).
Scale: `ce_score` is the raw logit, `ce_prob` = sigmoid(logit). The positives' scores are always recorded
(`ce_positive`, the weakest one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from negforge.config import CrossEncoderFilterConfig
from negforge.filters.base import CandidateBatch, FilterQuery, Verdict
from negforge.filters.pair_scorer import PairScorer

SCALE = "ce_score: raw logit of the model's single relevance output; ce_prob: sigmoid(ce_score)"


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """The logistic function 1 / (1 + e^-x), elementwise, in float64."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


class CrossEncoderFilter:
    """RocketQA-style cross-encoder denoising; `cache_root` keeps the precision gate's verdict (None: fp32)."""

    #: every rejection here says "scores like a positive": with on_false_negative: relabel, all may relabel
    FALSE_NEGATIVE_REASONS = frozenset(
        {"ce_above_max_prob", "ce_scores_like_positive", "ce_absolute_margin", "ce_relative_margin"}
    )

    def __init__(
        self,
        cfg: CrossEncoderFilterConfig,
        cache_root: str | Path | None = None,
        scorer: PairScorer | None = None,
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        # the driver's scorer (see negforge.precision_pin) when it has this model loaded: no second load
        self.scorer = scorer or PairScorer(
            cfg.model, max_length=cfg.max_length, device=cfg.device, batch_size=cfg.batch_size,
            backend=cfg.backend, cache_root=cache_root,
        )  # fmt: skip
        if self.scorer.num_labels != 1:
            raise ValueError(
                f"filters.{self.name}: {cfg.model} has {self.scorer.num_labels} outputs; the cross-encoder "
                "filter needs a relevance model with one (an NLI model goes in an `nli` filter)"
            )
        self.fingerprint = self.scorer.fingerprint
        self.calibrated_threshold: float | None = None
        self.calibration: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            **self.cfg.model_dump(exclude={"name"}),
            **self.scorer.describe(),
            "scale": SCALE,
            "calibration": self.calibration,
        }

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Raw logits (n,) float32 for (query, passage) pairs, batched across everything given."""
        return self.scorer.logits(pairs).reshape(-1)

    def calibrate(self, queries: list[FilterQuery], seed: int) -> None:
        """Threshold = the configured quantile of positives' scores on a seeded sample of the run's queries."""
        q = self.cfg.calibrate_quantile
        if q is None:
            return
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(queries), size=min(self.cfg.calibration_queries, len(queries)), replace=False)
        pairs = [(queries[i].text, p) for i in sorted(pick) for p in queries[i].positives]
        pos = self.score(pairs)
        self.calibrated_threshold = float(np.quantile(pos, q))
        self.calibration = {
            "quantile": q,
            "threshold_score": self.calibrated_threshold,
            "threshold_prob": float(sigmoid(self.calibrated_threshold)),
            "positives_scored": len(pairs),
            "queries": len(pick),
        }

    def apply(self, batch: CandidateBatch) -> list[Verdict]:
        cfg = self.cfg
        pos_pairs, pos_owner = [], []
        for qi, q in enumerate(batch.queries):
            for p in q.positives:
                pos_pairs.append((q.text, p))
                pos_owner.append(qi)
        cand_pairs = [(batch.queries[c.qi].text, c.text) for c in batch.candidates]
        raw = self.score(cand_pairs + pos_pairs)
        cand_raw, pos_raw = raw[: len(cand_pairs)], raw[len(cand_pairs) :]
        pos_min: dict[int, float] = {}
        for qi, s in zip(pos_owner, pos_raw, strict=True):
            pos_min[qi] = min(pos_min.get(qi, float("inf")), float(s))
        probs = sigmoid(cand_raw)
        out = []
        for c, s_raw, p_raw in zip(batch.candidates, cand_raw, probs, strict=True):
            s, prob = float(s_raw), float(p_raw)
            scores: dict[str, Any] = {"ce_score": round(s, 5), "ce_prob": round(prob, 5)}
            if c.qi in pos_min:
                scores["ce_positive"] = round(pos_min[c.qi], 5)
            reason = None
            pm = pos_min.get(c.qi)
            if cfg.max_prob is not None and prob > cfg.max_prob:
                reason = "ce_above_max_prob"
            elif self.calibrated_threshold is not None and s >= self.calibrated_threshold:
                reason = "ce_scores_like_positive"
            elif pm is not None and cfg.absolute_margin is not None and s > pm - cfg.absolute_margin:
                reason = "ce_absolute_margin"
            elif (
                pm is not None and cfg.relative_margin is not None and s > pm - abs(pm) * cfg.relative_margin
            ):
                reason = "ce_relative_margin"
            out.append(Verdict(reason is None, reason, scores))
        return out
