"""NLI check with the positive as premise and the candidate as hypothesis.

A candidate the positive entails restates it (a likely false negative). An LLM negative written to
contradict the positive must be judged a contradiction, or it did not do what it claims. The label order
differs between NLI models, so it is read from the model's `id2label`, never assumed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from negforge.config import NLIFilterConfig
from negforge.filters.base import CandidateBatch, Verdict
from negforge.filters.cross_encoder import load_cross_encoder
from negforge.mining.fingerprint import model_fingerprint


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
    def __init__(self, cfg: NLIFilterConfig) -> None:
        self.cfg = cfg
        self.name = cfg.name or cfg.type
        self.model, path = load_cross_encoder(cfg.model, None, cfg.max_length, cfg.device)
        self.labels = label_positions(self.model.config.id2label)
        self.fingerprint = model_fingerprint(path)

    def describe(self) -> dict[str, Any]:
        return {
            **self.cfg.model_dump(exclude={"name"}),
            "model_fingerprint": self.fingerprint,
            "labels": self.labels,
        }

    def probabilities(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.asarray(
            self.model.predict(
                pairs,
                batch_size=self.cfg.batch_size,
                apply_softmax=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )

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
            elif c.meta.get("perturbation_kind") == "contradicting" and con[i] < cfg.min_contradiction:
                reason = "contradiction_not_confirmed"
            out.append(Verdict(reason is None, reason, scores))
        return out
