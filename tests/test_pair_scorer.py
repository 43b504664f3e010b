"""Cross-encoder precision: the parity gate for pair scores, on real (untrained-head) MiniLM cross-encoders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from negforge.config import CrossEncoderFilterConfig, NLIFilterConfig
from negforge.filters.cross_encoder import CrossEncoderFilter
from negforge.filters.nli import NLIFilter
from negforge.filters.pair_scorer import MAX_MEAN_PROB_DIFF, MIN_CORRELATION, PairScorer, score_parity
from negforge.mining.precision import cpu_flags, run_gate

from .conftest import SAMPLE

HAS_BF16 = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    """80 (claim, abstract) pairs from the shipped SciFact sample, claims crossed with abstracts."""
    docs = [json.loads(x) for x in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()][:20]
    claims = [
        json.loads(x)["text"] for x in (SAMPLE / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    return [(claims[i % len(claims)], docs[(3 * i) % 20]["text"][:400]) for i in range(80)]


class LossyScorerDouble:
    """Fault injection: fp32 logits shifted by noise of the scores' own size, returned at once."""

    def __init__(self, reference: dict, noise: float):
        self.reference, self.noise, self.rng = reference, noise, np.random.default_rng(0)

    def __call__(self, items):
        out = np.array([self.reference[tuple(p)] for p in items], dtype=np.float32)
        return out + self.rng.normal(0, self.noise, out.shape).astype(np.float32)


def test_score_parity_on_known_arrays():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=200)
    ok, m = score_parity()(ref, ref + 1e-4)
    assert ok and m["correlation"] > 0.9999 and m["mean_abs_prob_diff"] < 1e-4
    ok, m = score_parity()(ref, ref + 0.3)  # perfectly correlated, but every probability moved
    assert not ok and m["correlation"] == pytest.approx(1.0) and m["mean_abs_prob_diff"] > MAX_MEAN_PROB_DIFF
    ok, m = score_parity()(ref, rng.normal(size=200))
    assert not ok and m["correlation"] < MIN_CORRELATION
    three_way = rng.normal(size=(50, 3))
    assert score_parity()(three_way, three_way)[0]


def test_gate_refuses_a_lossy_scorer_even_when_it_is_the_fastest(fresh_cross_encoder, pairs):
    scorer = PairScorer(fresh_cross_encoder, max_length=256, device="cpu", batch_size=16, backend="torch")
    ref = scorer.logits(pairs)
    reference = dict(zip(pairs, ref, strict=True))
    runners = {
        "torch-fp32": scorer.logits,
        "lossy-double": LossyScorerDouble(reference, noise=float(ref.std())),
    }
    choice = run_gate(pairs, runners.__getitem__, list(runners), compare=score_parity())
    assert choice.path == "torch-fp32"
    lossy = choice.checks[1]
    assert not lossy.passed and lossy.items_per_s > choice.checks[0].items_per_s
    assert lossy.metrics["correlation"] < MIN_CORRELATION


@pytest.mark.skipif(not HAS_BF16, reason="no AVX512-BF16/AMX on this CPU: bf16 is not a candidate")
def test_auto_runs_the_cross_encoder_in_bf16_after_the_gate(
    fresh_cross_encoder, pairs, tmp_path, gate_timing_favours_later_paths
):
    cfg = CrossEncoderFilterConfig(model=fresh_cross_encoder, batch_size=16, max_length=256)
    assert cfg.backend == "auto"
    exact = CrossEncoderFilter(cfg.model_copy(update={"backend": "torch"}), tmp_path)
    f = CrossEncoderFilter(cfg, tmp_path)
    assert f.describe()["backend"] == "not decided (nothing scored)"
    got, want = f.score(pairs), exact.score(pairs)
    d = f.describe()
    assert d["backend"] == "torch-bf16" and d["backend_choice"]["requested"] == "auto"
    checks = {c["path"]: c for c in d["backend_choice"]["checks"]}
    assert (
        checks["torch-bf16"]["passed"] and checks["torch-bf16"]["metrics"]["correlation"] >= MIN_CORRELATION
    )
    assert exact.describe()["backend"] == "torch-fp32"
    assert float(np.corrcoef(got, want)[0, 1]) >= MIN_CORRELATION and not np.array_equal(got, want)
    # the verdict is cached per model and machine: a new filter reads it, no gate
    again = CrossEncoderFilter(cfg, tmp_path)
    again.score(pairs[:3])
    assert again.describe()["backend_choice"]["gate_cached"] and again.describe()["backend"] == "torch-bf16"


def test_nli_in_a_forced_precision_gives_probabilities(fresh_nli, pairs):
    f = NLIFilter(NLIFilterConfig(model=fresh_nli, backend="torch-bf16"))
    probs = f.probabilities(pairs[:10])
    assert probs.shape == (10, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    exact = NLIFilter(NLIFilterConfig(model=fresh_nli, backend="torch")).probabilities(pairs[:10])
    assert np.abs(probs - exact).mean() <= MAX_MEAN_PROB_DIFF
    assert (
        f.describe()["backend"] == "torch-bf16"
        and f.describe()["backend_choice"]["reason"] == "set in the config"
    )


def test_a_backend_the_scorer_cannot_run_is_refused(fresh_cross_encoder):
    with pytest.raises(ValueError, match="cross-encoder backend 'onnx-int8'"):
        PairScorer(fresh_cross_encoder, max_length=64, device="cpu", batch_size=4, backend="onnx-int8")
