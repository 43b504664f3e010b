"""BM25 miner on real bm25s: same ranking as bm25s, positives excluded, index saved and reused."""

import bm25s
import numpy as np

from negforge.config import BM25Config, DataConfig
from negforge.mining.bm25 import BM25Miner, top_k_excluding
from negforge.mining.fingerprint import texts_digest
from negforge.sources import load_input
from tests.conftest import SAMPLE


def _miner(cache):
    data = load_input(DataConfig(format="beir", path=str(SAMPLE), max_queries=10))
    m = BM25Miner(BM25Config(), cache)
    m.prepare(data.corpus.texts, texts_digest(data.corpus.texts))
    return m, data


def test_matches_bm25s_ranking_and_excludes_positives(tmp_path):
    m, data = _miner(tmp_path)
    toks = m._tokenize([q.text for q in data.queries], return_ids=False)
    ref_rows, _ = m.retriever.retrieve(toks, k=25, show_progress=False)
    ids = m.query_token_ids([q.text for q in data.queries])
    for j, q in enumerate(data.queries):
        rows, scores = top_k_excluding(m.score_all(ids[j]), 20, q.positive_rows)
        expected = [r for r in ref_rows[j] if r not in q.positive_rows][:20]
        assert list(rows) == expected
        assert not set(rows) & set(q.positive_rows)
        assert np.all(np.diff(scores) <= 0)
    # the positives usually rank at the top for SciFact claims: exclusion must have removed something
    assert any(set(ref_rows[j][:3]) & set(q.positive_rows) for j, q in enumerate(data.queries))


def test_index_is_saved_and_reused(tmp_path):
    m1, _ = _miner(tmp_path)
    assert not m1.loaded_from_cache
    m2, data = _miner(tmp_path)
    assert m2.loaded_from_cache
    ids = m2.query_token_ids([data.queries[0].text])
    assert np.allclose(m1.score_all(ids[0]), m2.score_all(ids[0]))


def test_index_is_used_memory_mapped_and_scores_like_an_in_memory_one(tmp_path):
    m, data = _miner(tmp_path)  # built, saved, then loaded from its folder
    assert all(isinstance(m.retriever.scores[k], np.memmap) for k in ("data", "indices", "indptr"))
    ref = bm25s.BM25(k1=m.cfg.k1, b=m.cfg.b, method=m.cfg.method)
    ref.index(m._tokenize(data.corpus.texts, return_ids=True), show_progress=False)
    for q in data.queries:
        ids = m.query_token_ids([q.text])[0]
        assert ids
        assert np.array_equal(m.score_all(ids), ref.get_scores_from_ids(ids))


def test_parameters_change_the_index_key(tmp_path):
    a = BM25Miner(BM25Config(), tmp_path).index_key("x")
    b = BM25Miner(BM25Config(k1=1.2), tmp_path).index_key("x")
    c = BM25Miner(BM25Config(), tmp_path).index_key("y")
    assert len({a, b, c}) == 3


def test_query_with_no_known_token_finds_nothing(tmp_path):
    m, _ = _miner(tmp_path)
    ids = m.query_token_ids(["zzzzqx qqqvvv"])
    assert ids == [[]]
    rows, _ = top_k_excluding(m.score_all(ids[0]), 10, ())
    assert len(rows) == 0
