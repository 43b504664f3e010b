"""The command line as a user meets it: help, clean errors without tracebacks, a real local run."""

import json
import os
import subprocess
import sys

from typer.testing import CliRunner

from negforge.cli import app

runner = CliRunner()


def test_help_explains_commands_and_overrides():
    top = runner.invoke(app, ["--help"])
    assert top.exit_code == 0 and "run" in top.output and "hard-negative" in top.output
    sub = runner.invoke(app, ["run", "--help"])
    assert sub.exit_code == 0 and "--set" in sub.output and "selection.num_negatives" in sub.output


def test_unknown_key_exits_2_with_the_key_and_no_traceback(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {format: beir, path: x}\nselection: {depht: 3}\n")
    res = runner.invoke(app, ["run", str(cfg)])
    assert res.exit_code == 2
    assert "selection.depht" in res.output and "Traceback" not in res.output


def test_missing_data_folder_is_a_clean_error(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{format: beir, path: {tmp_path / 'nope'}}}\n")
    res = runner.invoke(app, ["run", str(cfg), "--engine", "local", "--no-progress"])
    assert res.exit_code == 2 and "BEIR folder not found" in res.output and "Traceback" not in res.output


def test_validate_prints_defaults(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {format: beir, path: x}\n")
    res = runner.invoke(app, ["validate", str(cfg), "--set", "selection.depth=7"])
    assert res.exit_code == 0 and "depth: 7" in res.output and "num_negatives: 5" in res.output


def test_run_local_prints_where_and_what(tiny_beir, cache_dir, tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"run_name: cli\ncache_dir: {cache_dir}\ndata: {{format: beir, path: {tiny_beir}}}\noutput: {{dir: {tmp_path}}}\n"
    )
    env = {**os.environ, "COLUMNS": "160"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "negforge.cli",
            "run",
            str(cfg),
            "--engine",
            "local",
            "--no-progress",
            "--set",
            "selection.num_negatives=2",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"dataset: {tmp_path / 'cli' / 'dataset'}" in proc.stdout
    assert "12 queries" in proc.stdout and "scores by source" in proc.stdout
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["config"]["selection"]["num_negatives"] == 2
    show = runner.invoke(app, ["show", str(tmp_path / "cli")])
    assert show.exit_code == 0 and "12 queries" in show.output
