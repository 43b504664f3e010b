"""The filter stack (`filters:`): one config per filter type, the `FilterConfig` union discriminated by
`type`, per-source overrides, and `default_filters`, the safe stack a run gets when it names none."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import Field, ValidationError, model_validator

from negforge.config.base import _Strict

SourceName = Literal["bm25", "dense", "given", "random", "llm", "rules"]


class _FilterBase(_Strict):
    name: str | None = Field(None, description="unique name in the stack; defaults to the type")
    sources: list[SourceName] | None = Field(
        None, description="sources this filter judges (others pass it untouched); null = every source"
    )
    per_source: dict[SourceName, dict[str, Any]] = Field(
        default_factory=dict,
        description="settings overridden for one source, e.g. {llm: {max_positive_sim: null}}",
    )

    @model_validator(mode="after")
    def _overrides(self) -> _FilterBase:
        for src, over in self.per_source.items():
            bad = {"type", "name", "sources", "per_source"} & set(over)
            if bad:
                raise ValueError(f"per_source.{src}: {', '.join(sorted(bad))} cannot be set per source")
            try:
                self.for_source(src)
            except ValidationError as e:
                msgs = "; ".join(f"{'.'.join(map(str, x['loc']))}: {x['msg']}" for x in e.errors())
                raise ValueError(f"per_source.{src}: {msgs}") from None
        return self

    def for_source(self, source: str) -> Self:
        """This filter's settings as they apply to `source` (its per_source override merged in)."""
        over = self.per_source.get(source)  # type: ignore[call-overload]  # a source name as the user wrote it
        if not over:
            return self
        base = self.model_dump(exclude={"per_source"})
        return type(self).model_validate({**base, **over})


class SanityFilterConfig(_FilterBase):
    """Cheap checks first: length ratio to the positive, letters share, language, boilerplate and refusals."""

    type: Literal["sanity"] = "sanity"
    min_length_ratio: float | None = Field(0.2, ge=0, description="candidate words / positive words")
    max_length_ratio: float | None = Field(5.0, gt=0)
    min_words: int = Field(5, ge=0)
    min_alpha_ratio: float | None = Field(
        0.6, ge=0, le=1, description="letters / non-space characters (junk, tables, encodings)"
    )
    languages: list[str] | None = Field(
        default_factory=lambda: ["en"], description="ISO 639-1 codes kept (py3langid); null keeps all"
    )
    boilerplate: bool = Field(
        True, description="reject web boilerplate (all sources) and, in LLM text, refusals and meta text"
    )


class DuplicateFilterConfig(_FilterBase):
    """Exact (normalised text hash) and near duplicates (rapidfuzz) within a query, against its positives
    and across sources; the copy that stays inherits the sources of the ones dropped."""

    type: Literal["duplicate"] = "duplicate"
    near_threshold: float | None = Field(
        92, ge=0, le=100, description="rapidfuzz ratio at or above which two texts are near duplicates"
    )
    against_positives: bool = True


class EmbeddingFilterConfig(_FilterBase):
    """Bi-encoder similarity (the run's dense model, cached embeddings) of candidate to positive and query."""

    type: Literal["embedding"] = "embedding"
    max_positive_sim: float | None = Field(
        0.9, description="reject near-copies and paraphrases of a positive (likely false negatives)"
    )
    min_query_sim: float | None = None
    max_query_sim: float | None = None
    query_percentile: tuple[float, float] | None = Field(
        None, description="keep candidates whose query similarity lies in this per-query percentile band"
    )
    trisampler: bool = Field(
        False, description="TriSampler rule: far enough from the positive, informative for the query"
    )
    tri_max_positive_sim: float = Field(0.8, description="TriSampler: sim(negative, positive) at most this")
    tri_min_query_ratio: float = Field(
        0.5, description="TriSampler: sim(query, negative) at least this share of sim(query, positive)"
    )

    @model_validator(mode="after")
    def _band(self) -> EmbeddingFilterConfig:
        p = self.query_percentile
        if p is not None and not (0 <= p[0] < p[1] <= 100):
            raise ValueError("query_percentile must be [low, high] with 0 <= low < high <= 100")
        return self


class _RelabelOption(_Strict):
    on_false_negative: Literal["drop", "relabel"] = Field(
        "drop",
        description="what to do with a corpus document this filter judges a likely positive: drop it, or "
        "relabel it (RLHN, Thakur et al. 2025): keep it as an extra positive of its query (rich: "
        "relabeled_positives, with the filter, reason and scores; trainer configs train on it as a positive)",
    )


