"""Length-bucketed batching for the encoders: each text pads to its own bucket, never to a neighbour's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def padded_length(n, bucket: int):
    """Token count `n` (an int or an int array) rounded up to a multiple of `bucket` (>= 1): the length a text
    is padded to in `length_batches`."""
    return -(-n // bucket) * bucket


def length_batches(lengths: Sequence[int] | np.ndarray, batch_size: int, bucket: int = 1) -> list[np.ndarray]:
    """Batches of text positions in which every text pads to the same length, longest first.

    A text's padded length is its token count rounded up to a multiple of `bucket` (1: its exact count, no
    padding at all). Every text of a batch is padded to that one length, never to a neighbour's, so a
    text's embedding is a function of the text alone and never depends on which texts share its shard, its
    batch or the run (faiss#1808 is the same fault in search); measured on CPU in fp32, a text padded to a
    fixed length gets bit for bit the same embedding alone, in a batch of 7 or of 32. Wider buckets make
    fuller batches (exact counts leave a small corpus in batches of one or two) at the cost of up to
    `bucket - 1` padding tokens per text. Returns index arrays covering range(len(lengths)) once each.
    Raises ValueError when batch_size or bucket is below 1.
    """
    if batch_size < 1 or bucket < 1:
        raise ValueError(f"batch_size and bucket must be >= 1, got {batch_size} and {bucket}")
    padded = padded_length(np.asarray(lengths, dtype=np.int64), bucket)
    order = np.argsort(-padded, kind="stable")
    out: list[np.ndarray] = []
    start = 0
    while start < len(order):
        end = start
        while end < len(order) and padded[order[end]] == padded[order[start]]:
            end += 1
        out.extend(order[s : min(s + batch_size, end)] for s in range(start, end, batch_size))
        start = end
    return out
