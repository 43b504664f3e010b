"""NLI check with the positive as premise and the candidate as hypothesis.

A candidate the positive entails restates it (a likely false negative). An LLM negative written to
contradict the positive must be judged a contradiction, or it did not do what it claims. The label order
differs between NLI models, so it is read from the model's `id2label`, never assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from negforge.config import NLIFilterConfig
from negforge.filters.base import CandidateBatch, Verdict
from negforge.filters.pair_scorer import PairScorer


def label_positions(id2label: dict) -> dict[str, int]:
    """Index of entailment / contradiction / neutral in the model's output, from its label names."""
    names = {int(i): str(n).lower() for i, n in id2label.items()}
    out = {}
    for want in ("entailment", "contradiction", "neutral"):
        hit = [i for i, n in names.items() if n.startswith(want[:6])]
        if len(hit) != 1:
            raise ValueError(
                f"NLI model labels {names} do not name exactly one {want!r} output; "
                "set the model's config id2label"
            )
        out[want] = hit[0]
    return out


class NLIFilter:
    """Entailment/contradiction verdicts; `cache_root` keeps the precision gate's verdict (None: fp32)."""

    #: a candidate the positive entails restates it; a missing contradiction is no evidence of relevance
    FALSE_NEGATIVE_REASONS = frozenset({"entailed_by_positive"})

    def __init__(
        self, cfg: NLIFilterConfig, cache_root: str | Path | None = None, scorer: PairScorer | None = None
    ) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        # the driver's scorer (see negforge.precision_pin) when it has this model loaded: no second load
        self.scorer = scorer or PairScorer(
            cfg.model, max_length=cfg.max_length, device=cfg.device, batch_size=cfg.batch_size,
            backend=cfg.backend, cache_root=cache_root,
        )  # fmt: skip
        self.labels = label_positions(self.scorer.config.id2label)
        self.fingerprint = self.scorer.fingerprint

    def describe(self) -> dict[str, Any]:
        return {
            **self.cfg.model_dump(exclude={"name"}),
            **self.scorer.describe(),
            "labels": self.labels,
        }

    def probabilities(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """Softmax over the model's labels, (n, labels) float32, for (premise, hypothesis) pairs."""
        if not pairs:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        logits = self.scorer.logits(pairs).reshape(len(pairs), -1).astype(np.float64)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)

    def apply(self, batch: CandidateBatch) -> list[Verdict]:
        cfg = self.cfg
        pairs, owner = [], []
        for i, c in enumerate(batch.candidates):
            for p in batch.queries[c.qi].positives:
                pairs.append((p, c.text))
                owner.append(i)
        probs = self.probabilities(pairs)
        ent = np.zeros(len(batch.candidates))
        con = np.ones(len(batch.candidates))
        for i, row in zip(owner, probs, strict=True):
            ent[i] = max(ent[i], row[self.labels["entailment"]])
            con[i] = min(con[i], row[self.labels["contradiction"]])
        out = []
        for i, c in enumerate(batch.candidates):
            scores = {"nli_entailment": round(float(ent[i]), 5), "nli_contradiction": round(float(con[i]), 5)}
            reason = None
            if ent[i] > cfg.max_entailment:
                reason = "entailed_by_positive"
            elif c.perturbation_kind == "contradicting" and con[i] < cfg.min_contradiction:
                reason = "contradiction_not_confirmed"
            out.append(Verdict(reason is None, reason, scores))
        return out
