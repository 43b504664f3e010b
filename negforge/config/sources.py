"""Where a run's data and candidates come from: the input (`data:` and its column roles) and each
negative source under `sources:` (BM25, dense with its faiss index, random, rule-based edits, and the
LLM with its managed vLLM server)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from negforge.config.base import _Strict

#: a rule operator (negforge.generators.rules)
RuleKind = Literal["negation", "changed_value", "entity_shift", "role_reversal"]
DEFAULT_RULE_KINDS: tuple[RuleKind, ...] = ("negation", "changed_value", "entity_shift")


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
    max_passage_chars: int | None = Field(
        100_000,
        ge=1,
        description="longer documents are cut to this many characters (counted, with examples, in the "
        "manifest's layout notes; the encoder reads far fewer tokens anyway); null: no limit",
    )
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
    stemmer: str | None = Field("english", description="a Snowball (PyStemmer) language, or null for none")
    stopwords: str | None = Field("en", description="a bm25s stop-word list (en, de, fr, ...), or null")
    tokenizer: str = Field(
        "unicode",
        description="unicode: words of any script (vowel signs kept), CJK/Thai as character bigrams; "
        "bm25s: bm25s's regex (Latin only); module:function: your own, texts -> token lists",
    )


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
    kinds: list[RuleKind] = Field(
        default_factory=lambda: list(DEFAULT_RULE_KINDS),
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


#: environment variables that hold a secret of another service than an LLM endpoint
FOREIGN_SECRETS = frozenset(
    [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HUGGINGFACE_TOKEN",
        "HUGGINGFACEHUB_API_TOKEN",
        "GITHUB_TOKEN",
        "GH_TOKEN",
        "GITLAB_TOKEN",
        "PREFECT_API_KEY",
        "WANDB_API_KEY",
        "NPM_TOKEN",
        "PYPI_TOKEN",
        "TWINE_PASSWORD",
        "DOCKER_PASSWORD",
        "SSH_AUTH_SOCK",
        "DATABASE_URL",
        "SLACK_TOKEN",
    ]
)


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
        "NEGFORGE_LLM_API_KEY",
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="environment variable holding the LLM endpoint's key (never logged); the key of another "
        "service (HF_TOKEN, AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN, ...) is refused: it would be sent to the endpoint",
    )
    edit_answer: Literal["span", "sentence"] = Field(
        "span",
        description="edit mode, contradicting kinds with a target in the answer clause: span asks only for the "
        "new text of that target and splices it (every other word kept by construction; what a small model "
        "does best); sentence asks for the whole rewritten sentence (larger models, freer edits)",
    )
    concurrency: int = Field(16, ge=1)
    timeout: float = Field(180, gt=0, description="seconds per request")
    max_retries: int = Field(3, ge=0, description="per request and base URL, exponential backoff with jitter")
    max_reasks: int = Field(
        1, ge=0, description="new tries (new seed) when a response yields no valid negative"
    )
    samples: int = Field(
        4,
        ge=1,
        le=16,
        description="span answers (edit mode): completions per request (the API's n; one prompt, decoded together); the first "
        "that passes every check is kept, in the server's order (rejection sampling with the verifiers: a small "
        "model that often returns the span unchanged still gives a real edit in one of them). 1 turns it off",
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

    @field_validator("api_key_env")
    @classmethod
    def _only_an_llm_key(cls, v: str) -> str:
        """Refuse the variable of another service's secret: its value would be sent as the LLM's key."""
        if v.upper() in FOREIGN_SECRETS or v.upper().startswith(
            ("AWS_", "AZURE_", "GOOGLE_", "HF_", "HUGGING")
        ):
            raise ValueError(
                f"{v} holds another service's secret, and api_key_env's value is sent to the LLM endpoint "
                "as its key; put the endpoint's key in NEGFORGE_LLM_API_KEY (or a variable of its own)"
            )
        return v


class SourcesConfig(_Strict):
    bm25: BM25Config = Field(default_factory=BM25Config)
    dense: DenseConfig = Field(default_factory=DenseConfig)
    random: RandomConfig = Field(default_factory=RandomConfig)
    llm: LLMConfig = Field(default_factory=LLMConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
