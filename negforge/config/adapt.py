"""The `adapt:` section of a run config: domain adaptation from a corpus alone (queries written by the run's
LLM, consistency-filtered, then the normal mining, filters and training). Pydantic only; no I/O here."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class QueryGenConfig(_Strict):
    """Query generation (InPars: Bonifacio et al. 2022; Promptagator: Dai et al. 2022) with sources.llm."""

    passages: int | float = Field(
        200,
        gt=0,
        description="passages to write queries for: a count (int) or a share of the corpus (float in (0, 1]); "
        "a seeded sample",
    )
    per_passage: int = Field(
        1,
        ge=1,
        le=8,
        description="queries per passage, one request each with its own seed (always in the cache key; sent "
        "to the server when sources.llm.send_seed); keep temperature > 0 or the samples repeat",
    )
    template: Literal["inpars", "promptagator"] = Field(
        "inpars",
        description="inpars: generic few-shot (built-in examples, or adapt.generate.fewshot); promptagator: "
        "task-specific few-shot from the user's examples (fewshot required) and task_description",
    )
    fewshot: str | None = Field(
        None,
        description="JSONL/TSV/CSV of target-domain examples with `query` and `passage` columns "
        "(relative to the config file)",
    )
    max_examples: int = Field(
        4, ge=1, le=16, description="few-shot examples put in each prompt (seeded choice)"
    )
    task_description: str = Field(
        "Given a passage, write a question or search query that the passage answers.",
        description="promptagator: the task's instruction, e.g. 'Given a scientific claim, find abstracts "
        "that support or refute it'",
    )
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(64, ge=8, description='completion budget ({"query": "..."} plus the query)')
    max_passage_chars: int = Field(1500, ge=100, description="longer passages are cut to this in the prompt")
    min_words: int = Field(3, ge=1, description="shorter queries are rejected (too_short)")
    max_words: int = Field(40, ge=2, description="longer queries are rejected (too_long)")
    copy_min_words: int = Field(
        8,
        ge=2,
        description="a query of at least this many words found verbatim in its passage is rejected "
        "(copy_of_passage); shorter verbatim phrases are keyword queries and kept",
    )
    logprobs: bool = Field(True, description="ask for token logprobs (mean log-probability per query)")


class ConsistencyConfig(_Strict):
    """Promptagator's round-trip filter and InPars' log-probability filter."""

    retriever: Literal["bm25", "dense", "hybrid", "none"] = Field(
        "bm25", description="retriever that must find the query's own passage; none = no round-trip filter"
    )
    k: int = Field(10, ge=1, description="keep a query when its passage ranks within the top k")
    logprob_keep: float | None = Field(
        None,
        gt=0,
        le=1,
        description="InPars: keep this share of queries with the highest mean token log-probability "
        "(null = off; queries without logprobs are kept and counted)",
    )


class EvalConfig(_Strict):
    """An optional labeled split to evaluate the adapted retriever on (beside zero-shot)."""

    path: str | None = Field(None, description="BEIR folder (relative to the config file)")
    split: str = "test"
    max_queries: int | None = Field(None, ge=1)


class AdaptTrainConfig(_Strict):
    """Training of the adapted retriever (negforge.training.TrainConfig's main knobs)."""

    model: str | None = Field(None, description="base model; null = sources.dense.model")
    config: Literal["triplet", "n-tuple"] = "triplet"
    loss: Literal["mnrl", "cached_mnrl", "marginmse"] = Field(
        "mnrl", description="marginmse needs a cross_encoder filter (GPL labels CE(q,pos) - CE(q,neg))"
    )
    batch_size: int = Field(32, ge=2)
    epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, ge=1)
    learning_rate: float = Field(2e-5, gt=0)
    seed: int = 13


class AdaptConfig(_Strict):
    """negforge adapt: corpus → generated queries → consistency filter → mining/filters → training → eval."""

    generate: QueryGenConfig = Field(default_factory=QueryGenConfig)
    consistency: ConsistencyConfig = Field(default_factory=ConsistencyConfig)
    train: AdaptTrainConfig = Field(default_factory=AdaptTrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _promptagator_needs_examples(self) -> AdaptConfig:
        if self.generate.template == "promptagator" and not self.generate.fewshot:
            raise ValueError(
                "adapt.generate.template=promptagator needs adapt.generate.fewshot (a file of query/passage "
                "examples from the target domain)"
            )
        if isinstance(self.generate.passages, float) and self.generate.passages > 1:
            raise ValueError("adapt.generate.passages: a float is a share of the corpus and must be <= 1")
        return self
