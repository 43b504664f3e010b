"""`negforge calibrate CONFIG`: measure how many known positives come back as negatives under each margin
setting, recommend one, and write it as a ready config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
import yaml

from negforge.cli.common import ConfigArg, SetOpt, _load, _user_errors, app, fail, out


def write_calibrated(cfg_path: Path, cfg, setting, dest: Path, note: str) -> Path:
    """The user's config (as given, with --set applied and paths made absolute) with the recommended
    selection margins, depth and embedding threshold; a comment line says where the numbers came from."""
    data = cfg.model_dump(mode="json", exclude_unset=True)
    data.setdefault("data", {})["path"] = str(Path(cfg.data.path).resolve())
    sel = data.setdefault("selection", {})
    sel.update(
        relative_margin=setting.relative_margin,
        absolute_margin=setting.absolute_margin,
        depth=setting.depth,
        gap_cut=setting.gap,
    )
    filters = [f.model_dump(mode="json") for f in cfg.filters or []]  # resolved: the stack the run used
    emb = [f for f in filters if f.get("type") == "embedding"]
    if emb:
        emb[0]["max_positive_sim"] = setting.max_positive_sim
    elif setting.max_positive_sim is not None:
        filters.append({"type": "embedding", "max_positive_sim": setting.max_positive_sim})
    data["filters"] = filters
    dest.write_text(
        f"# negforge calibrate {cfg_path}: {note}\n" + yaml.safe_dump(data, sort_keys=False), "utf-8"
    )
    return dest


@app.command()
def calibrate(
    config: ConfigArg,
    set_: SetOpt = None,
    folds: Annotated[
        int, typer.Option(min=1, help="Hidden-positive folds (one positive hidden per query each).")
    ] = 3,
    fill: Annotated[
        float,
        typer.Option(min=0.0, max=1.0, help="Share of queries that must keep every negative they ask for."),
    ] = 0.95,
    write: Annotated[
        Path | None, typer.Option(help="Write the recommended setting as a ready config (YAML) here.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Frontier plot (PNG); default beside --write, else none.")
    ] = None,
) -> None:
    """Choose the margin from your own labels: on queries with two or more positives, hide one (seeded,
    several folds), mine and filter as CONFIG says with the margins off, and count how often a hidden
    positive comes back as a kept negative (the leak) and how many queries keep their quota (the fill), for
    every setting of the grid (selection.relative_margin, absolute_margin, depth, the embedding filter's
    max_positive_sim, selection.gap_cut). Prints the leak/fill frontier, the
    config's own setting, and the recommendation: the lowest leak at the --fill target.

    Data with one positive per query cannot be calibrated this way: the command says so and suggests an
    llm_judge filter on a sample.
    """
    from negforge.calibration.calibrate import NotCalibratable
    from negforge.calibration.calibrate import calibrate as run_calibration
    from negforge.calibration.frontier import plot as plot_frontier
    from negforge.calibration.frontier import table
    from negforge.pipeline import load_data, run
    from negforge.timing import Timings

    cfg = _load(config, set_, None)
    try:
        data = load_data(cfg, Timings())
        res = run_calibration(
            cfg, data, lambda c, d: run(c, overwrite=True, data=d), folds=folds, fill_target=fill
        )
    except NotCalibratable as e:
        raise fail(e) from None
    except _user_errors() as e:
        raise fail(e) from None
    cal = res.calibration
    out.print(
        f"calibrated on {res.queries} queries with 2+ positives x {res.folds} folds "
        f"({res.skipped_single_positive} single-positive queries left out); score {res.score_by}; "
        f"leak = hidden positives kept as negatives / hidden positives (95% Wilson interval)",
        highlight=False,
    )
    out.print(table(cal, res.baseline), highlight=False, markup=False, soft_wrap=True)
    rec = cal.recommended
    if rec is None:
        raise fail("no setting could be measured (no hidden positive was ever a candidate)")
    verdict = (
        f"meets the {100 * fill:.0f}% fill target"
        if cal.meets_target
        else f"no setting keeps {100 * fill:.0f}% of queries full; this one fills most"
    )
    out.print(f"recommended: {rec.setting.label()} ({verdict})", highlight=False, markup=False)
    if write is not None:
        note = (f"leak {100 * rec.leak:.2f}% at fill {100 * rec.fill:.1f}% over {res.queries} queries x "
                f"{res.folds} folds (config's own: leak {100 * res.baseline.leak:.2f}%, fill {100 * res.baseline.fill:.1f}%)")  # fmt: skip
        out.print(f"wrote {write_calibrated(config, cfg, rec.setting, write, note)}", highlight=False)
        plot = plot or write.with_suffix(".png")
    if plot is not None:
        out.print(f"plot {plot_frontier(cal, res.baseline, plot)}", highlight=False)
