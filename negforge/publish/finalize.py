"""The end of a build: shards concatenated and checked, datasets written, the manifest and report assembled."""

from __future__ import annotations

import hashlib
import json
import platform
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from negforge import __version__
from negforge.config import RunConfig
from negforge.generators.llm_stage import LLMStage
from negforge.mining.fingerprint import texts_digest
from negforge.mining.pool import MiningContext
from negforge.mining.selection import margin_advice
from negforge.mixing.mix import merge_filter_stats, ntuple_width
from negforge.ownership import claim, legacy_dataset, remove_owned
from negforge.publish.curriculum import assign_buckets, rows_in_bucket
from negforge.publish.outscoring import outscoring
from negforge.publish.report import write_report
from negforge.publish.separability import written_separability
from negforge.publish.summary import score_summary
from negforge.publish.trainer import (
    CE_LABEL,
    labeled_list_table,
    labeled_pair_table,
    ntuple_table,
    triplet_table,
)
from negforge.records import REASONS as IDENTITY_REASONS
from negforge.records import TrainingInput
from negforge.rich_schema import RICH_SCHEMA
from negforge.run_store.shards import ShardStore
from negforge.timing import Timings
from negforge.versions import package_version

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


def label_key_of(cfg: RunConfig, score_key: str | None) -> str | None:
    """What trainer configs' `label` (output.scores) is the margin of: the cross-encoder's scores when a
    cross_encoder filter is in the stack (GPL's MarginMSE labels, Wang et al. 2022), else `score_key`."""
    if any(f.type == "cross_encoder" for f in cfg.filters or []):
        return CE_LABEL
    return score_key


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version(), "negforge": __version__}
    for name in VERSIONED:
        if (v := package_version(name)) is not None:
            out[name] = v
    return out


