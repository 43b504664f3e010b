"""The build, as plain functions: load → prepare miners → mine shards → finalize. No Prefect here.

`negforge.flows.build` wires these into a Prefect flow; `run()` chains them directly for library users.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import pyarrow as pa

from negforge import __version__
from negforge.config import RunConfig
from negforge.filters import FilterQuery, FilterStack, build_stack
from negforge.generators.stage import LLMStage
from negforge.mining.bm25 import BM25Miner
from negforge.mining.dense import DenseMiner
from negforge.mining.fingerprint import texts_digest
from negforge.mining.identity import REASONS as IDENTITY_REASONS
from negforge.mining.pool import MiningContext, mine_queries
from negforge.mining.topics import cluster_topics
from negforge.mixing import judge_and_mix, merge_filter_stats, ntuple_width
from negforge.progress import progress_bar
from negforge.publish.curriculum import assign_buckets, rows_in_bucket
from negforge.publish.report import write_report
from negforge.publish.rich import RICH_SCHEMA, rich_table
from negforge.publish.summary import score_summary
from negforge.publish.trainer import labeled_list_table, labeled_pair_table, ntuple_table, triplet_table
from negforge.records import TrainingInput
from negforge.shards import ShardStore, plan_shards
from negforge.sources import load_input
from negforge.timing import Timings

VERSIONED = [
    "torch",
    "transformers",
    "sentence-transformers",
    "faiss-cpu",
    "faiss-gpu",
    "bm25s",
    "datasets",
    "numpy",
    "prefect",
]


@dataclass
class RunResult:
    run_dir: Path
    dataset_dir: Path
    manifest_path: Path
    manifest: dict
    summary: list[dict]


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
    cfg: RunConfig, data: TrainingInput, timings: Timings
) -> tuple[DenseMiner | None, np.ndarray | None]:
    """Embed corpus and queries (cached) and build the index; needed for dense mining, scores and topics."""
    if not cfg.sources.dense.enabled:
        return None, None
    miner = DenseMiner(cfg.sources.dense, cfg.cache_path)
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
    want = cfg.selection.skip_top + cfg.selection.depth
    if want > len(data.corpus) - 1:
        ctx.notes.append(
            f"corpus has {len(data.corpus)} documents, fewer than selection.skip_top+depth={want}: depth clamped"
        )
    k = cfg.selection.topics.clusters
    if k and dense is not None and query_emb is not None:
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
) -> FilterStack | None:
    """Load every filter's model once; calibrate cross-encoder thresholds on a seeded sample of queries."""
    if not cfg.filters:
        return None
    with timings.stage("filters_setup"):
        stack = build_stack(cfg.filters, dense, query_emb)
        queries = [
            FilterQuery(q.id, q.text, [data.corpus.texts[p] for p in q.positive_rows], q.positive_rows)
            for q in data.queries
        ]
        for f in stack.filters:
            if hasattr(f, "calibrate"):
                f.calibrate(queries, cfg.seed)
    return stack


def run_identity(cfg: RunConfig, data: TrainingInput) -> dict:
    """What must match for finished shards to be reused, by content (never by path or mtime).

    `config`, `corpus`, `queries` (ids, texts, positives, given negatives) and `shard_size` decide what the
    run *is*: a mismatch is refused. `models` (weights fingerprints), `files` (every file a filter reads) and
    `prompts` (the template files) decide how candidates are judged: a mismatch re-judges every shard.
    """
    return {
        "config": cfg.fingerprint(),
        "corpus": texts_digest(data.corpus.texts),
        "queries": texts_digest(
            [
                f"{q.id}\t{q.text}\t{q.positive_rows}\t{[(g.row, g.score) for g in q.given]}"
                for q in data.queries
            ]
        ),
        "shard_size": cfg.output.shard_size,
        "models": model_identities(cfg),
        "files": filter_file_digests(cfg),
        "prompts": prompt_digest() if cfg.sources.llm.enabled else None,
    }


def filter_file_digests(cfg: RunConfig) -> dict[str, str]:
    """sha256 of each file a filter reads (answer lists), keyed by filter name and path."""
    out = {}
    for f in cfg.filters:
        path = getattr(f, "answers", None)
        if path:
            p = Path(path).expanduser()
            digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16] if p.is_file() else "missing"
            out[f"{f.name or f.type}:{p}"] = digest
    return out


