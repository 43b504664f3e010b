"""The Prefect flow on a real (test harness) Prefect server: tasks run, shards written, reruns reuse them."""

import pytest
from datasets import load_from_disk

pytestmark = pytest.mark.slow


def test_build_negatives_flow_runs_tasks_and_resumes(prefect_server, make_config):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from negforge.flows.build import build_negatives

    cfg = make_config("selection.num_negatives=3")
    state = build_negatives(cfg.model_dump(mode="json"), return_state=True)
    assert state.is_completed()
    manifest = state.result()
    assert manifest["shards"] == {"total": 3, "reused": 0, "written": 3}
    dd = load_from_disk(manifest["outputs"]["dataset"])
    assert dd["rich"].num_rows == 12 and dd["triplet"].column_names == ["anchor", "positive", "negative"]

    async def task_names(flow_run_id):
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            return sorted(r.name for r in runs)

    import asyncio

    names = asyncio.run(task_names(state.state_details.flow_run_id))
    assert [n for n in names if n.startswith("shard-")] == ["shard-0", "shard-1", "shard-2"]
    stages = {n.rsplit("-", 1)[0] for n in names if not n.startswith("shard-")}
    assert stages == {"load", "mine-bm25-index", "mine-dense-encode-index", "select-setup", "write"}

    again = build_negatives(cfg.model_dump(mode="json"))
    assert again["shards"] == {"total": 3, "reused": 3, "written": 0}
    assert load_from_disk(again["outputs"]["dataset"])["rich"].to_list() == dd["rich"].to_list()


def test_flow_fails_cleanly_on_bad_input(prefect_server, make_config, tmp_path):
    from negforge.flows.build import build_negatives
    from negforge.sources import InputError

    cfg = make_config(f"data.path={tmp_path / 'missing'}")
    with pytest.raises(InputError, match="BEIR folder not found"):
        build_negatives(cfg.model_dump(mode="json"))
