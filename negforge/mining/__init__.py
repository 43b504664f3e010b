"""Corpus miners: BM25 (bm25s), dense ANN (faiss), random, and selection of negatives from their pools."""
