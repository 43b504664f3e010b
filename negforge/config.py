"""One pydantic model of a run: YAML in, clear errors out (the bad key, the bad value, the file)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from negforge.adapt.config import AdaptConfig


class ConfigError(ValueError):
    """A config problem, phrased for the person who wrote the YAML."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Columns(_Strict):
    """Column roles in pair files or Hugging Face datasets. Unset roles are found by name (see README 'Input
    layouts': sentence-transformers, FlagEmbedding, Tevatron, labeled pairs); ids are optional (texts are
    hashed into ids)."""

    query: str | None = Field(None, description="query text column; auto: query, anchor, question")
    positive: str | None = Field(
        None,
        description="positive(s): a text, a list of texts or of {docid, title, text}; "
        "auto: positive, pos, positive_passages, positives, passage",
    )
    negative: str | list[str] | None = Field(
        None,
        description="given negatives, one or more columns; auto: negative, neg, negative_passages, "
        "negatives, negative_1..n",
    )
    query_id: str | None = Field(None, description="auto: query_id, qid; else the query text is hashed")
    positive_id: str | None = None
    label: str | None = Field(
        None,
        description="relevance grade of a labeled pair (auto: label, score, relevance; no negative column)",
    )


class DataConfig(_Strict):
    """Where positives and the corpus come from.

    beir:  a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv).
    qrels: separate qrels, queries and corpus files (JSONL, TSV or Parquet).
    pairs: a JSONL/Parquet file of (query, positive) rows, plus an optional corpus file.
    hf:    a Hugging Face dataset by name or local path with (query, positive) columns.
    corpus: a corpus alone (a corpus file, a BEIR folder's corpus.jsonl, or a Hugging Face dataset with
           _id/title/text): `negforge adapt` writes the queries (domain adaptation).
    """

    format: Literal["beir", "qrels", "pairs", "hf", "corpus"] = Field(
        "beir", description="beir, qrels, pairs, hf, or corpus (negforge adapt)"
    )
    path: str | None = Field(
        None, description="BEIR folder, pairs file or dataset; relative paths are relative to the config file"
    )
    split: str = Field("train", description="qrels/SPLIT.tsv of a BEIR folder, or the dataset split")
    qrels: str | None = Field(
        None, description="format qrels: the qrels file (TSV with a header, BEIR or TREC)"
    )
    queries: str | None = Field(None, description="format qrels: the queries file (JSONL _id/text)")
    corpus: str | None = Field(None, description="corpus file (JSONL/Parquet _id/title/text)")
    columns: Columns = Field(default_factory=Columns)
    hf_config: str | None = Field(None, description="Hugging Face dataset config name")
    join_title: bool = Field(
        True, description="documents are 'title text' (BEIR convention); a missing title is none"
    )
    min_relevance: int = Field(1, description="qrels rows with a lower score are not positives")
    max_queries: int | None = Field(None, ge=1)
    chunk: str | None = Field(
        None,
        pattern=r"^\d+/[1-9]\d*$",
        description="k/n: only queries at positions ≡ k (mod n), e.g. an ANCE refresh slice",
    )

    @model_validator(mode="after")
    def _chunk(self) -> DataConfig:
        if self.chunk is not None:
            k, n = map(int, self.chunk.split("/"))
            if k >= n:
                raise ValueError(f"data.chunk={self.chunk!r}: k must be < n")
        return self

    @model_validator(mode="after")
    def _needs(self) -> DataConfig:
        need = {
            "beir": ["path"],
            "qrels": ["qrels", "queries", "corpus"],
            "pairs": ["path"],
            "hf": ["path"],
            "corpus": ["path"],
        }[self.format]
        missing = [k for k in need if getattr(self, k) in (None, "")]
        if missing:
            raise ValueError(f"data.format={self.format!r} needs data.{', data.'.join(missing)}")
        return self


class BM25Config(_Strict):
    enabled: bool = True
    k1: float = Field(1.5, gt=0)
    b: float = Field(0.75, ge=0, le=1)
    method: Literal["robertson", "lucene", "bm25l", "bm25+", "atire"] = "lucene"
    stemmer: str | None = "english"
    stopwords: str | None = "en"


