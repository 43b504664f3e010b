"""`backend: auto` and its parity gate: real encoders on SciFact abstracts, one fault-injecting double."""

from __future__ import annotations

import json

import numpy as np
import pytest

from negforge.config import DenseConfig
from negforge.mining.dense import DenseMiner
from negforge.mining.encoders import TorchEncoder, build_encoder
from negforge.mining.precision import (
    MIN_MEAN_COSINE,
    MIN_TOP10_OVERLAP,
    candidate_paths,
    cpu_flags,
    embedding_parity,
    encoder_runner,
    gate_sample,
    neighbour_overlap,
    parity,
    resolve_backend,
    run_gate,
)

from .conftest import SAMPLE

HAS_BF16 = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@pytest.fixture(scope="module")
def abstracts() -> list[str]:
    rows = [json.loads(x) for x in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    return gate_sample([f"{r.get('title', '')} {r['text']}".strip() for r in rows], size=96)


@pytest.fixture(scope="module")
def fp32(minilm_path):
    return TorchEncoder(minilm_path, max_seq_length=None, normalize=True)


class LossyEncoderDouble:
    """Fault injection: fp32 embeddings plus noise, returned instantly, so it is the fastest path there is."""

    backend = "lossy-double"

    def __init__(self, reference: dict[str, np.ndarray], noise: float):
        self.reference, self.noise = reference, noise
        self.dim = len(next(iter(reference.values())))
        self.rng = np.random.default_rng(0)

    def encode(self, texts, *, batch_size):
        out = np.stack([self.reference[t] for t in texts])
        out = out + self.rng.normal(0, self.noise, out.shape).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def runners(encoders: dict) -> object:
    return lambda path: encoder_runner(encoders[path], 32)


def test_parity_figures_on_known_vectors():
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(50, 16)).astype(np.float32)
    assert parity(ref, ref) == pytest.approx((1.0, 1.0, 1.0))
    assert parity(ref, 3 * ref)[0] == pytest.approx(1.0)  # cosine: scale does not matter
    shuffled = ref[rng.permutation(50)]
    assert neighbour_overlap(ref, shuffled) < 0.5
    assert parity(ref, -ref)[0] == pytest.approx(-1.0)


def test_candidates_follow_the_hardware():
    assert candidate_paths({"gpu": "NVIDIA H200", "cpu_flags": []}) == ["torch-fp32", "torch-fp16"]
    assert candidate_paths({"gpu": None, "cpu_flags": ["avx512_bf16", "avx512_vnni"]}) == [
        "torch-fp32",
        "torch-bf16",
        "onnx-int8",
    ]
    assert candidate_paths({"gpu": None, "cpu_flags": ["avx_vnni"]}) == ["torch-fp32", "onnx-int8"]
    assert candidate_paths({"gpu": None, "cpu_flags": []}) == ["torch-fp32"]


def test_gate_refuses_a_lossy_path_even_when_it_is_the_fastest(abstracts, fp32):
    reference = dict(zip(abstracts, fp32.encode(abstracts, batch_size=32), strict=True))
    encoders = {"torch-fp32": fp32, "lossy-double": LossyEncoderDouble(reference, noise=0.02)}
    choice = run_gate(abstracts, runners(encoders), ["torch-fp32", "lossy-double"])
    lossy = next(c for c in choice.checks if c.path == "lossy-double")
    assert lossy.items_per_s > choice.checks[0].items_per_s  # faster, and still not taken
    assert not lossy.passed and lossy.metrics["mean_cosine"] < MIN_MEAN_COSINE
    assert choice.path == "torch-fp32" and "refused: lossy-double" in choice.reason
    # the same double with negligible noise passes, and being fastest, is chosen
    exact_enough = {"torch-fp32": fp32, "lossy-double": LossyEncoderDouble(reference, noise=1e-5)}
    assert run_gate(abstracts, runners(exact_enough), list(exact_enough)).path == "lossy-double"


def test_a_path_that_cannot_run_is_refused_with_its_error(abstracts, fp32):
    def make(path):
        if path == "onnx-int8":
            raise RuntimeError("no int8 kernels here")
        return encoder_runner(fp32, 32)

    choice = run_gate(abstracts, make, ["torch-fp32", "onnx-int8"])
    assert choice.path == "torch-fp32"
    assert choice.checks[1].error == "RuntimeError: no int8 kernels here" and not choice.checks[1].passed


