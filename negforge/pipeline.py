"""The build, as plain functions: load → prepare miners → mine shards → finalize. No Prefect here.

`negforge.flows.build` wires these into a Prefect flow; `run()` chains them directly for library users.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from negforge.config import RunConfig
from negforge.filters import FilterQuery, FilterStack, build_stack
from negforge.generators.attach import add_rule_negatives, attach_synthetic, generation_items, pregenerate
from negforge.generators.llm_stage import LLMStage
from negforge.mining.bm25 import BM25Miner
from negforge.mining.dense import DenseMiner, release_pages
from negforge.mining.fingerprint import texts_digest
from negforge.mining.pool import MiningContext, mine_queries
from negforge.mining.topics import cluster_topics
from negforge.mixing.mix import judge_and_mix
from negforge.precision_pin import PinnedRun, pin_precision
from negforge.progress import progress_bar
from negforge.publish.finalize import RunResult, finalize
from negforge.publish.rich import rich_table
from negforge.records import TrainingInput
from negforge.run_store.identity import report_changes, run_identity
from negforge.run_store.shards import ShardStore, plan_shards
from negforge.sources import load_input
from negforge.timing import Timings


def load_data(cfg: RunConfig, timings: Timings) -> TrainingInput:
    t0 = time.perf_counter()
    data = load_input(cfg.data)
    if cfg.data.chunk:
        k, n = map(int, cfg.data.chunk.split("/"))
        data.queries = [q for i, q in enumerate(data.queries) if i % n == k]
    timings.add("load", time.perf_counter() - t0, len(data.queries), "queries")
    return data


def prepare_bm25(cfg: RunConfig, data: TrainingInput, timings: Timings) -> BM25Miner | None:
    if not cfg.sources.bm25.enabled:
        return None
    miner = BM25Miner(cfg.sources.bm25, cfg.cache_path)
    with timings.stage("bm25_index", len(data.corpus), "docs"):
        miner.prepare(data.corpus.texts, texts_digest(data.corpus.texts))
    return miner


def prepare_dense(
    cfg: RunConfig, data: TrainingInput, timings: Timings, pinned: PinnedRun | None = None
) -> tuple[DenseMiner | None, np.ndarray | None]:
    """Embed corpus and queries (cached) and build the index; needed for dense mining, scores and topics.
    `pinned`: `pin_precision`'s result; its miner (the one that resolved the backend) is reused, with its
    gate verdict."""
    if not cfg.sources.dense.enabled:
        return None, None
    miner = pinned.dense if pinned is not None and pinned.dense is not None else None
    miner = miner or DenseMiner(cfg.sources.dense, cfg.cache_path)
    with timings.stage("dense_corpus", len(data.corpus), "docs"):
        miner.prepare(data.corpus.texts, cfg.seed)
    with timings.stage("dense_queries", len(data.queries), "queries"):
        query_emb = miner.embed([q.text for q in data.queries], "query")
    return miner, query_emb


def make_context(
    cfg: RunConfig,
    data: TrainingInput,
    bm25: BM25Miner | None,
    dense: DenseMiner | None,
    query_emb: np.ndarray | None,
    timings: Timings,
) -> MiningContext:
    ctx = MiningContext(cfg, data.corpus, data.queries, bm25=bm25, dense=dense, query_emb=query_emb)
    ctx.given_only = data.given_only
    if bm25 is not None:
        ctx.notes.extend(bm25.notes)
    want = cfg.selection.skip_top + cfg.selection.depth
    if want > len(data.corpus) - 1:
        ctx.notes.append(
            f"corpus has {len(data.corpus)} documents, fewer than selection.skip_top+depth={want}: depth clamped"
        )
    k = cfg.selection.topics.clusters
    if k and dense is not None and dense.corpus_emb is not None and query_emb is not None:
        with timings.stage("topics", len(data.queries), "queries"):
            ctx.topics = cluster_topics(
                query_emb, dense.corpus_emb, k, iterations=cfg.selection.topics.iterations, seed=cfg.seed
            )
        if ctx.topics.k < k:
            ctx.notes.append(f"selection.topics.clusters={k} clamped to {ctx.topics.k} (number of queries)")
    return ctx


def prepare_filters(
    cfg: RunConfig,
    data: TrainingInput,
    dense: DenseMiner | None,
    query_emb: np.ndarray | None,
    timings: Timings,
    llm: LLMStage | None = None,
    pinned: PinnedRun | None = None,
) -> FilterStack | None:
    """Load every filter's model once; calibrate cross-encoder thresholds on a seeded sample of queries.
    `llm`: the run's started LLM, which llm_judge filters ask. `pinned`: `pin_precision`'s result, whose
    loaded cross-encoder and NLI models (with their gate verdicts) are reused."""
    if not cfg.filters:
        return None
    with timings.stage("filters_setup"):
        scorers = pinned.scorers if pinned is not None else None
        stack = build_stack(cfg.filters, dense, query_emb, llm, cfg.cache_path, scorers)
        queries = [
            FilterQuery(q.id, q.text, [data.corpus.texts[p] for p in q.positive_rows], q.positive_rows)
            for q in data.queries
        ]
        for f in stack.filters:
            if hasattr(f, "calibrate"):
                f.calibrate(queries, cfg.seed)
        stack.notes = stack.check_queries(
            [q.id for q in data.queries], subset=cfg.data.max_queries is not None
        )
    return stack


def calibrate_margins(
    cfg: RunConfig, ctx: MiningContext, data: TrainingInput, timings: Timings, pinned: PinnedRun | None = None
) -> RunConfig:
    """Hidden-positive calibration before mining (negforge.calibration.in_run): with `relative_margin: auto`
    the margin with the lowest leak at `selection.calibration.fill` replaces it in the returned config (and
    `ctx.cfg`); with `calibration.estimate` the run's own setting is measured. The record goes to
    `ctx.calibration` (the manifest's `calibration`). Cached by the run's identity; nothing else written."""
    from negforge.calibration.calibrate import setting_of
    from negforge.calibration.in_run import calibrate_in_run

    sel, cal = cfg.selection, cfg.selection.calibration
    auto = sel.relative_margin == "auto"
    if not auto and not cal.estimate:
        return cfg
    base = setting_of(cfg)
    settings = [dataclasses.replace(base, relative_margin=m) for m in cal.margins] if auto else []
    quiet = Timings()  # the calibration's own filter setup is not the run's

    def stack(c: RunConfig):
        return prepare_filters(c, data, ctx.dense, ctx.query_emb, quiet, None, pinned)

    with timings.stage("calibration"):
        rec = calibrate_in_run(
            ctx, stack, settings, folds=cal.folds, max_queries=cal.max_queries, fill_target=cal.fill,
            identity=run_identity(cfg, data), cache_dir=cfg.cache_path,
        )  # fmt: skip
    if auto:
        chosen = (rec or {}).get("recommended") or {}
        margin = chosen.get("relative_margin", 0.05) if rec else 0.05
        why = (
            f"relative_margin auto: {margin} (leak {100 * chosen['leak']:.2f}% at fill {100 * chosen['fill']:.1f}% "
            f"on {rec['queries']} queries x {rec['folds']} folds)"
            if rec and chosen
            else "relative_margin auto: fewer than 10 queries have two positives to calibrate on; 0.05 (the default)"
        )
        ctx.notes.append(why)
        cfg = cfg.model_copy(update={"selection": sel.model_copy(update={"relative_margin": margin})})
        ctx.cfg = cfg
        if rec is not None:
            rec = {**rec, "chosen_relative_margin": margin}
    ctx.calibration = rec
    return cfg


def prepare_llm(cfg: RunConfig, timings: Timings) -> LLMStage | None:
    """Start the LLM source (and a managed vLLM server when no endpoint is configured): for synthetic
    negatives, or for an llm_judge filter even when sources.llm.enabled is false (`cfg.llm_needed`)."""
    if not cfg.llm_needed:
        return None
    from negforge.generators.llm_stage import start_llm

    with timings.stage("llm_start"):
        return start_llm(cfg)


def _generate(ctx: MiningContext, llm: LLMStage, results: list, absorb: bool = True) -> dict:
    """Synthetic negatives for a shard's queries (from the store when the generation stage ran first)."""
    items = generation_items(ctx, llm, results)
    synth = llm.synth.fork()
    try:
        made = synth.generate_sync(items, llm.client)
    finally:
        if absorb:
            llm.synth.absorb(synth)
    attach_synthetic(ctx, results, made)
    return {"counts": dict(synth.stats.counts), "rejected": dict(synth.stats.rejected)}


def mine_shard(
    ctx: MiningContext,
    store: ShardStore,
    shard: int,
    qidx: list[int],
    llm: LLMStage | None = None,
    generation: dict | None = None,
) -> dict:
    """Mine one shard (and generate its synthetic negatives) and write it; returns its stats.

    `generation`: the shard's counters from the run's generation stage (`pregenerate`), whose answers are
    then read from the store; without it the shard generates on its own.
    """
    t0 = time.perf_counter()
    results = mine_queries(ctx, qidx)
    if llm is not None:
        own = _generate(ctx, llm, results, absorb=generation is None)
        generation = generation or own
    rules = add_rule_negatives(ctx, results) if ctx.cfg.sources.rules.enabled else None
    verdicts = judge_and_mix(ctx.cfg, ctx, results, ctx.filters)
    if ctx.dense is not None and ctx.dense.corpus_emb is not None:
        # the scattered corpus rows read for scores stay resident otherwise: over a run, all of a memory-mapped
        # corpus (1.5 GB for 1M passages at dim 384) would count towards this process's memory
        release_pages(ctx.dense.corpus_emb)
    table = rich_table(results, ctx.corpus, ctx.cfg.output.dropped_text)
    funnel: Counter = Counter()
    pools: Counter = Counter()
    for r in results:
        funnel.update(r.funnel)
        pools.update(r.pool_sizes)
    funnel["selected"] = sum(verdicts["mixed"].values())
    stats = {
        "shard": shard,
        "queries": len(qidx),
        "seconds": round(time.perf_counter() - t0, 4),
        "funnel": dict(funnel),
        "candidates": dict(pools),
        "selected": verdicts["mixed"],
        "verdicts": verdicts,
        "short_query_ids": [r.query.id for r in results if r.short],
        "short_reasons": {r.query.id: short_reason(r) for r in results if r.short},
        "generation": generation,
        "rules": rules,
    }
    store.write(shard, table, stats)
    return stats


def short_reason(r) -> str:
    """Why a query ended with fewer negatives than asked, in words: what each stage took from its pool."""
    by: Counter = Counter()
    for _, o in r.dropped:
        if o.filter != "mixer":
            by[f"{o.filter}/{o.reason}"] += 1
    taken = ", ".join(f"{k} {v}" for k, v in by.most_common()) or "nothing dropped"
    return f"{len(r.negatives)} negatives kept; dropped: {taken}"


_CONTEXTS: dict[str, tuple[MiningContext, LLMStage | None]] = {}
_CONTEXTS_LOCK = threading.Lock()


def _context_key(cfg: RunConfig) -> str:
    return f"{cfg.run_dir.resolve()}|{cfg.fingerprint()}"


def register_context(cfg: RunConfig, ctx: MiningContext, llm: LLMStage | None) -> None:
    """Make the driver's context available to shard tasks running on threads of this process."""
    with _CONTEXTS_LOCK:
        _CONTEXTS[_context_key(cfg)] = (ctx, llm)


def forget_context(cfg: RunConfig) -> None:
    with _CONTEXTS_LOCK:
        _CONTEXTS.pop(_context_key(cfg), None)


def worker_context(cfg: RunConfig) -> tuple[MiningContext, LLMStage | None]:
    """The mining context in this process, built once from the caches the driver filled (BM25 index,
    embeddings, LLM checkpoint). A worker reaches the LLM through `sources.llm.base_urls`, never starts one."""
    key = _context_key(cfg)
    with _CONTEXTS_LOCK:
        if key in _CONTEXTS:
            return _CONTEXTS[key]
        timings = Timings()
        data = load_data(cfg, timings)
        bm25 = prepare_bm25(cfg, data, timings)
        dense, qemb = prepare_dense(cfg, data, timings)
        ctx = make_context(cfg, data, bm25, dense, qemb, timings)
        llm = None
        if cfg.llm_needed:  # generation, or an llm_judge filter (which needs the LLM before the filters)
            if not cfg.sources.llm.base_urls:
                raise RuntimeError(
                    "shard worker without sources.llm.base_urls: the driver must start the server"
                )
            from negforge.generators.llm_stage import start_llm

            llm = start_llm(cfg)
        ctx.filters = prepare_filters(cfg, data, dense, qemb, timings, llm)
        gen = llm if cfg.sources.llm.enabled else None  # generation only when sources.llm is on
        _CONTEXTS[key] = (ctx, gen)
        return ctx, gen


def worker_config(cfg: RunConfig, llm: LLMStage | None) -> dict:
    """The config shard tasks receive: plain JSON, with the driver's LLM endpoints filled in."""
    d = cfg.model_dump(mode="json")
    if llm is not None:
        d["sources"]["llm"]["base_urls"] = list(llm.base_urls)
    return d


def run_shard(config: dict, shard: int, qidx: list[int], generation: dict | None = None) -> dict:
    """One shard, addressed by config and query positions; safe to run on any worker that sees the run
    folder and the cache. A shard already written is not redone. `generation`: the shard's counters from
    the driver's generation stage (its answers are in the store)."""
    cfg = RunConfig.model_validate(config)
    store = ShardStore(cfg.run_dir)
    if store.is_done(shard):
        return store.stats(shard)
    ctx, llm = worker_context(cfg)
    return mine_shard(ctx, store, shard, qidx, llm, generation)


@dataclass(frozen=True)
class BuildSteps:
    """The steps `prepare_build` calls, each replaceable: the Prefect flow passes every one wrapped as a task
    (so each shows as a task run), `run` the plain functions. Same arguments, same results either way."""

    load_data: Callable[..., TrainingInput] = load_data
    pin_precision: Callable[..., PinnedRun] = pin_precision
    prepare_bm25: Callable[..., BM25Miner | None] = prepare_bm25
    prepare_dense: Callable[..., tuple[DenseMiner | None, np.ndarray | None]] = prepare_dense
    make_context: Callable[..., MiningContext] = make_context
    prepare_llm: Callable[..., LLMStage | None] = prepare_llm
    prepare_filters: Callable[..., FilterStack | None] = prepare_filters


@dataclass
class PreparedBuild:
    """A build ready to mine its shards: the pinned config, the input, the shard store with its to-do list,
    the mining context (indexes, filters, calibrated margins) and the LLM stage when one was started.
    `gen_llm` is `llm` when synthetic negatives are on (sources.llm), else None; whoever mines the shards
    closes `llm` at the end (`close`)."""

    cfg: RunConfig
    data: TrainingInput
    timings: Timings
    store: ShardStore
    ctx: MiningContext
    shards: list[list[int]]
    todo: list[int]
    llm: LLMStage | None
    gen_llm: LLMStage | None

    def close(self) -> None:
        """Stop the LLM stage (a managed vLLM server) if one was started."""
        if self.llm is not None:
            self.llm.close()


def prepare_build(
    cfg: RunConfig,
    *,
    overwrite: bool = False,
    data: TrainingInput | None = None,
    timings: Timings | None = None,
    steps: BuildSteps | None = None,
) -> PreparedBuild:
    """The one sequence before shard mining, for `run` and the Prefect flow alike: read the input (unless
    `data` is given), pin every model's precision, open the shard store under the run identity (`overwrite`:
    judge every shard again), build the BM25 and dense indexes, the mining context, the shard plan and to-do
    list, start the LLM (before the filters: an llm_judge filter asks it), build the filters and calibrate the
    margins (`relative_margin: auto`). A failure after the LLM started stops it before it is raised."""
    steps = steps or BuildSteps()
    timings = timings if timings is not None else Timings()
    data = data if data is not None else steps.load_data(cfg, timings)
    pinned = steps.pin_precision(cfg, data)  # workers encode and score with the driver's paths
    cfg = pinned.cfg
    store = ShardStore(cfg.run_dir)
    changes = store.open(run_identity(cfg, data), overwrite=overwrite)
    report_changes(changes)
    bm25 = steps.prepare_bm25(cfg, data, timings)
    dense, qemb = steps.prepare_dense(cfg, data, timings, pinned)
    ctx = steps.make_context(cfg, data, bm25, dense, qemb, timings)
    ctx.notes += [f"{c}: every shard judged again" for c in changes]
    shards = plan_shards(len(data.queries), cfg.output.shard_size)
    todo = [i for i in range(len(shards)) if not store.is_done(i)]
    llm = steps.prepare_llm(cfg, timings) if todo else None
    gen_llm = llm if cfg.sources.llm.enabled else None  # synthetic negatives only when sources.llm is on
    try:
        ctx.filters = steps.prepare_filters(cfg, data, dense, qemb, timings, llm, pinned)
        ctx.notes += ctx.filters.notes if ctx.filters is not None else []
        cfg = calibrate_margins(cfg, ctx, data, timings, pinned)
    except BaseException:
        if llm is not None:
            llm.close()
        raise
    return PreparedBuild(cfg, data, timings, store, ctx, shards, todo, llm, gen_llm)


def run(cfg: RunConfig, *, overwrite: bool = False, data: TrainingInput | None = None) -> RunResult:
    """The whole build in this process, without Prefect (the flow does the same steps as tasks). `data`: the
    input already loaded (and changed, as calibration's folds change it), else read from `cfg.data`."""
    b = prepare_build(cfg, overwrite=overwrite, data=data)
    try:
        with progress_bar("mine shards", len(b.todo)) as advance:
            if b.gen_llm is None:
                for i in b.todo:
                    mine_shard(b.ctx, b.store, i, b.shards[i])
                    advance(1)
            else:
                for i, gen in pregenerate(b.ctx, b.gen_llm, b.shards, b.todo):
                    mine_shard(b.ctx, b.store, i, b.shards[i], b.gen_llm, gen)
                    advance(1)
    finally:
        b.close()
    return finalize(b.cfg, b.ctx, b.data, b.store, b.shards, b.timings, b.todo, b.gen_llm)