class IndexConfig(_Strict):
    """faiss index: exact inner product by default; IVF or HNSW for large corpora."""

    type: Literal["flat", "ivf", "hnsw"] = "flat"
    nlist: int = Field(1024, ge=1)
    nprobe: int = Field(32, ge=1)
    hnsw_m: int = Field(32, ge=4)
    ef_search: int = Field(128, ge=1)
    ef_construction: int = Field(200, ge=1)
    gpu: Literal["auto", "never"] = "auto"


class DenseConfig(_Strict):
    enabled: bool = True
    model: str = "sentence-transformers/all-MiniLM-L6-v2"
    backend: Literal[
        "auto", "torch", "onnx", "torch-fp32", "torch-fp16", "torch-bf16", "onnx-fp32", "onnx-int8"
    ] = Field(
        "auto",
        description="auto: the fastest path that passes the parity gate against fp32 (CUDA fp16, CPU bf16, "
        "ONNX int8, else fp32; see negforge.mining.precision); torch = fp32 sentence-transformers, exact; "
        "onnx = fp32 onnxruntime; a path name forces that path without the gate",
    )
    batch_size: int = Field(32, ge=1)
    max_seq_length: int | None = Field(None, ge=8)
    query_prompt: str = ""
    corpus_prompt: str = ""
    normalize: bool = True
    index: IndexConfig = Field(default_factory=IndexConfig)
    search_batch: int = Field(1024, ge=1, description="queries per faiss search call")


class RandomConfig(_Strict):
    """Generation 1: seeded random corpus negatives, added beside the mined ones."""

    enabled: bool = False
    count: int = Field(1, ge=1)


class RulesConfig(_Strict):
    """Rule-based counterfactual edits (no LLM): negate, change a value or direction word, or swap an entity
    for one of the same shape from the corpus, in the positive's sentence that matches the query best.
    Every edit passes its verifier; provenance says `rules`. Needs the dense model to pick the sentence."""

    enabled: bool = False
    count: int = Field(
        1, ge=1, le=4, description="rule-based negatives per query (distinct perturbation kinds)"
    )
    kinds: list[Literal["negation", "changed_value", "entity_shift", "role_reversal"]] = Field(
        default_factory=lambda: ["negation", "changed_value", "entity_shift"],
        description="operators to try, in a seeded order per query",
    )
    entity_pool_docs: int = Field(
        2000, ge=1, description="corpus documents sampled for same-shape entity terms"
    )


class ServerConfig(_Strict):
    """The managed vLLM server, started when `sources.llm.base_urls` is empty."""

    python: str = Field(".venv-vllm/bin/python", description="Python of the environment that has vllm")
    command: list[str] | None = Field(
        None, description="launcher template; {python} {model} {host} {port} {served_name}"
    )
    # float32: CPUs without bf16 units run bf16 at half speed; eager: vLLM's CPU compile cache does not reload,
    # so compiling costs ~90 s at every start for no measurable gain on small models.
    extra_args: list[str] = Field(
        default_factory=lambda: ["--dtype", "float32", "--max-model-len", "4096", "--enforce-eager"]
    )
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535, description="None picks a free port")
    kv_cache_gib: int = Field(2, ge=1, description="VLLM_CPU_KVCACHE_SPACE on CPU builds")
    startup_timeout: float = Field(900, gt=0)


