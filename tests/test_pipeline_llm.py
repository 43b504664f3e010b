"""The LLM source inside a build, with FaultyOpenAIServerDouble as the endpoint (its faults are the point):
provenance in `rich`, none in trainer configs, and a run that loses its server resumes without loss."""

import pytest
from datasets import load_from_disk

from negforge.generators.synthesize import GenerationFailed
from negforge.pipeline import run
from tests.fault_server import FaultyOpenAIServerDouble


def llm_overrides(url: str, *extra: str) -> list[str]:
    """The LLM plumbing under test; margins and filters off (the double's passages are word-reversed copies
    of the positive, which the default margin and embedding filter rightly drop: tested in test_identity)."""
    return [
        "filters=[]",
        "selection.relative_margin=null",
        "sources.llm.enabled=true",
        f"sources.llm.base_urls=[{url}]",
        "sources.llm.model=double",
        "sources.llm.count=2",
        "sources.llm.max_retries=0",
        "selection.num_negatives=3",
        *extra,
    ]


def test_synthetic_negatives_carry_provenance_and_stay_out_of_trainer_columns(make_config):
    with FaultyOpenAIServerDouble() as srv:
        res = run(make_config(*llm_overrides(srv.base_url)))
    dd = load_from_disk(str(res.dataset_dir))
    for row in dd["rich"]:
        llm = [n for n in row["negatives"] if n["source"] == "llm"]
        assert len(llm) == 2 and len(row["negatives"]) == 5
        for n in llm:
            g = n["generation"]
            assert n["doc_id"] is None and n["scores"]["dense"] is not None
            assert g["mode"] == "rewrite" and g["base_doc_id"] == row["negatives"][0]["doc_id"]
            assert g["template"] == "syneg_rewrite" and g["template_version"] == "1" and g["template_sha"]
            assert g["perturbation"] and g["perturbation_kind"] in ("not_answering", "contradicting")
            assert g["reasoning"] and g["attributes"]["domain"] and g["seed"] is not None
            assert g["model"] == "double" and g["model_fingerprint"].startswith("name:")
            assert g["completion_tokens"] > 0 and g["latency_s"] >= 0 and g["request_key"]
        mined = [n for n in row["negatives"] if n["source"] != "llm"]
        assert all(n["generation"] is None for n in mined)
    assert dd["triplet"].column_names == ["anchor", "positive", "negative"]
    assert dd["n-tuple"].column_names == ["anchor", "positive", *[f"negative_{i}" for i in range(1, 6)]]
    assert "reasoning" not in str(dd["triplet"][0])
    m = res.manifest
    assert m["counts"]["selected"]["llm"] == 24
    assert m["generation"]["counts"]["valid"] == 24 and m["generation"]["counts"]["sent_ok"] == 12
    assert m["generation"]["served_model"] == "double"


def test_a_run_that_loses_its_server_resumes_without_loss_or_duplicates(make_config):
    # 12 queries in shards of 4: the double answers 6 requests, then fails every one. Concurrency 1 keeps the
    # run-wide queue in submission order, so the 6 answers are shard 0's four and two of shard 1's.
    with FaultyOpenAIServerDouble(["ok"] * 6, default="503") as srv:
        cfg = make_config(
            *llm_overrides(srv.base_url, "seed=7", "sources.llm.concurrency=1")
        )  # own seed: the session's store has seed 13's
        with pytest.raises(GenerationFailed, match="rerun to resume"):
            run(cfg)
    shards = cfg.run_dir / "shards"
    assert sorted(p.name for p in shards.glob("shard-*.json")) == ["shard-00000.json"]
    with FaultyOpenAIServerDouble() as srv2:
        res = run(make_config(*llm_overrides(srv2.base_url, "seed=7", "sources.llm.concurrency=1")))
    assert len(srv2.requests) == 6  # 4 went into shard 0, 2 more were stored before the failure
    assert res.manifest["shards"] == {"total": 3, "reused": 1, "written": 2}
    rows = load_from_disk(str(res.dataset_dir))["rich"]
    assert len({r["query_id"] for r in rows}) == rows.num_rows == 12
    assert all(sum(n["source"] == "llm" for n in r["negatives"]) == 2 for r in rows)


