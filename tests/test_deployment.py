"""prefect.yaml end to end on a real Prefect server and a real process worker: deploy, trigger, the worker
runs the flow, the run publishes a local Hub folder that `datasets.load_dataset` reads."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _prefect(args: list[str], env: dict, timeout: float = 180) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "prefect", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_deployment_runs_on_a_worker_and_publishes(prefect_server, tiny_beir, cache_dir, tmp_path):
    from datasets import load_dataset
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL

    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "NEGFORGE_HOME": str(ROOT),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "NEGFORGE_PROGRESS": "0",
    }
    _prefect(["work-pool", "create", "negforge", "--type", "process"], env)
    _prefect(["--no-prompt", "deploy", "--name", "demo-nightly"], env)

    async def deployment():
        async with get_client() as client:
            return await client.read_deployment_by_name("build_from_file/demo-nightly")

    dep = asyncio.run(deployment())
    assert dep.work_pool_name == "negforge"
    assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]
    assert dep.parameters["config_path"] == "configs/demo.yaml"

    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "data": {"path": str(tiny_beir)},
                "cache_dir": str(cache_dir),
                "output": {"dir": str(tmp_path / "runs"), "shard_size": 4},
                "selection": {"depth": 20, "num_negatives": 3},
                "filters": [{"type": "duplicate"}],
            }
        )
    )
    hub = tmp_path / "hub"
    run = run_deployment(
        "build_from_file/demo-nightly",
        parameters={"config_path": str(cfg), "overrides": [], "run_name": "deployed", "publish_to": str(hub)},
        timeout=0,
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "prefect", "worker", "start", "--pool", "negforge", "--run-once"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip

    async def state():
        async with get_client() as client:
            return (await client.read_flow_run(run.id)).state

    try:
        deadline = time.monotonic() + 420
        st = asyncio.run(state())
        while not st.is_final() and time.monotonic() < deadline:
            time.sleep(3)
            st = asyncio.run(state())
    finally:
        worker.terminate()
        log = worker.communicate(timeout=60)[0]
    assert st.is_completed(), f"{st}\n{log[-4000:]}"
    assert (tmp_path / "runs" / "deployed" / "manifest.json").exists()
    triplet = load_dataset(str(hub), "triplet", split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert triplet.column_names == ["anchor", "positive", "negative"] and len(triplet) > 0
    assert "configs:" in (hub / "README.md").read_text()
