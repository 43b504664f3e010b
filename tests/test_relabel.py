"""Relabel instead of drop (RLHN-style): a corpus document a filter judges a likely positive becomes an extra
positive of its query, never one of its negatives, with its evidence, in every trainer config and count."""

from __future__ import annotations

import pytest

from negforge.config import CrossEncoderFilterConfig, load_config
from negforge.filters import FilterStack
from negforge.mixing.mix import mix_query
from negforge.publish.trainer import labeled_pair_table, ntuple_table, training_positives, triplet_table
from negforge.records import Outcome, Query, QueryResult

from .test_filters import POS, CrossEncoderFilterWithInjectedScores, batch, cand


def _ce(on_false_negative: str) -> CrossEncoderFilterWithInjectedScores:
    cfg = CrossEncoderFilterConfig(model="x", max_prob=0.9, on_false_negative=on_false_negative)
    return CrossEncoderFilterWithInjectedScores(cfg, {POS: 2.0, "weak": -1.0, "doc": 3.0, "llm text": 3.0})


def test_only_corpus_documents_judged_positive_are_relabeled_and_only_on_request():
    cands = [
        cand("weak", row=1, doc_id="d1"),
        cand("doc", row=2, doc_id="d2"),
        cand("llm text", source="llm"),
    ]
    outcomes, stats = FilterStack([_ce("relabel")]).run(batch(*cands))
    assert [o.kept for o in outcomes] == [True, False, False]
    assert [o.relabeled for o in outcomes] == [
        False,
        True,
        False,
    ]  # the LLM passage is dropped, not a positive
    assert outcomes[1].reason == "ce_above_max_prob" and outcomes[1].scores["ce_prob"] > 0.9
    assert stats["cross_encoder"].relabeled == {"ce_above_max_prob": 1}
    assert stats["cross_encoder"].rejected == {"ce_above_max_prob": 2}  # still a rejection as a negative

    outcomes, stats = FilterStack([_ce("drop")]).run(batch(*cands))
    assert not any(o.relabeled for o in outcomes) and not stats["cross_encoder"].relabeled


def test_a_relabeled_document_is_never_a_negative_of_its_query(tiny_beir):
    cfg = load_config(None, [f"data.path={tiny_beir}"], mix={"quotas": {"mined": 2}})
    r = QueryResult(Query("q", "query", (0,)), None, {}, [])
    cands = [
        cand("relabeled doc", row=7, doc_id="d7", scores={"hybrid": 0.9}),
        cand("same doc, given as a negative", source="given", row=7, doc_id="d7", scores={"hybrid": 0.8}),
        cand("plain", row=8, doc_id="d8", scores={"hybrid": 0.5}),
    ]
    outcomes = [
        Outcome(False, "cross_encoder", "ce_above_max_prob", relabeled=True),
        Outcome(True),
        Outcome(True),
    ]
    m = mix_query(cfg, r, cands, outcomes)
    assert [c.doc_id for c, _ in m.negatives] == ["d8"]
    assert [(c.doc_id, o.reason) for c, o in m.relabeled] == [("d7", "ce_above_max_prob")]
    assert [(c.source, o.filter, o.reason) for c, o in m.dropped] == [
        ("given", "mixer", "relabeled_positive")
    ]


ROW = {
    "query": "q",
    "positives": ["p0"],
    "positive_scores": {"dense": [0.9], "bm25": None, "hybrid": None},
    "negatives": [
        {"text": "n1", "scores": {"dense": 0.5}, "filter_scores": {}},
        {"text": "n2", "scores": {"dense": 0.4}, "filter_scores": {}},
    ],
    "relabeled_positives": [{"text": "r1", "doc_id": "d9", "scores": {"dense": 0.8}, "filter_scores": {}}],
}


def test_trainer_configs_train_on_relabeled_positives():
    assert training_positives(ROW) == ["p0", "r1"]
    t = triplet_table([ROW], "dense", with_label=True).to_pylist()
    assert [(x["positive"], x["negative"]) for x in t] == [
        ("p0", "n1"),
        ("p0", "n2"),
        ("r1", "n1"),
        ("r1", "n2"),
    ]
    assert [round(x["label"], 4) for x in t] == [0.4, 0.5, 0.3, 0.4]  # score(pos) - score(neg), relabeled too
    nt, short = ntuple_table([ROW], 2, None, with_label=False)
    assert short == 0 and nt.column("positive").to_pylist() == ["p0", "r1"]
    pairs = {(x["passage"], x["label"]) for x in labeled_pair_table([ROW]).to_pylist()}
    assert {("r1", 1), ("n1", 0)} <= pairs and ("r1", 0) not in pairs