class LLMConfig(_Strict):
    """Generation 6: SyNeg-style synthetic negatives from a local OpenAI-compatible server (vLLM)."""

    enabled: bool = False
    count: int = Field(2, ge=1, le=11, description="synthetic negatives per query (one request each query)")
    mode: Literal["rewrite", "from_positive", "edit", "mixed"] = Field(
        "rewrite",
        description="rewrite: rewrite the hardest mined negative; from_positive: write from the positive; "
        "edit: rewrite one sentence of the positive (contradictions) or of the hardest mined negative "
        "(not-answering) under one perturbation, verified and spliced back; mixed: rewrite or from_positive",
    )
    fraction: float = Field(
        1.0, gt=0, le=1, description="share of queries (seeded choice) that get synthetic negatives"
    )
    model: str = Field(
        "smollm2", description="'smollm2' (offline package), a checkpoint folder, or the served name"
    )
    base_urls: list[str] = Field(
        default_factory=list, description="OpenAI-compatible endpoints; empty starts a server"
    )
    api_key_env: str = Field(
        "NEGFORGE_LLM_API_KEY", description="environment variable holding the key (never logged)"
    )
    concurrency: int = Field(16, ge=1)
    timeout: float = Field(180, gt=0, description="seconds per request")
    max_retries: int = Field(3, ge=0, description="per request and base URL, exponential backoff with jitter")
    max_reasks: int = Field(
        1, ge=0, description="new tries (new seed) when a response yields no valid negative"
    )
    send_seed: bool = Field(
        False,
        description="send each request's seed to the server; vLLM's CPU build (0.32) crashes on seeded requests "
        "under concurrency, so only turn this on for GPU servers. The seed is part of the cache key either way.",
    )
    temperature: float = Field(0.8, ge=0)
    top_p: float = Field(0.95, gt=0, le=1)
    max_tokens: int = Field(900, ge=16)
    min_length_ratio: float = Field(0.3, gt=0, description="passage words / positive words, lower bound")
    max_length_ratio: float = Field(2.0, gt=0)
    copy_threshold: float = Field(
        90, ge=0, le=100, description="rapidfuzz ratio at or above which text is a copy"
    )
    server: ServerConfig = Field(default_factory=ServerConfig)


class SourcesConfig(_Strict):
    bm25: BM25Config = Field(default_factory=BM25Config)
    dense: DenseConfig = Field(default_factory=DenseConfig)
    random: RandomConfig = Field(default_factory=RandomConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)


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
    max_score: float | None = Field(None, description="drop candidates scoring above this")
    min_score: float | None = Field(None, description="drop candidates scoring below this")
    topics: TopicsConfig = Field(default_factory=TopicsConfig)


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

    def for_source(self, source: str) -> _FilterBase:
        """This filter's settings as they apply to `source` (its per_source override merged in)."""
        over = self.per_source.get(source)  # type: ignore[call-overload]
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


class MixConfig(_Strict):
    """How many negatives each source contributes per query, and who fills in when one is short.

    Empty `quotas` keeps the classic shape: selection.num_negatives from the mined pool (bm25 and dense
    together), plus sources.random.count and sources.llm.count.
    """

    quotas: dict[Literal["bm25", "dense", "mined", "given", "random", "llm", "rules"], int] = Field(
        default_factory=dict,
        description="negatives per query from each source; `given` = negatives that came with the input",
    )
    fallback: list[Literal["bm25", "dense", "mined", "given", "random", "llm", "rules"]] = Field(
        default_factory=lambda: ["given", "dense", "bm25", "llm", "rules", "random"]
    )

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
    formats: list[Literal["rich", "triplet", "n-tuple", "labeled-pair", "labeled-list"]] = Field(
        default_factory=lambda: ["rich", "triplet", "n-tuple"]
    )
    scores: bool = Field(False, description="add a `label` score column to trainer configs (MarginMSE)")
    dropped_text: bool = Field(
        False, description="store the text of dropped corpus candidates too (their doc_id is always kept)"
    )
    shard_size: int = Field(64, ge=1)


