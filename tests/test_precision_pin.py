"""Every `backend: auto` is resolved once in the driver (negforge.precision_pin): the cross-encoder and NLI
filters' paths as well as the dense encoder's, each per-source variant that loads another setting on its
own, the loaded models reused by the filter stack, and the run identity naming the paths used."""

from __future__ import annotations

import json

import pytest

from negforge.config import load_config
from negforge.mining.precision import cpu_flags, cuda_device_name
from negforge.pipeline import run, worker_config
from negforge.precision_pin import pin_precision, positive_pairs
from negforge.sources import load_input
from tests.conftest import SCIFACT, write_beir


@pytest.fixture(scope="module")
def scifact_80(tmp_path_factory):
    """80 SciFact train claims with their positives (>= the gate's 64 pairs) and 100 other abstracts."""
    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.skip("../shared/data/scifact absent")
    rows = [x.split("\t") for x in (SCIFACT / "qrels" / "train.tsv").read_text().splitlines()[1:] if x]
    qids = list(dict.fromkeys(q for q, _, _ in rows))[:80]
    qrels = [(q, d) for q, d, _ in rows if q in set(qids)]
    pos = {d for _, d in qrels}
    corpus = [json.loads(x) for x in (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]
    docs = [d for d in corpus if d["_id"] in pos] + [d for d in corpus if d["_id"] not in pos][:100]
    queries = [json.loads(x) for x in (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()]
    queries = [q for q in queries if q["_id"] in set(qids)]
    return write_beir(tmp_path_factory.mktemp("scifact_80"), docs, queries, qrels)


HAS_BF16 = bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def _cfg(data, cache, out, filters, *extra):
    return load_config(
        None,
        [
            f"data.path={data}",
            f"cache_dir={cache}",
            f"output.dir={out}",
            "sources.dense.enabled=false",
            *extra,
        ],
        filters=filters,
    )


@pytest.mark.skipif(
    not HAS_BF16 or cuda_device_name() is not None, reason="needs a CPU-only machine with AVX512-BF16/AMX"
)
def test_filter_backends_are_pinned_in_the_driver_per_model_setting(
    scifact_80, fresh_cross_encoder, tmp_path, gate_timing_favours_later_paths
):
    ce = {
        "type": "cross_encoder", "model": fresh_cross_encoder, "max_length": 256, "batch_size": 16,
        # the LLM's negatives read by the same model at another max_length: a setting of its own, its own gate;
        # BM25's only change a threshold: the filter's path
        "per_source": {"llm": {"max_length": 128}, "bm25": {"max_prob": 0.99}},
    }  # fmt: skip
    cfg = _cfg(scifact_80, tmp_path / "cache", tmp_path / "runs", [ce])
    data = load_input(cfg.data)
    assert len(set(positive_pairs(data))) >= 64  # the gate really runs: no "fewer than the gate's" shortcut
    pinned = pin_precision(cfg, data)
    f = pinned.cfg.filters[0]
    assert (
        cfg.filters[0].backend == "auto" and f.backend == "torch-bf16"
    )  # passes parity (timed faster: see the fixture)
    assert f.per_source["llm"]["backend"] == "torch-bf16" and "backend" not in f.per_source["bm25"]
    assert len(pinned.scorers) == 2  # max_length 256 and 128: two scorers, two verdicts
    assert {s.choice.reason.split(" (")[0] for s in pinned.scorers.values()} == {
        "fastest path that passed the parity gate"
    }
    assert pinned.cfg.fingerprint() == cfg.fingerprint()  # the same run folder as the unpinned config
    assert worker_config(pinned.cfg, None)["filters"][0]["backend"] == "torch-bf16"  # workers take the path

    explicit = _cfg(scifact_80, tmp_path / "cache", tmp_path / "runs", [{**ce, "backend": "torch"}])
    assert pin_precision(explicit, data).scorers == {}  # a named backend loads nothing in the driver


def test_a_run_records_the_pinned_filter_path_and_reuses_the_driver_scorer(
    tiny_beir, fresh_cross_encoder, tmp_path, cpu_offers_bf16
):
    """12 queries: fewer pairs than the gate's sample, so auto resolves to fp32 and says why; the identity,
    the manifest and a rerun asking for bf16 all name the path."""
    ce = {"type": "cross_encoder", "model": fresh_cross_encoder, "max_length": 128, "batch_size": 16}
    extra = ["selection.num_negatives=2", "selection.depth=10", "output.shard_size=6"]
    cfg = _cfg(tiny_beir, tmp_path / "cache", tmp_path / "runs", [ce], *extra)
    first = run(cfg)
    state = json.loads((first.run_dir / "shards" / "state.json").read_text())
    assert state["precision"] == {"filter:cross_encoder": "torch-fp32"}
    model = first.manifest["filters"]["stack"][0]
    assert model["backend"] == "torch-fp32"
    # the driver's scorer, with the gate's reason: not a second load that only knows "set in the config"
    assert "fewer than the gate's" in model["backend_choice"]["reason"]
    assert run(cfg).manifest["shards"]["reused"] == first.manifest["shards"]["total"]

    bf16 = _cfg(tiny_beir, tmp_path / "cache", tmp_path / "runs", [{**ce, "backend": "torch-bf16"}], *extra)
    again = run(bf16)  # the same run judged in another precision: every shard again, never a mix
    assert again.manifest["shards"]["reused"] == 0
    assert any(
        "precision" in n and "filter:cross_encoder torch-fp32 -> torch-bf16" in n
        for n in again.manifest["notes"]
    )