class CrossEncoderFilterConfig(_RelabelOption, _FilterBase):
    """RocketQA-style denoising with a sentence-transformers CrossEncoder (one relevance logit).

    Scale: `ce_score` is the raw logit, `ce_prob` its sigmoid. Thresholds: `max_prob` on the probability,
    margins on the raw score relative to the query's weakest positive, or `calibrate_quantile`: reject
    candidates scoring above that quantile of the positives' scores in this run (model-independent).
    """

    type: Literal["cross_encoder"] = "cross_encoder"
    model: str = Field(..., description="local folder or hub id of a CrossEncoder")
    batch_size: int = Field(32, ge=1)
    max_length: int | None = Field(512, ge=8)
    max_prob: float | None = Field(0.9, ge=0, le=1)
    absolute_margin: float | None = None
    relative_margin: float | None = Field(None, ge=0, lt=1)
    calibrate_quantile: float | None = Field(None, ge=0, le=1)
    calibration_queries: int = Field(256, ge=1, description="queries sampled to calibrate")
    device: str | None = None
    backend: Literal["auto", "torch", "torch-fp32", "torch-fp16", "torch-bf16"] = Field(
        "auto",
        description="auto: bf16 on CPUs with AVX512-BF16/AMX, fp16 on CUDA, each only when the parity gate "
        "accepts it for this model (fp32 otherwise); torch = fp32",
    )


class NLIFilterConfig(_RelabelOption, _FilterBase):
    """An NLI CrossEncoder (premise: positive, hypothesis: candidate); label order from the model's id2label."""

    type: Literal["nli"] = "nli"
    model: str
    batch_size: int = Field(32, ge=1)
    max_length: int | None = Field(512, ge=8)
    max_entailment: float = Field(0.5, ge=0, le=1, description="reject when the positive entails it")
    min_contradiction: float = Field(
        0.5, ge=0, le=1, description="contradiction negatives must reach this contradiction probability"
    )
    device: str | None = None
    backend: Literal["auto", "torch", "torch-fp32", "torch-fp16", "torch-bf16"] = Field(
        "auto",
        description="auto: bf16 on CPUs with AVX512-BF16/AMX, fp16 on CUDA, each only when the parity gate "
        "accepts it for this model (fp32 otherwise); torch = fp32",
    )


class AnswerLeakFilterConfig(_FilterBase):
    """Reject negatives that contain a known answer string or key span of their query."""

    type: Literal["answer_leak"] = "answer_leak"
    answers: str = Field(
        ..., description='JSONL lines {"query_id": ..., "answers": [...]} or TSV query_id<TAB>answer'
    )
    min_chars: int = Field(3, ge=1, description="shorter answers are too generic to match")


class LLMJudgeFilterConfig(_RelabelOption, _FilterBase):
    """The run's own LLM (sources.llm: model, base_urls or a managed server) asked "does this passage answer
    the query?" as constrained JSON {"answer": "yes"|"no"}; p(yes) from the answer token's logprobs where
    the server returns them, else 1 or 0 from the parsed answer. Candidates with p(yes) >= threshold are
    dropped as likely false negatives (`llm_says_answers`); unparseable answers are kept and counted."""

    type: Literal["llm_judge"] = "llm_judge"
    threshold: float = Field(
        0.5, ge=0, le=1, description="reject when p(yes) (a probability in [0, 1]) is at least this"
    )
    logprobs: bool = Field(
        True, description="ask for logprobs (top_logprobs) and take p(yes) from them when returned"
    )
    top_logprobs: int = Field(5, ge=1, le=20, description="alternatives per token asked for")
    max_passage_chars: int = Field(
        2000, ge=100, description="longer candidates are cut to this many characters in the prompt"
    )
    max_tokens: int = Field(24, ge=4, description='completion budget ({"answer": "yes"} is ~7 tokens)')
    concurrency: int | None = Field(
        None,
        ge=1,
        description="requests in flight; null = sources.llm.concurrency (while generation runs, judge requests "
        "share the generation queue and its bound instead)",
    )


FilterConfig = Annotated[
    SanityFilterConfig
    | DuplicateFilterConfig
    | EmbeddingFilterConfig
    | CrossEncoderFilterConfig
    | NLIFilterConfig
    | AnswerLeakFilterConfig
    | LLMJudgeFilterConfig,
    Field(discriminator="type"),
]
#: the filters that load a model and pick a numeric path (`backend`): their precision is pinned per run
ModelFilterConfig = CrossEncoderFilterConfig | NLIFilterConfig
MODEL_FILTER_CONFIGS = (CrossEncoderFilterConfig, NLIFilterConfig)


def default_filters(dense: bool, edit_sources: list[str] | None = None) -> list:
    """The safe default stack: exact/near duplicates, and (with a dense model) the embedding filter at
    max_positive_sim 0.6, which benchmarks/filter_leak_replay.py measured as cutting SciFact's hidden-positive
    leak most (70% -> 15%) while every query stays filled.

    `edit_sources` (rules, and llm in edit mode) make verified edits of the positive: close to it by design,
    so the near-copy and similarity-to-positive checks are off for them (their verifier says they differ),
    and two edits of one sentence are not near duplicates of each other (they differ where it matters).
    """
    edits = edit_sources or []
    out: list = [
        DuplicateFilterConfig(
            per_source={s: {"against_positives": False, "near_threshold": None} for s in edits}
        )
    ]
    if dense:
        out.append(
            EmbeddingFilterConfig(
                max_positive_sim=0.6, per_source={s: {"max_positive_sim": None} for s in edits}
            )
        )
    return out
