"""Calibration: hidden-positive folds, replayed settings, the frontier and the recommendation, on recorded
candidates where the right margin is known, then `negforge calibrate` end to end on a small BM25 corpus."""

from __future__ import annotations

import json
import math

import pytest

from negforge.calibration.folds import apply_fold, hide_positives
from negforge.calibration.frontier import choose, evaluate, grid, pareto
from negforge.calibration.replay import (
    RecordedCandidate,
    RecordedQuery,
    Setting,
    kept,
    measure,
    recorded_queries,
    wilson,
)
from negforge.records import Corpus, Query, SkipLog, TrainingInput


def cand(
    doc: str, rank: int, score: float, sim: float | None = None, passed: bool = True
) -> RecordedCandidate:
    return RecordedCandidate(doc, rank, {"dense": score}, sim, passed)


def query(qid: str, hidden_score: float, hidden_rank: int = 1, n_neg: int = 10) -> RecordedQuery:
    """Weakest visible positive at 1.0; the hidden positive at `hidden_score`; negatives at 0.90, 0.88, ..."""
    negs = [cand(f"{qid}-n{i}", i + 1 + (i + 1 >= hidden_rank), 0.90 - 0.02 * i) for i in range(n_neg)]
    cands = sorted([cand(f"{qid}-h", hidden_rank, hidden_score), *negs], key=lambda c: c.rank)
    return RecordedQuery(qid, {"dense": [1.2, 1.0]}, tuple(cands), frozenset({f"{qid}-h"}))


def test_a_hidden_positive_inside_the_margin_is_dropped_and_one_outside_leaks():
    q = query("q", 0.97)  # 3% under the weakest positive
    assert kept(q, Setting(relative_margin=None), "dense", 5)[0].doc_id == "q-h"
    assert "q-h" in [c.doc_id for c in kept(q, Setting(relative_margin=0.02), "dense", 5)]
    ks = kept(q, Setting(relative_margin=0.05), "dense", 5)
    assert [c.doc_id for c in ks] == ["q-n0", "q-n1", "q-n2", "q-n3", "q-n4"]
    # a similarity cap drops what the margin lets through; a dropped-by-sanity candidate never comes back
    q2 = RecordedQuery("q2", {"dense": [1.0]}, (cand("h", 1, 0.5, sim=0.97), cand("x", 2, 0.4, passed=False)),
                       frozenset({"h"}))  # fmt: skip
    assert kept(q2, Setting(relative_margin=0.05), "dense", 5)[0].doc_id == "h"
    assert kept(q2, Setting(relative_margin=0.05, max_positive_sim=0.9), "dense", 5) == []


def test_the_recommendation_is_the_gentlest_margin_that_stops_the_leak_at_full_fill():
    qs = [query(f"q{i}", 0.97) for i in range(20)]
    settings = grid(relative_margins=(None, 0.0, 0.02, 0.05, 0.1, 0.3), max_positive_sims=(None,),
                    depths=(30,), gap=(False,))  # fmt: skip
    cal = evaluate(qs, settings, "dense", 5, fill_target=0.95)
    by = {r.setting.relative_margin: r for r in cal.results}
    assert by[None].leak == 1.0 and by[0.02].leak == 1.0 and by[0.05].leak == 0.0
    assert by[0.05].fill == 1.0 and by[0.3].fill == 0.0  # 0.3 drops every negative above 0.70: too few left
    assert (
        cal.recommended is not None and cal.recommended.setting.relative_margin == 0.05 and cal.meets_target
    )
    assert by[0.05].leak_ci[0] == 0.0 and 0.0 < by[0.05].leak_ci[1] < 0.2  # Wilson, 0 of 20
    assert [r.setting.relative_margin for r in cal.frontier] == [0.05]  # dominates the rest


def test_without_a_setting_that_fills_the_best_filling_is_recommended_and_flagged():
    qs = [query(f"q{i}", 0.97, n_neg=3) for i in range(4)]  # never 5 negatives
    cal = evaluate(qs, grid(max_positive_sims=(None,), depths=(30,), gap=(False,)), "dense", 5, 0.95)
    assert not cal.meets_target and cal.recommended is not None


def test_pareto_keeps_only_undominated_points():
    qs = [query("a", 0.97), query("b", 0.5, hidden_rank=11)]
    res = [measure(qs, s, "dense", 5) for s in grid(max_positive_sims=(None,), depths=(30,), gap=(False,))]
    front = pareto(res)
    for r in front:
        assert not any(o.leak < r.leak and o.fill >= r.fill for o in res)
    assert choose(res, 0.95).recommended in res