def default_filters(dense: bool, edit_sources: list[str] | None = None) -> list:
    """The safe default stack: exact/near duplicates, and (with a dense model) the embedding filter at
    max_positive_sim 0.6, which benchmarks/false_negative_leak.py measured as cutting SciFact's hidden-positive
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


class RunConfig(_Strict):
    """A whole run. Every field has a default except where the data lives."""

    run_name: str = Field(
        "run", pattern=r"^[A-Za-z0-9._-]+$", description="the run folder: output.dir/run_name"
    )
    seed: int = Field(13, description="seeds every random choice (sampling, random negatives, mixing, LLM)")
    cache_dir: str = Field(
        "~/.cache/negforge",
        description="indexes, embeddings, LLM responses; relative to the working directory",
    )
    data: DataConfig
    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    selection: SelectionConfig = Field(default_factory=SelectionConfig)
    filters: list[FilterConfig] | None = Field(
        None,
        description="the filter stack, in order; unset = the safe default (duplicate, embedding "
        "max_positive_sim 0.6 when dense is on: the least false-negative leak at full queries in "
        "benchmarks/false_negative_leak.py); [] = no filters",
    )
    mix: MixConfig = Field(default_factory=MixConfig)
    curriculum: CurriculumConfig = Field(default_factory=CurriculumConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    execution: ExecutionConfig = Field(default_factory=ExecutionConfig)
    adapt: AdaptConfig = Field(
        default_factory=AdaptConfig, description="negforge adapt: queries written for a corpus alone"
    )

    @model_validator(mode="after")
    def _default_filters(self) -> RunConfig:
        edits = (["rules"] if self.sources.rules.enabled else []) + (
            ["llm"] if self.sources.llm.enabled and self.sources.llm.mode == "edit" else []
        )
        if self.filters is None:
            self.filters = default_filters(self.sources.dense.enabled, edits)
            return self
        # explicit stacks get the same edit-source defaults unless per_source names that source itself
        relax = {
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
        # precision is recorded as resolved (the run identity's `precision`, see negforge.run_identity): a
        # changed path re-judges the shards instead of refusing the folder, and a driver that pinned `auto`
        # to the gate's path shares its context with the shard threads
        data["sources"]["dense"].pop("backend")
        for f in data["filters"] or []:
            f.pop("backend", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def annotated_yaml(cfg: BaseModel) -> str:
    """The config as YAML with every default filled in, each key followed by `# description` (its Field's
    description, or the section's docstring first line)."""
    lines: list[str] = []

    def doc_of(model: type[BaseModel]) -> str:
        return (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""

    def emit(model: BaseModel, indent: int) -> None:
        fields = type(model).model_fields
        for name, info in fields.items():
            value = getattr(model, name)
            pad = "  " * indent
            desc = info.description or ""
            if isinstance(value, BaseModel):
                d = desc or doc_of(type(value))
                lines.append(f"{pad}{name}:" + (f"  # {d}" if d else ""))
                emit(value, indent + 1)
            elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
                lines.append(f"{pad}{name}:" + (f"  # {desc}" if desc else ""))
                for v in value:
                    dumped = json.dumps(v.model_dump(mode="json"))
                    d = doc_of(type(v))
                    lines.append(f"{pad}  - {dumped}" + (f"  # {d}" if d else ""))
            else:
                dumped = json.dumps(
                    value if not isinstance(value, BaseModel) else value.model_dump(mode="json")
                )
                if isinstance(value, (list, dict, tuple)) or value is None or isinstance(value, str):
                    dumped = json.dumps(_jsonable(value))
                lines.append(f"{pad}{name}: {dumped}" + (f"  # {desc}" if desc else ""))

    emit(cfg, 0)
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: {p!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """`key.sub=value` strings, values read as YAML scalars (so 5 is an int, true a bool, [a,b] a list)."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. selection.num_negatives=3")
        key, _, value = item.partition("=")
        out.append((key.strip(), yaml.safe_load(value) if value.strip() else ""))
    return out


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(
                f"  - unknown key `{key}` (check spelling; `negforge run --help` lists the sections)"
            )
        elif e["type"] == "missing":
            lines.append(f"  - missing key `{key}`")
        else:
            lines.append(f"  - `{key}` = {e.get('input')!r}: {e['msg']}")
    return "\n".join(lines)


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, **raw_extra: Any
) -> RunConfig:
    """Read YAML, apply `--set` overrides, validate. Relative data paths resolve against the YAML's folder."""
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections (data:, sources:, ...)")
        raw = loaded
        _resolve_data_paths(raw, p.parent)
    raw.update(raw_extra)
    for key, value in parse_overrides(overrides or []):
        _set_dotted(raw, key, value)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None


def _resolve_data_paths(raw: dict[str, Any], base: Path) -> None:
    adapt = raw.get("adapt")
    if isinstance(adapt, dict):
        for section, key in (("generate", "fewshot"), ("eval", "path")):
            sub = adapt.get(section)
            v = sub.get(key) if isinstance(sub, dict) else None
            if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
                sub[key] = str((base / v).resolve())
    for f in raw.get("filters") or []:
        v = f.get("answers") if isinstance(f, dict) else None
        if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
            f["answers"] = str((base / v).resolve())
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    for key in ("path", "qrels", "queries", "corpus"):
        v = data.get(key)
        if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
            candidate = (base / v).resolve()
            # hf names like "org/name" stay as they are unless such a local path exists
            if data.get("format") not in ("hf", "corpus") or candidate.exists():
                data[key] = str(candidate)
