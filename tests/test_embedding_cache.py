"""Bring your own embeddings: `EmbeddingCache.adopt` makes precomputed rows the cache entry the pipeline reads."""

import json

import numpy as np
import pytest

from negforge.config import DataConfig, DenseConfig
from negforge.mining.dense import DenseMiner
from negforge.mining.embedding_cache import EmbeddingCache, EmbeddingSpec
from negforge.sources import load_input


def _unit(rng, n, d=384):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _no_model():
    raise AssertionError("the model was loaded although the embeddings were adopted")


@pytest.fixture
def no_model(monkeypatch):
    from negforge.mining import encoders, onnx_encoder

    monkeypatch.setattr(encoders.TorchEncoder, "__init__", lambda *a, **k: _no_model())
    monkeypatch.setattr(onnx_encoder.OnnxEncoder, "__init__", lambda *a, **k: _no_model())


def _specs(miner, texts):
    """The cache specs of corpus and query embeddings (the encoder path is resolved first where needed)."""
    if hasattr(miner, "resolve_backend"):
        miner.resolve_backend(texts)
    return miner.embedding_spec("corpus"), miner.embedding_spec("query")


@pytest.fixture
def miner(tmp_path, no_model):
    return DenseMiner(DenseConfig(backend="torch"), tmp_path)


def test_adopted_embeddings_are_what_embed_returns(miner, tmp_path, tiny_beir):
    data = load_input(DataConfig(format="beir", path=str(tiny_beir)))
    rng = np.random.default_rng(0)
    corpus, queries = _unit(rng, len(data.corpus)), _unit(rng, len(data.queries))
    qtexts = [q.text for q in data.queries]
    np.save(tmp_path / "corpus.npy", corpus)  # from a file (copied) and from an array (written)
    cspec, qspec = _specs(miner, data.corpus.texts)
    miner.cache.adopt(cspec, data.corpus.texts, tmp_path / "corpus.npy")
    entry = miner.cache.adopt(qspec, qtexts, queries)
    assert json.loads((entry / "complete.json").read_text())["adopted"] is True
    miner.prepare(data.corpus.texts)
    got_q = miner.embed(qtexts, "query")
    assert isinstance(miner.corpus_emb, np.memmap) and np.array_equal(miner.corpus_emb, corpus)
    assert np.array_equal(got_q, queries)
    assert miner.cache.stats.hits == 2 and miner.cache.stats.misses == 0
    rows, _ = miner.search(got_q[:3], 1)
    assert rows[:, 0].tolist() == [int(np.argmax(corpus @ q)) for q in queries[:3]]


def test_pipeline_run_uses_adopted_embeddings_without_a_model(no_model, tmp_path, make_config):
    from negforge.pipeline import run

    # an own cache folder: adopted random rows must never stand in for MiniLM's in the session cache
    cfg = make_config("sources.dense.backend=torch", "filters=[]", f"cache_dir={tmp_path / 'cache'}")
    assert cfg.cache_path == tmp_path / "cache"
    data = load_input(cfg.data)
    rng = np.random.default_rng(1)
    miner = DenseMiner(cfg.sources.dense, cfg.cache_path)
    cspec, qspec = _specs(miner, data.corpus.texts)
    miner.cache.adopt(cspec, data.corpus.texts, _unit(rng, len(data.corpus)))
    miner.cache.adopt(qspec, [q.text for q in data.queries], _unit(rng, len(data.queries)))
    result = run(cfg, overwrite=True)  # building an encoder raises (fixture): no model is loaded
    assert result.manifest["counts"]["selected"]


def test_adopt_refuses_rows_that_break_the_spec(tmp_path):
    cache = EmbeddingCache(tmp_path)
    spec = EmbeddingSpec("fp", "torch", None, True, "")
    with pytest.raises(ValueError, match="shape"):
        cache.adopt(spec, ["a", "b"], np.ones((3, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="norm"):
        cache.adopt(spec, ["a", "b"], np.ones((2, 4), dtype=np.float32))
    nan = np.full((2, 4), np.nan, dtype=np.float32)
    with pytest.raises(ValueError, match="finite"):
        cache.adopt(spec, ["a", "b"], nan)
    raw = EmbeddingSpec("fp", "torch", None, False, "")
    cache.adopt(raw, ["a", "b"], np.ones((2, 4), dtype=np.float64))  # unnormalised spec: any finite rows
    got = cache.get_or_encode(raw, ["a", "b"], _no_model, batch_size=2)
    assert got.dtype == np.float32 and np.array_equal(got, np.ones((2, 4)))