def test_depth_and_skip_top_bound_the_window():
    q = query("q", 0.2, hidden_rank=8)
    assert "q-h" in [c.doc_id for c in kept(q, Setting(relative_margin=0.05, depth=10), "dense", 10)]
    assert "q-h" not in [c.doc_id for c in kept(q, Setting(relative_margin=0.05, depth=5), "dense", 10)]
    assert kept(q, Setting(relative_margin=0.05, depth=5, skip_top=3), "dense", 10)[0].rank == 4


def test_wilson_interval():
    lo, hi = wilson(5, 100)
    assert lo == pytest.approx(0.0215, abs=1e-3) and hi == pytest.approx(0.1118, abs=1e-3)
    assert all(math.isnan(x) for x in wilson(0, 0))


def test_recorded_queries_read_rich_rows():
    row = {
        "query_id": "q1",
        "positive_scores": {"dense": [0.8], "bm25": [], "hybrid": [0.9]},
        "negatives": [{"doc_id": "d2", "rank": 2, "scores": {"dense": 0.5, "hybrid": 0.6},
                       "filter_scores": {"sim_positive": 0.4}},
                      {"doc_id": None, "rank": 0, "scores": {}, "source": "llm"}],
        "dropped": [{"doc_id": "d1", "rank": 1, "scores": {"dense": 0.79, "hybrid": 0.95}, "filter_scores": {},
                     "filter": "selection"},
                    {"doc_id": "d3", "rank": 3, "scores": {"dense": 0.3}, "filter_scores": {}, "filter": "sanity"}],
    }  # fmt: skip
    [q] = recorded_queries([row, {**row, "query_id": "other"}], {"q1": {"d1"}})
    assert [c.doc_id for c in q.candidates] == ["d1", "d2", "d3"]
    # the calibration run applies no margin, so a selection drop there (max_score) is not one a setting undoes
    assert [c.passed_filters for c in q.candidates] == [False, True, False]
    assert q.positive_scores == {"dense": [0.8], "hybrid": [0.9]} and q.hidden == {"d1"}
    assert q.candidates[1].sim_positive == 0.4


def _data(n_queries: int = 6) -> TrainingInput:
    ids = [f"d{i}" for i in range(20)]
    corpus = Corpus(ids, [f"text {i}" for i in ids])
    qs = [Query(f"q{i}", f"query {i}", (i, i + 1, i + 2) if i % 2 == 0 else (i,)) for i in range(n_queries)]
    return TrainingInput(corpus, qs, SkipLog())


def test_folds_hide_one_positive_of_multi_positive_queries_deterministically():
    data = _data()
    folds = hide_positives(data.queries, 3, seed=13)
    assert folds == hide_positives(data.queries, 3, seed=13)
    assert all(set(f.hidden) == {"q0", "q2", "q4"} for f in folds)  # single-positive queries left out
    assert len({f.hidden["q0"] for f in folds}) == 3  # a different positive each fold while it has some
    fd = apply_fold(data, folds[0])
    assert [q.id for q in fd.queries] == ["q0", "q2", "q4"] and data.queries[0].positive_rows == (0, 1, 2)
    for q in fd.queries:
        assert folds[0].hidden[q.id] not in q.positive_rows and len(q.positive_rows) == 2
    with pytest.raises(ValueError, match="folds"):
        hide_positives(data.queries, 0, 1)


# ------------------------------------------------------------------------------------------ end to end


def _write_beir(root, n: int = 24) -> None:
    """n queries about distinct topics; each has a positive and a hidden twin (the same words reordered:
    it scores like the positive), and 12 off-topic-ish negatives sharing one topic word."""
    root.mkdir(parents=True)
    docs, queries, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for i in range(n):
        topic = f"alpha{i} beta{i} gamma{i} delta{i}"
        queries.append({"_id": f"q{i}", "text": f"alpha{i} beta{i} gamma{i}"})
        docs.append(
            {
                "_id": f"p{i}",
                "title": "",
                "text": f"{topic} study of alpha{i} beta{i} gamma{i} effects in cells",
            }
        )
        docs.append(
            {
                "_id": f"h{i}",
                "title": "",
                "text": f"effects in cells of alpha{i} beta{i} gamma{i}: {topic} study",
            }
        )
        qrels += [f"q{i}\tp{i}\t1", f"q{i}\th{i}\t1"]
        for j in range(12):
            docs.append(
                {
                    "_id": f"n{i}-{j}",
                    "title": "",
                    "text": f"alpha{i} " + " ".join(f"w{i}x{j}y{k}" for k in range(9 + j)),
                }
            )
    (root / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in docs) + "\n")
    (root / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (root / "qrels").mkdir()
    (root / "qrels" / "train.tsv").write_text("\n".join(qrels) + "\n")


def test_calibrate_command_recommends_a_margin_that_stops_the_known_leak(tmp_path):
    from typer.testing import CliRunner

    from negforge.cli import app
    from negforge.config import load_config

    _write_beir(tmp_path / "data")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "run_name: cal\nseed: 13\ndata: {format: beir, path: data, split: train}\n"
        "sources: {bm25: {enabled: true}, dense: {enabled: false}}\n"
        "selection: {num_negatives: 5, depth: 30, relative_margin: null}\n"
        f"output: {{dir: {tmp_path / 'runs'}}}\ncache_dir: {tmp_path / 'cache'}\n"
    )
    written = tmp_path / "calibrated.yaml"
    res = CliRunner().invoke(app, ["calibrate", str(cfg), "--folds", "2", "--write", str(written)])
    assert res.exit_code == 0, res.output
    assert "recommended:" in res.output and "meets the 95% fill target" in res.output
    lines = {ln.split()[0]: ln for ln in res.output.splitlines() if ln.startswith(("recommended", "config"))}
    assert float(lines["config"].split()[1]) > 50.0  # no margin: most hidden twins come back as negatives
    assert float(lines["recommended"].split()[1]) == 0.0
    back = load_config(written)
    rec = lines["recommended"]  # a margin or the gap cut: whichever the grid chose is what was written
    assert ("gap_cut" in rec) == back.selection.gap_cut
    assert back.selection.gap_cut or (back.selection.relative_margin or 0) > 0
    assert (tmp_path / "calibrated.png").stat().st_size > 1000


