"""The mixer (quotas, fallback, no duplicates across sources) and a whole run with a filter stack:
every candidate ends with a verdict, the manifest funnel adds up, the report and curriculum configs exist."""

from __future__ import annotations

import json

import pytest

from negforge.config import load_config
from negforge.mixing.mix import mix_query
from negforge.records import FilterCandidate, Outcome, Query, QueryResult


def _cfg(tiny_beir, **mix):
    return load_config(None, [f"data.path={tiny_beir}", "sources.llm.enabled=true"], mix=mix)


def _c(text, source, score=0.5):
    doc_id = None if source == "llm" else text
    return FilterCandidate(
        qi=0, text=text, source=source, doc_id=doc_id, scores={"hybrid": score}, sources=[source]
    )


def test_quotas_fallback_and_cross_source_duplicates(tiny_beir):
    cfg = _cfg(tiny_beir, quotas={"llm": 2, "dense": 2, "bm25": 2}, fallback=["dense", "bm25", "llm"])
    r = QueryResult(Query("q", "query", (0,)), None, {}, [], llm_asked=True)
    cands = [
        _c("bm25 one", "bm25", 0.9),
        _c("dense one", "dense", 0.8),
        _c("dense two", "dense", 0.7),
        _c("dense three", "dense", 0.6),
        _c("dense four", "dense", 0.5),
        _c("Dense ONE!", "llm"),  # the same text as a dense one: must not be mixed twice
        _c("llm two", "llm"),
        _c("llm three", "llm"),
    ]
    outcomes = [Outcome(True) for _ in cands]
    outcomes[3] = Outcome(False, "sanity", "too_short")
    m = mix_query(cfg, r, cands, outcomes)
    negs, dropped, short = m.negatives, m.dropped, m.short
    texts = [c.text for c, _ in negs]
    assert texts == ["dense one", "dense two", "bm25 one", "llm two", "llm three", "dense four"]
    assert not short
    reasons = {c.text: (o.filter, o.reason) for c, o in dropped}
    assert reasons == {
        "dense three": ("sanity", "too_short"),
        "Dense ONE!": ("mixer", "duplicate_text"),
    }
    assert dict(next(o for c, o in dropped if c.text == "Dense ONE!").scores) == {"duplicate_of": "dense one"}


def test_ntuple_width_follows_quotas_or_the_classic_counts(tiny_beir):
    from negforge.mixing.mix import ntuple_width

    assert ntuple_width(_cfg(tiny_beir, quotas={"dense": 3, "bm25": 2, "llm": 1})) == 6
    classic = load_config(None, [f"data.path={tiny_beir}", "sources.random.enabled=true"])
    assert ntuple_width(classic) == 5 + 1
    some_llm = load_config(
        None, [f"data.path={tiny_beir}", "sources.llm.enabled=true", "sources.llm.fraction=0.5"]
    )
    assert ntuple_width(some_llm) == 5  # most queries have no synthetic one: the width counts mined ones


def test_llm_quota_only_where_asked_and_short_when_all_run_out(tiny_beir):
    cfg = _cfg(tiny_beir, quotas={"llm": 1, "mined": 2}, fallback=["mined"])
    r = QueryResult(Query("q", "query", (0,)), None, {}, [], llm_asked=False)
    m = mix_query(cfg, r, [_c("a", "bm25", 0.9)], [Outcome(True)])
    negs, dropped, short = m.negatives, m.dropped, m.short
    assert [c.text for c, _ in negs] == ["a"] and short and not dropped
    # a query not picked for the LLM still ends with the configured total: mined ones fill the LLM slot
    three = [_c("a", "bm25", 0.9), _c("b", "dense", 0.8), _c("c", "dense", 0.7), _c("d", "dense", 0.6)]
    m = mix_query(cfg, r, three, [Outcome(True)] * 4)
    negs, short = m.negatives, m.short
    assert [c.text for c, _ in negs] == ["a", "b", "c"] and not short


@pytest.fixture(scope="module")
def filtered_run(tiny_beir, cache_dir, tmp_path_factory, minilm_path):
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    ce = tmp_path_factory.mktemp("ce")
    CrossEncoder(minilm_path, num_labels=1).save(str(ce))
    out = tmp_path_factory.mktemp("runs")
    cfg = load_config(
        None,
        [
            f"data.path={tiny_beir}",
            f"cache_dir={cache_dir}",
            f"output.dir={out}",
            "output.shard_size=4",
            "selection.depth=12",
            "selection.relative_margin=0.02",
            "sources.random.enabled=true",
            "curriculum.enabled=true",
            "curriculum.score=ce_prob",
            "output.formats=[rich,triplet,n-tuple,labeled-pair,labeled-list]",
        ],
        filters=[
            {"type": "sanity", "languages": ["en"]},
            {"type": "duplicate"},
            {"type": "embedding", "max_positive_sim": 0.8},
            {"type": "cross_encoder", "model": str(ce), "max_prob": None, "calibrate_quantile": 0.9},
        ],
        mix={"quotas": {"dense": 2, "bm25": 2, "random": 1}},
    )
    from negforge.pipeline import run

    return cfg, run(cfg)


