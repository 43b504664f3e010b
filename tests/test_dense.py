"""Dense miner on real MiniLM and faiss: fingerprinted cache, crash-safe encoding, chunked search, IVF/HNSW."""

import json
import shutil

import numpy as np
import pytest

from negforge.config import DataConfig, DenseConfig, IndexConfig
from negforge.mining.dense import DenseMiner, build_index, search
from negforge.mining.embedding_cache import EmbeddingCache, EmbeddingSpec
from negforge.mining.encoders import TorchEncoder
from negforge.mining.fingerprint import ModelNotFound, model_fingerprint, resolve_model_path
from negforge.sources import load_input


@pytest.fixture(scope="module")
def tiny(tiny_beir):
    return load_input(DataConfig(format="beir", path=str(tiny_beir)))


@pytest.fixture(scope="module")
def miner(tiny, cache_dir):
    m = DenseMiner(DenseConfig(), cache_dir)
    m.prepare(tiny.corpus.texts)
    return m


class CountingEncoder:
    """Wraps the real encoder and counts rows, to see what a cache hit or a resume actually encodes."""

    def __init__(self, inner):
        self.inner, self.dim, self.backend, self.rows = inner, inner.dim, inner.backend, 0

    def encode(self, texts, *, batch_size):
        self.rows += len(texts)
        return self.inner.encode(texts, batch_size=batch_size)


class CrashingEncoderDouble(CountingEncoder):
    """Fault injection: raises after `ok_calls` batches, like a process killed mid-encoding."""

    def __init__(self, inner, ok_calls):
        super().__init__(inner)
        self.ok_calls = ok_calls

    def encode(self, texts, *, batch_size):
        if self.ok_calls == 0:
            raise KeyboardInterrupt("simulated kill")
        self.ok_calls -= 1
        return super().encode(texts, batch_size=batch_size)


@pytest.fixture(scope="module")
def torch_encoder(minilm_path):
    return TorchEncoder(minilm_path, max_seq_length=None, normalize=True, device="cpu")


def test_bundled_model_resolves_offline(minilm_path):
    assert str(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")) == str(
        resolve_model_path(minilm_path)
    )
    with pytest.raises(ModelNotFound, match="not a local folder"):
        resolve_model_path("no-such-org/no-such-model")


def test_same_name_different_weights_never_share_a_cache_entry(minilm_path, tmp_path, tiny):
    from safetensors.numpy import load_file, save_file

    a, b = tmp_path / "a" / "my-model", tmp_path / "b" / "my-model"
    shutil.copytree(minilm_path, a)
    shutil.copytree(minilm_path, b)
    weights = load_file(str(b / "model.safetensors"))
    name = next(k for k in weights if k.endswith("embeddings.word_embeddings.weight"))
    noise = np.random.default_rng(0).normal(1.0, 0.3, weights[name].shape).astype(np.float32)
    weights[name] = weights[name] * noise  # a constant shift would vanish in LayerNorm
    save_file(weights, str(b / "model.safetensors"))
    assert model_fingerprint(a) != model_fingerprint(b)
    texts = tiny.corpus.texts[:6]
    ea = DenseMiner(DenseConfig(model=str(a)), tmp_path / "cache").embed(texts, "corpus")
    eb = DenseMiner(DenseConfig(model=str(b)), tmp_path / "cache").embed(texts, "corpus")
    assert len(list((tmp_path / "cache" / "embeddings").iterdir())) == 2
    assert not np.allclose(ea, eb, atol=1e-3)


def test_settings_change_the_key():
    base = EmbeddingSpec("fp", "torch", None, True, "")
    keys = {
        base.key("t"),
        base.key("u"),
        EmbeddingSpec("fp", "onnx", None, True, "").key("t"),
        EmbeddingSpec("fp", "torch", 128, True, "").key("t"),
        EmbeddingSpec("fp", "torch", None, False, "").key("t"),
        EmbeddingSpec("fp", "torch", None, True, "query: ").key("t"),
    }
    assert len(keys) == 6


def test_cache_hit_does_not_load_the_model(tmp_path, torch_encoder, tiny):
    cache = EmbeddingCache(tmp_path)
    spec = EmbeddingSpec("fp", "torch", None, True, "")
    enc = CountingEncoder(torch_encoder)
    first = np.array(cache.get_or_encode(spec, tiny.corpus.texts[:10], lambda: enc, batch_size=4))

    def must_not_load():
        raise AssertionError("model loaded on a cache hit")

    again = cache.get_or_encode(spec, tiny.corpus.texts[:10], must_not_load, batch_size=4)
    assert enc.rows == 10 and np.array_equal(first, again)
    assert cache.stats.hits == 1 and cache.stats.misses == 1
    ref = torch_encoder.encode(tiny.corpus.texts[:10], batch_size=4)
    assert np.allclose(first, ref, atol=1e-5)  # rows land at their own positions despite length sorting


