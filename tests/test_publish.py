"""Publishing a finished run: local Hub layout read back by `datasets`, the card, exporters, the CLI, and a push
to FakeHubServerDouble (an in-process Hub stand-in; nothing leaves the machine)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from negforge.publish.card import read_card_metadata, render_card
from negforge.publish.exporters import export, negative_id
from negforge.publish.hub_layout import write_hub_folder
from negforge.publish.run_files import PublishError, read_run
from tests.fake_hub import FakeHubServerDouble

FAKE_TOKEN = "hf_NEGFORGEfakeTOKEN0123456789"
PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32  # enough of a PNG for a copy-and-link test


@pytest.fixture(scope="module")
def base_run(tiny_beir, cache_dir, tmp_path_factory) -> Path:
    """One real run of the pipeline on the tiny slice, built once for the module. BM25 only (plus seeded random
    negatives) keeps it to seconds; the dense model's manifest entry is added in `run_dir`."""
    from negforge.config import load_config
    from negforge.pipeline import run

    out = tmp_path_factory.mktemp("pubruns")
    cfg = load_config(
        None,
        [
            f"data.path={tiny_beir}",
            f"cache_dir={cache_dir}",
            f"output.dir={out}",
            "output.shard_size=4",
            "selection.depth=20",
            "selection.num_negatives=3",
            "sources.llm.enabled=false",
            "sources.dense.enabled=false",
            "sources.random.enabled=true",
            "run_name=pub",
        ],
    )
    return run(cfg).run_dir


@pytest.fixture
def run_dir(base_run, tmp_path) -> Path:
    """A private copy of the run, with a report plot and a filters section as later runs will have."""
    dst = tmp_path / "pub"
    shutil.copytree(base_run, dst, ignore=shutil.ignore_patterns("shards"))
    (dst / "report").mkdir(exist_ok=True)
    (dst / "report" / "scores.png").write_bytes(PNG)
    m = json.loads((dst / "manifest.json").read_text())
    m.setdefault("models", {}).setdefault(
        "dense", {"name": "minilm-test", "fingerprint": "0123abcd4567ef", "backend": "torch"}
    )
    m["filters"] = {
        "topk_percpos": {"threshold": 0.95, "dropped": {"above_positive": 7}},
        "cross_encoder": {"model": "ce-test", "max_logit": 2.5, "dropped": {"likely_relevant": 3}},
    }
    (dst / "manifest.json").write_text(json.dumps(m))
    return dst


def _rows(path: Path) -> int:
    return pq.ParquetFile(path).metadata.num_rows


def test_local_layout_reads_back_with_datasets(run_dir, tmp_path):
    run = read_run(run_dir)
    assert {"rich", "triplet", "n-tuple"} <= set(run.parquet)
    folder = write_hub_folder(run, tmp_path / "hub")
    meta = read_card_metadata((folder / "README.md").read_text())
    by_name = {c["config_name"]: c for c in meta["configs"]}
    assert set(by_name) == set(run.parquet)
    for config, splits in run.parquet.items():
        assert by_name[config]["data_files"] == [{"split": "train", "path": f"data/{config}/train-*.parquet"}]
        # own cache: datasets keys local files by folder name and mtime, so another "hub" folder could collide
        ds = datasets.load_dataset(str(folder), config, split="train", cache_dir=str(tmp_path / "hf"))
        assert ds.num_rows == _rows(splits["train"]) > 0
    triplet = datasets.load_dataset(str(folder), "triplet", split="train", cache_dir=str(tmp_path / "hf"))
    assert triplet.column_names[:3] == ["anchor", "positive", "negative"]
    assert (folder / "images" / "scores.png").read_bytes() == PNG
    # rewriting after a config disappears leaves no stale shard behind
    shutil.rmtree(run_dir / "dataset" / "parquet" / "n-tuple")
    write_hub_folder(read_run(run_dir), folder)
    assert not (folder / "data" / "n-tuple").exists()


