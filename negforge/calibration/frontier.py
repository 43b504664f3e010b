"""The calibration grid, its leak/fill frontier, and the recommended setting.

The grid crosses the settings that trade false negatives against quota (NV-Retriever's TopK-PercPos margin,
sentence-transformers' `absolute_margin` and `range_max`, the embedding filter's `max_positive_sim`, and the
per-query gap cut `selection.gap_cut`). The frontier keeps the settings no other one beats on both leak and fill; the
recommendation is the lowest leak among those that keep at least `fill_target` of the queries full (ties:
more fill, more negatives per query, then the gentler setting: grid order).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path

from negforge.calibration.replay import LeakFill, RecordedQuery, Setting, measure

RELATIVE_MARGINS: tuple[float | None, ...] = (None, 0.0, 0.02, 0.05, 0.1, 0.2, 0.3)
ABSOLUTE_MARGINS: tuple[float | None, ...] = (None,)
MAX_POSITIVE_SIMS: tuple[float | None, ...] = (None, 0.95, 0.9, 0.8, 0.7)
DEPTHS: tuple[int, ...] = (30, 100, 300)


def grid(
    relative_margins: Sequence[float | None] = RELATIVE_MARGINS,
    absolute_margins: Sequence[float | None] = ABSOLUTE_MARGINS,
    max_positive_sims: Sequence[float | None] = MAX_POSITIVE_SIMS,
    depths: Sequence[int] = DEPTHS,
    gap: Sequence[bool] = (False, True),
) -> list[Setting]:
    """Every combination, gentlest first (smaller margins, looser similarity caps, shallower windows, no gap)."""
    out = [
        Setting(r, a, p, d, g)
        for r, a, p, d, g in product(relative_margins, absolute_margins, max_positive_sims, depths, gap)
    ]
    return sorted(out, key=_gentleness)


def _gentleness(s: Setting) -> tuple:
    return (
        s.relative_margin if s.relative_margin is not None else -1.0,
        s.absolute_margin if s.absolute_margin is not None else -1.0,
        -(s.max_positive_sim if s.max_positive_sim is not None else 2.0),
        int(s.gap),
        s.depth,
    )


@dataclass(frozen=True)
class Calibration:
    """Every setting's measure, the frontier, the recommended one (None when no setting was measured) and
    whether it meets the fill target."""

    results: list[LeakFill]
    frontier: list[LeakFill]
    recommended: LeakFill | None
    fill_target: float
    meets_target: bool


def evaluate(
    queries: list[RecordedQuery],
    settings: Sequence[Setting],
    score_by: str,
    num_negatives: int,
    fill_target: float,
) -> Calibration:
    """Measure every setting on `queries` and choose (module doc). `fill_target` in [0, 1]."""
    cache: dict = {}
    results = [measure(queries, s, score_by, num_negatives, cache) for s in settings]
    return choose(results, fill_target)


def _best(results: list[LeakFill], fill_target: float, order: dict[int, int]) -> tuple[LeakFill | None, bool]:
    ok = [r for r in results if r.fill >= fill_target and not math.isnan(r.leak)]
    if ok:
        return min(ok, key=lambda r: (r.leak, -r.fill, -r.negatives_per_query, order[id(r)])), True
    pool = [r for r in results if not math.isnan(r.leak)]  # nothing fills enough: best fill, then least leak
    return (min(pool, key=lambda r: (-r.fill, r.leak, order[id(r)])) if pool else None), False


def choose(results: list[LeakFill], fill_target: float) -> Calibration:
    """The frontier and the recommendation over measured `results` (in grid order)."""
    order = {id(r): i for i, r in enumerate(results)}
    best, met = _best(results, fill_target, order)
    return Calibration(results, pareto(results), best, fill_target, met)


def pareto(results: list[LeakFill]) -> list[LeakFill]:
    """Settings not dominated on (lower leak, higher fill), by fill descending; one per (leak, fill) point."""
    seen: set[tuple[float, float]] = set()
    out = []
    for r in sorted(results, key=lambda r: (-r.fill, r.leak)):
        point = (round(r.leak, 9), round(r.fill, 9))
        if point in seen:
            continue
        if any(
            o.leak <= r.leak and o.fill >= r.fill and (o.leak, o.fill) != (r.leak, r.fill) for o in results
        ):
            continue
        seen.add(point)
        out.append(r)
    return out


def _row(mark: str, r: LeakFill) -> str:
    lo, hi = r.leak_ci
    return (
        f"{mark:12}{100 * r.leak:8.2f} {f'[{100 * lo:.2f}, {100 * hi:.2f}]':>16} {100 * r.fill:7.1f} "
        f"{r.negatives_per_query:6.2f}  {r.setting.label()}"
    )


def table(cal: Calibration, baseline: LeakFill | None = None, top: int = 15) -> str:
    """A text table: the frontier (best fill first), then the recommendation and the config's own setting,
    each measured the same way."""
    head = f"{'':12}{'leak %':>8} {'95% CI':>16} {'fill %':>7} {'neg/q':>6}  setting"
    lines = [head, "-" * len(head)]
    lines += [_row("frontier", r) for r in cal.frontier[:top]]
    lines.append("")
    if cal.recommended is not None:
        lines.append(_row("recommended", cal.recommended))
    if baseline is not None:
        lines.append(_row("config", baseline))
    return "\n".join(lines)


def plot(cal: Calibration, baseline: LeakFill | None, path: Path) -> Path:
    """The frontier as leak (%) against fill (%), every setting grey, the recommendation and `baseline` (the
    config's own setting) marked. Writes a PNG at `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.scatter(
        [100 * r.fill for r in cal.results], [100 * r.leak for r in cal.results], s=8, c="0.75", label="grid"
    )
    fr = sorted(cal.frontier, key=lambda r: r.fill)
    ax.plot([100 * r.fill for r in fr], [100 * r.leak for r in fr], "-o", ms=3, label="frontier")
    if baseline is not None:
        ax.scatter(
            [100 * baseline.fill], [100 * baseline.leak], marker="s", s=50, c="tab:red", label="config"
        )
    if cal.recommended is not None:
        r = cal.recommended
        ax.scatter([100 * r.fill], [100 * r.leak], marker="*", s=120, c="tab:green", label="recommended")
    ax.axvline(100 * cal.fill_target, ls=":", c="0.5")
    ax.set_xlabel("queries filled (%)")
    ax.set_ylabel("hidden positives kept as negatives (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
