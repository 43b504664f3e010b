"""`build_negatives`: load → prepare each miner → mine shards (written as they finish) → write outputs."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from negforge import pipeline
from negforge.config import RunConfig
from negforge.progress import progress_bar
from negforge.shards import ShardStore, plan_shards
from negforge.timing import Timings

# Big in-memory objects (corpus, indexes) pass between tasks in one process: no caching, no result storage.
_task = task(cache_policy=NO_CACHE, persist_result=False)

load = _task(pipeline.load_data, name="load")
prepare_bm25 = _task(pipeline.prepare_bm25, name="mine-bm25-index")
prepare_dense = _task(pipeline.prepare_dense, name="mine-dense-encode-index")
make_context = _task(pipeline.make_context, name="select-setup")
prepare_filters = _task(pipeline.prepare_filters, name="filters-setup")
mine_shard = _task(pipeline.mine_shard, name="mine-select-shard", task_run_name="shard-{shard}")
finalize = _task(pipeline.finalize, name="write")


@flow(name="build_negatives", validate_parameters=True)
def build_negatives(config: dict[str, Any], overwrite: bool = False) -> dict:
    """Build hard negatives for the run described by `config` (a RunConfig as a dict); returns the manifest."""
    cfg = RunConfig.model_validate(config)
    log = get_run_logger()
    timings = Timings()
    data = load(cfg, timings)
    store = ShardStore(cfg.run_dir)
    store.open(pipeline.run_identity(cfg, data), overwrite=overwrite)
    bm25 = prepare_bm25(cfg, data, timings)
    dense, qemb = prepare_dense(cfg, data, timings)
    ctx = make_context(cfg, data, bm25, dense, qemb, timings)
    ctx.filters = prepare_filters(cfg, data, dense, qemb, timings)
    shards = plan_shards(len(data.queries), cfg.output.shard_size)
    todo = [i for i in range(len(shards)) if not store.is_done(i)]
    log.info(
        "%d queries in %d shards; %d already done", len(data.queries), len(shards), len(shards) - len(todo)
    )
    with progress_bar("mine shards", len(todo)) as advance:
        for i in todo:
            mine_shard(ctx, store, i, shards[i])
            advance(1)
    result = finalize(cfg, ctx, data, store, shards, timings, len(shards) - len(todo))
    log.info("dataset written to %s", result.dataset_dir)
    return result.manifest