def test_card_tells_how_the_data_was_made(run_dir):
    run = read_run(run_dir)
    card = render_card(run)
    meta = read_card_metadata(card)
    assert meta["license"] == "other"
    assert meta["task_categories"] == ["sentence-similarity", "text-retrieval"]
    assert {"sentence-transformers", "hard-negatives", "negforge"} <= set(meta["tags"])
    assert meta["negforge"]["config_fingerprint"] == run.manifest["config_fingerprint"]
    dense_fp = run.manifest["models"]["dense"]["fingerprint"]
    assert dense_fp in card
    for config, splits in run.parquet.items():
        assert f"| `{config}` | {_rows(splits['train'])} |" in card
    for src, n in run.manifest["counts"]["candidates"].items():
        assert f"| {src} | {n} |" in card
    assert "topk_percpos.threshold | 0.95" in card
    assert "cross_encoder.dropped.likely_relevant | 3" in card
    assert "![scores.png](images/scores.png)" in card
    assert "MultipleNegativesRankingLoss" in card and '"triplet"' in card
    assert read_card_metadata(render_card(run, license="cc-by-nc-2.0"))["license"] == "cc-by-nc-2.0"


def test_card_survives_a_sparse_manifest(run_dir):
    (run_dir / "manifest.json").write_text(json.dumps({"run_name": "bare"}))
    card = render_card(read_run(run_dir))
    assert "negforge hard negatives: bare" in card
    assert "## Statistics" in card and "Filters" not in card


def test_read_run_refuses_unfinished_runs(tmp_path):
    with pytest.raises(PublishError, match="no manifest"):
        read_run(tmp_path)


def test_exporters(run_dir, tmp_path):
    run = read_run(run_dir)
    rich = pq.read_table(run.parquet["rich"]["train"]).to_pylist()
    key = run.manifest["score_by"]

    fe = [json.loads(x) for x in export(run, "flagembedding", tmp_path).read_text().splitlines()]
    assert len(fe) == len(rich)
    assert set(fe[0]) == {"query", "pos", "neg", "pos_scores", "neg_scores", "prompt"}
    assert fe[0]["neg"] == [n["text"] for n in rich[0]["negatives"]]
    assert fe[0]["neg_scores"] == pytest.approx([n["scores"][key] for n in rich[0]["negatives"]])

    tev = [json.loads(x) for x in export(run, "tevatron", tmp_path).read_text().splitlines()]
    assert [t["query_id"] for t in tev] == [r["query_id"] for r in rich]
    assert [p["docid"] for p in tev[0]["positive_passages"]] == rich[0]["positive_ids"]
    assert [n["docid"] for n in tev[0]["negative_passages"]] == [n["doc_id"] for n in rich[0]["negatives"]]

    mm = pq.read_table(export(run, "marginmse", tmp_path)).to_pylist()
    assert len(mm) == sum(len(r["positives"]) * len(r["negatives"]) for r in rich)
    r0, n0 = rich[0], rich[0]["negatives"][0]
    assert mm[0]["margin"] == pytest.approx(r0["positive_scores"][key][0] - n0["scores"][key], abs=1e-5)
    assert mm[0]["query"] == r0["query"] and mm[0]["negative"] == n0["text"]


def test_synthetic_negative_ids_are_stable():
    neg = {"doc_id": None, "text": "made up", "generation": {"request_key": "abcdef0123456789ffff"}}
    assert negative_id(neg, 2) == "llm-abcdef012345-2" == negative_id(dict(neg), 2)
    bare = {"doc_id": None, "text": "made up", "generation": None}
    assert negative_id(bare, 0) == negative_id(dict(bare), 0) != negative_id({**bare, "text": "other"}, 0)
    assert negative_id({"doc_id": "42", "text": "x"}, 0) == "42"


def test_cli_publish_local_and_export(run_dir, tmp_path):
    from negforge.cli import app

    runner = CliRunner()
    res = runner.invoke(
        app, ["publish", str(run_dir), "--local", str(tmp_path / "hub"), "--export", "flagembedding"]
    )
    assert res.exit_code == 0, res.output
    assert (tmp_path / "hub" / "README.md").is_file()
    assert (tmp_path / "hub" / "exports" / "flagembedding.jsonl").is_file()
    assert runner.invoke(app, ["publish", str(run_dir)]).exit_code == 2
    assert (
        runner.invoke(app, ["publish", str(tmp_path / "nope"), "--local", str(tmp_path / "x")]).exit_code == 2
    )


