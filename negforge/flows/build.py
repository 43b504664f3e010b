"""`build_negatives`: load → prepare each miner and filter → mine shards (on the configured task runner,
written as they finish) → write outputs, report and artifacts.

Shard tasks get the config as JSON and query positions, never the corpus or the indexes: a worker process
loads those once from the cache the driver filled, so the same flow runs on threads, Dask or Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import as_completed

from negforge import pipeline
from negforge.config import ExecutionConfig, RunConfig
from negforge.config.filters import MODEL_FILTER_CONFIGS
from negforge.flows.artifacts import ShardProgress, publish_run_artifacts
from negforge.flows.driver_task import driver_task
from negforge.progress import progress_bar

load = driver_task(pipeline.load_data, name="load")
prepare_bm25 = driver_task(pipeline.prepare_bm25, name="mine-bm25-index")
pin_precision = driver_task(pipeline.pin_precision, name="pin-precision")
prepare_dense = driver_task(pipeline.prepare_dense, name="mine-dense-encode-index")
make_context = driver_task(pipeline.make_context, name="select-setup")
prepare_filters = driver_task(pipeline.prepare_filters, name="filters-setup")
prepare_llm = driver_task(pipeline.prepare_llm, name="llm-start")
mine_shard = driver_task(
    pipeline.run_shard, name="mine-filter-mix-shard", task_run_name="shard-{shard}", retries=1
)
finalize = driver_task(pipeline.finalize, name="write")
#: `pipeline.prepare_build`'s steps as tasks: the flow runs the library's one sequence, each step a task run
STEPS = pipeline.BuildSteps(
    load_data=load,
    pin_precision=pin_precision,
    prepare_bm25=prepare_bm25,
    prepare_dense=prepare_dense,
    make_context=make_context,
    prepare_llm=prepare_llm,
    prepare_filters=prepare_filters,
)

LLM_TAG = "negforge-llm"
CROSS_ENCODER_TAG = "negforge-cross-encoder"


def task_runner(ex: ExecutionConfig):
    """The Prefect task runner for shard tasks, from `execution`."""
    if ex.runner == "dask":
        from prefect_dask import DaskTaskRunner

        if ex.address:
            return DaskTaskRunner(address=ex.address)
        return DaskTaskRunner(
            cluster_kwargs={
                "n_workers": ex.workers,
                "threads_per_worker": ex.threads_per_worker,
                "processes": True,
                "host": "127.0.0.1",
                "dashboard_address": None,
            }
        )
    if ex.runner == "ray":
        try:
            from prefect_ray import RayTaskRunner
        except ImportError:
            raise ImportError("execution.runner=ray needs prefect-ray: pip install 'negforge[ray]'") from None
        # a local cluster: `workers` CPUs on loopback, no dashboard; an address joins the cluster as it is
        init = (
            {"num_cpus": ex.workers, "include_dashboard": False, "_node_ip_address": "127.0.0.1"}
            if not ex.address
            else {}
        )
        return RayTaskRunner(address=ex.address, init_kwargs=init)
    from prefect.task_runners import ThreadPoolTaskRunner

    return ThreadPoolTaskRunner(max_workers=ex.workers)


def _shard_tags(cfg: RunConfig) -> list[str]:
    tags = []
    if cfg.sources.llm.enabled:
        tags.append(LLM_TAG)
    if any(isinstance(f, MODEL_FILTER_CONFIGS) for f in cfg.filters):
        tags.append(CROSS_ENCODER_TAG)
    return tags


def ensure_concurrency_limits(cfg: RunConfig) -> dict[str, int]:
    """Tag concurrency limits guarding the LLM endpoint and the cross-encoder, created or updated on the server."""
    from prefect.client.orchestration import get_client

    want = {
        LLM_TAG: cfg.execution.llm_concurrency,
        CROSS_ENCODER_TAG: cfg.execution.cross_encoder_concurrency,
    }
    limits = {k: v for k, v in want.items() if v is not None}
    if limits:
        with get_client(sync_client=True) as client:
            for tag, limit in limits.items():
                client.create_concurrency_limit(tag=tag, concurrency_limit=limit)
    return limits


@flow(name="build_negatives", validate_parameters=True)
def build_negatives(config: dict[str, Any], overwrite: bool = False) -> dict:
    """Build hard negatives for the run described by `config` (a RunConfig as a dict); returns the manifest."""
    cfg = RunConfig.model_validate(config)
    log = get_run_logger()
    b = pipeline.prepare_build(cfg, overwrite=overwrite, steps=STEPS)
    cfg, ctx, shards, todo, llm, gen_llm = b.cfg, b.ctx, b.shards, b.todo, b.llm, b.gen_llm
    log.info(
        "%d queries in %d shards; %d already done", len(b.data.queries), len(shards), len(shards) - len(todo)
    )
    try:
        limits = ensure_concurrency_limits(cfg)
        if limits:
            log.info("concurrency limits: %s", limits)
        shard_cfg = pipeline.worker_config(cfg, llm)  # workers' judges reach the same endpoints
        runner = task_runner(cfg.execution)
    except BaseException:
        b.close()
        raise
    pipeline.register_context(cfg, ctx, gen_llm)
    try:
        with runner, progress_bar("mine shards", len(todo)) as advance, ShardProgress(len(todo)) as artifact:
            # with an LLM the driver owns the run's one generation queue: a shard task starts when all of
            # its items are answered (then read from the store), while other shards are still generating
            ready = (
                pipeline.pregenerate(ctx, gen_llm, shards, todo)
                if gen_llm is not None
                else ((i, None) for i in todo)
            )
            futures, shard_of, failures = [], {}, []
            try:
                for i, gen in ready:
                    fut = runner.submit(
                        mine_shard.with_options(tags=_shard_tags(cfg)),
                        {"config": shard_cfg, "shard": i, "qidx": shards[i], "generation": gen},
                    )
                    futures.append(fut)
                    shard_of[id(fut)] = i
            except Exception as err:  # GenerationFailed: shards already handed over still finish below
                failures.append(("generation", err))
            # every submitted shard is waited for before any failure is raised: leaving `with runner` early
            # would cancel the queued ones, and a crash must lose no shard that could be finished
            for fut in as_completed(futures):
                try:
                    fut.result()
                except Exception as err:
                    failures.append((f"shard {shard_of[id(fut)]}", err))
                    continue
                advance(1)
                artifact.advance()
            if failures:
                raise _first_of(failures, log)
    finally:
        pipeline.forget_context(cfg)
        b.close()
    result = finalize(cfg, ctx, b.data, b.store, shards, b.timings, todo, gen_llm)
    publish_run_artifacts(result.manifest, Path(result.run_dir))
    log.info("dataset written to %s", result.dataset_dir)
    return result.manifest


def _first_of(failures: list[tuple[str, Exception]], log: Any) -> Exception:
    """Log every failure (which shard, what error) and return the first to raise, with a note naming the
    others: a run whose shards failed for two reasons shows both, not only the first."""
    for where, err in failures:
        log.error("%s failed: %s: %s", where, type(err).__name__, err)
    first = failures[0][1]
    if len(failures) > 1:
        first.add_note(
            f"{len(failures) - 1} more failed: "
            + "; ".join(f"{w}: {type(e).__name__}: {e}" for w, e in failures[1:])
        )
    return first


def run_flow(cfg: RunConfig, overwrite: bool = False) -> dict:
    """Run the flow (the CLI's default engine)."""
    return build_negatives(cfg.model_dump(mode="json"), overwrite=overwrite)


@flow(name="build_from_file", validate_parameters=True)
def build_from_file(
    config_path: str,
    overrides: list[str] | None = None,
    run_name: str | None = None,
    overwrite: bool = False,
    publish_to: str | None = None,
    hub_repo: str | None = None,
) -> dict:
    """Deployment entry point: a config file (+ `--set` style overrides), built and optionally published to a
    local Hub folder (`publish_to`) and/or the Hugging Face Hub (`hub_repo`, token from HF_TOKEN)."""
    from negforge.config import load_config

    extra = {"run_name": run_name} if run_name else {}
    cfg = load_config(config_path, overrides or [], **extra)
    manifest = build_negatives(cfg.model_dump(mode="json"), overwrite=overwrite)
    if publish_to or hub_repo:
        from negforge.flows.publish import publish_run

        publish_run(str(cfg.run_dir), local_dir=publish_to, repo_id=hub_repo)
    return manifest
