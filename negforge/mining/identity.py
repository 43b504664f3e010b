"""The identity rule: a candidate that is its query's positive or the query itself is never a negative.

Always on, before selection, whatever the filter stack. For each query a candidate is excluded when

- its normalised text (see `negforge.text_identity`), with or without its title, equals one of the query's
  positives' (with or without theirs): `same_text_as_positive` (a copy of the positive under another id);
- its normalised text, with or without its title, equals the query's: `same_text_as_query`;
- its document id is the query's own id: `query_document` (ArguAna/Quora-style data, where every query is
  also a corpus document; BEIR's evaluation ignores such hits with `ignore_identical_ids` for the same reason);
- it is a positive of another query with the same normalised text (SciFact has claims repeated under two
  ids): `positive_of_same_query_text`.

Corpus rows are keyed once (two 63-bit keys per row, in sorted arrays), so the rows sharing a text with a
query's positives are found by binary search, and the miners over-fetch by exactly that many.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import numpy as np

from negforge.mining.fingerprint import texts_digest
from negforge.ownership import atomic_write
from negforge.records import (
    QUERY_DOCUMENT,
    SAME_AS_POSITIVE,
    SAME_AS_QUERY,
    SAME_QUERY_POSITIVE,
    Corpus,
    Query,
    QueryIdentity,
)
from negforge.text_identity import IDENTITY_RULE_VERSION, text_key


def _compute_keys(corpus: Corpus) -> tuple[np.ndarray, np.ndarray]:
    n = len(corpus)
    full = np.fromiter((text_key(t) for t in corpus.texts), dtype=np.int64, count=n)
    body = np.array(
        [text_key(corpus.body(r)) if corpus.titles[r] else full[r] for r in range(n)], dtype=np.int64
    ).reshape(n)
    return full, body


def _corpus_keys(corpus: Corpus, cache_dir: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """(full, body): each corpus row's text key with and without its title, int64 arrays of shape (n,)."""
    if cache_dir is None:
        return _compute_keys(corpus)
    name = f"v{IDENTITY_RULE_VERSION}-{texts_digest(corpus.texts)}-{texts_digest(corpus.titles)}"
    path = cache_dir / f"{name}.npz"
    try:
        with np.load(path) as z:
            full, body = z["full"], z["body"]
        if full.shape == body.shape == (len(corpus),):
            return full, body
    except (OSError, KeyError, ValueError):  # absent, or a torn or foreign file: computed again below
        pass
    full, body = _compute_keys(corpus)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, full=full, body=body)
    atomic_write(path, buf.getvalue())
    return full, body


class IdentityIndex:
    """Text keys of every corpus row (with and without title), searchable by key.

    Memory: 4 int64 arrays of the corpus length (about 32 bytes per document).

    `cache_dir`: the keys are kept there as `.npz`, named by a digest of the texts, titles and the identity rule's
    version, so a rerun over the same corpus does not normalise it again (~0.3 ms a document).
    """

    def __init__(self, corpus: Corpus, cache_dir: Path | None = None):
        self.corpus = corpus
        self.full, self.body = _corpus_keys(corpus, cache_dir)
        n = len(corpus)
        keys = np.concatenate([self.full, self.body])
        rows = np.concatenate([np.arange(n), np.arange(n)])
        order = np.argsort(keys, kind="stable")
        self._keys, self._rows = keys[order], rows[order]

    def rows_with(self, key: int) -> list[int]:
        """Corpus rows whose text (with or without title) has this key."""
        if not key:
            return []
        lo, hi = np.searchsorted(self._keys, [key, key + 1])
        return sorted({int(r) for r in self._rows[lo:hi]})

    def for_query(
        self, q: Query, same_text_positives: set[int] | frozenset[int] = frozenset()
    ) -> QueryIdentity:
        """The rows excluded from `q`'s negatives (its positives themselves are excluded by the miners).

        `same_text_positives`: positives of every query whose normalised text equals `q`'s (see `siblings`).
        """
        pos = set(q.positive_rows)
        pkeys = {int(k) for r in pos for k in (self.full[r], self.body[r]) if k}
        qkey = text_key(q.text)
        excluded: dict[int, str] = {}
        own = self.corpus.index.get(q.id)
        if own is not None and own not in pos:
            excluded[own] = QUERY_DOCUMENT
        for k in pkeys:
            for r in self.rows_with(k):
                if r not in pos:
                    excluded.setdefault(r, SAME_AS_POSITIVE)
        for r in self.rows_with(qkey):
            if r not in pos:
                excluded.setdefault(r, SAME_AS_QUERY)
        for r in same_text_positives:
            if r not in pos:
                excluded.setdefault(r, SAME_QUERY_POSITIVE)
                pkeys.update(int(k) for k in (self.full[r], self.body[r]) if k)
        return QueryIdentity(frozenset(pkeys), qkey, excluded)

    @staticmethod
    def siblings(queries: list[Query]) -> dict[int, frozenset[int]]:
        """Normalised query text key -> positive rows of every query with that text (only texts of 2+ queries)."""
        groups: dict[int, set[int]] = {}
        count: dict[int, int] = {}
        for q in queries:
            k = text_key(q.text)
            groups.setdefault(k, set()).update(q.positive_rows)
            count[k] = count.get(k, 0) + 1
        return {k: frozenset(v) for k, v in groups.items() if count[k] > 1 and k}

    def shared_texts(self, examples: int = 5) -> dict:
        """Corpus documents that share a (normalised) text under different ids: groups, documents, examples."""
        counts = Counter(int(k) for k in self.full if k)
        groups = {k: c for k, c in counts.items() if c > 1}
        ex = []
        for k in list(groups)[:examples]:
            rows = self.rows_with(k)
            ex.append(
                {"doc_ids": [self.corpus.ids[r] for r in rows[:5]], "text": self.corpus.texts[rows[0]][:80]}
            )
        return {"groups": len(groups), "documents": sum(groups.values()), "examples": ex}