def prompt_digest() -> str:
    """sha256 over the prompt template files shipped in negforge/prompts (names and contents)."""
    h = hashlib.sha256()
    root = Path(__file__).parent / "prompts"
    for p in sorted(root.iterdir()):
        if p.is_file() and p.suffix in (".j2", ".yaml", ".txt", ".md"):
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def model_identities(cfg: RunConfig) -> dict[str, str]:
    """Weights fingerprints of the dense model and every model filter: a model retrained in place under the
    same path must not let shards judged by the old weights be reused."""
    from negforge.mining.fingerprint import model_fingerprint, resolve_model_path

    out = {}
    if cfg.sources.dense.enabled:
        out["dense"] = model_fingerprint(resolve_model_path(cfg.sources.dense.model))
    for f in cfg.filters:
        if f.type in ("cross_encoder", "nli"):
            out[f"filter:{f.name or f.type}"] = model_fingerprint(resolve_model_path(f.model))
    return out


def prepare_llm(cfg: RunConfig, timings: Timings) -> LLMStage | None:
    """Start the LLM source (and a managed vLLM server when no endpoint is configured)."""
    if not cfg.sources.llm.enabled:
        return None
    from negforge.generators.stage import start_llm

    with timings.stage("llm_start"):
        return start_llm(cfg)


def _generate(ctx: MiningContext, llm: LLMStage, results: list) -> dict:
    """Synthetic negatives for a shard's queries; rewrite mode starts from each query's hardest mined one."""
    from negforge.generators.synthesize import GenItem

    items = []
    for r in results:
        if not llm.synth.wants(r.query.id):
            continue
        r.llm_asked = True
        base = r.window[0] if r.window else None
        items.append(
            GenItem(
                r.query.id, r.query.text, ctx.corpus.texts[r.query.positive_rows[0]],
                ctx.corpus.ids[base.candidate.row] if base else None, ctx.corpus.texts[base.candidate.row] if base else None,
            )
        )  # fmt: skip
    synth = llm.synth.fork()
    try:
        made = synth.generate_sync(items, llm.client)
    finally:
        llm.synth.absorb(synth)
    texts = [(r, g) for r in results for g in made.get(r.query.id, [])]
    scores: list[float | None] = [None] * len(texts)
    embs: list[np.ndarray | None] = [None] * len(texts)
    if texts and ctx.dense is not None and ctx.query_emb is not None:
        qpos = {q.id: i for i, q in enumerate(ctx.queries)}
        embs = list(
            ctx.dense.encoder().encode(
                [g.text for _, g in texts], batch_size=ctx.cfg.sources.dense.batch_size
            )
        )
        scores = [
            float(e @ np.asarray(ctx.query_emb[qpos[r.query.id]]))
            for e, (r, _) in zip(embs, texts, strict=True)
        ]
    for (r, g), sc, e in zip(texts, scores, embs, strict=True):
        r.synthetic.append((g, sc, e))
    return {"counts": dict(synth.stats.counts), "rejected": dict(synth.stats.rejected)}


def mine_shard(
    ctx: MiningContext, store: ShardStore, shard: int, qidx: list[int], llm: LLMStage | None = None
) -> dict:
    """Mine one shard (and generate its synthetic negatives) and write it; returns its stats."""
    t0 = time.perf_counter()
    results = mine_queries(ctx, qidx)
    generation = _generate(ctx, llm, results) if llm is not None else None
    verdicts = judge_and_mix(ctx.cfg, ctx, results, ctx.filters)
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
        ctx.filters = prepare_filters(cfg, data, dense, qemb, timings)
        llm = None
        if cfg.sources.llm.enabled:
            if not cfg.sources.llm.base_urls:
                raise RuntimeError(
                    "shard worker without sources.llm.base_urls: the driver must start the server"
                )
            from negforge.generators.stage import start_llm

            llm = start_llm(cfg)
        _CONTEXTS[key] = (ctx, llm)
        return ctx, llm


def worker_config(cfg: RunConfig, llm: LLMStage | None) -> dict:
    """The config shard tasks receive: plain JSON, with the driver's LLM endpoints filled in."""
    d = cfg.model_dump(mode="json")
    if llm is not None:
        d["sources"]["llm"]["base_urls"] = list(llm.base_urls)
    return d


def run_shard(config: dict, shard: int, qidx: list[int]) -> dict:
    """One shard, addressed by config and query positions; safe to run on any worker that sees the run
    folder and the cache. A shard already written is not redone."""
    cfg = RunConfig.model_validate(config)
    store = ShardStore(cfg.run_dir)
    if store.is_done(shard):
        return store.stats(shard)
    ctx, llm = worker_context(cfg)
    return mine_shard(ctx, store, shard, qidx, llm)


