"""The console tells the truth and nothing else: no telemetry errors, no foreign tracebacks or debug lines,
two runs at once both fine, and progress as plain lines when nobody watches a terminal."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from negforge import progress
from negforge.timing import Timings

NEGFORGE = Path(sys.executable).with_name("negforge")
# what a shell without `make` has: none of the Makefile's exports, none of the test session's switches
_SESSION_ONLY = {
    "DO_NOT_TRACK",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_DISABLE_PROGRESS_BARS",
    "HF_HUB_DISABLE_PROGRESS_BARS",
}
FOREIGN = ("Traceback", "database is locked", "telemetry", "Telemetry", "ERROR", "Error", "DEBUG")


def plain_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user's shell: no PREFECT_*/NEGFORGE_* settings, a fresh Prefect home."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "NEGFORGE_")) and k not in _SESSION_ONLY
    }
    home = tmp_path / "prefect-home"
    home.mkdir(exist_ok=True)
    return {**env, "PREFECT_HOME": str(home), "COLUMNS": "160", **extra}


def foreign_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if any(word in line for word in FOREIGN)]


@pytest.fixture
def lines_mode(monkeypatch):
    """Progress on, not a terminal, a line at every step."""
    monkeypatch.setattr(progress, "_enabled", True)
    monkeypatch.setattr(progress, "interactive", lambda: False)
    monkeypatch.setenv("NEGFORGE_PROGRESS_INTERVAL", "0")


def test_progress_off_a_terminal_is_lines_with_counts_and_rates(lines_mode, capsys):
    with progress.progress_bar("mine shards", 3) as advance:
        advance(0)  # a resume that found nothing done says nothing
        for _ in range(3):
            time.sleep(0.01)
            advance(1)
    timings = Timings()
    with timings.stage("dense_corpus", 1000, "docs"):
        time.sleep(0.02)
    timings.add("report", 0.5)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert lines[0].startswith("[negforge] mine shards: 1/3 (") and lines[1].startswith(
        "[negforge] mine shards: 2/3 ("
    )
    assert re.fullmatch(r"\[negforge\] mine shards: 3/3 in \d+\.\d+ s \([\d.,]+/s\)", lines[2]), lines[2]
    assert re.fullmatch(r"\[negforge\] dense_corpus: 1000 docs in \d+\.\d+ s \([\d.,]+ docs/s\)", lines[3]), (
        lines[3]
    )
    assert lines[4] == "[negforge] report: 0.50 s"
    assert len(lines) == 5 and "\r" not in err and "━" not in err
    assert (
        timings.stages["dense_corpus"]["items"] == 1000 and timings.stages["dense_corpus"]["per_second"] > 0
    )


def test_periodic_lines_wait_for_the_interval(lines_mode, monkeypatch, capsys):
    monkeypatch.setenv("NEGFORGE_PROGRESS_INTERVAL", "3600")
    with progress.progress_bar("encode corpus", 100) as advance:
        for _ in range(10):
            advance(10)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("[negforge] encode corpus: 100/100 in "), lines


def test_a_stopped_loop_and_a_failed_stage_say_so(lines_mode, capsys):
    with pytest.raises(KeyboardInterrupt), progress.progress_bar("mine shards", 4) as advance:
        advance(1)
        raise KeyboardInterrupt
    timings = Timings()
    with pytest.raises(ValueError), timings.stage("dense_corpus", 10, "docs"):
        raise ValueError("boom")
    err = capsys.readouterr().err
    assert "[negforge] mine shards: stopped at 1/4 after " in err
    assert "dense_corpus" not in err  # a failed stage is not announced as done ...
    assert timings.stages["dense_corpus"]["seconds"] >= 0  # ... but its time is kept for the manifest


def test_nothing_when_progress_is_off(monkeypatch, capsys):
    monkeypatch.setattr(progress, "_enabled", False)
    with progress.progress_bar("mine shards", 3) as advance:
        advance(3)
    with Timings().stage("bm25_index", 5, "docs"):
        pass
    assert capsys.readouterr() == ("", "")


_PROBE = textwrap.dedent(
    """
    import json, logging, os
    import negforge.flows  # sets negforge's Prefect environment
    from prefect.settings import get_current_settings
    import bm25s  # sets its own logger to DEBUG
    logging.getLogger("bm25s").debug("bm25s-debug-line")
    logging.getLogger("bm25s").warning("bm25s-warning-line")
    s = get_current_settings()
    print(json.dumps({
        "analytics": s.server.analytics_enabled,
        "database": s.server.database.connection_url.get_secret_value(),
        "memoize": s.server.memoize_block_auto_registration,
        "startup_timeout": s.server.ephemeral.startup_timeout_seconds,
        "api_url": s.api.url,
        "do_not_track": os.environ.get("DO_NOT_TRACK"),
    }))
    """
)


def _probe(env: dict[str, str]) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_safe_prefect_settings_by_default(tmp_path):
    got, err = _probe(plain_env(tmp_path))
    assert got["analytics"] is False and got["do_not_track"] == "1"
    assert got["database"] == "sqlite+aiosqlite:///:memory:" and got["memoize"] is False
    assert got["startup_timeout"] == 120 and got["api_url"] is None
    assert "bm25s-debug-line" not in err and "bm25s-warning-line" in err


def test_what_the_user_set_wins(tmp_path):
    env = plain_env(tmp_path, DO_NOT_TRACK="0", PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="33")
    # `prefect config set` writes the active profile: analytics on there, and a server to talk to
    (Path(env["PREFECT_HOME"]) / "profiles.toml").write_text(
        'active = "mine"\n\n[profiles.mine]\nPREFECT_SERVER_ANALYTICS_ENABLED = "true"\n'
        'PREFECT_API_URL = "http://127.0.0.1:4200/api"\n'
    )
    got, _ = _probe(env)
    assert got["analytics"] is True and got["do_not_track"] == "0" and got["startup_timeout"] == 33
    # with a server of their own nothing starts locally: the database stays Prefect's default
    assert got["api_url"] == "http://127.0.0.1:4200/api" and ":memory:" not in got["database"]


def _run_args(config: Path, cache: Path, out: Path, *extra: str) -> list[str]:
    return [
        str(NEGFORGE),
        "run",
        str(config),
        "--set",
        "sources.dense.enabled=false",
        "--set",
        f"cache_dir={cache}",
        "--set",
        f"output.dir={out}",
        "--set",
        "output.shard_size=4",
        *extra,
    ]


@pytest.fixture
def bm25_config(tiny_beir, tmp_path) -> Path:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_name: console\ndata: {{format: beir, path: {tiny_beir}}}\n")
    return cfg


def test_local_run_off_a_terminal_prints_stage_lines(bm25_config, tmp_path):
    env = plain_env(tmp_path, NEGFORGE_PROGRESS_INTERVAL="0")
    proc = subprocess.run(
        _run_args(bm25_config, tmp_path / "cache", tmp_path / "runs", "--engine", "local"),
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    assert re.search(r"^\[negforge\] bm25_index: 200 docs in \d+\.\d+ s \([\d.,]+ docs/s\)$", err, re.M), err
    assert re.search(r"^\[negforge\] mine shards: 1/3 \(", err, re.M), err
    assert re.search(r"^\[negforge\] mine shards: 3/3 in ", err, re.M), err
    assert re.search(r"^\[negforge\] write: 12 queries in ", err, re.M), err
    assert "\r" not in err and "mine shards" not in proc.stdout  # lines, no bars
    assert not foreign_lines(proc.stdout + err), foreign_lines(proc.stdout + err)
    assert "12 queries" in proc.stdout


@pytest.mark.slow
def test_two_prefect_runs_at_once_both_succeed_and_stay_quiet(bm25_config, tmp_path):
    """Two `negforge run` in two terminals, same user, same Prefect home, each with its ephemeral server."""
    env = plain_env(tmp_path)
    procs = [
        subprocess.Popen(
            _run_args(bm25_config, tmp_path / f"cache{i}", tmp_path / f"runs{i}"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for i, (proc, (out, err)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, err[-3000:]
        assert not foreign_lines(out + err), foreign_lines(out + err)
        assert f"dataset: {tmp_path / f'runs{i}' / 'console' / 'dataset'}" in out
        assert re.search(r"^\[negforge\] bm25_index: 200 docs in ", err, re.M), err
        assert re.search(r"^\[negforge\] mine shards: 3/3 in ", err, re.M), err
        assert re.search(r"^\[negforge\] mine: 12 queries in ", err, re.M), err
    # each ephemeral server had its own in-memory database: nothing shared on disk to lock
    assert not (Path(env["PREFECT_HOME"]) / "prefect.db").exists()