def test_every_candidate_has_a_verdict_and_the_funnel_adds_up(filtered_run):
    from datasets import load_from_disk

    _, res = filtered_run
    rich = load_from_disk(str(res.dataset_dir))["rich"]
    allowed = {"selection", "sanity", "duplicate", "embedding", "cross_encoder", "mixer"}
    total = kept = 0
    for row in rich:
        texts = [n["text"] for n in row["negatives"]]
        assert len(texts) == len(set(texts))
        assert set(row["positive_ids"]).isdisjoint({n["doc_id"] for n in row["negatives"]})
        assert len(texts) <= 5 and (row["short"] or len(texts) == 5)
        for n in row["negatives"]:
            assert n["filter_scores"]["ce_prob"] is not None and n["filter_scores"]["sim_positive"] < 0.8
            assert n["difficulty"] in ("easy", "medium", "hard")
        for d in row["dropped"]:
            assert d["filter"] in allowed and d["reason"]
            assert d["doc_id"] is not None and d["text"] is None  # corpus texts not stored by default
        total += len(row["negatives"]) + len(row["dropped"])
        kept += len(row["negatives"])
    m = res.manifest
    f = m["filters"]
    assert sum(f["verdicts"].values()) == total
    assert f["verdicts"]["kept/mixed"] == kept
    funnel = {r["source"]: r for r in f["funnel"]}
    assert sum(r["candidates"] for r in funnel.values()) == total
    assert sum(r["mixed"] for r in funnel.values()) == kept
    for r in funnel.values():
        steps = [
            r["candidates"],
            r["after_margins"],
            *(r[f"after_{n}"] for n in ("sanity", "duplicate", "embedding", "cross_encoder")),
        ]
        assert steps == sorted(steps, reverse=True)
    names = ["sanity", "duplicate", "embedding", "cross_encoder"]
    for prev, name in zip(["margins", *names], names, strict=False):
        lost = sum(r[f"after_{prev}"] - r[f"after_{name}"] for r in funnel.values())
        rejected = sum(v for k, v in f["verdicts"].items() if k.startswith(name + "/"))
        assert lost == rejected == sum(f["stats"][name]["rejected"].values())
    assert f["verdicts"]["cross_encoder/ce_scores_like_positive"] == f["stats"]["cross_encoder"][
        "rejected"
    ].get("ce_scores_like_positive")
    assert [s["name"] for s in f["stack"]] == ["sanity", "duplicate", "embedding", "cross_encoder"]
    cal = f["stack"][3]["calibration"]
    assert cal["quantile"] == 0.9 and 0 < cal["threshold_prob"] < 1
    assert f["verdicts"].get("cross_encoder/ce_scores_like_positive", 0) > 0


def test_report_curriculum_and_labeled_configs(filtered_run):
    from datasets import load_from_disk

    _, res = filtered_run
    report = (res.run_dir / "report.md").read_text()
    assert "## Funnel" in report and "| source |" in report and "### Dropped: `cross_encoder/" in report
    pngs = sorted(p.name for p in (res.run_dir / "report").glob("*.png"))
    assert "scores_dense.png" in pngs and all(
        (res.run_dir / "report" / p).stat().st_size > 1000 for p in pngs
    )
    dd = load_from_disk(str(res.dataset_dir))
    cur = res.manifest["curriculum"]
    assert cur["score"] == "ce_prob" and len(cur["cuts"]) == 2
    n_pos = {r["query_id"]: len(r["positives"]) for r in dd["rich"]}
    assert sum(cur["counts"].values()) == sum(len(r["negatives"]) for r in dd["rich"])
    for b in ("easy", "medium", "hard"):
        assert dd[f"curriculum-{b}"].column_names == ["anchor", "positive", "negative"]
    assert sum(len(dd[f"curriculum-{b}"]) for b in ("easy", "medium", "hard")) == len(dd["triplet"])
    # n-tuple width is the quotas' total (dense 2 + bm25 2 + random 1), not num_negatives + random.count:
    # every fully served query is a row, short ones are left out and counted
    nt = dd["n-tuple"]
    assert nt.column_names[-1] == "negative_5" and "negative_6" not in nt.column_names
    full = [r for r in dd["rich"] if not r["short"]]
    assert full and nt.num_rows == sum(n_pos[r["query_id"]] for r in full)
    lp = dd["labeled-pair"]
    assert sum(lp["label"]) == sum(n_pos.values())
    ll = dd["labeled-list"][0]
    assert len(ll["docs"]) == len(ll["labels"]) and ll["labels"][0] == 1
    saved = json.loads(res.manifest_path.read_text())
    assert saved["outputs"]["report"].endswith("report.md")


def test_a_model_retrained_in_place_invalidates_finished_shards(make_config, minilm_path, tmp_path):
    """Same path, new weights: the run identity changes, so every shard is judged again (never reused)."""
    import shutil

    from negforge.pipeline import run

    ce = tmp_path / "ce"
    shutil.copytree(minilm_path, ce)
    filters = [{"type": "cross_encoder", "model": str(ce), "max_prob": None}]
    cfg = make_config("run_name=inplace", "sources.dense.enabled=false", filters=filters)
    from negforge.run_store.identity import model_identities

    before = model_identities(cfg)
    run_dir = None
    import torch
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    CrossEncoder(minilm_path, num_labels=1).save(str(ce))
    first = run(cfg)
    run_dir = first.run_dir
    torch.manual_seed(1)
    CrossEncoder(minilm_path, num_labels=1).save(str(ce))  # retrained in place
    after = model_identities(cfg)
    assert (
        before != after
        and after["filter:cross_encoder"] != first.manifest["filters"]["stack"][0]["model_fingerprint"]
    )
    again = run(cfg)
    assert again.manifest["shards"]["reused"] == 0 and again.run_dir == run_dir
    assert any("models changed" in n and "filter:cross_encoder" in n for n in again.manifest["notes"])
    assert again.manifest["filters"]["stack"][0]["model_fingerprint"] == after["filter:cross_encoder"]
