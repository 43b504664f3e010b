"""Domain adaptation (negforge adapt): corpus-only input errors, few-shot files, query checks, query writing
against FaultyOpenAIServerDouble (stored, resumed, broken and empty replies counted), the round-trip
consistency filter on known cases, and adapt end to end on the tiny corpus through the CLI and the flow.
Real query writing with SmolLM2 on vLLM is in tests/test_vllm_real.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from datasets import load_from_disk
from typer.testing import CliRunner

from negforge.adapt.consistency import apply_consistency, round_trip_ranks, rrf
from negforge.adapt.inputs import load_corpus_only, read_fewshot, sample_passages
from negforge.adapt.querygen import (
    BUILTIN_EXAMPLES,
    GeneratedQuery,
    QueryGenFailed,
    check_query,
    dedupe_queries,
    generate_queries,
    mean_query_logprob,
)
from negforge.cli import app
from negforge.config import BM25Config, ConfigError, DataConfig, LLMConfig, load_config
from negforge.config.adapt import ConsistencyConfig, QueryGenConfig
from negforge.generators.llm_stage import LLMEndpoint
from negforge.generators.store import GenerationStore
from negforge.mining.bm25 import BM25Miner
from negforge.mining.fingerprint import texts_digest
from negforge.records import Corpus
from negforge.sources import load_input
from negforge.sources.readers import InputError
from negforge.text_identity import word_key
from tests.fault_server import FaultyOpenAIServerDouble

DOCS = [
    ("d0", "Zebrafish regenerate heart muscle after injury through cardiomyocyte proliferation."),
    ("d1", "Statins lower LDL cholesterol and reduce the risk of myocardial infarction in adults."),
    ("d2", "Glacier retreat in the Alps accelerated sharply after 1980 according to satellite records."),
    ("d3", "Honeybee colonies collapse when exposed to neonicotinoid pesticides over several seasons."),
    ("d4", "Quantum dots emit light at wavelengths set by their size, used in display panels."),
    ("d5", "Vitamin D supplements did not reduce the incidence of invasive cancer in older women."),
]


def corpus() -> Corpus:
    return Corpus(ids=[d for d, _ in DOCS], texts=[t for _, t in DOCS])


def endpoint(url: str, store: Path) -> LLMEndpoint:
    return LLMEndpoint(
        [url],
        "double",
        "name:double",
        GenerationStore(store),
        LLMConfig(model="double", max_retries=0, timeout=10),
    )


# --- corpus-only input ------------------------------------------------------------------------------------


def test_a_corpus_alone_is_refused_by_run_with_the_way_forward(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"_id": "a", "text": "x y z"}\n')
    with pytest.raises(InputError, match="negforge adapt"):
        load_input(DataConfig(format="corpus", path=str(tmp_path / "c.jsonl")))


def test_empty_corpus_names_the_file(tmp_path):
    f = tmp_path / "corpus.jsonl"
    f.write_text("")
    with pytest.raises(InputError, match=str(f)):
        load_corpus_only(DataConfig(format="corpus", path=str(f)))
    (tmp_path / "beir").mkdir()
    (tmp_path / "beir" / "corpus.jsonl").write_text('{"_id": "a", "text": ""}\n')
    with pytest.raises(InputError, match="no usable documents"):
        load_corpus_only(DataConfig(format="corpus", path=str(tmp_path / "beir")))


def test_corpus_from_a_beir_folder_and_from_a_saved_dataset(tiny_beir, tmp_path):
    import datasets

    c, skips, origin = load_corpus_only(DataConfig(format="corpus", path=str(tiny_beir)))
    assert len(c) == 200 and origin.endswith("corpus.jsonl") and not skips.counts()
    assert not skips.unread  # BEIR's `metadata` is not read, by design: not reported on every run
    rows = [json.loads(x) for x in (tiny_beir / "corpus.jsonl").read_text().splitlines()][:5]
    rows[2]["text"] = ""  # counted, not silently dropped
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    c2, skips2, _ = load_corpus_only(DataConfig(format="corpus", path=str(tmp_path / "ds")))
    assert c2.ids == [r["_id"] for i, r in enumerate(rows) if i != 2]
    assert skips2.counts() == {"empty_text": 1}


def test_passage_sample_is_seeded_and_bounded():
    c = Corpus(ids=[str(i) for i in range(10)], texts=[f"text {i}" for i in range(10)])
    assert sample_passages(c, 0.5, 13) == sample_passages(c, 5, 13)
    assert len(sample_passages(c, 0.5, 13)) == 5 and sample_passages(c, 5, 13) != sample_passages(c, 5, 14)
    assert sample_passages(c, 10, 1) == list(range(10))
    with pytest.raises(InputError, match=r"adapt.generate.passages=11: the corpus has only 10"):
        sample_passages(c, 11, 13)


def test_fewshot_file_bad_rows_are_named_by_line_and_column(tmp_path):
    good = tmp_path / "good.jsonl"
    good.write_text('{"query": "q one", "passage": "p one"}\n{"query": "q two", "text": "p two"}\n')
    assert [(e.query, e.passage, e.where) for e in read_fewshot(good)] == [
        ("q one", "p one", f"{good}:1"), ("q two", "p two", f"{good}:2"),
    ]  # fmt: skip
    empty = tmp_path / "empty.jsonl"
    empty.write_text('{"query": "q", "passage": "p"}\n{"query": "q2", "passage": "  "}\n')
    with pytest.raises(InputError, match=rf"{empty}:2: column `passage` is empty"):
        read_fewshot(empty)
    typed = tmp_path / "typed.jsonl"
    typed.write_text('{"query": ["a", "b"], "passage": "p"}\n')
    with pytest.raises(InputError, match=rf"{typed}:1.*query"):
        read_fewshot(typed)
    nocol = tmp_path / "nocol.tsv"
    nocol.write_text("question\tpassage\nq\tp\n")
    with pytest.raises(InputError, match=r"nocol.tsv:2: no `query` column"):
        read_fewshot(nocol)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"query": "q", "passage": "p"}\n{"query": "q2", "passage": \n')
    with pytest.raises(InputError, match="broken.jsonl"):
        read_fewshot(broken)
    assert len(read_fewshot(BUILTIN_EXAMPLES)) >= 3  # the built-in InPars examples parse


def test_promptagator_needs_examples_and_paths_resolve_against_the_config(tmp_path):
    cfg = tmp_path / "a.yaml"
    cfg.write_text(yaml.safe_dump({"data": {"format": "corpus", "path": "c.jsonl"},
                                   "adapt": {"generate": {"template": "promptagator"}}}))  # fmt: skip
    with pytest.raises(ConfigError, match="promptagator needs adapt.generate.fewshot"):
        load_config(cfg)
    cfg.write_text(yaml.safe_dump({"data": {"format": "corpus", "path": "c.jsonl"},
                                   "adapt": {"generate": {"template": "promptagator", "fewshot": "ex.jsonl"},
                                             "eval": {"path": "beir"}}}))  # fmt: skip
    c = load_config(cfg)
    assert c.adapt.generate.fewshot == str(tmp_path / "ex.jsonl") and c.adapt.eval.path == str(
        tmp_path / "beir"
    )
    assert c.data.path == "c.jsonl"  # no such file: kept as a dataset name (like format hf)
    (tmp_path / "c.jsonl").write_text("")
    assert load_config(cfg).data.path == str(tmp_path / "c.jsonl")
    cfg.write_text(yaml.safe_dump({"data": {"format": "corpus", "path": "BeIR/scifact-corpus"}}))
    assert load_config(cfg).data.path == "BeIR/scifact-corpus"


# --- query checks ---------------------------------------------------------------------------------------


def test_query_checks_reject_copies_examples_duplicates_and_bad_lengths():
    cfg = QueryGenConfig()
    passage = DOCS[1][1]
    examples = {word_key("does caffeine raise blood pressure")}
    seen = {word_key("statin cholesterol heart attack risk")}
    assert check_query("statins and heart attacks", passage, examples, seen, cfg) == "kept"
    assert check_query("LDL cholesterol", passage, examples, seen, cfg) == "too_short"
    assert check_query("word " * 41, passage, examples, seen, cfg) == "too_long"
    # a verbatim sentence of the passage is a copy; a short verbatim phrase is a keyword query
    assert check_query(passage.upper(), passage, examples, seen, cfg) == "copy_of_passage"
    long_span = "lower LDL cholesterol and reduce the risk of myocardial infarction"
    assert check_query(long_span, passage, examples, seen, cfg) == "copy_of_passage"
    assert check_query("reduce the risk of myocardial infarction", passage, examples, seen, cfg) == "kept"
    assert (
        check_query("Does caffeine raise blood pressure?", passage, examples, seen, cfg) == "copy_of_example"
    )
    assert check_query("Statin, cholesterol: heart-attack risk", passage, examples, seen, cfg) == "duplicate"


def test_mean_query_logprob_reads_only_the_query_tokens():
    toks = [['{"query": "', 0.0], ["statins", -1.0], [" lower", -3.0], ['"}', 0.0]]
    assert mean_query_logprob(toks, "statins lower") == -2.0
    assert mean_query_logprob(toks, "not there") == -1.0  # all tokens when the query is not found
    assert mean_query_logprob(None, "x") is None


# --- query writing with the double ------------------------------------------------------------------------


def test_queries_are_written_stored_and_read_back_on_rerun(tmp_path):
    c = corpus()
    cfg = QueryGenConfig(per_passage=2, max_examples=2)
    with FaultyOpenAIServerDouble() as srv:
        res = generate_queries(c, [0, 2], cfg, endpoint(srv.base_url, tmp_path / "s"), seed=13)
        assert len(srv.requests) == 4
        # requests run concurrently: the server sees them in any order, so read them as a multiset
        for req in srv.requests:
            assert req["logprobs"] is True and req["response_format"]["type"] == "json_schema"
            roles = [m["role"] for m in req["messages"]]
            assert roles == [
                "system",
                "user",
                "assistant",
                "user",
                "assistant",
                "user",
            ]  # 2 examples, the doc
        docs = sorted(
            re.search(r"<document>(.*)</document>", r["messages"][-1]["content"]).group(1)
            for r in srv.requests
        )
        assert docs == sorted([DOCS[0][1]] * 2 + [DOCS[2][1]] * 2)
    # words 2-7 of each passage; the 2nd request per passage writes the same text: a duplicate once deduped
    assert [(q.id, q.status) for q in res.queries] == [
        ("gq-d0-0", "kept"), ("gq-d0-1", "kept"), ("gq-d2-0", "kept"), ("gq-d2-1", "kept"),
    ]  # fmt: skip
    assert dedupe_queries(res.queries) == 2
    assert [q.status for q in res.queries] == ["kept", "duplicate", "kept", "duplicate"]
    assert res.queries[0].extra_passage_ids == []  # a repeat from the same passage adds no positive
    q = res.queries[0]
    assert q.text == " ".join(DOCS[0][1].split()[1:7]) and q.passage_row == 0 and q.mean_logprob == -0.25
    prov = q.provenance()
    assert prov["template"] == "querygen_inpars" and prov["model"] == "double"
    assert prov["model_fingerprint"] == "name:double"
    seeds = {r["seed"] for r in srv.requests} if "seed" in srv.requests[0] else set()
    assert not seeds  # send_seed is off by default (vLLM's CPU build crashes on seeded requests)
    assert len({x.request_key for x in res.queries}) == 4  # every sample has its own key
    with FaultyOpenAIServerDouble(default="500") as down:  # a rerun reads every answer from the store
        again = generate_queries(c, [0, 2], cfg, endpoint(down.base_url, tmp_path / "s"), seed=13)
        assert not down.requests
    assert again.from_store == 4 and [x.text for x in again.queries] == [x.text for x in res.queries]


def test_broken_empty_and_copied_replies_are_counted_and_a_dead_server_resumes(tmp_path):
    c = corpus()
    cfg = QueryGenConfig()
    script = ["bad_content", "empty_query", "copy_query", "ok", "500", "500"]
    with FaultyOpenAIServerDouble(script=script) as srv:
        ep = endpoint(srv.base_url, tmp_path / "s")
        ep.llm = LLMConfig(model="double", max_retries=0, concurrency=1, timeout=10)
        with pytest.raises(QueryGenFailed, match=r"2 of 6 query requests got no answer .*rerun"):
            generate_queries(c, list(range(6)), cfg, ep, seed=13)
    with FaultyOpenAIServerDouble() as srv:
        res = generate_queries(c, list(range(6)), cfg, endpoint(srv.base_url, tmp_path / "s"), seed=13)
        assert len(srv.requests) == 2  # only the two that got no answer
    assert res.counts == {"bad_json": 1, "empty_response": 1, "copy_of_passage": 1, "kept": 3}


def test_a_query_written_for_two_passages_makes_both_its_positives():
    def gq(i: int, text: str, pid: str, status: str = "kept") -> GeneratedQuery:
        return GeneratedQuery(f"q{i}", text, pid, 0, "t", "sha", "m", status, "k")

    qs = [gq(0, "glacier retreat", "d2", "not_found_in_top_k"), gq(1, "Glacier retreat!", "d3"),
          gq(2, "glacier retreat", "d4"), gq(3, "glacier retreat", "d3")]  # fmt: skip
    assert dedupe_queries(qs) == 2
    # the first copy failed the round trip: the next kept one wins, not lost as a duplicate of a dropped query
    assert [q.status for q in qs] == ["not_found_in_top_k", "kept", "duplicate", "duplicate"]
    assert qs[1].extra_passage_ids == ["d4"]


def test_pass_rate_is_the_round_trip_before_the_logprob_filter(tmp_path):
    c = corpus()
    bm25 = BM25Miner(BM25Config(), tmp_path / "cache")
    bm25.prepare(c.texts, texts_digest(c.texts))
    qs = [GeneratedQuery(f"q{i}", DOCS[i][1].split()[0] + " " + DOCS[i][1].split()[1], DOCS[i][0], i, "t", "s",
                         "m", "kept", "k", -0.1 * (i + 1)) for i in range(4)]  # fmt: skip
    rep = apply_consistency(qs, ConsistencyConfig(retriever="bm25", k=1, logprob_keep=0.5), c, bm25)
    assert rep.pass_rate == 1.0 and rep.counts["kept"] == 2 and rep.counts["low_logprob"] == 2


def test_a_query_with_quotes_reads_its_own_logprobs():
    toks = [['{"query": "', 0.0], ['the \\"', -1.0], ['best\\"', -3.0], [' diet"}', 0.0]]
    assert mean_query_logprob(toks, 'the "best" diet') == pytest.approx(-4.0 / 3, abs=1e-4)


# --- consistency ----------------------------------------------------------------------------------------


def test_round_trip_keeps_queries_that_find_their_passage(tmp_path):
    c = corpus()
    bm25 = BM25Miner(BM25Config(), tmp_path / "cache")
    bm25.prepare(c.texts, texts_digest(c.texts))

    def gq(i: int, text: str, row: int, lp: float | None = None) -> GeneratedQuery:
        return GeneratedQuery(f"q{i}", text, c.ids[row], row, "t", "sha", "m", "kept", "k", lp)

    qs = [
        gq(0, "zebrafish heart regeneration", 0, -0.1),
        gq(1, "honeybee colony collapse in the Alps", 2, -0.2),  # written for d2 (glaciers): d3 ranks first
        gq(2, "glacier retreat satellite", 2, -0.9),
        gq(3, "vitamin d invasive cancer", 5),
        gq(4, "volcanic ash aviation", 1),  # no term of d1 at all: not retrieved
    ]
    assert round_trip_ranks(qs, "bm25", 1, bm25) == [1, 2, 1, 1, None]
    rep = apply_consistency(qs, ConsistencyConfig(retriever="bm25", k=1), c, bm25)
    assert [q.status for q in qs] == ["kept", "not_found_in_top_k", "kept", "kept", "not_found_in_top_k"]
    assert rep.judged == 5 and rep.pass_rate == 0.6 and qs[1].consistency_rank == 2
    assert rep.examples["not_found_in_top_k"][0]["query"] == "honeybee colony collapse in the Alps"
    # InPars: keep the top share by mean logprob among the survivors; no logprobs: kept and counted
    rep2 = apply_consistency(qs, ConsistencyConfig(retriever="none", logprob_keep=0.5), c)
    assert [q.status for q in qs] == [
        "kept",
        "not_found_in_top_k",
        "low_logprob",
        "kept",
        "not_found_in_top_k",
    ]
    assert rep2.counts["no_logprobs"] == 1


def test_reciprocal_rank_fusion_orders_by_summed_reciprocal_ranks():
    assert rrf([[3, 1, 2], [1, 3, 5]]) == [1, 3, 2, 5]  # 1 and 3 tie (1/61 + 1/62): by row; then 2, 5
    assert rrf([[7], [7]]) == [7] and rrf([[1, 2], [2, 9]])[0] == 2


# --- end to end -------------------------------------------------------------------------------------------


def _adapt_yaml(tmp_path: Path, tiny_beir: Path, cache_dir: Path, url: str) -> Path:
    cfg = {
        "run_name": "adapt-tiny",
        "cache_dir": str(cache_dir),
        "data": {"format": "corpus", "path": str(tiny_beir)},
        "sources": {"llm": {"model": "double", "base_urls": [url], "max_retries": 0}},
        "selection": {"num_negatives": 2, "depth": 20},
        "output": {"dir": str(tmp_path / "runs"), "shard_size": 4},
        "adapt": {
            "generate": {"passages": 8},
            "consistency": {"retriever": "bm25", "k": 10},
            "train": {"batch_size": 4, "max_steps": 2},
            "eval": {"path": str(tiny_beir), "split": "train"},
        },
    }
    p = tmp_path / "adapt.yaml"
    p.write_text(yaml.safe_dump(cfg))
    return p


def test_adapt_end_to_end_on_the_cli_then_resumes_without_asking_again(tiny_beir, cache_dir, tmp_path):
    runner = CliRunner()
    with FaultyOpenAIServerDouble() as srv:
        cfg = _adapt_yaml(tmp_path, tiny_beir, cache_dir, srv.base_url)
        res = runner.invoke(app, ["adapt", str(cfg), "--no-progress"])
        assert res.exit_code == 0, res.output
        assert len(srv.requests) == 8
    out = tmp_path / "runs" / "adapt-tiny-adapt"
    m = json.loads((out / "adapt.json").read_text())
    assert [s["stage"] for s in m["stages"]] == [
        "load",
        "generate",
        "consistency",
        "mine",
        "train",
        "evaluate",
    ]
    assert m["stages"][0]["corpus"] == 200 and m["stages"][0]["passages"] == 8
    written = [json.loads(x) for x in (out / "queries.jsonl").read_text().splitlines()]
    kept = [w for w in written if w["status"] == "kept"]
    assert len(written) == 8 and kept and m["consistency"]["judged"] == 8
    assert all(w["consistency_rank"] is not None for w in written)
    qrels = (out / "generated" / "qrels" / "train.tsv").read_text().splitlines()[1:]
    assert sorted(x.split("\t")[0] for x in qrels) == sorted(w["id"] for w in kept)
    # the build: every kept query once, its own passage its positive and never a negative
    rich = load_from_disk(str(tmp_path / "runs" / "adapt-tiny" / "dataset"))["rich"].to_list()
    by_id = {w["id"]: w for w in kept}
    assert sorted(r["query_id"] for r in rich) == sorted(by_id)
    for r in rich:
        assert r["positive_ids"] == [by_id[r["query_id"]]["passage_id"]]
        assert by_id[r["query_id"]]["passage_id"] not in {n["doc_id"] for n in r["negatives"]}
    assert (out / "checkpoint" / "negforge_checkpoint.json").is_file()
    ev = {r["row"]: r for r in m["evaluation"]}
    assert set(ev) == {"zero-shot", "adapted"} and ev["adapted"]["queries"] == 12
    assert "adapted: nDCG@10" in res.output and "round-trip (bm25, top 10)" in res.output
    # again: answers from the store, shards and checkpoint reused
    with FaultyOpenAIServerDouble(default="500") as down:
        cfg = _adapt_yaml(tmp_path, tiny_beir, cache_dir, down.base_url)
        res2 = runner.invoke(app, ["adapt", str(cfg), "--no-progress"])
        assert res2.exit_code == 0, res2.output
        assert not down.requests
    m2 = json.loads((out / "adapt.json").read_text())
    assert {s["stage"]: s for s in m2["stages"]}["train"]["reused"] is True
    assert (
        m2["generation"]["from_store"] == 8 and "llm" not in m2
    )  # every answer stored: the LLM never started
    # a changed build (other mining settings) trains again: the old checkpoint does not match its rows
    raw = yaml.safe_load(cfg.read_text())
    raw["selection"]["num_negatives"] = 1
    cfg.write_text(yaml.safe_dump(raw))
    res3 = runner.invoke(app, ["adapt", str(cfg), "--no-progress", "--overwrite", "--no-train"])
    assert res3.exit_code == 0, res3.output
    res4 = runner.invoke(app, ["adapt", str(cfg), "--no-progress"])
    assert res4.exit_code == 0, res4.output
    m4 = json.loads((out / "adapt.json").read_text())
    assert {s["stage"]: s for s in m4["stages"]}["train"]["reused"] is False


def test_adapt_errors_are_clean_on_the_cli(tiny_beir, cache_dir, tmp_path):
    runner = CliRunner()
    cfg = _adapt_yaml(tmp_path, tiny_beir, cache_dir, "http://127.0.0.1:9/v1")
    raw = yaml.safe_load(cfg.read_text())
    raw["adapt"]["generate"]["passages"] = 500
    cfg.write_text(yaml.safe_dump(raw))
    res = runner.invoke(app, ["adapt", str(cfg), "--no-progress"])
    assert (
        res.exit_code == 2 and "adapt.generate.passages=500" in res.output and "Traceback" not in res.output
    )
    raw["adapt"]["generate"]["passages"] = 4
    raw["sources"]["bm25"] = {"enabled": False}
    cfg.write_text(yaml.safe_dump(raw))
    res = runner.invoke(app, ["adapt", str(cfg), "--no-progress"])
    assert res.exit_code == 2 and "needs sources.bm25.enabled=true" in res.output


@pytest.mark.slow
def test_adapt_flow_on_a_real_prefect_server(prefect_server, tiny_beir, cache_dir, tmp_path):
    from negforge.flows.adapt import adapt_flow

    with FaultyOpenAIServerDouble() as srv:
        cfg = load_config(_adapt_yaml(tmp_path, tiny_beir, cache_dir, srv.base_url))
        m = adapt_flow(cfg.model_dump(mode="json"), train=False)
    assert [s["stage"] for s in m["stages"]] == ["load", "generate", "consistency", "mine"]
    assert m["generation"]["requests"] == 8
