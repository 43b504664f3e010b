"""The whole run (`RunConfig`) and its run-level sections: per-source quotas (`mix:`), curriculum
buckets, where shard tasks execute, and what is written (`output:`); plus the cross-section checks and the
fingerprint that decides which shards can be reused."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidatorFunctionWrapHandler, field_validator, model_validator

from negforge.config.adapt import AdaptConfig
from negforge.config.base import _Strict
from negforge.config.filters import FilterConfig, SourceName, default_filters
from negforge.config.selection import SelectionConfig
from negforge.config.sources import DataConfig, SourcesConfig

#: a source group the mixer fills by quota (`mined` = bm25 and dense together)
MixSource = Literal["bm25", "dense", "mined", "given", "random", "llm", "rules"]
DEFAULT_FALLBACK: tuple[MixSource, ...] = ("given", "dense", "bm25", "llm", "rules", "random")
OutputFormat = Literal["rich", "triplet", "n-tuple", "labeled-pair", "labeled-list"]
DEFAULT_FORMATS: tuple[OutputFormat, ...] = ("rich", "triplet", "n-tuple")


class MixConfig(_Strict):
    """How many negatives each source contributes per query, and who fills in when one is short.

    Empty `quotas` keeps the classic shape: selection.num_negatives from the mined pool (bm25 and dense
    together), plus sources.random.count and sources.llm.count.
    """

    quotas: dict[MixSource, int] = Field(
        default_factory=dict,
        description="negatives per query from each source; `given` = negatives that came with the input",
    )
    fallback: list[MixSource] = Field(default_factory=lambda: list(DEFAULT_FALLBACK))

    @model_validator(mode="after")
    def _quotas(self) -> MixConfig:
        if "mined" in self.quotas and ({"bm25", "dense"} & set(self.quotas)):
            raise ValueError("mix.quotas: use either `mined` or `bm25`/`dense`, not both")
        if any(v < 0 for v in self.quotas.values()):
            raise ValueError("mix.quotas: counts must be >= 0")
        return self


class CurriculumConfig(_Strict):
    """Difficulty buckets by a score, cut at run-wide quantiles; written as curriculum-<bucket> configs."""

    enabled: bool = False
    score: Literal["dense", "bm25", "hybrid", "ce_prob", "ce_score", "sim_positive"] = "dense"
    buckets: list[str] = Field(default_factory=lambda: ["easy", "medium", "hard"], min_length=2)


class ExecutionConfig(_Strict):
    """Where shard tasks run (Prefect task runner). Shards pass paths and ids: each worker process loads the
    cached indexes and embeddings once and writes its shards to the run folder."""

    runner: Literal["threads", "dask", "ray"] = "threads"
    workers: int = Field(1, ge=1, description="threads: pool size; dask/ray local cluster: worker processes")
    address: str | None = Field(
        None,
        description="scheduler of an existing Dask cluster (tcp://host:8786) or Ray cluster; None starts one",
    )
    threads_per_worker: int = Field(1, ge=1, description="local Dask cluster: threads per worker process")
    llm_concurrency: int | None = Field(
        None,
        ge=1,
        description="Prefect concurrency limit on shard tasks calling the LLM endpoint (tag negforge-llm)",
    )
    cross_encoder_concurrency: int | None = Field(
        None,
        ge=1,
        description="Prefect concurrency limit on shard tasks running model filters (tag negforge-cross-encoder)",
    )


class OutputConfig(_Strict):
    dir: str = Field("runs", description="where run folders go; relative to the working directory")
    formats: list[OutputFormat] = Field(default_factory=lambda: list(DEFAULT_FORMATS))
    scores: bool = Field(False, description="add a `label` score column to trainer configs (MarginMSE)")
    dropped_text: bool = Field(
        False, description="store the text of dropped corpus candidates too (their doc_id is always kept)"
    )
    shard_size: int = Field(64, ge=1)


class RunConfig(_Strict):
    """A whole run. Every field has a default except where the data lives."""

    run_name: str = Field(
        "run",
        pattern=r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$",
        max_length=200,
        description="the run folder: output.dir/run_name; letters, digits, '.', '_', '-', not starting "
        "with '.' (so never '.' or '..': a run stays inside output.dir)",
    )
    seed: int = Field(13, description="seeds every random choice (sampling, random negatives, mixing, LLM)")
    cache_dir: str = Field(
        "~/.cache/negforge",
        description="indexes, embeddings, LLM responses; relative to the working directory",
    )
    data: DataConfig
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    # typed as the list every reader sees: unset (None) only until `_default_filters` fills in the default
    filters: list[FilterConfig] = Field(
        None,  # type: ignore[arg-type]  # unset until _default_filters fills in the default stack
        description="the filter stack, in order; unset = the safe default (duplicate, embedding "
        "max_positive_sim 0.6 when dense is on: the least false-negative leak at full queries in "
        "benchmarks/filter_leak_replay.py); [] = no filters",
    )
    mix: MixConfig = Field(default_factory=MixConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    adapt: AdaptConfig = Field(
        default_factory=AdaptConfig, description="negforge adapt: queries written for a corpus alone"
    )

    @field_validator("filters", mode="wrap")
    @classmethod
    def _unset_filters(cls, v: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """`filters: null` (or the key left empty) means unset: the default stack, filled in below."""
        return None if v is None else handler(v)

    @model_validator(mode="after")
    def _default_filters(self) -> RunConfig:
        edits: list[SourceName] = []
        if self.sources.rules.enabled:
            edits.append("rules")
        if self.sources.llm.enabled and self.sources.llm.mode == "edit":
            edits.append("llm")
        if self.filters is None:
            self.filters = default_filters(self.sources.dense.enabled, edits)
            return self
        # explicit stacks get the same edit-source defaults unless per_source names that source itself
        relax: dict[str, dict[str, Any]] = {
            "duplicate": {"against_positives": False, "near_threshold": None},
            "embedding": {"max_positive_sim": None},
        }
        for f in self.filters:
            if f.type in relax:
                missing = {src: dict(relax[f.type]) for src in edits if src not in f.per_source}
                if missing:
                    f.per_source = {**f.per_source, **missing}
        return self

    @model_validator(mode="after")
    def _coherent(self) -> RunConfig:
        s, sel = self.sources, self.selection
        if s.rules.enabled and not s.dense.enabled:
            raise ValueError(
                "sources.rules needs sources.dense.enabled (it picks the sentence to edit with it)"
            )
        if s.llm.enabled and s.llm.mode == "edit" and not s.dense.enabled:
            raise ValueError(
                "sources.llm.mode=edit needs sources.dense.enabled (it picks the sentence to edit)"
            )
        if not (s.bm25.enabled or s.dense.enabled or s.random.enabled or s.llm.enabled):
            raise ValueError("sources: enable at least one of bm25, dense, random, llm")
        if sel.score_by == "dense" and not s.dense.enabled:
            raise ValueError("selection.score_by='dense' needs sources.dense.enabled")
        if sel.score_by == "bm25" and not s.bm25.enabled:
            raise ValueError("selection.score_by='bm25' needs sources.bm25.enabled")
        if sel.score_by == "hybrid" and not (s.bm25.enabled and s.dense.enabled):
            raise ValueError("selection.score_by='hybrid' needs both sources.bm25 and sources.dense enabled")
        if sel.topics.clusters and not s.dense.enabled:
            raise ValueError(
                "selection.topics.clusters needs sources.dense.enabled (it clusters query embeddings)"
            )
        names = [f.name or f.type for f in self.filters]
        if len(set(names)) != len(names):
            raise ValueError("filters: two filters share a name; give one a `name:`")
        if any(f.type == "embedding" for f in self.filters) and not s.dense.enabled:
            raise ValueError("filters: the embedding filter needs sources.dense.enabled (it uses its model)")
        cur = self.curriculum
        if (
            cur.enabled
            and cur.score in ("ce_prob", "ce_score")
            and not any(f.type == "cross_encoder" for f in self.filters)
        ):
            raise ValueError(f"curriculum.score={cur.score!r} needs a cross_encoder filter")
        return self

    @property
    def llm_needed(self) -> bool:
        """Whether the run talks to the LLM: for synthetic negatives (sources.llm.enabled) or for an
        llm_judge filter (which uses sources.llm's model and endpoints even when generation is off)."""
        return self.sources.llm.enabled or any(f.type == "llm_judge" for f in self.filters or [])

    @property
    def score_by(self) -> str | None:
        """The score that ranks the pool and that margins apply to; None when only random is on."""
        if self.selection.score_by != "auto":
            return self.selection.score_by
        b, d = self.sources.bm25.enabled, self.sources.dense.enabled
        return "hybrid" if b and d else "dense" if d else "bm25" if b else None

    @property
    def run_dir(self) -> Path:
        return Path(self.output.dir).expanduser() / self.run_name

    @field_validator("run_name", mode="before")
    @classmethod
    def _name_as_text(cls, v: Any) -> Any:
        """`run_name: 2024` in YAML is the folder 2024, not a number to refuse."""
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @property
    def cache_path(self) -> Path:
        return Path(self.cache_dir).expanduser()

    def fingerprint(self) -> str:
        """Hash of everything that changes the rows; shards written under another fingerprint are not reused."""
        data = self.model_dump(mode="json")
        data.pop("run_name")
        data.pop("execution")  # where shards run does not change them
        data.pop("adapt")  # adapt's queries are the run's data (its identity); training does not change rows
        data["output"] = {k: v for k, v in data["output"].items() if k not in ("dir",)}
        # where and how fast the LLM is reached does not change the rows: a rerun against a restarted
        # server on another port must resume, not conflict
        llm = data["sources"]["llm"]
        for k in ("base_urls", "concurrency", "timeout", "max_retries", "api_key_env", "server"):
            llm.pop(k)
        # precision is recorded as resolved (the run identity's `precision`, see negforge.run_store.identity): a
        # changed path re-judges the shards instead of refusing the folder, and a driver that pinned `auto`
        # to the gate's path shares its context with the shard threads
        data["sources"]["dense"].pop("backend")
        for f in data["filters"] or []:
            f.pop("backend", None)
            for over in (f.get("per_source") or {}).values():
                over.pop("backend", None)
        if not data["selection"]["gap_cut"]:  # added later: off, a folder written before it still resumes
            data["selection"].pop("gap_cut")
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