@pytest.fixture
def fake_hub(monkeypatch):
    """FakeHubServerDouble installed as huggingface_hub's HTTP client, online mode on, Xet off."""
    import huggingface_hub
    from huggingface_hub import constants
    from huggingface_hub.utils._http import default_client_factory

    fake = FakeHubServerDouble()
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    huggingface_hub.set_client_factory(fake.client)
    yield fake
    huggingface_hub.set_client_factory(default_client_factory)


def _all_text_under(*roots: Path) -> list[tuple[Path, bytes]]:
    return [(p, p.read_bytes()) for root in roots for p in root.rglob("*") if p.is_file()]


def test_push_to_fake_hub_is_complete_idempotent_and_keeps_the_token_secret(
    run_dir, tmp_path, fake_hub, caplog, capsys
):
    from negforge.publish.push import push_run

    caplog.set_level(logging.DEBUG)
    run = read_run(run_dir)
    first = push_run(run_dir, "org/negs", retry_delay=0.01)
    assert not first.skipped
    files = fake_hub.files("org/negs")
    for config, splits in run.parquet.items():
        path = f"data/{config}/train-00000-of-00001.parquet"
        assert path in files, sorted(files)
        local = pq.read_table(splits["train"])
        (tmp_path / "remote.parquet").write_bytes(files[path])
        assert pq.read_table(tmp_path / "remote.parquet").to_pylist() == local.to_pylist()
    assert files["README.md"].decode() == render_card(run, repo_id="org/negs")
    assert files["images/scores.png"] == PNG
    messages = [c.message for c in fake_hub.commits("org/negs")[1:]]
    assert messages and all(m.startswith(f"negforge run pub {run.fingerprint}") for m in messages)
    assert f"Bearer {FAKE_TOKEN}" in fake_hub.auth_headers  # the token was used ...
    assert set(fake_hub.unknown) <= {("GET", "/api/agent-harnesses")}  # every call the client made is served

    n_commits = len(fake_hub.commits("org/negs"))
    second = push_run(run_dir, "org/negs", retry_delay=0.01)
    assert second.skipped
    assert len(fake_hub.commits("org/negs")) == n_commits and fake_hub.files("org/negs") == files

    # ... and appears nowhere: not in the run folder, the card, the remote files, commit messages or logs
    leaks = [str(p) for p, data in _all_text_under(run_dir) if FAKE_TOKEN.encode() in data]
    leaks += [p for p, data in files.items() if FAKE_TOKEN.encode() in data]
    leaks += [m for m in messages if FAKE_TOKEN in m]
    out = capsys.readouterr()
    assert FAKE_TOKEN not in caplog.text + out.out + out.err
    assert not leaks


def test_push_retries_transient_errors_and_a_failed_push_finishes_on_rerun(run_dir, fake_hub):
    from huggingface_hub.errors import HfHubHTTPError

    from negforge.publish.push import push_run

    fake_hub.fail_commits = 1  # one 503 on the first commit: retried with backoff
    assert not push_run(run_dir, "org/retry", retry_delay=0.01).skipped
    assert "README.md" in fake_hub.files("org/retry")

    run = read_run(run_dir)
    n_configs = len(run.parquet)
    fake_hub.fail_commits = 10**6  # the Hub stays down: the push gives up ...
    with pytest.raises(HfHubHTTPError):
        push_run(run_dir, "org/crash", retry_delay=0.001)
    assert "README.md" not in fake_hub.files("org/crash")  # ... before the card: not marked as done
    fake_hub.fail_commits = 0
    result = push_run(run_dir, "org/crash", retry_delay=0.001)
    assert not result.skipped and len(result.commits) == n_configs + 1
    assert fake_hub.files("org/crash").keys() == fake_hub.files("org/retry").keys()
    assert fake_hub.files("org/crash")["README.md"] == render_card(run, repo_id="org/crash").encode()


def test_push_to_a_branch(run_dir, fake_hub):
    from negforge.publish.push import push_run

    push_run(run_dir, "org/branchy", revision="v1", retry_delay=0.01)
    assert "README.md" in fake_hub.files("org/branchy", "v1")
    assert "README.md" not in fake_hub.files("org/branchy", "main")
