"""Score statistics per source (positive, negative, margin), printed as a table and kept in the manifest."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from negforge.records import score_on, selection_key, selection_score


def score_summary(rows: Iterable[dict[str, Any]], score_key: str | None) -> list[dict[str, Any]]:
    """One entry per credited source plus `all`: counts and score quantiles on the selection scale."""
    per: dict[str, dict[str, list[float]]] = {}
    for row in rows:
        pos = (row["positive_scores"] or {}).get(score_key) if score_key else None
        pos_min = min(pos) if pos else None
        for neg in row["negatives"]:
            s = score_on(neg, score_key)  # strict: a margin takes both sides from one scale
            for src in (neg["source"], "all"):
                b = per.setdefault(src, {"neg": [], "pos": [], "margin": [], "n": []})
                b["n"].append(1)
                if s is not None:
                    b["neg"].append(s)
                    if pos_min is not None:
                        b["pos"].append(pos_min)
                        b["margin"].append(pos_min - s)
    out = []
    for src in sorted(per, key=lambda s: (s == "all", s)):
        b = per[src]

        def q(vals: list[float], p: float) -> float | None:
            return round(float(np.percentile(vals, p)), 4) if vals else None

        def m(vals: list[float]) -> float | None:
            return round(float(np.mean(vals)), 4) if vals else None

        out.append(
            {
                "source": src,
                "negatives": len(b["n"]),
                "positive_mean": m(b["pos"]),
                "negative_mean": m(b["neg"]),
                "negative_p10": q(b["neg"], 10),
                "negative_p50": q(b["neg"], 50),
                "negative_p90": q(b["neg"], 90),
                "margin_mean": m(b["margin"]),
                "margin_min": round(min(b["margin"]), 4) if b["margin"] else None,
            }
        )
    return out


def print_summary(
    summary: list[dict[str, Any]], score_key: str | None, console: Console | None = None
) -> None:
    console = console or Console()
    table = Table(
        title=f"scores by source ({score_key or 'unscored'} scale; margin = weakest positive − negative)"
    )
    cols = [
        "source",
        "negatives",
        "positive_mean",
        "negative_mean",
        "negative_p10",
        "negative_p50",
        "negative_p90",
        "margin_mean",
        "margin_min",
    ]
    heads = [
        "source",
        "n",
        "pos mean",
        "neg mean",
        "neg p10",
        "neg p50",
        "neg p90",
        "margin mean",
        "margin min",
    ]
    for c, h in zip(cols, heads, strict=True):
        table.add_column(h, justify="left" if c == "source" else "right")
    for row in summary:
        table.add_row(*["-" if row[c] is None else str(row[c]) for c in cols])
    console.print(table)


@dataclass(frozen=True)
class SourceScores:
    """One source's candidates on its selection scale (`negforge.records.selection_key`): the scores of the
    kept negatives and of the dropped candidates, in row order."""

    key: str | None
    kept: list[float] = field(default_factory=list)
    dropped: list[float] = field(default_factory=list)


def source_scores(rows: Iterable[Mapping[str, Any]], score_key: str | None) -> dict[str, SourceScores]:
    """Per source (sorted by name), kept and dropped candidates' `selection_score`s; candidates without one are
    left out. The one place report.md's histograms and report.html's figures take their numbers from."""
    out: dict[str, SourceScores] = {}
    for r in rows:
        for kind, cands in (("kept", r["negatives"]), ("dropped", r.get("dropped") or [])):
            for c in cands:
                if (v := selection_score(c, score_key)) is None:
                    continue
                src = c["source"]
                if src not in out:
                    out[src] = SourceScores(selection_key(src, score_key))
                getattr(out[src], kind).append(v)
    return dict(sorted(out.items()))