def test_encoding_resumes_after_a_crash(tmp_path, torch_encoder, tiny):
    texts = tiny.corpus.texts[:30]
    spec = EmbeddingSpec("fp", "torch", None, True, "")
    cache = EmbeddingCache(tmp_path, chunk_size=8)
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_encode(spec, texts, lambda: CrashingEncoderDouble(torch_encoder, 2), batch_size=8)
    entry = next((tmp_path / "embeddings").iterdir())
    assert json.loads((entry / "progress.json").read_text())["done_rows"] == 16
    resumed = CountingEncoder(torch_encoder)
    out = np.array(
        EmbeddingCache(tmp_path, chunk_size=8).get_or_encode(spec, texts, lambda: resumed, batch_size=8)
    )
    assert resumed.rows == 14
    assert np.allclose(out, torch_encoder.encode(texts, batch_size=8), atol=1e-5)


def test_chunked_search_equals_one_search(miner, tiny):
    q = miner.embed([q.text for q in tiny.queries], "query")
    r1, s1 = search(miner.index, q, 15, batch=1000)
    r2, s2 = search(miner.index, q, 15, batch=5)
    assert np.array_equal(r1, r2) and np.allclose(s1, s2)
    # exact inner product: scores equal the dot products of the cached embeddings
    assert np.allclose(s1[0], miner.pair_scores(q[0], r1[0]), atol=1e-5)


def test_depth_beyond_corpus_is_clamped(miner, tiny):
    q = miner.embed([tiny.queries[0].text], "query")
    rows, _ = miner.search(q, 10_000)
    assert rows.shape == (1, len(tiny.corpus)) and (rows >= 0).all()


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_ann_indexes_agree_with_exact_and_are_reused(kind, tiny, cache_dir, miner):
    cfg = DenseConfig(index=IndexConfig(type=kind, nlist=8, nprobe=4))
    m = DenseMiner(cfg, cache_dir)
    m.prepare(tiny.corpus.texts)
    assert m.index_info["type"] == kind and not m.index_info.get("loaded_from_cache")
    q = m.embed([q.text for q in tiny.queries], "query")
    exact, _ = miner.search(q, 10)
    approx, _ = m.search(q, 10)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx, exact, strict=True)])
    assert recall >= 0.8
    again = DenseMiner(cfg, cache_dir)
    again.prepare(tiny.corpus.texts)
    assert again.index_info.get("loaded_from_cache") is True
    assert np.array_equal(again.search(q, 10)[0], approx)


def test_build_index_reports_cpu_without_gpu():
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    _, info = build_index(x, IndexConfig())
    assert info == {"type": "flat", "rows": 50, "dim": 8, "gpu": False}


def test_an_embedding_does_not_depend_on_its_batch_neighbours(torch_encoder, tiny, minilm_path):
    """Texts pad to their own 16-token bucket, never to a neighbour's: a text embedded alone, with 40 other
    abstracts of every length, or in a batch of 3 gets the same fp32 vector (CPU), and it matches
    sentence-transformers' own encode of it."""
    from sentence_transformers import SentenceTransformer

    texts = tiny.corpus.texts[:41]
    together = torch_encoder.encode(texts, batch_size=32)
    small = torch_encoder.encode(texts, batch_size=3)
    for i in (0, 7, 40):
        alone = torch_encoder.encode([texts[i]], batch_size=32)[0]
        np.testing.assert_array_equal(together[i], alone)
        np.testing.assert_array_equal(small[i], alone)
    st = SentenceTransformer(minilm_path, device="cpu").encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(together, st, atol=1e-6)


def test_length_batches_group_by_padded_length():
    from negforge.mining.batching import length_batches

    lengths = [5, 17, 16, 30, 1, 32]
    exact = length_batches(lengths, 8)
    assert [sorted(b.tolist()) for b in exact] == [[5], [3], [1], [2], [0], [4]]
    bucketed = length_batches(lengths, 8, bucket=16)
    assert [sorted(b.tolist()) for b in bucketed] == [[1, 3, 5], [0, 2, 4]]
    assert sorted(i for b in length_batches(lengths, 2, bucket=16) for i in b.tolist()) == list(range(6))
    with pytest.raises(ValueError):
        length_batches(lengths, 8, bucket=0)


def test_a_broken_model_cache_is_reported_with_its_cause_and_never_downloaded_over(monkeypatch):
    """Fault injection: the Hugging Face cache lookup fails with a permission error. The error names the
    model and keeps the message and the cause; no download is tried (only a cache miss may download)."""
    import huggingface_hub

    calls = []

    def cache_fault_double(name, local_files_only=False, **kw):
        calls.append(local_files_only)
        raise PermissionError(f"[Errno 13] Permission denied: '/hf-cache/{name}'")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cache_fault_double)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(ModelNotFound, match="Permission denied") as err:
        resolve_model_path("some-org/some-model")
    assert isinstance(err.value.__cause__, PermissionError)
    assert calls == [True]