@pytest.fixture(scope="module")
def relabel_runs(tiny_beir, cache_dir, tmp_path_factory, fresh_cross_encoder):
    """The same run twice, the cross-encoder's likely positives dropped in one and relabeled in the other."""
    from negforge.pipeline import run

    out = {}
    for mode in ("drop", "relabel"):
        cfg = load_config(
            None,
            [
                f"data.path={tiny_beir}",
                f"cache_dir={cache_dir}",
                f"output.dir={tmp_path_factory.mktemp(mode)}",
                "output.shard_size=4",
                "selection.depth=12",
                "output.formats=[rich,triplet]",
            ],
            filters=[
                {"type": "duplicate"},
                {
                    "type": "cross_encoder",
                    "model": fresh_cross_encoder,
                    "max_prob": None,
                    "calibrate_quantile": 0.5,  # candidates scoring like the median positive or above
                    "on_false_negative": mode,
                },
            ],
        )
        out[mode] = run(cfg)
    return out


def test_relabel_keeps_what_drop_throws_away_as_positives(relabel_runs):
    from datasets import load_from_disk

    rich = {
        m: {r["query_id"]: r for r in load_from_disk(str(res.dataset_dir))["rich"]}
        for m, res in relabel_runs.items()
    }
    total = 0
    for qid, row in rich["relabel"].items():
        relabeled = {p["doc_id"] for p in row["relabeled_positives"]}
        dropped_by_ce = {d["doc_id"] for d in rich["drop"][qid]["dropped"] if d["filter"] == "cross_encoder"}
        assert relabeled == dropped_by_ce  # the same judgement, a different fate
        assert relabeled.isdisjoint(n["doc_id"] for n in row["negatives"])
        assert relabeled.isdisjoint(d["doc_id"] for d in row["dropped"] if d["filter"] != "mixer")
        assert relabeled.isdisjoint(row["positive_ids"])
        for p in row["relabeled_positives"]:  # the evidence travels with it
            assert p["filter"] == "cross_encoder" and p["reason"] == "ce_scores_like_positive"
            assert p["text"] and p["filter_scores"]["ce_score"] is not None
        total += len(relabeled)
        assert not rich["drop"][qid]["relabeled_positives"]
    assert total > 0
    m = relabel_runs["relabel"].manifest
    assert m["counts"]["relabeled_positives"] == total
    assert m["filters"]["verdicts"]["relabeled/cross_encoder/ce_scores_like_positive"] == total
    assert relabel_runs["drop"].manifest["counts"]["relabeled_positives"] == 0
    # every candidate ends in exactly one place: a negative, dropped, or relabeled
    placed = sum(
        len(r["negatives"]) + len(r["dropped"]) + len(r["relabeled_positives"])
        for r in rich["relabel"].values()
    )
    assert sum(m["filters"]["verdicts"].values()) == placed

    triplets = load_from_disk(str(relabel_runs["relabel"].dataset_dir))["triplet"]
    pairs = set(zip(triplets["anchor"], triplets["positive"], strict=True))
    some = next(r for r in rich["relabel"].values() if r["relabeled_positives"])
    assert (some["query"], some["relabeled_positives"][0]["text"]) in pairs


def test_every_other_copy_of_a_relabeled_document_is_dropped(tiny_beir):
    cfg = load_config(None, [f"data.path={tiny_beir}"], mix={"quotas": {"mined": 3}})
    r = QueryResult(Query("q", "query", (0,)), None, {}, [])
    cands = [
        cand("the document", row=7, doc_id="d7", scores={"hybrid": 0.9}),
        cand(
            "the document", source="bm25", row=7, doc_id="d7", scores={"hybrid": 0.9}
        ),  # no duplicate filter ran
        cand("The document!", row=9, doc_id="d9-copy", scores={"hybrid": 0.8}),  # same text under another id
        cand("plain", row=8, doc_id="d8", scores={"hybrid": 0.5}),
    ]
    judged = Outcome(False, "cross_encoder", "ce_above_max_prob", relabeled=True)
    m = mix_query(cfg, r, cands, [judged, judged, Outcome(True), Outcome(True)])
    assert [c.doc_id for c, _ in m.relabeled] == ["d7"]
    assert sorted((c.doc_id, o.reason) for c, o in m.dropped) == [
        ("d7", "relabeled_positive"),
        ("d9-copy", "relabeled_positive"),
    ]
    assert [c.doc_id for c, _ in m.negatives] == ["d8"]


def test_a_per_source_relabel_setting_applies_to_its_source_only():
    from negforge.filters.scoped import SourceScopedFilter

    scoped = SourceScopedFilter(_ce("drop"), {"bm25": _ce("relabel")}, None)
    cands = [cand("doc", source="dense", row=2, doc_id="d2"), cand("doc", source="bm25", row=3, doc_id="d3")]
    outcomes, _ = FilterStack([scoped]).run(batch(*cands))
    assert [o.relabeled for o in outcomes] == [False, True]


def test_a_relabeled_positive_without_a_score_leaves_the_input_positives_labeled():
    row = {**ROW, "relabeled_positives": [{"text": "r1", "doc_id": "d9", "scores": {}, "filter_scores": {}}]}
    labels = [x["label"] for x in triplet_table([row], "dense", with_label=True).to_pylist()]
    assert [round(x, 4) for x in labels[:2]] == [0.4, 0.5] and labels[2:] == [None, None]
