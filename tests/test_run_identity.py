"""Run identity by content: editing an input in place never yields a dataset stitched from stale shards."""

import json

import pytest

from negforge.config import load_config
from negforge.pipeline import run, run_identity
from negforge.run_store.shards import RunFolderConflict
from negforge.sources import load_input


def _config(tmp_path, cache_dir, data_dir, answers):
    return load_config(
        None,
        [
            f"data.path={data_dir}",
            f"cache_dir={cache_dir}",
            f"output.dir={tmp_path / 'runs'}",
            "output.shard_size=4",
            "selection.num_negatives=3",
            "selection.depth=20",
            "sources.dense.enabled=false",
        ],
        filters=[{"type": "answer_leak", "answers": str(answers)}],
    )


@pytest.fixture
def copied_case(tmp_path):
    import shutil
    from pathlib import Path

    src = Path(__file__).parent / "fixtures" / "input_cases" / "01-dup-text-positive" / "data"
    shutil.copytree(src, tmp_path / "data")
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"query_id": "q01", "answers": ["1889"]}) + "\n")
    return tmp_path / "data", answers


def test_answers_file_edited_in_place_rejudges_every_shard(tmp_path, cache_dir, copied_case):
    data_dir, answers = copied_case
    cfg = _config(tmp_path, cache_dir, data_dir, answers)
    first = run(cfg)
    q01 = next(r for r in _rich(first) if r["query_id"] == "q01")
    word = q01["negatives"][0]["text"].split()[0]
    answers.write_text(json.dumps({"query_id": "q01", "answers": ["1889", word]}) + "\n")
    again = run(cfg)  # same config, same paths
    assert again.manifest["shards"]["reused"] == 0
    assert any("files changed" in n and "answers.jsonl" in n for n in again.manifest["notes"])
    q01 = next(r for r in _rich(again) if r["query_id"] == "q01")
    assert not [n for n in q01["negatives"] if word.lower() in n["text"].lower()]
    assert again.manifest["filters"]["verdicts"].get("answer_leak/contains_answer", 0) >= 1
    third = run(cfg)  # nothing changed: everything reused
    assert third.manifest["shards"]["reused"] == third.manifest["shards"]["total"]


def test_corpus_edited_in_place_is_refused_naming_the_corpus(tmp_path, cache_dir, copied_case):
    data_dir, answers = copied_case
    cfg = _config(tmp_path, cache_dir, data_dir, answers)
    run(cfg)
    lines = (data_dir / "corpus.jsonl").read_text().splitlines()
    d = json.loads(lines[0])
    d["text"] = "The Eiffel Tower opened in March 1889."
    lines[0] = json.dumps(d)
    (data_dir / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFolderConflict, match="different corpus"):
        run(cfg)
    assert run(cfg, overwrite=True).manifest["shards"]["reused"] == 0


def test_identity_covers_prompts_and_given_negatives(tmp_path, cache_dir, copied_case):
    data_dir, answers = copied_case
    cfg = _config(tmp_path, cache_dir, data_dir, answers)
    data = load_input(cfg.data)
    ident = run_identity(cfg, data)
    assert set(ident) >= {"config", "corpus", "queries", "models", "files", "prompts", "rules"}
    llm = cfg.model_copy(
        update={
            "sources": cfg.sources.model_copy(
                update={"llm": cfg.sources.llm.model_copy(update={"enabled": True})}
            )
        }
    )
    assert run_identity(llm, data)["prompts"] is not None


def _rich(res):
    from datasets import load_from_disk

    return load_from_disk(str(res.dataset_dir))["rich"].to_list()