def test_replies_in_a_code_fence_are_recovered_and_counted_in_the_manifest(make_config):
    # a server that ignores response_format: every reply is fenced JSON between two sentences of prose
    with FaultyOpenAIServerDouble(default="fenced") as srv:
        res = run(make_config(*llm_overrides(srv.base_url, "seed=11", "run_name=fenced")))
    gen = res.manifest["generation"]
    assert gen["counts"]["recovered"] == gen["counts"]["sent_ok"] == 12
    assert gen["counts"]["valid"] == 24 and not gen["rejected"]
    rows = load_from_disk(str(res.dataset_dir))["rich"]
    assert all(sum(n["source"] == "llm" for n in r["negatives"]) == 2 for r in rows)


def test_secret_key_never_reaches_outputs(make_config, monkeypatch):
    monkeypatch.setenv("NEGFORGE_LLM_API_KEY", "sk-very-secret-123")
    with FaultyOpenAIServerDouble() as srv:
        res = run(make_config(*llm_overrides(srv.base_url), "run_name=secret"))
    for path in res.run_dir.rglob("*"):
        if path.is_file():
            assert b"sk-very-secret-123" not in path.read_bytes(), path


def test_one_queue_keeps_the_server_busy_across_shards(make_config):
    """Shards of 2 queries, concurrency 6: a per-shard design never has more than 2 requests in flight; the
    run-wide queue keeps 6 busy, and a re-ask goes out while the other items are still generating."""
    with FaultyOpenAIServerDouble(script=["bad_content"], delay=0.4) as srv:
        res = run(
            make_config(
                *llm_overrides(srv.base_url, "seed=21", "run_name=queue"),
                "output.shard_size=2",
                "sources.llm.concurrency=6",
                "sources.llm.count=1",
            )
        )
    assert srv.max_active == 6
    gen = res.manifest["generation"]
    assert gen["counts"]["requests"] == 13 and gen["counts"]["reasks"] == 1  # 12 queries, one re-asked
    assert gen["this_run"]["sent_ok"] == 13
    assert len(srv.requests) == 13  # the shard pass read every answer from the store: nothing sent twice
    assert res.manifest["counts"]["selected"]["llm"] == 12


@pytest.mark.parametrize(("lookahead", "mined_at_first_answer"), [(2, 2), (None, 6)])
def test_generation_lookahead_bounds_how_far_mining_runs_ahead(make_config, monkeypatch, lookahead,
                                                               mined_at_first_answer):  # fmt: skip
    """Six shards of 2 items: with lookahead 2, the second shard is mined while the first generates and the
    first is handed on before any more are mined; unbounded (default 64 items here), all six are queued
    first. Every shard comes out exactly once either way."""
    import negforge.generators.attach as stage
    from negforge.pipeline import load_data, make_context, prepare_bm25, prepare_dense, prepare_llm
    from negforge.run_store.shards import plan_shards
    from negforge.timing import Timings

    mined: list[int] = []
    real_mine = stage.mine_queries

    def spy_mine(ctx, qidx):  # a spy, not a stub: the real mining, counted
        mined.append(qidx[0])
        return real_mine(ctx, qidx)

    monkeypatch.setattr(stage, "mine_queries", spy_mine)
    with FaultyOpenAIServerDouble(delay=0.2) as srv:
        cfg = make_config(
            *llm_overrides(
                srv.base_url, "sources.llm.count=1", "sources.llm.concurrency=1", "sources.llm.max_reasks=0"
            )
        )
        t = Timings()
        data = load_data(cfg, t)
        dense, qemb = prepare_dense(cfg, data, t)
        ctx = make_context(cfg, data, prepare_bm25(cfg, data, t), dense, qemb, t)
        llm = prepare_llm(cfg, t)
        shards = plan_shards(len(data.queries), 2)
        try:
            out, at_first = [], None
            for i, gen in stage.pregenerate(ctx, llm, shards, list(range(6)), lookahead=lookahead):
                at_first = len(mined) if at_first is None else at_first
                out.append(i)
                assert gen["counts"]["requests"] == 2
        finally:
            llm.close()
    assert at_first == mined_at_first_answer
    assert sorted(out) == list(range(6)) and len(mined) == 6
