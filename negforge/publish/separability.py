"""The adversarial gap: can a simple probe tell written negatives from real corpus passages?

SyNeg's known risk is a retriever that learns to spot generated text instead of reading it. For each written
source (`rules`, `llm`) the kept negatives are compared with corpus passages of the same kind, the run's
positives (documents that answer queries, so topic and selection do not separate the two groups): a logistic
regression on their embeddings (the run's encoder, corpus prompt), 5-fold cross-validated, reports its ROC AUC.
0.5 means the probe cannot tell them apart (an edit that changes one span should be near it); 1.0 means a
trainer could learn "written" as a shortcut. Beside it: mean length ratio (words) and the share of the written
passages' words that no compared positive uses (vocabulary drift).
"""

from __future__ import annotations

from typing import Any

import numpy as np

WRITTEN_SOURCES = ("rules", "llm")
MAX_PER_SOURCE = 400  # passages per side: the probe's figure is stable well before this, encoding is the cost
MIN_PER_SOURCE = 10


def probe_auc(written: np.ndarray, real: np.ndarray, seed: int) -> float:
    """Cross-validated ROC AUC of a logistic regression telling `written` (n, dim) from `real` (m, dim) rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    x = np.concatenate([written, real]).astype(np.float64)
    y = np.concatenate([np.ones(len(written)), np.zeros(len(real))])
    folds = StratifiedKFold(n_splits=min(5, len(written), len(real)), shuffle=True, random_state=seed)
    p = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def written_separability(
    rows: list[dict], encode, positive_texts: list[str], positive_emb: np.ndarray, seed: int
) -> dict[str, Any]:
    """Per written source: {"n", "auc", "length_ratio", "new_word_share"} (module doc), or a note why not.

    `rows`: the run's `rich` rows; `encode`: texts -> (n, dim) embeddings in the corpus space
    (`DenseMiner.encode_passages`); `positive_texts` (m) and `positive_emb` (m, dim): the run's distinct
    positives, the real passages compared, with their cached corpus embeddings.
    """
    rng = np.random.default_rng(seed)
    real = positive_texts
    out: dict[str, Any] = {}
    for src in WRITTEN_SOURCES:
        texts = list(dict.fromkeys(n["text"] for r in rows for n in r["negatives"] if n["source"] == src))
        if not texts:
            continue
        if len(texts) < MIN_PER_SOURCE or len(real) < MIN_PER_SOURCE:
            out[src] = {
                "n": len(texts),
                "auc": None,
                "note": f"fewer than {MIN_PER_SOURCE} passages to compare",
            }
            continue
        k = min(len(texts), len(real), MAX_PER_SOURCE)
        w = [texts[i] for i in sorted(rng.choice(len(texts), k, replace=False))]
        pick = sorted(rng.choice(len(real), k, replace=False))
        c = [real[i] for i in pick]
        emb = np.concatenate([np.asarray(encode(w), np.float32), np.asarray(positive_emb[pick], np.float32)])
        vocab = {t for x in c for t in x.lower().split()}
        words = [t for x in w for t in x.lower().split()]
        out[src] = {
            "n": k,
            "auc": round(probe_auc(emb[:k], emb[k:], seed), 4),
            "length_ratio": round(
                float(np.mean([len(x.split()) for x in w]) / np.mean([len(x.split()) for x in c])), 3
            ),
            "new_word_share": round(sum(t not in vocab for t in words) / max(len(words), 1), 4),
        }
    return out
