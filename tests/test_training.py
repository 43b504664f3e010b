"""Training and evaluation on real negforge output: a few optimizer steps per loss, metrics checked by hand."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from negforge.training import checkpoint_fingerprint, evaluate, read_checkpoint_info
from negforge.training.train import TrainConfig, TrainError, train

SMALL = {"batch_size": 4, "max_steps": 3, "max_seq_length": 64}


@pytest.fixture(scope="module")
def run_dir(tiny_beir, cache_dir, tmp_path_factory) -> Path:
    """One negforge run on the tiny fixture, with scores (MarginMSE labels) and 3 negatives per query."""
    from negforge.config import load_config
    from negforge.pipeline import run

    cfg = load_config(
        None,
        [
            f"data.path={tiny_beir}",
            f"cache_dir={cache_dir}",
            f"output.dir={tmp_path_factory.mktemp('train_runs')}",
            "output.shard_size=4",
            "selection.depth=20",
            "selection.num_negatives=3",
            "sources.llm.enabled=false",
            "output.scores=true",
            "run_name=train",
        ],
    )
    run(cfg)
    return cfg.run_dir


_trained: dict[tuple, dict] = {}


@pytest.fixture(scope="module")
def trained(run_dir, tmp_path_factory):
    """Train once per (loss, config) in this module; later tests reuse the checkpoint."""

    def get(loss: str, config: str = "triplet") -> dict:
        key = (loss, config)
        if key not in _trained:
            out = tmp_path_factory.mktemp(f"ck-{loss}")
            extra = {"mini_batch_size": 2} if loss == "cached_mnrl" else {}
            res = train(
                TrainConfig(dataset=run_dir, config=config, loss=loss, output_dir=out, **SMALL, **extra)
            )
            _trained[key] = {"dir": out, "result": res}
        return _trained[key]

    return get


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


@pytest.mark.parametrize(
    ("loss", "config"), [("mnrl", "triplet"), ("cached_mnrl", "triplet"), ("marginmse", "n-tuple")]
)
def test_each_loss_changes_weights_and_records_the_checkpoint(trained, run_dir, minilm_path, loss, config):
    ck = trained(loss, config)
    out: Path = ck["dir"]
    base, new = _weights(Path(minilm_path)), _weights(out)
    shared = base.keys() & new.keys()  # the bundled file also holds the `position_ids` buffer
    assert len(shared) > 90
    changed = [k for k in shared if not (base[k] == new[k]).all()]
    assert len(changed) > len(shared) // 2, "training left most weights untouched"

    info = read_checkpoint_info(out)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert info is not None and info == ck["result"].info
    assert info["fingerprint"] == checkpoint_fingerprint(out) == ck["result"].fingerprint
    assert info["base_fingerprint"] == checkpoint_fingerprint(minilm_path) != info["fingerprint"]
    assert info["dataset"] == str((run_dir / "dataset").resolve())
    assert info["config_fingerprint"] == manifest["config_fingerprint"]
    assert info["loss"] == loss and info["seed"] == 13 and info["steps"] == 3
    assert [s["config"] for s in info["stages"]] == [config]
    assert math.isfinite(info["stages"][0]["training_loss"])


def test_checkpoint_fingerprint_is_model_fingerprint_without_the_record(trained, minilm_path, tmp_path):
    from negforge.mining.fingerprint import model_fingerprint

    assert checkpoint_fingerprint(minilm_path) == model_fingerprint(minilm_path)
    out = trained("mnrl")["dir"]
    before = checkpoint_fingerprint(out)
    (out / "negforge_checkpoint.json").write_text((out / "negforge_checkpoint.json").read_text() + " ")
    assert checkpoint_fingerprint(out) == before  # the record is not part of what the model is


def test_curriculum_trains_stages_in_order(run_dir, tmp_path):
    from datasets import DatasetDict, load_from_disk

    trip = load_from_disk(str(run_dir / "dataset"))["triplet"].sort("label", reverse=True)
    # easy = biggest margin between positive and negative; sizes differ so the record shows the order
    stages = {"curriculum-easy": trip.select(range(0, 8)), "curriculum-medium": trip.select(range(8, 20)),
              "curriculum-hard": trip.select(range(20, 36))}  # fmt: skip
    ds_dir = tmp_path / "cur" / "dataset"
    DatasetDict(stages).save_to_disk(str(ds_dir))
    order = ["curriculum-easy", "curriculum-medium", "curriculum-hard"]
    res = train(TrainConfig(dataset=ds_dir, curriculum=order, output_dir=tmp_path / "ck",
                            batch_size=4, max_steps=1, max_seq_length=64))  # fmt: skip
    assert [(s["config"], s["rows"], s["steps"]) for s in res.info["stages"]] == [
        ("curriculum-easy", 8, 1), ("curriculum-medium", 12, 1), ("curriculum-hard", 16, 1)
    ]  # fmt: skip
    assert res.steps == 3 and res.info["config_fingerprint"] is None  # no manifest beside this dataset


def test_bad_requests_fail_before_loading_a_model(run_dir, tmp_path):
    with pytest.raises(TrainError, match="no config 'hard'.*n-tuple"):
        train(TrainConfig(dataset=run_dir, config="hard", output_dir=tmp_path / "x"))
    with pytest.raises(TrainError, match="not a trainer config"):
        train(TrainConfig(dataset=run_dir, config="rich", output_dir=tmp_path / "x"))
    with pytest.raises(TrainError, match="not a negforge run"):
        train(TrainConfig(dataset=tmp_path, output_dir=tmp_path / "x"))
    from datasets import DatasetDict, load_from_disk

    DatasetDict(
        {"triplet": load_from_disk(str(run_dir / "dataset"))["triplet"].remove_columns("label")}
    ).save_to_disk(str(tmp_path / "nolabel"))
    with pytest.raises(TrainError, match="output.scores=true"):
        train(TrainConfig(dataset=tmp_path / "nolabel", loss="marginmse", output_dir=tmp_path / "x"))
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(dataset=run_dir, batch_size=1)


# --- evaluation -------------------------------------------------------------------------------------------

QUERY_A = "Aspirin lowers the risk of heart attacks in adults."
QUERY_B = "Vitamin D supplements reduce bone fractures in the elderly."


@pytest.fixture(scope="module")
def eval_beir(tmp_path_factory) -> Path:
    """A split whose ranking is known: each query's exact copy ranks first, a near copy second.

    q1 → its exact copy a1 (rank 1): nDCG 1, MRR 1, recall 1.
    q2 → the near copy b2 (rank 2, behind the exact copy b1): nDCG 1/log2(3), MRR 1/2, recall 1.
    q3 → a document missing from the corpus: all 0.  q4 has no judgement and is not scored.
    """
    root = tmp_path_factory.mktemp("eval_beir")
    corpus = [
        {"_id": "a1", "title": "", "text": QUERY_A},
        {"_id": "b1", "title": "", "text": QUERY_B},
        {"_id": "b2", "title": "", "text": QUERY_B.replace("in the elderly", "in elderly women")},
        {
            "_id": "x1",
            "title": "Paris",
            "text": "The Eiffel Tower was finished in 1889 for the World's Fair.",
        },
        {
            "_id": "x2",
            "title": "",
            "text": "Photosynthesis turns light, water and carbon dioxide into sugar.",
        },
        {"_id": "x3", "title": "", "text": "The offside rule in football changed several times."},
    ]
    queries = [
        {"_id": "q1", "text": QUERY_A},
        {"_id": "q2", "text": QUERY_B},
        {"_id": "q3", "text": "Black holes emit Hawking radiation."},
        {"_id": "q4", "text": "Unjudged query."},
    ]
    (root / "qrels").mkdir()
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in corpus))
    (root / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\ta1\t1\nq2\tb2\t1\nq3\tmissing\t1\n"
    )
    return root


EXPECTED = {"ndcg@10": (1 + 1 / math.log2(3) + 0) / 3, "mrr@10": (1 + 0.5 + 0) / 3, "recall@100": 2 / 3}


def test_evaluate_matches_hand_computed_metrics(eval_beir, minilm_path, tmp_path):
    cache = tmp_path / "cache"
    res = evaluate(minilm_path, eval_beir, "test", cache_dir=cache)
    assert set(res) == {"model", "fingerprint", "split", "ndcg@10", "mrr@10", "recall@100", "queries",
                        "corpus_docs", "seconds", "backend", "query_prompt", "corpus_prompt",
                        "prompts_from"}  # fmt: skip
    assert (res["query_prompt"], res["corpus_prompt"], res["prompts_from"]) == ("", "", "none")
    assert res["backend"] == "torch-fp32"  # six documents: too few for the parity gate, so fp32
    for k, v in EXPECTED.items():
        assert res[k] == pytest.approx(v, abs=1e-6), k
    assert res["queries"] == 3 and res["corpus_docs"] == 6 and res["split"] == "test"
    assert res["fingerprint"] == checkpoint_fingerprint(minilm_path)
    entries = list((cache / "embeddings").glob("*/complete.json"))
    assert len(entries) == 1  # corpus embeddings cached under the model's fingerprint

    again = evaluate(minilm_path, eval_beir, "test", cache_dir=cache)  # from the cache
    nocache = evaluate(minilm_path, eval_beir, "test")
    for k in EXPECTED:
        assert again[k] == pytest.approx(res[k], abs=1e-6) and nocache[k] == pytest.approx(res[k], abs=1e-6)
    assert evaluate(minilm_path, eval_beir, "test", max_queries=1)["ndcg@10"] == pytest.approx(1.0)


def test_compare_table_shows_models_side_by_side():
    from rich.console import Console

    from negforge.training import compare_table

    base = {"model": "zero-shot", "fingerprint": "a" * 20, "split": "test", "ndcg@10": 0.5, "mrr@10": 0.4,
            "recall@100": 0.9, "queries": 3, "corpus_docs": 6, "seconds": 1.0}  # fmt: skip
    tuned = {**base, "model": "tuned", "fingerprint": "b" * 20, "ndcg@10": 0.55, "mrr@10": 0.35}
    con = Console(record=True, width=200)
    con.print(compare_table([base, tuned]))
    text = con.export_text()
    assert "zero-shot" in text and "tuned" in text and "(+0.0500)" in text and "(-0.0500)" in text


# --- command line ------------------------------------------------------------------------------------------

runner = CliRunner()


def test_cli_help_lists_train_and_evaluate():
    from negforge.cli import app

    top = runner.invoke(app, ["--help"])
    assert "train" in top.output and "evaluate" in top.output
    tr = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert tr.exit_code == 0 and "--curriculum" in tr.output and "marginmse" in tr.output
    ev = runner.invoke(app, ["evaluate", "--help"], env={"COLUMNS": "200"})
    assert ev.exit_code == 0 and "--data" in ev.output and "--engine" in ev.output


def test_cli_train_local_is_deterministic_and_evaluate_compares(
    trained, run_dir, eval_beir, minilm_path, tmp_path
):
    from negforge.cli import app

    out = tmp_path / "ck"
    res = runner.invoke(
        app,
        ["train", str(run_dir), "--engine", "local", "--no-progress", "--batch-size", "4", "--max-steps", "3",
         "--max-seq-length", "64", "--output-dir", str(out)],
        env={"COLUMNS": "200"},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "checkpoint:" in res.output and "stage triplet" in res.output
    assert (
        read_checkpoint_info(out)["fingerprint"] == trained("mnrl")["result"].fingerprint
    )  # same seed, same model

    js = tmp_path / "eval.json"
    res = runner.invoke(
        app,
        ["evaluate", minilm_path, str(out), "--data", str(eval_beir), "--engine", "local",
         "--cache-dir", str(tmp_path / "cache"), "--json", str(js)],
        env={"COLUMNS": "250"},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    rows = json.loads(js.read_text())
    assert [r["model"] for r in rows] == [minilm_path, str(out)]
    assert rows[0]["ndcg@10"] == pytest.approx(EXPECTED["ndcg@10"], abs=1e-6)
    assert rows[1]["fingerprint"] == read_checkpoint_info(out)["fingerprint"]
    assert "ndcg@10" in res.output and rows[1]["fingerprint"][:12] in res.output


def test_cli_errors_are_clean(tmp_path):
    from negforge.cli import app

    res = runner.invoke(app, ["train", str(tmp_path), "--engine", "local"])
    assert res.exit_code == 2 and "not a negforge run" in res.output and "Traceback" not in res.output
    res = runner.invoke(app, ["train", str(tmp_path), "--batch-size", "1", "--engine", "local"])
    assert res.exit_code == 2 and "batch_size" in res.output
    res = runner.invoke(app, ["evaluate", "x", "--data", str(tmp_path / "nope"), "--engine", "local"])
    assert res.exit_code == 2 and "Traceback" not in res.output


# --- Prefect flows -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_and_evaluate_flows_publish_metrics(prefect_server, run_dir, eval_beir, minilm_path, tmp_path):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    from negforge.flows.train import evaluate_flow, train_flow

    cfg = TrainConfig(
        dataset=run_dir, output_dir=tmp_path / "ck", batch_size=4, max_steps=1, max_seq_length=64
    )
    state = train_flow(cfg.model_dump(mode="json"), return_state=True)
    assert state.is_completed()
    info = state.result()
    assert info["steps"] == 1 and info["fingerprint"] == checkpoint_fingerprint(tmp_path / "ck")

    state = evaluate_flow([minilm_path, str(tmp_path / "ck")], str(eval_beir), "test", return_state=True)
    assert state.is_completed()
    results = state.result()
    assert [r["model"] for r in results] == [minilm_path, str(tmp_path / "ck")]
    assert results[0]["mrr@10"] == pytest.approx(EXPECTED["mrr@10"], abs=1e-6)

    async def artifacts(flow_run_id):
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )

    arts = asyncio.run(artifacts(state.state_details.flow_run_id))
    kinds = {a.type: a for a in arts}
    assert set(kinds) == {"table", "markdown"}
    assert "ndcg@10" in str(kinds["table"].data) and str(tmp_path / "ck") in str(kinds["table"].data)
    assert "ndcg@10" in kinds["markdown"].data and "against the first model" in kinds["markdown"].data