def test_calibrate_refuses_single_positive_data_and_says_what_to_do(tmp_path):
    from typer.testing import CliRunner

    from negforge.cli import app

    _write_beir(tmp_path / "data", n=4)
    qrels = tmp_path / "data" / "qrels" / "train.tsv"
    qrels.write_text("\n".join(ln for ln in qrels.read_text().splitlines() if "\th" not in ln) + "\n")
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "run_name: cal\ndata: {format: beir, path: data, split: train}\n"
        "sources: {bm25: {enabled: true}, dense: {enabled: false}}\n"
        f"output: {{dir: {tmp_path / 'runs'}}}\ncache_dir: {tmp_path / 'cache'}\n"
    )
    res = CliRunner().invoke(app, ["calibrate", str(cfg)])
    assert res.exit_code == 2 and "two or more positives" in res.output and "llm_judge" in res.output


def _run_config(tmp_path, margin: str = "auto", estimate: bool = True):
    from negforge.config import load_config

    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        "run_name: auto\nseed: 13\ndata: {format: beir, path: data, split: train}\n"
        "sources: {bm25: {enabled: true}, dense: {enabled: false}}\n"
        f"selection: {{num_negatives: 5, depth: 30, relative_margin: {margin}, "
        f"calibration: {{estimate: {str(estimate).lower()}}}}}\n"
        f"output: {{dir: {tmp_path / 'runs'}}}\ncache_dir: {tmp_path / 'cache'}\n"
    )
    return load_config(cfg)


def test_relative_margin_auto_is_chosen_in_the_run_recorded_and_cached(tmp_path):
    from negforge.pipeline import run

    _write_beir(tmp_path / "data")
    res = run(_run_config(tmp_path))
    m = res.manifest
    cal = m["calibration"]
    # the hidden twins score like the positive: the gentlest margin that stops them at full fill wins
    assert cal["chosen_relative_margin"] == 0.02 and m["config"]["selection"]["relative_margin"] == 0.02
    assert cal["recommended"]["leak"] == 0.0 and cal["recommended"]["fill"] >= 0.95 and not cal["cached"]
    assert cal["queries"] == 24 and cal["folds"] == 2 and cal["estimate"]["hidden"] == 48
    assert any(n.startswith("relative_margin auto: 0.02") for n in m["notes"])
    assert m["outscoring"]["share"] == 0.0  # the margin keeps every kept negative below its positive
    report = (res.run_dir / "report.md").read_text()
    assert "False negatives" in report and "relative_margin auto" in report
    again = run(_run_config(tmp_path), overwrite=True)
    assert again.manifest["calibration"]["cached"] is True
    assert again.manifest["calibration"]["chosen_relative_margin"] == 0.02


def test_every_run_estimates_its_own_leak_when_the_data_allows(tmp_path):
    from negforge.pipeline import run

    _write_beir(tmp_path / "data")
    m = run(_run_config(tmp_path, margin="null")).manifest
    est = m["calibration"]["estimate"]
    assert est["relative_margin"] is None and est["leak"] > 0.5  # no margin: the twins leak
    lo, hi = est["leak_ci"]
    assert lo <= est["leak"] <= hi and m["calibration"]["recommended"] is None
    _write_beir(tmp_path / "off" / "data")
    assert run(_run_config(tmp_path / "off", margin="null", estimate=False)).manifest["calibration"] is None