def table_fingerprint(table: pa.Table) -> str:
    """A content digest of `table` (blake2b of its Arrow IPC stream, schema included; 32 hex characters), given
    to `datasets.Dataset` as its fingerprint: the same as hashing it with datasets' own pickler, which took
    ~0.4 s for a 300-query `rich` table, at memcpy speed."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return hashlib.blake2b(sink.getvalue(), digest_size=16).hexdigest()


def _save_dataset(tables: dict[str, pa.Table], out_dir: Path) -> dict[str, str]:
    """save_to_disk (DatasetDict keyed by config) plus one Parquet file per config; replaced atomically."""
    from datasets import Dataset, DatasetDict

    tmp = out_dir.with_name(out_dir.name + ".tmp")
    remove_owned(tmp, "dataset")
    # one shard per ~500 MB and at least one: datasets cannot reload a config saved with zero shards
    shards = {name: max(1, -(-t.nbytes // 500_000_000)) for name, t in tables.items()}
    dd = DatasetDict({name: Dataset(t, fingerprint=table_fingerprint(t)) for name, t in tables.items()})
    dd.save_to_disk(str(tmp), num_shards=shards)
    claim(tmp, "dataset")
    parquet = {}
    for name, t in tables.items():
        p = tmp / "parquet" / name / "train.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        import pyarrow.parquet as pq

        pq.write_table(t, p)
        parquet[name] = str(out_dir / "parquet" / name / "train.parquet")
    remove_owned(out_dir, "dataset", legacy_dataset)
    tmp.rename(out_dir)
    return parquet


def finalize(
    cfg: RunConfig,
    ctx: MiningContext,
    data: TrainingInput,
    store: ShardStore,
    shards: list[list[int]],
    timings: Timings,
    mined: Sequence[int],
    llm: LLMStage | None = None,
) -> RunResult:
    """Concatenate shards, check every query is there exactly once, write datasets and the manifest.

    `mined`: the indices of the shards this run mined (the others were reused from the store); the manifest's
    `mine` timing counts only these, and `reused_mining_seconds` what the reused ones once took.
    """
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
        label_key = label_key_of(cfg, score_key)
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
            tables["triplet"] = triplet_table(rows, label_key, cfg.output.scores)
        if "n-tuple" in fmts:
            tables["n-tuple"], dropped = ntuple_table(rows, n_neg, label_key, cfg.output.scores)
        if "labeled-pair" in fmts:
            tables["labeled-pair"] = labeled_pair_table(rows)
        if "labeled-list" in fmts:
            tables["labeled-list"] = labeled_list_table(rows)
        if curriculum is not None:
            for b in cfg.curriculum.buckets:
                bucket_rows = rows_in_bucket(rows, b)
                tables[f"curriculum-{b}"] = triplet_table(bucket_rows, label_key, cfg.output.scores)
        dataset_dir = cfg.run_dir / "dataset"
        parquet = _save_dataset(tables, dataset_dir)
    summary = score_summary(rows, score_key)
    separability = None
    if (
        ctx.dense is not None
        and ctx.dense.corpus_emb is not None
        and (cfg.sources.rules.enabled or llm is not None)
    ):
        with timings.stage("separability"):
            emb, index = ctx.dense.corpus_emb, data.corpus.index
            separability = written_separability(
                rows, ctx.dense.encode_passages,
                lambda ids: emb[np.asarray([index[d] for d in ids], dtype=np.int64)], cfg.seed,
            )  # fmt: skip
    stats = [store.stats(i) for i in range(len(shards))]
    now = set(mined)
    reused = len(shards) - len(now)
    mining_seconds = sum(s["seconds"] for i, s in enumerate(stats) if i in now)
    timings.add("mine", mining_seconds, sum(len(shards[i]) for i in now), "queries")
    reused_seconds = sum(s["seconds"] for i, s in enumerate(stats) if i not in now)
    agg: dict[str, Counter] = {k: Counter() for k in ("funnel", "candidates", "selected")}
    short_ids: list[str] = []
    short_reasons: dict[str, str] = {}
    gen_counts: Counter = Counter()
    rules_made: Counter = Counter()
    rules_missing = 0
    rules_rejected: Counter = Counter()
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
        if s.get("rules"):
            rules_made.update(s["rules"]["by_kind"])
            rules_missing += s["rules"]["queries_without_edit"]
            rules_rejected.update(s["rules"].get("rejected") or {})
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
            "relabeled_positives": sum(n for k, n in verdicts.items() if k.startswith("relabeled/")),
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
        "rules": None
        if not cfg.sources.rules.enabled
        else {
            "made": sum(rules_made.values()),
            "by_kind": dict(rules_made),
            "queries_without_edit": rules_missing,
            "rejected": dict(rules_rejected),  # changes_question, answer_restated
        },
        "separability": separability,  # written negatives vs the run's positives: probe AUC (0.5 = alike)
        # hidden-positive folds: the run's own false-negative leak, and `relative_margin: auto`'s choice
        "calibration": ctx.calibration,
        "outscoring": outscoring(rows, score_key),  # kept negatives above their weakest positive
        "curriculum": curriculum,
        "filters": _filters_section(ctx, stats, entering, margin, verdicts, agg["selected"]),
        "skips": {"counts": data.skips.counts(), "examples": data.skips.examples()},
        "unread_columns": data.skips.unread_columns(),
        "identity": {
            "rule": "a candidate equal to its query's positive or query (normalised text, with or without "
            "title) or whose doc id is the query id is never a negative",
            "excluded": {r: identity.get(r, 0) for r in IDENTITY_REASONS},
            "shared_texts": ctx.identity_index().shared_texts(),
        },
        "notes": ctx.notes
        + [
            n
            for n in [margin_advice(dict(agg["funnel"]), len(short_ids), len(data.queries), cfg.selection)]
            if n
        ],
        "shards": {"total": len(shards), "reused": reused, "written": len(shards) - reused},
        "reused_mining_seconds": round(reused_seconds, 3),  # what the reused shards once took to mine
        "timings": timings.stages,
        "score_by": score_key,
        "label_by": label_key_of(cfg, score_key) if cfg.output.scores else None,
        "score_summary": summary,
        "outputs": {"dataset": str(dataset_dir), "parquet": parquet},
    }
    manifest_path = cfg.run_dir / "manifest.json"
    with timings.stage("report"):
        report = write_report(
            cfg.run_dir,
            manifest,
            rows,
            lambda d: data.corpus.texts[data.corpus.index[d]],
            cfg.cache_path / "plots",
        )
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
            "backend": d.backend_choice.path if d.backend_choice else d.cfg.backend,
            "backend_choice": d.backend_choice.as_dict() if d.backend_choice else None,
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
