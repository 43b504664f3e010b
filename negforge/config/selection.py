"""How mined candidates are chosen per query (`selection:`): the rank window, positive-aware margins,
sampling (top, uniform, SimANS) and TAS-Balanced topic mode."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from negforge.config.base import _Strict


class SimANSConfig(_Strict):
    """p ∝ exp(-a (s(q,d) - s(q,d+) - b)^2): a sharpens the kernel, b shifts its centre below the positive."""

    a: float = Field(20.0, gt=0)
    b: float = 0.0


class TopicsConfig(_Strict):
    """TAS-Balanced: k-means over query embeddings; negatives come from the query's own topic cluster."""

    clusters: int = Field(0, ge=0, description="0 turns topic mode off")
    overfetch: int = Field(
        4, ge=1, description="retrieve this many times deeper, since other topics are dropped"
    )
    iterations: int = Field(20, ge=1)


class CalibrationConfig(_Strict):
    """Hidden-positive calibration inside a run (negforge.calibration): one known positive per query with two
    or more is hidden, the run's miners and filters mine those queries again, and each hidden positive that
    comes back as a kept negative is a measured false negative. `relative_margin: auto` picks the margin
    from it; `estimate` measures the run's own leak for the manifest and report."""

    estimate: bool = Field(
        True,
        description="measure the run's own false-negative leak (95% interval) when at least 10 queries have "
        "two positives: an extra mining of up to max_queries queries per fold, nothing written but the result",
    )
    folds: int = Field(2, ge=1, le=10, description="hidden-positive folds (a different positive each)")
    max_queries: int = Field(
        300, ge=10, description="seeded sample of the queries with two or more positives"
    )
    fill: float = Field(
        0.95, gt=0, le=1, description="auto: share of queries that must keep every negative they ask for"
    )
    margins: list[Annotated[float, Field(ge=0, lt=1)]] = Field(
        default_factory=lambda: [0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3],
        min_length=1,
        description="auto: the relative margins tried; the lowest leak at the fill target wins",
    )


class SelectionConfig(_Strict):
    num_negatives: int = Field(5, ge=1, description="mined negatives per query (without mix.quotas)")
    skip_top: int = Field(0, ge=0, description="ignore the N best-ranked candidates (false-negative risk)")
    depth: int = Field(30, ge=1, description="consider candidates ranked skip_top+1 .. skip_top+depth")
    sampling: Literal["top", "uniform", "simans"] = "top"
    simans: SimANSConfig = Field(default_factory=SimANSConfig)
    score_by: Literal["auto", "dense", "bm25", "hybrid"] = "auto"
    absolute_margin: float | None = Field(
        None, ge=0, description="drop candidates scoring above weakest positive - margin"
    )
    relative_margin: Annotated[float, Field(ge=0, lt=1)] | Literal["auto"] | None = Field(
        0.05,
        description="TopK-PercPos (NV-Retriever): drop candidates above pos - |pos|*r, pos = weakest positive; "
        "on by default (0.05): a negative that outscores its positive is a likely false negative. `auto`: "
        "chosen per run on hidden-positive folds (selection.calibration; `negforge calibrate` shows the grid)",
    )
    edit_margin: float | None = Field(
        0.0,
        ge=0,
        description="a verified edit of a positive (rules, LLM edit) must score below that positive for the "
        "query by this much (dense cosine, the run's scorer): an edit ranked at or above its base has likely "
        "not moved the meaning (`edit_margin`); null turns the check off",
    )
    gap_cut: bool = Field(
        False,
        description="per query, drop the cluster above the largest score drop among the window's top 20 when "
        "that drop is at least 3x their median drop (likely unlabeled positives; reason `gap_cut`). "
        "`negforge calibrate` measures it beside the margins",
    )
    max_score: float | None = Field(None, description="drop candidates scoring above this")
    min_score: float | None = Field(None, description="drop candidates scoring below this")
    topics: TopicsConfig = Field(default_factory=TopicsConfig)
    calibration: CalibrationConfig = Field(default_factory=CalibrationConfig)

    def margin(self) -> float | None:
        """The TopK-PercPos `relative_margin` as a number (None when off). Raises RuntimeError on `auto`: the
        run resolves it on hidden-positive folds before anything is selected (negforge.calibration)."""
        if self.relative_margin == "auto":
            raise RuntimeError("selection.relative_margin: auto reached selection unresolved")
        return self.relative_margin
