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
    assert stages == {
        "load", "pin-precision", "mine-bm25-index", "mine-dense-encode-index", "select-setup", "filters-setup", "llm-start", "write",
    }  # fmt: skip

    async def artifacts(flow_run_id):
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        async with get_client() as client:
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
            )
            return {(a.type, a.key) for a in arts}, arts

    kinds, arts = asyncio.run(artifacts(state.state_details.flow_run_id))
    assert ("markdown", "negforge-run-report") in kinds
    assert {("table", "negforge-run-source-bm25"), ("table", "negforge-run-source-dense")} <= kinds
    assert any(t == "progress" for t, _ in kinds)
    report = next(a for a in arts if a.key == "negforge-run-report")
    assert "## Funnel" in report.data

    again = build_negatives(cfg.model_dump(mode="json"))
    assert again["shards"] == {"total": 3, "reused": 3, "written": 0}
    assert load_from_disk(again["outputs"]["dataset"])["rich"].to_list() == dd["rich"].to_list()


def test_flow_fails_cleanly_on_bad_input(prefect_server, make_config, tmp_path):
    from negforge.flows.build import build_negatives
    from negforge.sources import InputError

    cfg = make_config(f"data.path={tmp_path / 'missing'}")
    with pytest.raises(InputError, match="BEIR folder not found"):
        build_negatives(cfg.model_dump(mode="json"))


def test_dask_local_cluster_gives_the_threaded_rows(prefect_server, make_config, tmp_path):
    """A sharded build on a real Dask LocalCluster (two worker processes on loopback, shards of 3 queries)
    equals the threaded one (one thread, shards of 4): rows depend on neither workers nor shard size."""
    from negforge.flows.build import build_negatives

    filters = [{"type": "sanity"}, {"type": "duplicate"}, {"type": "embedding", "max_positive_sim": 0.85}]
    threaded = make_config("run_name=threads", filters=filters)
    dask = make_config(
        "run_name=dask",
        "execution.runner=dask",
        "execution.workers=2",
        "output.shard_size=3",
        filters=filters,
    )
    a = build_negatives(threaded.model_dump(mode="json"))
    b = build_negatives(dask.model_dump(mode="json"))
    assert b["config"]["execution"]["runner"] == "dask" and b["config"]["output"]["shard_size"] == 3
    ra = load_from_disk(a["outputs"]["dataset"])["rich"].to_list()
    rb = load_from_disk(b["outputs"]["dataset"])["rich"].to_list()
    assert len(ra) == 12 and ra == rb
    assert a["filters"]["verdicts"] == b["filters"]["verdicts"]


def test_ray_local_cluster_gives_the_threaded_rows(prefect_server, make_config, tmp_path):
    """The same sharded build on a real local Ray cluster (ray.init on loopback, two CPUs: two worker
    processes, shards of 3 queries) equals the threaded one: rows depend on neither runner nor shard size."""
    from negforge.flows.build import build_negatives

    filters = [{"type": "sanity"}, {"type": "duplicate"}, {"type": "embedding", "max_positive_sim": 0.85}]
    threaded = make_config("run_name=threads", filters=filters)
    ray = make_config(
        "run_name=ray",
        "execution.runner=ray",
        "execution.workers=2",
        "output.shard_size=3",
        filters=filters,
    )
    a = build_negatives(threaded.model_dump(mode="json"))
    b = build_negatives(ray.model_dump(mode="json"))
    assert b["config"]["execution"]["runner"] == "ray" and b["config"]["output"]["shard_size"] == 3
    ra = load_from_disk(a["outputs"]["dataset"])["rich"].to_list()
    rb = load_from_disk(b["outputs"]["dataset"])["rich"].to_list()
    assert len(ra) == 12 and ra == rb
    assert a["filters"]["verdicts"] == b["filters"]["verdicts"]


def test_concurrency_limit_guards_model_filter_shards(prefect_server, make_config, minilm_path, tmp_path):
    import asyncio

    import torch
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from sentence_transformers import CrossEncoder

    from negforge.flows.build import CROSS_ENCODER_TAG, build_negatives

    torch.manual_seed(0)
    CrossEncoder(minilm_path, num_labels=1).save(str(tmp_path / "ce"))
    cfg = make_config(
        "run_name=limited", "execution.cross_encoder_concurrency=1", "execution.workers=2",
        filters=[{"type": "cross_encoder", "model": str(tmp_path / "ce"), "max_prob": None}],
    )  # fmt: skip
    state = build_negatives(cfg.model_dump(mode="json"), return_state=True)
    assert state.is_completed()

    async def check(flow_run_id):
        async with get_client() as client:
            limit = await client.read_concurrency_limit_by_tag(CROSS_ENCODER_TAG)
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            return limit, [r for r in runs if r.name.startswith("shard-")]

    limit, shards = asyncio.run(check(state.state_details.flow_run_id))
    assert limit.concurrency_limit == 1
    assert len(shards) == 3 and all(CROSS_ENCODER_TAG in r.tags for r in shards)


def test_a_flow_that_loses_its_llm_server_keeps_every_finished_shard(prefect_server, make_config):
    """The flow hands shards to the task runner as their answers complete; when the server dies, the shards
    already handed over are still written (not cancelled with the runner), and a rerun redoes only the rest."""
    from negforge.flows.build import build_negatives
    from negforge.generators.synthesize import GenerationFailed
    from tests.fault_server import FaultyOpenAIServerDouble
    from tests.test_pipeline_llm import llm_overrides

    # 12 queries in shards of 4, concurrency 1: 6 answers are shard 0's four and two of shard 1's
    with FaultyOpenAIServerDouble(["ok"] * 6, default="503") as srv:
        cfg = make_config(*llm_overrides(srv.base_url, "seed=8", "sources.llm.concurrency=1"))
        with pytest.raises(GenerationFailed, match="rerun to resume"):
            build_negatives(cfg.model_dump(mode="json"))
    assert sorted(p.name for p in (cfg.run_dir / "shards").glob("shard-*.json")) == ["shard-00000.json"]
    with FaultyOpenAIServerDouble() as srv2:
        again = make_config(*llm_overrides(srv2.base_url, "seed=8", "sources.llm.concurrency=1"))
        manifest = build_negatives(again.model_dump(mode="json"))
    assert manifest["shards"] == {"total": 3, "reused": 1, "written": 2}
    assert len(srv2.requests) == 6  # 4 went into shard 0, 2 more were stored before the failure


def test_every_failed_shard_is_logged_and_named_in_the_raised_error():
    from negforge.flows.build import _first_of

    class RecordingLogger:  # the run logger's one method used here
        def __init__(self):
            self.lines = []

        def error(self, fmt, *args):
            self.lines.append(fmt % args)

    log = RecordingLogger()
    errors = [("shard 2", ValueError("bad row")), ("shard 5", OSError("disk full"))]
    first = _first_of(errors, log)
    assert first is errors[0][1]
    assert first.__notes__ == ["1 more failed: shard 5: OSError: disk full"]
    assert log.lines == ["shard 2 failed: ValueError: bad row", "shard 5 failed: OSError: disk full"]