def test_corpus_ids_swapped_in_place_are_refused(tmp_path, cache_dir, copied_case):
    data_dir, answers = copied_case
    cfg = _config(tmp_path, cache_dir, data_dir, answers)
    run(cfg)
    lines = (data_dir / "corpus.jsonl").read_text().splitlines()
    a, b = json.loads(lines[13]), json.loads(lines[16])
    a["_id"], b["_id"] = b["_id"], a["_id"]
    lines[13], lines[16] = json.dumps(a), json.dumps(b)
    (data_dir / "corpus.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(RunFolderConflict, match="different corpus"):
        run(cfg)


def test_dense_precision_is_recorded_as_resolved_and_a_change_rejudges(
    tmp_path, copied_case, cpu_offers_bf16
):
    """`backend: auto` is pinned in the driver: the identity and the shard workers' config name the path the
    gate chose (here fp32: the fixture corpus is smaller than the gate's sample), never "auto"; a run asking
    for another path judges every shard again instead of refusing the folder or mixing paths."""
    from negforge.pipeline import pin_precision, worker_config

    data_dir, answers = copied_case
    # a cache of its own: the shared one may hold a verdict another test's larger corpus earned (bf16)
    cfg = _config(tmp_path, tmp_path / "cache", data_dir, answers)
    cfg = load_config(None, [*_overrides(cfg), "sources.dense.enabled=true"], filters=[])
    data = load_input(cfg.data)
    pinned_run = pin_precision(cfg, data)
    pinned, miner = pinned_run.cfg, pinned_run.dense
    choice = miner.backend_choice if miner is not None else None
    assert cfg.sources.dense.backend == "auto" and choice is not None
    assert pinned.sources.dense.backend == choice.path == "torch-fp32"
    assert "fewer than the gate's" in choice.reason
    assert worker_config(pinned, None)["sources"]["dense"]["backend"] == "torch-fp32"
    assert pinned.fingerprint() == cfg.fingerprint()  # the driver's context is found by shard threads

    first = run(cfg)
    state = json.loads((first.run_dir / "shards" / "state.json").read_text())
    assert state["precision"] == {"dense": "torch-fp32"}
    assert first.manifest["models"]["dense"]["backend"] == "torch-fp32"
    assert "fewer than the gate's" in first.manifest["models"]["dense"]["backend_choice"]["reason"]
    assert run(cfg).manifest["shards"]["reused"] == first.manifest["shards"]["total"]

    bf16 = load_config(
        None, [*_overrides(cfg), "sources.dense.enabled=true", "sources.dense.backend=torch-bf16"], filters=[]
    )
    again = run(bf16)  # not refused: the same run, judged with another precision
    assert again.manifest["shards"]["reused"] == 0
    assert any("precision changed" in n and "torch-bf16" in n for n in again.manifest["notes"])


def _overrides(cfg):
    return [
        f"data.path={cfg.data.path}",
        f"cache_dir={cfg.cache_dir}",
        f"output.dir={cfg.output.dir}",
        "output.shard_size=4",
        "selection.num_negatives=3",
        "selection.depth=20",
    ]


def test_a_run_refuses_an_answers_file_keyed_by_other_ids(tmp_path, cache_dir, copied_case):
    """`1` against the run's `q01`: the answer_leak filter would check nothing; the run stops, naming the
    file, before any shard is written."""
    data_dir, answers = copied_case
    answers.write_text(json.dumps({"query_id": "1", "answers": ["1889"]}) + "\n")
    from negforge.sources.readers import InputError

    with pytest.raises(InputError, match=r"answers\.jsonl: none of its 1 query ids is a query of this run"):
        run(_config(tmp_path, cache_dir, data_dir, answers))
    assert not list((tmp_path / "runs").rglob("shard-*.json"))


def test_a_local_llm_retrained_in_place_changes_the_identity(tmp_path, cache_dir, copied_case):
    """The LLM's weights are part of the run identity like every model's: new weights in the same folder
    re-judge the shards (a served name without local weights is identified by its name)."""
    data_dir, answers = copied_case
    model = tmp_path / "my-llm"
    model.mkdir()
    (model / "model.safetensors").write_bytes(b"weights v1")
    base = _overrides(_config(tmp_path, cache_dir, data_dir, answers))
    cfg = load_config(None, [*base, "sources.llm.enabled=true", f"sources.llm.model={model}"], filters=[])
    data = load_input(cfg.data)
    first = run_identity(cfg, data)["models"]["llm"]
    (model / "model.safetensors").write_bytes(b"weights v2")
    assert run_identity(cfg, data)["models"]["llm"] != first
    served = load_config(
        None, [*base, "sources.llm.enabled=true", "sources.llm.model=org/some-llm"], filters=[]
    )
    assert run_identity(served, data)["models"]["llm"].startswith("name:")
    assert "llm" not in run_identity(load_config(None, base, filters=[]), data)["models"]


def test_shards_judged_under_an_older_identity_rule_are_judged_again(tmp_path, cache_dir, copied_case):
    """A new release that calls more texts equal (HTML copies) must not reuse shards whose negatives the old
    rule let through: the rule's version is part of the identity."""
    data_dir, answers = copied_case
    cfg = _config(tmp_path, cache_dir, data_dir, answers)
    first = run(cfg)
    state = first.run_dir / "shards" / "state.json"
    old = json.loads(state.read_text())
    assert old["rules"].startswith("identity-v")
    old["rules"] = "identity-v1"
    state.write_text(json.dumps(old))
    again = run(cfg)
    assert again.manifest["shards"]["reused"] == 0
    assert any("rules" in n for n in again.manifest["notes"])
