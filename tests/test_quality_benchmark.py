"""The quality benchmark's dev split: settings are chosen on held-out *train* queries, never on test."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from tests.conftest import ROOT, SCIFACT


def _bench():
    spec = importlib.util.spec_from_file_location(
        "quality_scifact", ROOT / "benchmarks" / "quality_scifact.py"
    )
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    saved = dict(os.environ)  # the script sets env defaults (progress off) that other tests must not inherit
    try:
        spec.loader.exec_module(mod)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return mod


def _qids(path: Path) -> set[str]:
    return {ln.split("\t")[0] for ln in path.read_text().splitlines()[1:] if ln.strip()}


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
