"""`selection.gap_cut`: the per-query gap cut drops an unlabeled near-positive cluster in a real run (BM25 on
a small corpus where each query's unlabeled twin of its positive scores far above every other candidate), the
replayed calibration setting keeps exactly what the run keeps."""

from __future__ import annotations

import pytest

from negforge.calibration.calibrate import calibration_config
from negforge.calibration.replay import RecordedQuery, Setting, kept, recorded_queries
from negforge.config import load_config
from negforge.mining.selection import gap_cut
from negforge.pipeline import run
from negforge.publish.exporters import rich_rows
from negforge.publish.run_files import read_run
from tests.test_calibration import _write_beir


def test_gap_cut_finds_a_cluster_on_top():
    assert gap_cut([1.0, 0.99, 0.98, 0.60, 0.59, 0.58, 0.57]) == pytest.approx(0.98)
    assert gap_cut([0.57, 0.98, 0.60, 1.0, 0.59, 0.99, 0.58]) == pytest.approx(0.98)  # order does not matter
    assert gap_cut([1.0, 0.98, 0.96, 0.94, 0.92]) is None  # even steps: no cluster
    assert gap_cut([0.5, 0.4]) is None


def _run(tmp_path, name: str, gap: bool):
    data = tmp_path / "data"
    if not data.exists():
        _write_beir(data)
        qrels = data / "qrels" / "train.tsv"  # the twins h<i> stay in the corpus, unlabeled
        qrels.write_text("\n".join(ln for ln in qrels.read_text().splitlines() if "\th" not in ln) + "\n")
    cfg = load_config(
        None,
        [
            f"run_name={name}",
            f"data.path={data}",
            "data.split=train",
            "sources.bm25.enabled=true",
            "sources.dense.enabled=false",
            "selection.relative_margin=null",
            "selection.num_negatives=5",
            f"selection.gap_cut={str(gap).lower()}",
            "filters=[]",
            f"output.dir={tmp_path / 'runs'}",
            f"cache_dir={tmp_path / 'cache'}",
        ],
    )
    return cfg, list(rich_rows(read_run(run(cfg, overwrite=True).run_dir)))


def test_the_gap_cut_drops_the_unlabeled_twin_with_the_margins_off(tmp_path):
    _, plain = _run(tmp_path, "plain", gap=False)
    cfg, cut = _run(tmp_path, "gap", gap=True)
    twin_kept = sum(any(n["doc_id"].startswith("h") for n in r["negatives"]) for r in plain)
    assert twin_kept == len(plain) >= 20  # without the cut every query keeps its twin as a negative
    for r in cut:
        twin = f"h{r['query_id'][1:]}"
        assert twin not in {n["doc_id"] for n in r["negatives"]}
        reasons = {d["doc_id"]: d["reason"] for d in r["dropped"]}
        assert reasons[twin] == "gap_cut"
        assert len(r["negatives"]) == 5  # the window below the gap still fills the quota
    # the calibration replay of the same setting, on a calibration run's record, keeps what the run kept
    ccfg = calibration_config(cfg, cfg.selection.depth, 0)
    rows = list(rich_rows(read_run(run(ccfg, overwrite=True).run_dir)))
    recorded: list[RecordedQuery] = recorded_queries(rows, {r["query_id"]: set() for r in rows})
    assert len(recorded) == len(cut)
    setting = Setting(relative_margin=None, depth=cfg.selection.depth, gap=True)
    by_query = {r["query_id"]: [n["doc_id"] for n in r["negatives"]] for r in cut}
    for q in recorded:
        assert [c.doc_id for c in kept(q, setting, "bm25", 5)] == by_query[q.query_id]
