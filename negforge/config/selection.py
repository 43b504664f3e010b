"""How mined candidates are chosen per query (`selection:`): the rank window, positive-aware margins,
sampling (top, uniform, SimANS) and TAS-Balanced topic mode."""

from __future__ import annotations

from typing import Literal

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
    relative_margin: float | None = Field(
        0.05,
        ge=0,
        lt=1,
        description="TopK-PercPos (NV-Retriever): drop candidates above pos - |pos|*r, pos = weakest positive; "
        "on by default (0.05): a negative that outscores its positive is a likely false negative",
    )
    edit_margin: float | None = Field(
        0.0,
        ge=0,
        description="a verified edit of a positive (rules, LLM edit) must score below that positive for the "
        "query by this much (dense cosine, the run's scorer): an edit ranked at or above its base has likely "
        "not moved the meaning (`edit_margin`); null turns the check off",
    )
    max_score: float | None = Field(None, description="drop candidates scoring above this")
    min_score: float | None = Field(None, description="drop candidates scoring below this")
    topics: TopicsConfig = Field(default_factory=TopicsConfig)