@pytest.mark.skipif(not HAS_BF16, reason="this CPU has no AVX512-BF16/AMX: bf16 is not a candidate")
def test_stricter_thresholds_refuse_real_bf16(abstracts, fp32, minilm_path):
    def make(path):
        if path == "torch-fp32":
            return encoder_runner(fp32, 32)
        enc = build_encoder(path, minilm_path, max_seq_length=None, normalize=True, export_dir="unused")
        return encoder_runner(enc, 32)

    usual = run_gate(abstracts, make, ["torch-fp32", "torch-bf16"])
    bf16 = usual.checks[1].metrics
    assert usual.checks[1].passed
    assert bf16["mean_cosine"] >= MIN_MEAN_COSINE and bf16["top10_overlap"] >= MIN_TOP10_OVERLAP
    assert bf16["mean_cosine"] < 1.0  # it is not fp32 in disguise
    strict = run_gate(
        abstracts, make, ["torch-fp32", "torch-bf16"], compare=embedding_parity(min_mean_cosine=0.9999999)
    )
    assert strict.path == "torch-fp32" and not strict.checks[1].passed


def test_auto_is_decided_once_per_model_and_machine_and_keys_the_cache(
    abstracts, minilm_path, tmp_path, gate_timing_favours_later_paths, cpu_offers_bf16
):
    cfg = DenseConfig(model=minilm_path)
    assert cfg.backend == "auto"  # the default
    miner = DenseMiner(cfg, tmp_path)
    choice = miner.resolve_backend(abstracts)
    assert not choice.gate_cached and choice.requested == "auto"
    assert choice.path in candidate_paths(choice.machine)
    assert next(c for c in choice.checks if c.path == choice.path).passed
    for c in choice.checks:  # every verdict agrees with the thresholds it reports
        if c.error is None:
            m = c.metrics
            assert c.passed == (
                m["mean_cosine"] >= MIN_MEAN_COSINE and m["top10_overlap"] >= MIN_TOP10_OVERLAP
            )
    # cpu_offers_bf16: bf16 is a candidate on any CPU here
    assert {c.path for c in choice.checks} >= {"torch-fp32", "torch-bf16"}
    assert choice.path != "torch-fp32"  # bf16 passes on MiniLM (and is timed faster: see the fixture)
    files = list((tmp_path / "parity").glob("*.json"))
    assert len(files) == 1

    built: list[str] = []
    again = resolve_backend(
        "auto", cache_root=tmp_path, model_fingerprint=miner.fingerprint,
        settings={"max_seq_length": None, "normalize": True, "prompt": ""},
        sample=lambda: pytest.fail("a cached verdict reads no texts"),
        make_runner=lambda p: built.append(p),
    )  # fmt: skip
    assert again.gate_cached and again.path == choice.path and built == []

    exact = DenseMiner(DenseConfig(model=minilm_path, backend="torch"), tmp_path)
    exact.resolve_backend(abstracts)
    assert exact.path == "torch-fp32" and exact.backend_choice.reason.startswith("set in the config")
    if choice.path != "torch-fp32":  # the precision is part of the embedding cache key
        assert exact.embedding_spec("corpus").key("d") != miner.embedding_spec("corpus").key("d")
        emb = miner.embed(abstracts[:8], "corpus")
        ref = exact.embed(abstracts[:8], "corpus")
        assert len(list((tmp_path / "embeddings").glob("*/complete.json"))) == 2
        assert float(np.einsum("ij,ij->i", emb, ref).mean()) >= MIN_MEAN_COSINE


def test_a_small_corpus_is_encoded_in_fp32_and_not_cached(minilm_path, tmp_path, abstracts, cpu_offers_bf16):
    miner = DenseMiner(DenseConfig(model=minilm_path), tmp_path)
    choice = miner.resolve_backend(abstracts[:20])
    assert choice.path == "torch-fp32" and "fewer than the gate's" in choice.reason
    assert not (tmp_path / "parity").exists()


def test_unknown_backend_is_refused(minilm_path, tmp_path):
    with pytest.raises(ValueError, match="unknown backend 'torch-int4'"):
        resolve_backend(
            "torch-int4", cache_root=tmp_path, model_fingerprint="x", settings={},
            sample=list, make_runner=print,
        )  # fmt: skip


def test_a_verdict_is_kept_per_set_of_allowed_paths(tmp_path):
    rng = np.random.default_rng(0)
    texts = [f"text {i}" for i in range(80)]
    ref = rng.normal(size=(80, 16)).astype(np.float32)
    runs: list[str] = []

    def make(path):
        runs.append(path)
        return lambda items: ref[: len(items)] if path == "torch-fp32" else ref[: len(items)] + 1e-6

    kw = {"cache_root": tmp_path, "model_fingerprint": "m" * 20, "settings": {}, "sample": lambda: texts}
    everything = resolve_backend("auto", make_runner=make, **kw)
    if len(everything.checks) < 2:
        pytest.skip("this machine has no path besides fp32 to try")
    torch_only = resolve_backend("auto", make_runner=make, allowed=("torch-fp32", "torch-bf16"), **kw)
    assert not torch_only.gate_cached  # its own gate, not the verdict of a caller that may run ONNX
    assert torch_only.path in ("torch-fp32", "torch-bf16")
    assert len(list((tmp_path / "parity").glob("*.json"))) == 2
