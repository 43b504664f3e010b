"""Which sentence of a passage to edit: the one the bi-encoder finds closest to the query.

Edit negatives keep the base passage's length, style and every other sentence, and change only the span that
answers (or nearly answers) the query, so they are hard by construction (CausalNeg: break exactly one
requirement). Sentences are split with a conservative rule (end punctuation, then a space and a capital,
digit or bracket), which keeps abbreviations such as "et al." and "e.g." inside one sentence most of the time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from negforge.generators.synthesize import EditSpan

_BOUNDARY = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\[])")
_NO_SPLIT_BEFORE = re.compile(r"(\bet al|\be\.g|\bi\.e|\bvs|\bFig|\bNo|\bDr|\bSt)\.$", re.I)
MIN_WORDS = 6


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of the sentences of `text`, whitespace trimmed, in order."""
    spans = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        if _NO_SPLIT_BEFORE.search(text[start : m.start()]):
            continue
        spans.append((start, m.start()))
        start = m.end()
    spans.append((start, len(text)))
    out = []
    for a, b in spans:
        seg = text[a:b]
        lead = len(seg) - len(seg.lstrip())
        trail = len(seg) - len(seg.rstrip())
        if seg.strip():
            out.append((a + lead, b - trail))
    return out


def choose_spans(
    encode: Callable[[list[str]], np.ndarray],
    query_embs: np.ndarray,
    passages: Sequence[tuple[str | None, str] | None],
    kind: str,
    body_starts: Sequence[int] | None = None,
) -> list[EditSpan | None]:
    """For each (doc id, passage) the sentence closest to its query (cosine of normalised embeddings).

    `encode`: texts -> (n, dim) embeddings in the corpus space (`DenseMiner.encode_passages`: the corpus prompt,
    the corpus's encoder path), so sentences are compared with queries as documents are.
    `body_starts[i]`: where passage i's body begins after a joined title; sentences come from the body only,
    so an edit never changes just the title that BEIR joins to the text (the body would still answer).
    `query_embs`: (n, dim) float32, row i for passage i (None passages give None). Sentences under
    MIN_WORDS words are not chosen; a passage without one gives None. All sentences of all passages are
    encoded in one batched call. Raises ValueError when the lengths differ.
    """
    if len(passages) != len(query_embs):
        raise ValueError(f"{len(passages)} passages but {len(query_embs)} query embeddings")
    cands: list[tuple[int, int, int]] = []  # (passage index, start, end)
    for i, p in enumerate(passages):
        if p is None:
            continue
        skip = body_starts[i] if body_starts is not None else 0
        for a, b in split_sentences(p[1][skip:]):
            if len(p[1][skip + a : skip + b].split()) >= MIN_WORDS:
                cands.append((i, skip + a, skip + b))
    out: list[EditSpan | None] = [None] * len(passages)
    if not cands:
        return out
    emb = np.asarray(encode([passages[i][1][a:b] for i, a, b in cands]), dtype=np.float32)  # type: ignore[index]
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    q = np.asarray(query_embs, dtype=np.float32)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    best: dict[int, tuple[float, int]] = {}
    for j, (i, _, _) in enumerate(cands):
        s = float(emb[j] @ q[i])
        if i not in best or s > best[i][0]:
            best[i] = (s, j)
    for i, (_, j) in best.items():
        _, a, b = cands[j]
        doc_id, text = passages[i]  # type: ignore[misc]
        out[i] = EditSpan(doc_id, text, a, b, kind)
    return out
