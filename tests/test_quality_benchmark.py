"""The quality benchmark's dev split: settings are chosen on held-out *train* queries, never on test."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import ROOT, SCIFACT

NFCORPUS = ROOT.parent / "shared" / "data" / "nfcorpus"
needs_scifact = pytest.mark.skipif(
    not (SCIFACT / "qrels" / "train.tsv").is_file(),
    reason=f"BEIR SciFact is not at {SCIFACT} (../shared/data)",
)
needs_nfcorpus = pytest.mark.skipif(
    not (NFCORPUS / "qrels" / "train.tsv").is_file(),
    reason=f"BEIR NFCorpus is not at {NFCORPUS} (../shared/data)",
)


def _bench():
    return _load("quality_data")


def _qids(path: Path) -> set[str]:
    return {ln.split("\t")[0] for ln in path.read_text().splitlines()[1:] if ln.strip()}


@needs_scifact
def test_dev_split_partitions_train_and_never_touches_test(tmp_path: Path) -> None:
    bench = _bench()
    folder = bench.make_dev_split(SCIFACT, tmp_path, 0.2, seed=13)
    fit, dev = _qids(folder / "qrels" / "train.tsv"), _qids(folder / "qrels" / "test.tsv")
    train, test = _qids(SCIFACT / "qrels" / "train.tsv"), _qids(SCIFACT / "qrels" / "test.tsv")
    assert fit.isdisjoint(dev) and fit | dev == train
    assert 0.15 < len(dev) / len(train) < 0.25
    assert dev.isdisjoint(test - train)  # the real test split stays unseen
    # every qrels line of train lands on exactly one side
    n_lines = len((SCIFACT / "qrels" / "train.tsv").read_text().strip().splitlines()) - 1
    n_split = sum(len(p.read_text().strip().splitlines()) - 1 for p in (folder / "qrels").glob("*.tsv"))
    assert n_split == n_lines
    # seeded: the same seed gives the same slice, another seed another one
    again = bench.make_dev_split(SCIFACT, tmp_path / "again", 0.2, seed=13)
    other = bench.make_dev_split(SCIFACT, tmp_path / "other", 0.2, seed=14)
    assert _qids(again / "qrels" / "test.tsv") == dev != _qids(other / "qrels" / "test.tsv")
    assert (folder / "corpus.jsonl").resolve() == (SCIFACT / "corpus.jsonl").resolve()


# ---------------------------------------------------------------- benchmarks/quality.py (issue 16)


def _load(name: str):
    import sys

    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


def test_bootstrap_identical_scores_give_a_zero_interval() -> None:
    import numpy as np

    stats = _load("quality_stats")
    a = np.random.default_rng(1).random((3, 50))
    assert stats.paired_bootstrap(a, a.copy(), resamples=2000, seed=0) == (0.0, 0.0, 0.0)


def test_bootstrap_constant_shift_is_exact() -> None:
    import numpy as np
    import pytest

    stats = _load("quality_stats")
    b = np.random.default_rng(2).random((3, 80)) * 0.5
    est, lo, hi = stats.paired_bootstrap(b + 0.1, b, resamples=2000, seed=0)
    assert est == pytest.approx(0.1, abs=1e-12)
    assert lo == pytest.approx(0.1, abs=1e-12) and hi == pytest.approx(0.1, abs=1e-12)
    # a real difference: seeded, and the interval holds the observed mean
    noisy = b + np.random.default_rng(3).normal(0.05, 0.1, b.shape)
    first = stats.paired_bootstrap(noisy, b, resamples=2000, seed=7)
    assert first == stats.paired_bootstrap(noisy, b, resamples=2000, seed=7)
    assert first[1] < first[0] < first[2]


def test_per_query_metrics_match_hand_computed_values() -> None:
    import math

    import pytest

    stats = _load("quality_stats")
    qrels = {"q1": {"d1": 2, "d3": 1}, "q2": {"d9": 1}}
    ranked = {"q1": ["d3", "d2", "d1"], "q2": ["d1", "d2"]}
    out = stats.per_query_metrics(ranked, qrels)
    # graded, linear gain: DCG = 1/log2(2) + 2/log2(4); ideal = 2 + 1/log2(3)
    assert out["q1"]["ndcg@10"] == pytest.approx((1 + 2 / 2) / (2 + 1 / math.log2(3)), abs=1e-6)
    assert out["q1"]["ndcg@10_binary"] == pytest.approx((1 + 1 / 2) / (1 + 1 / math.log2(3)), abs=1e-6)
    assert out["q1"]["mrr@10"] == 1.0 and out["q1"]["recall@100"] == 1.0
    assert out["q2"] == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@100": 0.0, "ndcg@10_binary": 0.0}
    # ranking: (-score, corpus id), ties at the cut-off resolved by id
    import numpy as np

    ranks = stats.rank_corpus(np.array([[0.5, 0.9, 0.5, 0.1]]), ["c", "a", "b", "d"], k=2)
    assert ranks == [["a", "b"]]


@needs_nfcorpus
def test_nfcorpus_sample_is_shared_bounded_and_seeded(tmp_path: Path) -> None:
    data = _load("quality_data")
    spec = data.DATASETS["nfcorpus"]
    qrels = data.read_qrels(spec.path / "qrels" / "train.tsv")
    kw = {"max_positives": 3, "max_queries": 200, "min_relevance": 1}
    ex = data.sample_examples(qrels, seed=13, **kw)
    per_q: dict[str, int] = {}
    for q, d, g in ex:
        per_q[q] = per_q.get(q, 0) + 1
        assert g >= 1 and qrels[q][d] == g
    assert len(per_q) == 200 and max(per_q.values()) <= 3
    assert ex == data.sample_examples(qrels, seed=13, **kw)
    assert ex != data.sample_examples(qrels, seed=14, **kw)
    # highest grade first: a graded query keeps its grade-2 documents before any grade 1
    graded = {"q": {"a": 1, "b": 2, "c": 1, "d": 2}}
    top = data.sample_examples(graded, seed=0, max_positives=2, max_queries=None)
    assert sorted(d for _, d, _ in top) == ["b", "d"]
    # the prepared folder is what every row reads (negforge, ST, in-batch): its qrels are the sample
    prep = data.prepare(spec, tmp_path, split="test", sample_seed=13, max_positives=3, max_queries=200)
    lines = (prep.train_folder / "qrels" / "train.tsv").read_text().splitlines()[1:]
    assert [tuple(ln.split("\t")[:2]) for ln in lines] == [(q, d) for q, d, _ in ex]
    assert prep.examples == len(ex) and (prep.eval_folder, prep.eval_split) == (spec.path, "test")
    dev = data.prepare(spec, tmp_path, split="dev", sample_seed=13, max_positives=3, max_queries=200)
    assert dev.eval_split == "dev" and dev.train_folder == prep.train_folder.with_name(
        prep.train_folder.name.replace("-test-", "-dev-")
    )


def test_every_row_has_a_valid_negforge_config(tmp_path: Path) -> None:
    q = _load("quality")
    args = q.parse_args(["--dataset", "nfcorpus", "--smoke", "--out", str(tmp_path)])
    rows = _load("quality_rows")
    for row in ("nf", "edit", "judge", "relabel", "ance", "x"):
        cfg = rows.negforge_config(args, row, tmp_path)
        assert cfg.seed == args.mine_seed and cfg.data.path == str(tmp_path)
        types = [f.type for f in cfg.filters]
        assert ("llm_judge" in types) == (row in ("judge", "relabel"))
        if row in ("edit", "judge", "relabel"):
            assert cfg.sources.llm.mode == "edit" and cfg.sources.rules.enabled
            assert sum(cfg.mix.quotas.values()) == 5
        if row == "relabel":
            assert cfg.filters[-1].on_false_negative == "relabel"


def test_plan_packs_rows_into_invocations_within_the_budget() -> None:
    q = _load("quality")
    est = {"zero": 60, "st": 40 * 60, "nf": 50 * 60, "ance": 80 * 60, "judge": 200 * 60}
    lines = q.plan(est, 90)
    packed = [ln.split("--rows ")[1].split()[0].split(",") for ln in lines if "--rows" in ln]
    assert sorted(r for b in packed for r in b) == ["ance", "nf", "st"]
    assert all(sum(est[r] for r in b) <= 90 * 60 for b in packed)
    assert any(ln.strip().startswith("judge:") and "over 90" in ln for ln in lines)
