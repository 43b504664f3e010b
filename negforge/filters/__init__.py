"""Filters: a verdict (keep or reject, reason, scores) for every candidate negative, composed in order."""

from __future__ import annotations

from typing import TYPE_CHECKING

from negforge.filters.base import CandidateBatch, Filter, FilterQuery, FilterStats, Verdict
from negforge.filters.stack import FilterStack
from negforge.records import FilterCandidate, Outcome

if TYPE_CHECKING:
    from collections.abc import Mapping
    from pathlib import Path
    from typing import Any

    import numpy as np

    from negforge.config import FilterConfig
    from negforge.filters.pair_scorer import PairScorer
    from negforge.generators.llm_stage import LLMStage
    from negforge.mining.dense import DenseMiner

__all__ = [
    "CandidateBatch",
    "Filter",
    "FilterCandidate",
    "FilterQuery",
    "FilterStack",
    "FilterStats",
    "Outcome",
    "Verdict",
    "build_filter",
    "build_stack",
]


def build_filter(
    fc: FilterConfig,
    dense: DenseMiner | None = None,
    query_emb: np.ndarray | None = None,
    llm: LLMStage | None = None,
    cache_root: str | Path | None = None,
    scorers: Mapping[str, PairScorer] | None = None,
) -> Filter:
    """One configured filter; models load here, once per run. `llm`: the run's started LLM, which the
    llm_judge filter asks (without it the judge can describe itself but not judge). `cache_root`: where
    cross-encoder precision verdicts are kept (the run's cache_dir; None keeps them in fp32). `scorers`:
    cross-encoder/NLI models already loaded, by `scorer_key` (negforge.precision_pin); reused when the
    filter's config names the path the scorer resolved to."""
    if fc.type == "sanity":
        from negforge.filters.sanity import SanityFilter

        return SanityFilter(fc)
    if fc.type == "duplicate":
        from negforge.filters.duplicate import DuplicateFilter

        return DuplicateFilter(fc)
    if fc.type == "embedding":
        from negforge.filters.embedding import EmbeddingFilter

        if dense is None or query_emb is None:
            raise ValueError("the embedding filter needs the dense source (sources.dense.enabled)")
        return EmbeddingFilter(fc, dense, query_emb)
    if fc.type == "cross_encoder":
        from negforge.filters.cross_encoder import CrossEncoderFilter

        return CrossEncoderFilter(fc, cache_root, _reusable(fc, scorers))
    if fc.type == "nli":
        from negforge.filters.nli import NLIFilter

        return NLIFilter(fc, cache_root, _reusable(fc, scorers))
    if fc.type == "answer_leak":
        from negforge.filters.answer_leak import AnswerLeakFilter

        return AnswerLeakFilter(fc)
    if fc.type == "llm_judge":
        from negforge.filters.llm_judge import LLMJudgeFilter
        from negforge.generators.llm_stage import LLMEndpoint

        return LLMJudgeFilter(fc, LLMEndpoint.from_stage(llm) if llm is not None else None)
    raise ValueError(f"unknown filter type {fc.type!r}")


def build_stack(
    configs: list[FilterConfig],
    dense: DenseMiner | None = None,
    query_emb: np.ndarray | None = None,
    llm: LLMStage | None = None,
    cache_root: str | Path | None = None,
    scorers: Mapping[str, PairScorer] | None = None,
) -> FilterStack:
    """The configured stack; a filter with `sources` or `per_source` settings becomes a `SourceScopedFilter`.
    `llm`: the run's started LLM, for llm_judge filters; `cache_root`: see `build_filter`."""
    from negforge.filters.scoped import SourceScopedFilter

    out: list[Filter] = []
    for fc in configs:
        base = build_filter(fc, dense, query_emb, llm, cache_root, scorers)
        if fc.sources is None and not fc.per_source:
            out.append(base)
            continue
        variants: dict[str, Filter] = {
            src: build_filter(fc.for_source(src), dense, query_emb, llm, cache_root, scorers)
            for src in fc.per_source
        }
        out.append(SourceScopedFilter(base, variants, fc.sources))
    return FilterStack(out)


def _reusable(fc: Any, scorers: Mapping[str, PairScorer] | None) -> PairScorer | None:
    """The loaded scorer for this filter's model, if its resolved path is the one the config names."""
    from negforge.filters.pair_scorer import scorer_key

    s = (scorers or {}).get(scorer_key(fc))
    if s is None or s.choice is None:
        return None
    wanted = "torch-fp32" if fc.backend == "torch" else fc.backend
    return s if wanted in ("auto", s.choice.path) else None
