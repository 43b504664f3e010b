"""End-to-end builds on a real 200-abstract slice: outputs, trainer compatibility, selection modes, resume."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pyarrow.parquet as pq
import pytest
from datasets import load_from_disk

from negforge.config import load_config
from negforge.pipeline import run
from negforge.run_store.shards import RunFolderConflict


@pytest.fixture(scope="module")
def hybrid(tiny_beir, cache_dir, tmp_path_factory):
    """The default (BM25 + dense hybrid) build, shared by the read-only checks below."""
    out = tmp_path_factory.mktemp("hybrid")
    cfg = load_config(
        None,
        [
            f"data.path={tiny_beir}",
            f"cache_dir={cache_dir}",
            f"output.dir={out}",
            "output.shard_size=5",
            "output.scores=true",
        ],
    )
    return cfg, run(cfg)


def test_outputs_and_manifest(hybrid):
    _, res = hybrid
    dd = load_from_disk(str(res.dataset_dir))
    assert set(dd) == {"rich", "triplet", "n-tuple"}
    assert dd["rich"].num_rows == 12
    assert dd["triplet"].column_names == ["anchor", "positive", "negative", "label"]
    assert dd["n-tuple"].column_names == [
        "anchor",
        "positive",
        *[f"negative_{i}" for i in range(1, 6)],
        "label",
    ]
    n_pos = sum(len(r["positives"]) for r in dd["rich"])
    assert dd["triplet"].num_rows == n_pos * 5 and dd["n-tuple"].num_rows == n_pos
    for name in dd:
        assert pq.read_table(res.manifest["outputs"]["parquet"][name]).num_rows == dd[name].num_rows
    m = json.loads(res.manifest_path.read_text())
    assert m["data"] == {**m["data"], "queries": 12, "corpus_docs": 200}
    assert m["counts"]["funnel"]["selected"] == 60 == sum(m["counts"]["selected"].values())
    assert m["models"]["dense"]["fingerprint"] and m["versions"]["faiss-cpu"]
    assert m["shards"] == {"total": 3, "reused": 0, "written": 3}
    assert {"load", "bm25_index", "dense_corpus", "dense_queries", "mine", "write"} <= set(m["timings"])
    assert m["score_by"] == "hybrid" and m["score_summary"][-1]["source"] == "all"


def test_negatives_are_never_positives_and_carry_every_score(hybrid):
    _, res = hybrid
    for row in load_from_disk(str(res.dataset_dir))["rich"]:
        neg_ids = [n["doc_id"] for n in row["negatives"]]
        assert len(neg_ids) == 5 == len(set(neg_ids))
        assert not set(neg_ids) & set(row["positive_ids"])
        for n in row["negatives"]:
            assert set(n["sources"]) <= {"bm25", "dense"} and n["source"] in n["sources"]
            assert None not in (n["scores"]["bm25"], n["scores"]["dense"], n["scores"]["hybrid"])
            assert n["ranks"][n["source"]] == min(n["ranks"][s] for s in n["sources"])
        hybrid_scores = [n["scores"]["hybrid"] for n in row["negatives"]]
        assert hybrid_scores == sorted(hybrid_scores, reverse=True)  # top sampling keeps rank order
        # hybrid = mean of per-query min-max normalised scores: inside [0, 1] for pool members
        assert all(0 <= s <= 1 for s in hybrid_scores)


def test_label_is_positive_minus_negative(hybrid):
    _, res = hybrid
    dd = load_from_disk(str(res.dataset_dir))
    rich = dd["rich"][0]
    trip = dd["triplet"][0]
    expected = rich["positive_scores"]["hybrid"][0] - rich["negatives"][0]["scores"]["hybrid"]
    assert trip["label"] == pytest.approx(expected, abs=1e-5)


def test_trainer_trains_a_step_on_triplets_and_ntuples(hybrid, minilm_path, tmp_path):
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    _, res = hybrid
    dd = load_from_disk(str(res.dataset_dir))
    model = SentenceTransformer(minilm_path, device="cpu")
    before = model.encode(["aspirin fever"], convert_to_numpy=True).copy()
    for name in ("triplet", "n-tuple"):
        ds = dd[name].remove_columns(["label"]).select(range(4))
        args = SentenceTransformerTrainingArguments(
            output_dir=str(tmp_path / name),
            max_steps=1,
            per_device_train_batch_size=4,
            report_to=[],
            learning_rate=1e-4,
        )
        trainer = SentenceTransformerTrainer(
            model=model, args=args, train_dataset=ds, loss=MultipleNegativesRankingLoss(model)
        )
        out = trainer.train()
        assert out.global_step == 1 and out.training_loss > 0
    after = model.encode(["aspirin fever"], convert_to_numpy=True)
    assert not (before == after).all()


def test_same_config_same_rows(hybrid, tmp_path):
    cfg, res = hybrid
    again = run(cfg.model_copy(update={"output": cfg.output.model_copy(update={"dir": str(tmp_path)})}))
    a = load_from_disk(str(res.dataset_dir))["rich"].to_list()
    b = load_from_disk(str(again.dataset_dir))["rich"].to_list()
    assert a == b


def test_rerun_reuses_every_shard_and_conflicts_are_refused(hybrid):
    cfg, res = hybrid
    before = {p.name: p.stat().st_mtime_ns for p in (res.run_dir / "shards").glob("shard-*")}
    again = run(cfg)
    assert again.manifest["shards"] == {"total": 3, "reused": 3, "written": 0}
    assert {p.name: p.stat().st_mtime_ns for p in (res.run_dir / "shards").glob("shard-*")} == before
    other = cfg.model_copy(update={"selection": cfg.selection.model_copy(update={"num_negatives": 2})})
    with pytest.raises(RunFolderConflict, match="different config"):
        run(other)
    assert run(other, overwrite=True).manifest["counts"]["funnel"]["selected"] == 24
    run(cfg, overwrite=True)  # leave the module fixture's folder as it was


def test_short_queries_are_reported_not_padded(make_config):
    res = run(
        make_config(
            "selection.depth=3",
            "selection.num_negatives=5",
            "sources.bm25.enabled=false",
            "filters=[]",
            "selection.relative_margin=null",
        )
    )
    m = res.manifest
    assert m["counts"]["short_queries"] == 12
    assert len(m["counts"]["short_reasons"]) == 12
    assert all(v.startswith("3 negatives kept") for v in m["counts"]["short_reasons"].values())
    assert m["counts"]["ntuple_rows_dropped_short"] == sum(
        len(r["positives"]) for r in load_from_disk(str(res.dataset_dir))["rich"]
    )
    assert m["counts"]["rows"]["n-tuple"] == 0
    assert all(len(r["negatives"]) == 3 for r in load_from_disk(str(res.dataset_dir))["rich"])


def test_default_margin_names_the_queries_it_leaves_short(make_config):
    res = run(make_config("selection.depth=6", "selection.num_negatives=5", "sources.bm25.enabled=false"))
    m = res.manifest
    assert m["config"]["selection"]["relative_margin"] == 0.05
    assert [f["type"] for f in m["config"]["filters"]] == ["duplicate", "embedding"]
    rows = load_from_disk(str(res.dataset_dir))["rich"].to_list()
    short = [r["query_id"] for r in rows if r["short"]]
    assert sorted(m["counts"]["short_reasons"]) == sorted(short[:20])
    for r in rows:  # no kept negative outscores (or reaches 95% of) the weakest positive's dense score
        weakest = min(r["positive_scores"]["dense"])
        assert all(n["scores"]["dense"] <= weakest - abs(weakest) * 0.05 + 1e-6 for n in r["negatives"])


def test_hybrid_default_never_keeps_a_negative_the_dense_model_scores_above_the_positive(make_config):
    res = run(make_config("selection.depth=20", "run_name=hybrid-guard"))
    assert res.manifest["score_by"] in ("hybrid", "dense")
    for r in load_from_disk(str(res.dataset_dir))["rich"].to_list():
        dense_floor = min(r["positive_scores"]["dense"])
        hybrid_floor = min(r["positive_scores"]["hybrid"])
        for n in r["negatives"]:
            assert n["scores"]["dense"] <= dense_floor - abs(dense_floor) * 0.05 + 1e-6
            assert n["scores"]["hybrid"] <= hybrid_floor - abs(hybrid_floor) * 0.05 + 1e-6


def test_corpus_smaller_than_depth_is_noted(make_config):
    res = run(make_config("selection.depth=5000", "selection.num_negatives=2"))
    assert any("depth clamped" in n for n in res.manifest["notes"])
    assert res.manifest["counts"]["short_queries"] == 0


def test_relative_margin_rejects_and_counts(make_config):
    res = run(
        make_config(
            "sources.bm25.enabled=false", "selection.relative_margin=0.3", "selection.num_negatives=3"
        )
    )
    funnel = res.manifest["counts"]["funnel"]
    assert funnel["relative_margin"] > 0
    for row in load_from_disk(str(res.dataset_dir))["rich"]:
        bound = min(row["positive_scores"]["dense"])
        for n in row["negatives"]:
            assert n["scores"]["dense"] <= bound - abs(bound) * 0.3 + 1e-6


def test_margins_that_starve_the_run_leave_a_note_naming_the_remedy(make_config):
    res = run(make_config("sources.bm25.enabled=false", "selection.relative_margin=0.9", "run_name=starved"))
    m = res.manifest
    note = [n for n in m["notes"] if "positive-aware margins dropped" in n]
    assert m["counts"]["short_queries"] >= 0.2 * m["data"]["queries"]
    assert len(note) == 1 and f"{m['counts']['short_queries']} of {m['data']['queries']} queries" in note[0]
    assert f"selection.depth (now {m['config']['selection']['depth']})" in note[0]
    relaxed = run(make_config("sources.bm25.enabled=false", "run_name=not-starved"))
    assert not [n for n in relaxed.manifest["notes"] if "positive-aware margins dropped" in n]


def test_bm25_only_and_random_only(make_config):
    bm = run(make_config("sources.dense.enabled=false", "selection.num_negatives=3", "run_name=bm"))
    rows = load_from_disk(str(bm.dataset_dir))["rich"]
    assert {n["source"] for r in rows for n in r["negatives"]} == {"bm25"}
    assert all(n["scores"]["dense"] is None for r in rows for n in r["negatives"])
    assert bm.manifest["score_by"] == "bm25"
    rnd = run(
        make_config(
            "sources.dense.enabled=false",
            "sources.bm25.enabled=false",
            "sources.random.enabled=true",
            "sources.random.count=4",
            "run_name=rnd",
        )
    )
    rows = load_from_disk(str(rnd.dataset_dir))["rich"]
    assert all(len(r["negatives"]) == 4 and {n["source"] for n in r["negatives"]} == {"random"} for r in rows)
    assert all(not set(n["doc_id"] for n in r["negatives"]) & set(r["positive_ids"]) for r in rows)
    assert load_from_disk(str(rnd.dataset_dir))["n-tuple"].num_rows > 0


def test_random_negatives_added_beside_mined(make_config):
    res = run(
        make_config("sources.random.enabled=true", "sources.random.count=2", "selection.num_negatives=3")
    )
    for r in load_from_disk(str(res.dataset_dir))["rich"]:
        sources = [n["source"] for n in r["negatives"]]
        assert (
            sources.count("random") == 2
            and len(sources) == 5
            and len({n["doc_id"] for n in r["negatives"]}) == 5
        )
    assert load_from_disk(str(res.dataset_dir))["n-tuple"].column_names[-1] == "negative_5"


def test_topic_mode_keeps_negatives_in_the_query_cluster(make_config):
    from negforge.pipeline import load_data, make_context, prepare_dense
    from negforge.timing import Timings

    cfg = make_config("selection.topics.clusters=3", "selection.sampling=simans", "selection.num_negatives=3")
    res = run(cfg)
    t = Timings()
    data = load_data(cfg, t)
    dense, qemb = prepare_dense(cfg, data, t)
    ctx = make_context(cfg, data, None, dense, qemb, t)
    rows = load_from_disk(str(res.dataset_dir))["rich"]
    assert {r["topic"] for r in rows} <= {0, 1, 2} and len({r["topic"] for r in rows}) > 1
    for r in rows:
        for n in r["negatives"]:
            assert ctx.topics.doc_topic[data.corpus.index[n["doc_id"]]] == r["topic"]
    assert res.manifest["counts"]["funnel"]["other_topic"] > 0


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from negforge.config import load_config
    from negforge import pipeline
    from negforge.run_store.shards import ShardStore

    real_write = ShardStore.write
    written = []

    def write_then_die(self, i, table, stats):  # fault injection: SIGKILL after the 2nd shard lands
        real_write(self, i, table, stats)
        written.append(i)
        if len(written) == 2:
            os.kill(os.getpid(), signal.SIGKILL)

    ShardStore.write = write_then_die
    pipeline.run(load_config(None, sys.argv[1:]))
    """
)


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_finishes_without_loss_or_duplicates(
    make_config, tiny_beir, cache_dir, tmp_path
):
    overrides = [
        f"data.path={tiny_beir}",
        f"cache_dir={cache_dir}",
        f"output.dir={tmp_path / 'runs'}",
        "output.shard_size=3",
        "selection.depth=20",
    ]
    env = {**os.environ, "NEGFORGE_PROGRESS": "0"}
    proc = subprocess.run(
        [sys.executable, "-c", KILLER, *overrides], env=env, capture_output=True, timeout=600
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    shards = tmp_path / "runs" / "run" / "shards"
    done = sorted(p.name for p in shards.glob("shard-*.json"))
    assert done == ["shard-00000.json", "shard-00001.json"]
    kept = {p.name: p.stat().st_mtime_ns for p in shards.glob("shard-0000[01].*")}
    res = run(load_config(None, overrides))
    assert res.manifest["shards"] == {"total": 4, "reused": 2, "written": 2}
    assert {p.name: p.stat().st_mtime_ns for p in shards.glob("shard-0000[01].*")} == kept
    clean = run(load_config(None, [*overrides[:2], f"output.dir={tmp_path / 'clean'}", *overrides[3:]]))
    got = load_from_disk(str(res.dataset_dir))["rich"].to_list()
    assert got == load_from_disk(str(clean.dataset_dir))["rich"].to_list()
    assert len({r["query_id"] for r in got}) == len(got) == 12
