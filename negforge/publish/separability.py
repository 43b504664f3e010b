"""The adversarial gap: can a simple probe tell written negatives from real corpus passages?

SyNeg's known risk is a retriever that learns to spot generated text instead of reading it. For each written
source (`rules`, `llm`) the kept negatives are compared with corpus passages of the same kind, each with its
query's positive (a document that answers a query, so topic and selection do not separate the two groups): a
logistic regression on their embeddings (the run's encoder, corpus prompt), 5-fold cross-validated with a
negative and its positive in one fold (else the probe scores near-copies, AUC far below 0.5), reports ROC AUC.
0.5 means the probe cannot tell them apart (an edit that changes one span should be near it); 1.0 means a
trainer could learn "written" as a shortcut. Beside it: mean length ratio (words) and the share of the written
passages' words that no compared positive uses (vocabulary drift).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

WRITTEN_SOURCES = ("rules", "llm")
MAX_PER_SOURCE = 400  # passages per side: the probe's figure is stable well before this, encoding is the cost
MIN_PER_SOURCE = 10


def probe_auc(written: np.ndarray, real: np.ndarray, seed: int, groups: np.ndarray | None = None) -> float:
    """Cross-validated ROC AUC of a logistic regression telling `written` (n, dim) from `real` (m, dim) rows.

    `groups` (n + m,): rows of one group stay in one fold (a written negative with the positive it was edited
    from), so the probe cannot score by recognising a near-copy of a training row of the other class.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, StratifiedKFold, cross_val_predict

    x = np.concatenate([written, real]).astype(np.float64)
    y = np.concatenate([np.ones(len(written)), np.zeros(len(real))])
    if groups is None:
        folds = StratifiedKFold(n_splits=min(5, len(written), len(real)), shuffle=True, random_state=seed)
        splits = list(folds.split(x, y))
    else:
        splits = list(GroupKFold(n_splits=min(5, len(set(groups.tolist())))).split(x, y, groups))
    p = cross_val_predict(LogisticRegression(max_iter=2000), x, y, cv=splits, method="predict_proba")[:, 1]
    return float(roc_auc_score(y, p))


def written_separability(
    rows: list[dict], encode, corpus_emb: Callable[[list[str]], np.ndarray], seed: int
) -> dict[str, Any]:
    """Per written source: {"n", "auc", "length_ratio", "new_word_share"} (module doc), or a note why not.

    `rows`: the run's `rich` rows; `encode`: texts -> (n, dim) embeddings in the corpus space
    (`DenseMiner.encode_passages`); `corpus_emb`: doc ids -> their cached corpus embeddings. Each written
    negative is paired with its query's first positive (the real passage), and pairs stay in one fold.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    for src in WRITTEN_SOURCES:
        pairs = list(
            dict.fromkeys(
                (n["text"], r["positive_ids"][0], r["positives"][0], r["query_id"])
                for r in rows
                if r["positive_ids"]
                for n in r["negatives"]
                if n["source"] == src
            )
        )
        if not pairs:
            continue
        if len({p[3] for p in pairs}) < MIN_PER_SOURCE:
            out[src] = {
                "n": len(pairs),
                "auc": None,
                "note": f"fewer than {MIN_PER_SOURCE} queries to compare",
            }
            continue
        pairs = [
            pairs[i] for i in sorted(rng.choice(len(pairs), min(len(pairs), MAX_PER_SOURCE), replace=False))
        ]
        w = [p[0] for p in pairs]
        c = [p[2] for p in pairs]
        emb_w = np.asarray(encode(w), np.float32)
        emb_c = np.asarray(corpus_emb([p[1] for p in pairs]), np.float32)
        qid = {q: i for i, q in enumerate(dict.fromkeys(p[3] for p in pairs))}
        groups = np.array([qid[p[3]] for p in pairs] * 2)
        vocab = {t for x in c for t in x.lower().split()}
        words = [t for x in w for t in x.lower().split()]
        out[src] = {
            "n": len(pairs),
            "auc": round(probe_auc(emb_w, emb_c, seed, groups), 4),
            "length_ratio": round(
                float(np.mean([len(x.split()) for x in w]) / np.mean([len(x.split()) for x in c])), 3
            ),
            "new_word_share": round(sum(t not in vocab for t in words) / max(len(words), 1), 4),
        }
    return out
