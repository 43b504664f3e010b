"""`negforge calibrate`: hidden-positive folds of the user's own config, mined once each, every grid setting
replayed on what they recorded.

Each fold runs the user's config (same sources, models, filters other than the embedding threshold) with the
margins and the embedding threshold off, the deepest window of the grid, every survivor kept, `rich` only,
no written sources (they have no corpus id to leak) and no random ones (not ranked), in `cache_dir/calibration/` (a rerun reuses finished
shards). The hidden positives' doc ids are then looked up among the recorded candidates of each setting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from negforge.calibration.folds import apply_fold, calibratable, hide_positives
from negforge.calibration.frontier import Calibration, evaluate, grid
from negforge.calibration.replay import LeakFill, RecordedQuery, Setting, measure, recorded_queries
from negforge.config import RunConfig
from negforge.records import TrainingInput

if TYPE_CHECKING:
    from negforge.publish.finalize import RunResult


class NotCalibratable(ValueError):
    """The data has no query with two or more positives: nothing can be hidden."""


@dataclass(frozen=True)
class CalibrationRun:
    """What `calibrate` measured: the grid's calibration, the config's own setting measured the same way,
    the folds and queries it used, and the fold runs' folders."""

    calibration: Calibration
    baseline: LeakFill
    score_by: str
    folds: int
    queries: int
    skipped_single_positive: int
    run_dirs: list[Path]


def setting_of(cfg: RunConfig) -> Setting:
    """The config's own point in the grid's terms (its margins, first embedding filter's threshold, depth).
    With `relative_margin: auto` the margin is left None: a caller asks `cfg.selection.relative_margin` whether
    the run's own point is the one calibration will choose."""
    emb = next((f for f in cfg.filters or [] if f.type == "embedding"), None)
    sel = cfg.selection
    return Setting(
        None if sel.relative_margin == "auto" else sel.relative_margin,
        sel.absolute_margin,
        getattr(emb, "max_positive_sim", None),
        sel.depth,
        sel.gap_cut,
        sel.skip_top,
    )


def calibration_config(cfg: RunConfig, depth: int, fold: int) -> RunConfig:
    """The fold run's config (module doc). Raises ValueError when the config has no score to rank by."""
    if cfg.score_by is None:
        raise ValueError("selection has no score to calibrate (only the random source is on)")
    filters = [
        f.model_copy(update={"max_positive_sim": None}) if f.type == "embedding" else f
        for f in cfg.filters or []
    ]
    sel = cfg.selection.model_copy(
        update={"relative_margin": None, "absolute_margin": None, "depth": depth, "num_negatives": depth,
                "sampling": "top", "edit_margin": None, "gap_cut": False,
                # a fold run measures nothing itself: its estimate would mine the folds' folds
                "calibration": cfg.selection.calibration.model_copy(update={"estimate": False})}
    )  # fmt: skip
    sources = cfg.sources.model_copy(
        update={
            "rules": cfg.sources.rules.model_copy(update={"enabled": False}),
            "llm": cfg.sources.llm.model_copy(update={"enabled": False}),
            "random": cfg.sources.random.model_copy(update={"enabled": False}),
        }
    )
    output = cfg.output.model_copy(
        update={"dir": str(Path(cfg.cache_path) / "calibration"), "formats": ["rich"], "dropped_text": False}
    )
    return cfg.model_copy(
        update={"run_name": f"{cfg.run_name}-fold{fold}", "selection": sel, "sources": sources,
                "filters": filters, "output": output, "mix": cfg.mix.model_copy(update={"quotas": {}})}
    )  # fmt: skip


def calibrate(
    cfg: RunConfig,
    data: TrainingInput,
    build: Callable[[RunConfig, TrainingInput], RunResult],
    *,
    folds: int = 3,
    fill_target: float = 0.95,
    settings: Sequence[Setting] | None = None,
) -> CalibrationRun:
    """Hide one positive per multi-positive query in each of `folds` seeded folds, mine each fold once with
    `calibration_config`, and replay `settings` (default `grid()`, at the config's skip_top) plus the
    config's own setting. Raises NotCalibratable when no query has two positives.

    `data`: the run's input as read (`negforge.pipeline.load_data`); `build`: how one fold's run is made, from
    its config and its input with the fold's positives hidden (`negforge.pipeline.run` with `overwrite=True`
    and `data=`); passed in so calibration never imports the driver that imports it.
    """
    from negforge.publish.exporters import rich_rows
    from negforge.publish.run_files import read_run

    multi = calibratable(data.queries)
    if not multi:
        raise NotCalibratable(
            f"{cfg.data.path}: no query has two or more positives, so none can be hidden and counted. "
            "Measure false negatives on a sample with an llm_judge filter instead (filters: [{type: llm_judge}])."
        )
    base = setting_of(cfg)
    settings = list(settings) if settings is not None else grid()
    settings = [replace(s, skip_top=base.skip_top) for s in settings]
    depth = max([s.depth for s in settings] + [base.depth])
    recorded: list[RecordedQuery] = []
    run_dirs: list[Path] = []
    score_by = cfg.score_by or "dense"
    for fold in hide_positives(data.queries, folds, cfg.seed):
        fcfg = calibration_config(cfg, depth, fold.index)
        result = build(fcfg, apply_fold(data, fold))
        run_dirs.append(result.run_dir)
        score_by = result.manifest.get("score_by") or score_by
        hidden = {qid: {data.corpus.ids[row]} for qid, row in fold.hidden.items()}
        recorded += recorded_queries(rich_rows(read_run(result.run_dir)), hidden)
    n = cfg.selection.num_negatives
    cal = evaluate(recorded, settings, score_by, n, fill_target)
    own = cal.recommended if cfg.selection.relative_margin == "auto" else measure(recorded, base, score_by, n)
    return CalibrationRun(
        cal, own or cal.results[0], score_by, folds, len(multi),
        len(data.queries) - len(multi), run_dirs,
    )  # fmt: skip