def report_changes(changes: list[str]) -> None:
    """Tell the user (stderr) that finished shards are redone because a judge changed."""
    import sys

    for c in changes:
        print(f"negforge: {c}; judging every shard again", file=sys.stderr)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "negforge": __version__}
    for name in VERSIONED:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _save_dataset(tables: dict[str, pa.Table], out_dir: Path) -> dict[str, str]:
    """save_to_disk (DatasetDict keyed by config) plus one Parquet file per config; replaced atomically."""
    from datasets import Dataset, DatasetDict

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    # one shard per ~500 MB and at least one: datasets cannot reload a config saved with zero shards
    shards = {name: max(1, -(-t.nbytes // 500_000_000)) for name, t in tables.items()}
    DatasetDict({name: Dataset(t) for name, t in tables.items()}).save_to_disk(str(tmp), num_shards=shards)
    parquet = {}
    for name, t in tables.items():
        p = tmp / "parquet" / name / "train.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        import pyarrow.parquet as pq

        pq.write_table(t, p)
        parquet[name] = str(out_dir / "parquet" / name / "train.parquet")
    if out_dir.exists():
        shutil.rmtree(out_dir)
    tmp.rename(out_dir)
    return parquet


def finalize(
    cfg: RunConfig,
    ctx: MiningContext,
    data: TrainingInput,
    store: ShardStore,
    shards: list[list[int]],
    timings: Timings,
    reused: int,
    llm: LLMStage | None = None,
) -> RunResult:
    """Concatenate shards, check every query is there exactly once, write datasets and the manifest."""
    with timings.stage("write", len(data.queries), "queries"):
        rich = pa.concat_tables([store.read(i) for i in range(len(shards))]).cast(RICH_SCHEMA)
        ids = rich.column("query_id").to_pylist()
        expected = [q.id for q in data.queries]
        if ids != expected:
            dup = [k for k, v in Counter(ids).items() if v > 1]
            missing = set(expected) - set(ids)
            raise RuntimeError(
                f"shards disagree with the input: {len(dup)} duplicated, {len(missing)} missing queries"
            )
        rows = rich.to_pylist()
        score_key = cfg.score_by or ("dense" if cfg.sources.dense.enabled else None)
        n_neg = ntuple_width(cfg)
        tables: dict[str, pa.Table] = {}
        dropped = 0
        curriculum = None
        if cfg.curriculum.enabled:
            curriculum = assign_buckets(rows, cfg.curriculum)
            rich = pa.Table.from_pylist(rows, schema=RICH_SCHEMA)
        fmts = cfg.output.formats
        if "rich" in fmts:
            tables["rich"] = rich
        if "triplet" in fmts:
            tables["triplet"] = triplet_table(rows, score_key, cfg.output.scores)
        if "n-tuple" in fmts:
            tables["n-tuple"], dropped = ntuple_table(rows, n_neg, score_key, cfg.output.scores)
        if "labeled-pair" in fmts:
            tables["labeled-pair"] = labeled_pair_table(rows)
        if "labeled-list" in fmts:
            tables["labeled-list"] = labeled_list_table(rows)
        if curriculum is not None:
            for b in cfg.curriculum.buckets:
                bucket_rows = rows_in_bucket(rows, b)
                tables[f"curriculum-{b}"] = triplet_table(bucket_rows, score_key, cfg.output.scores)
        dataset_dir = cfg.run_dir / "dataset"
        parquet = _save_dataset(tables, dataset_dir)
    summary = score_summary(rows, score_key)
    stats = [store.stats(i) for i in range(len(shards))]
    mining_seconds = sum(s["seconds"] for s in stats)
    timings.add("mine", mining_seconds, len(data.queries), "queries")
    agg = {k: Counter() for k in ("funnel", "candidates", "selected")}
    short_ids: list[str] = []
    short_reasons: dict[str, str] = {}
    gen_counts: Counter = Counter()
    gen_rejected: Counter = Counter()
    verdicts: Counter = Counter()
    entering: Counter = Counter()
    margin: Counter = Counter()
    identity: Counter = Counter()
    for s in stats:
        v = s.get("verdicts") or {}
        identity.update(v.get("identity", {}))
        verdicts.update(v.get("verdicts", {}))
        entering.update(v.get("entering", {}))
        margin.update(v.get("margin_dropped", {}))
        for k in agg:
            agg[k].update(s[k])
        short_ids += s["short_query_ids"]
        short_reasons.update(list((s.get("short_reasons") or {}).items())[: max(0, 20 - len(short_reasons))])
        if s.get("generation"):
            gen_counts.update(s["generation"]["counts"])
            gen_rejected.update(s["generation"]["rejected"])
    manifest = {
        "negforge_version": __version__,
        "run_name": cfg.run_name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": cfg.seed,
        "config_fingerprint": cfg.fingerprint(),
        "config": cfg.model_dump(mode="json"),
        "versions": _versions(),
        "data": {
            "format": cfg.data.format,
            "layout": data.layout,
            "given_negatives": sum(len(q.given) for q in data.queries),
            "corpus_docs": len(data.corpus),
            "queries": len(data.queries),
            "positives": sum(len(q.positive_rows) for q in data.queries),
            "corpus_digest": texts_digest(data.corpus.texts),
        },
        "models": _models(ctx),
        "counts": {
            "candidates": dict(agg["candidates"]),
            "selected": dict(agg["selected"]),
            "funnel": dict(agg["funnel"]),
            "short_queries": len(short_ids),
            "short_query_examples": short_ids[:20],
            "short_reasons": short_reasons,
            "ntuple_rows_dropped_short": dropped,
            "rows": {name: t.num_rows for name, t in tables.items()},
        },
        "generation": None
        if llm is None
        else {
            **llm.describe(),
            "counts": dict(gen_counts),
            "rejected": dict(gen_rejected),
            "this_run": llm.synth.stats.as_dict(),
        },
        "curriculum": curriculum,
        "filters": _filters_section(ctx, stats, entering, margin, verdicts, agg["selected"]),
        "skips": {"counts": data.skips.counts(), "examples": data.skips.examples()},
        "identity": {
            "rule": "a candidate equal to its query's positive or query (normalised text, with or without "
            "title) or whose doc id is the query id is never a negative",
            "excluded": {r: identity.get(r, 0) for r in IDENTITY_REASONS},
            "shared_texts": ctx.identity_index().shared_texts(),
        },
        "notes": ctx.notes,
        "shards": {"total": len(shards), "reused": reused, "written": len(shards) - reused},
        "timings": timings.stages,
        "score_by": score_key,
        "score_summary": summary,
        "outputs": {"dataset": str(dataset_dir), "parquet": parquet},
    }
    manifest_path = cfg.run_dir / "manifest.json"
    with timings.stage("report"):
        report = write_report(cfg.run_dir, manifest, rows, lambda d: data.corpus.texts[data.corpus.index[d]])
    manifest["outputs"]["report"] = str(report)
    manifest_path.write_text(json.dumps(manifest, indent=2, default=str))
    return RunResult(cfg.run_dir, dataset_dir, manifest_path, manifest, summary)


def _filters_section(
    ctx: MiningContext,
    stats: list[dict],
    entering: Counter,
    margin: Counter,
    verdicts: Counter,
    mixed: Counter,
) -> dict:
    """The funnel per source (candidates → margins → each filter → mixed) and every verdict by reason."""
    fstats = merge_filter_stats(stats)
    stack = ctx.filters
    names = stack.names if stack is not None else []
    sources = sorted(set(entering) | set(margin) | set(mixed))
    funnel = []
    for src in sources:
        row = {"source": src, "candidates": entering[src] + margin[src], "after_margins": entering[src]}
        alive = entering[src]
        for n in names:
            st = fstats.get(n)
            alive = st.kept[src] if st is not None and st.seen[src] else alive
            row[f"after_{n}"] = alive
        row["mixed"] = mixed[src]
        funnel.append(row)
    return {
        "stack": stack.describe() if stack is not None else [],
        "stats": {n: st.as_dict() for n, st in fstats.items()},
        "verdicts": dict(sorted(verdicts.items())),
        "funnel": funnel,
    }


def _models(ctx: MiningContext) -> dict:
    out: dict = {}
    if ctx.dense is not None:
        d = ctx.dense
        out["dense"] = {
            "name": d.cfg.model,
            "path": str(d.model_path),
            "fingerprint": d.fingerprint,
            "backend": d.cfg.backend,
            "device": getattr(d._encoder, "device", None) if d._encoder else "not loaded (embeddings cached)",
            "index": d.index_info,
            "embedding_cache": vars(d.cache.stats),
        }
    if ctx.bm25 is not None:
        out["bm25"] = {
            "params": ctx.bm25.cfg.model_dump(),
            "index_loaded_from_cache": ctx.bm25.loaded_from_cache,
        }
    return out


def run(cfg: RunConfig, *, overwrite: bool = False) -> RunResult:
    """The whole build in this process, without Prefect (the flow does the same steps as tasks)."""
    timings = Timings()
    data = load_data(cfg, timings)
    store = ShardStore(cfg.run_dir)
    changes = store.open(run_identity(cfg, data), overwrite=overwrite)
    report_changes(changes)
    bm25 = prepare_bm25(cfg, data, timings)
    dense, qemb = prepare_dense(cfg, data, timings)
    ctx = make_context(cfg, data, bm25, dense, qemb, timings)
    ctx.notes += [f"{c}: every shard judged again" for c in changes]
    ctx.filters = prepare_filters(cfg, data, dense, qemb, timings)
    shards = plan_shards(len(data.queries), cfg.output.shard_size)
    todo = [i for i in range(len(shards)) if not store.is_done(i)]
    llm = prepare_llm(cfg, timings) if todo else None
    try:
        with progress_bar("mine shards", len(todo)) as advance:
            for i in todo:
                mine_shard(ctx, store, i, shards[i], llm)
                advance(1)
    finally:
        if llm is not None:
            llm.close()
    return finalize(cfg, ctx, data, store, shards, timings, len(shards) - len(todo), llm)
