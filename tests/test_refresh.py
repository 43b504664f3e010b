"""ANCE refresh on the tiny slice: a new checkpoint re-mines into a new revision, the corpus is re-encoded only
when the weights changed, chunks refresh a slice, the loop chains train → refresh, the poller refreshes once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_from_disk

from negforge.mining.fingerprint import model_fingerprint
from negforge.pipeline import run
from negforge.training.refresh import ance_loop, newest_checkpoint, refresh, refresh_config
from negforge.training.train import TrainConfig, train


@pytest.fixture(scope="module")
def base_and_checkpoint(tiny_beir, cache_dir, tmp_path_factory):
    from negforge.config import load_config

    out = tmp_path_factory.mktemp("refresh")
    cfg = load_config(
        None,
        [f"data.path={tiny_beir}", f"cache_dir={cache_dir}", f"output.dir={out / 'runs'}", "output.shard_size=4",
         "selection.depth=20", "selection.num_negatives=3", "run_name=base"],
        filters=[{"type": "duplicate"}],
    )  # fmt: skip
    base = run(cfg)
    ckpt = train(
        TrainConfig(
            dataset=base.run_dir, max_steps=3, batch_size=4, max_seq_length=64, output_dir=out / "ckpt"
        )
    )
    return cfg, base, ckpt, out


def test_refresh_writes_a_new_revision_mined_by_the_checkpoint(base_and_checkpoint):
    cfg, base, ckpt, _ = base_and_checkpoint
    res = refresh(cfg, ckpt.output_dir)
    fp = model_fingerprint(ckpt.output_dir)
    assert fp == ckpt.fingerprint
    assert res.run_dir.name == f"base-ance-{fp[:8]}" and res.run_dir != base.run_dir
    m = json.loads(res.manifest_path.read_text())
    assert m["refresh"]["checkpoint_fingerprint"] == fp and m["refresh"]["base_run"] == "base"
    assert m["refresh"]["checkpoint_record"]["dataset"].startswith(str(base.run_dir))
    assert m["models"]["dense"]["fingerprint"] == fp != base.manifest["models"]["dense"]["fingerprint"]
    assert m["models"]["dense"]["embedding_cache"]["misses"] >= 1  # new weights: corpus re-encoded
    assert m["filters"]["stack"][0]["name"] == "duplicate"  # the filters ran again
    rows = load_from_disk(str(res.dataset_dir))["rich"]
    assert rows.num_rows == 12
    # the same checkpoint again: cached embeddings, every shard reused
    again = refresh(cfg, ckpt.output_dir)
    assert again.manifest["models"]["dense"]["embedding_cache"]["misses"] == 0
    assert again.manifest["shards"]["reused"] == again.manifest["shards"]["total"]


def test_refresh_a_chunk_of_the_queries(base_and_checkpoint):
    cfg, _, ckpt, _ = base_and_checkpoint
    new = refresh_config(cfg, ckpt.output_dir, chunk="1/3")
    assert new.data.chunk == "1/3" and new.run_name.endswith("-chunk1of3")
    res = refresh(cfg, ckpt.output_dir, chunk="1/3")
    ids = load_from_disk(str(res.dataset_dir))["rich"]["query_id"]
    all_ids = load_from_disk(str(base_and_checkpoint[1].dataset_dir))["rich"]["query_id"]
    assert ids == all_ids[1::3]
    with pytest.raises(ValueError, match="k must be < n"):
        refresh_config(cfg, ckpt.output_dir, chunk="3/3")


def test_newest_checkpoint(base_and_checkpoint, tmp_path):
    _, _, ckpt, out = base_and_checkpoint
    assert newest_checkpoint(out) == ckpt.output_dir
    assert newest_checkpoint(tmp_path) is None


@pytest.mark.slow
def test_ance_loop_chains_train_and_refresh(base_and_checkpoint, tmp_path):
    cfg, base, _, _ = base_and_checkpoint
    tc = TrainConfig(dataset=base.run_dir, max_steps=2, batch_size=4, max_seq_length=64)
    rounds = ance_loop(cfg, tc, 2, out_dir=tmp_path / "loop")
    assert [r.round for r in rounds] == [1, 2]
    first, second = rounds
    rec2 = json.loads((second.checkpoint / "negforge_checkpoint.json").read_text())
    assert rec2["base_fingerprint"] == first.fingerprint  # round 2 continues from round 1's weights
    assert rec2["dataset"].startswith(str(first.run_dir))  # ... on the negatives round 1's model mined
    m2 = json.loads((second.run_dir / "manifest.json").read_text())
    assert m2["refresh"]["checkpoint_fingerprint"] == second.fingerprint


@pytest.mark.slow
def test_poller_refreshes_once_per_new_checkpoint(prefect_server, base_and_checkpoint, tmp_path):
    import yaml

    from negforge.flows.refresh import refresh_on_new_checkpoint

    cfg, _, _, out = base_and_checkpoint
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({**cfg.model_dump(mode="json"), "run_name": "polled"}))
    first = refresh_on_new_checkpoint(str(path), str(out), chunk="0/4")
    assert first["refreshed"] and first["run_dir"].endswith("-chunk0of4")
    second = refresh_on_new_checkpoint(str(path), str(out), chunk="0/4")
    assert second == {"refreshed": False, "reason": "up to date", "run_dir": first["run_dir"]}
    assert refresh_on_new_checkpoint(str(path), str(tmp_path / "none"))["reason"] == "no checkpoint"


def _config_file(cfg, tmp_path, run_name):
    import yaml

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({**cfg.model_dump(mode="json"), "run_name": run_name}))
    return path


def test_cli_refresh_writes_a_revision_and_names_a_missing_checkpoint(base_and_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from negforge.cli import app

    cfg, _, ckpt, _ = base_and_checkpoint
    path = _config_file(cfg, tmp_path, "cli-base")
    runner = CliRunner()
    res = runner.invoke(
        app,
        ["refresh", str(path), "--checkpoint", str(ckpt.output_dir), "--chunk", "1/4", "--engine", "local"],
    )
    assert res.exit_code == 0, res.output
    assert f"fingerprint {ckpt.fingerprint}" in " ".join(res.output.split())  # rich wraps lines
    (manifest,) = Path(cfg.output.dir).glob(f"cli-base-ance-{ckpt.fingerprint[:8]}*chunk1of4/manifest.json")
    m = json.loads(manifest.read_text())
    assert m["refresh"]["checkpoint_fingerprint"] == ckpt.fingerprint
    bad = runner.invoke(
        app, ["refresh", str(path), "--checkpoint", str(tmp_path / "no-such-ckpt"), "--engine", "local"]
    )
    flat = "".join(bad.output.split())
    assert bad.exit_code == 2 and "no-such-ckpt" in flat and "Traceback" not in bad.output, bad.output


@pytest.mark.slow
def test_cli_loop_trains_and_refreshes(base_and_checkpoint, tmp_path):
    from typer.testing import CliRunner

    from negforge.cli import app

    cfg, _, _, _ = base_and_checkpoint
    path = _config_file(cfg, tmp_path, "cli-loop")
    res = CliRunner().invoke(
        app,
        ["loop", str(path), "--rounds", "1", "--max-steps", "1", "--batch-size", "4", "--max-seq-length", "32",
         "--out-dir", str(tmp_path / "ckpts"), "--engine", "local"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "round 1: checkpoint" in res.output
    assert (tmp_path / "ckpts" / "round-1" / "negforge_checkpoint.json").is_file()
