"""Calibration inside a run: hidden-positive folds mined with the run's own miners and filters, in memory.

The run's mining context (BM25 index, dense model and corpus embeddings, query embeddings) is reused; only
the queries' positives (one hidden per fold), the selection settings (margins off, the deepest window, every
survivor kept) and the filter stack (the embedding threshold off; llm_judge left out: it would ask the LLM
about every candidate) differ, as `calibration_config` says. Nothing is written to disk but the cached
result (`selection.auto`'s choice and frontier), keyed by the run's identity and the calibration settings.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from negforge.calibration.calibrate import calibration_config, setting_of
from negforge.calibration.folds import HiddenFold, calibratable, hide_positives
from negforge.calibration.frontier import Calibration, evaluate
from negforge.calibration.replay import LeakFill, RecordedQuery, Setting, measure, recorded_queries
from negforge.config import RunConfig
from negforge.mining.pool import MiningContext, mine_queries

MIN_QUERIES = 10  # fewer calibratable queries than this: no estimate (an interval wider than useful)


def sample_queries(ctx: MiningContext, max_queries: int, seed: int) -> list[str]:
    """Up to `max_queries` ids of calibratable queries, a seeded sample in input order."""
    import numpy as np

    ids = [q.id for q in calibratable(ctx.queries)]
    if len(ids) <= max_queries:
        return ids
    keep = set(np.random.default_rng([seed, 7]).choice(len(ids), size=max_queries, replace=False).tolist())
    return [q for i, q in enumerate(ids) if i in keep]


def fold_candidates(ctx: MiningContext, cfg: RunConfig, stack: Any, fold: HiddenFold) -> list[RecordedQuery]:
    """Mine and judge the fold's queries with their hidden positive removed; their recorded candidates.
    `cfg`: the calibration config (`calibration_config`); `stack`: its filter stack."""
    from negforge.mixing.mix import judge_and_mix
    from negforge.publish.rich import rich_rows

    pos = {q.id: i for i, q in enumerate(ctx.queries)}
    queries = list(ctx.queries)
    for qid, row in fold.hidden.items():
        q = queries[pos[qid]]
        queries[pos[qid]] = replace(q, positive_rows=tuple(r for r in q.positive_rows if r != row))
    fctx = replace(ctx, cfg=cfg, queries=queries, filters=stack, notes=[], _siblings=None)
    idx = sorted(pos[qid] for qid in fold.hidden)
    results = mine_queries(fctx, idx)
    judge_and_mix(cfg, fctx, results, stack)
    hidden = {qid: {ctx.corpus.ids[row]} for qid, row in fold.hidden.items()}
    return recorded_queries(rich_rows(results, ctx.corpus), hidden)


def _key(identity: dict, settings: list[Setting], folds: int, max_queries: int, fill: float) -> str:
    blob = json.dumps(
        {"identity": identity, "settings": [s.label() for s in settings], "folds": folds, "max": max_queries,
         "fill": fill, "v": 2},
        sort_keys=True, default=str,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def calibrate_in_run(
    ctx: MiningContext,
    prepare_stack: Any,
    settings: list[Setting],
    *,
    folds: int,
    max_queries: int,
    fill_target: float,
    identity: dict,
    cache_dir: Path,
) -> dict | None:
    """Measure `settings` (and the run's own setting: with `auto`, the chosen one) on hidden-positive folds of a
    sample of the run's queries; the manifest's `calibration` record (see `record`), or None when fewer
    than MIN_QUERIES queries have two positives. `prepare_stack(cfg)`: the filter stack of a config.
    Cached by `identity` (the run's identity) and the settings."""
    cfg = ctx.cfg
    ids = sample_queries(ctx, max_queries, cfg.seed)
    if len(ids) < MIN_QUERIES:
        return None
    key = _key(identity, settings, folds, max_queries, fill_target)
    path = cache_dir / "calibration" / f"in-run-{key}.json"
    if path.is_file():
        return {**json.loads(path.read_text(encoding="utf-8")), "cached": True}
    base = setting_of(cfg)
    depth = max([s.depth for s in settings] + [base.depth])
    ccfg = calibration_config(cfg, depth, 0)
    ccfg = ccfg.model_copy(update={"filters": [f for f in ccfg.filters or [] if f.type != "llm_judge"]})
    stack = prepare_stack(ccfg)
    wanted = set(ids)
    recorded: list[RecordedQuery] = []
    for fold in hide_positives([q for q in ctx.queries if q.id in wanted], folds, cfg.seed):
        recorded += fold_candidates(ctx, ccfg, stack, fold)
    score_by = cfg.score_by or "dense"
    n = cfg.selection.num_negatives
    cal = evaluate(recorded, settings, score_by, n, fill_target)
    if (
        cfg.selection.relative_margin == "auto"
    ):  # the run's own setting is the one chosen (0.05 when none could be)
        own = cal.recommended or measure(recorded, replace(base, relative_margin=0.05), score_by, n)
    else:
        own = measure(recorded, base, score_by, n)
    rec = record(cal, own, len(ids), folds)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec, indent=1), encoding="utf-8")
    return {**rec, "cached": False}


def _point(r: LeakFill) -> dict:
    return {
        "setting": r.setting.label(),
        "relative_margin": r.setting.relative_margin,
        "leak": round(r.leak, 6),
        "leak_ci": [round(x, 6) for x in r.leak_ci],
        "leaked": r.leaked,
        "hidden": r.hidden,
        "fill": round(r.fill, 6),
        "negatives_per_query": round(r.negatives_per_query, 4),
    }


def record(cal: Calibration, baseline: LeakFill, queries: int, folds: int) -> dict:
    """The manifest's `calibration`: the run's own setting measured (`estimate`), the recommendation, the
    frontier, and how (queries, folds, fill target)."""
    return {
        "queries": queries,
        "folds": folds,
        "fill_target": cal.fill_target,
        "meets_target": cal.meets_target,
        "estimate": _point(baseline),
        "recommended": _point(cal.recommended) if cal.recommended is not None else None,
        "frontier": [_point(r) for r in cal.frontier],
    }
