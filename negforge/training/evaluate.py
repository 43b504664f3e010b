"""Retrieval quality of a bi-encoder on a BEIR split: nDCG@10, MRR@10, Recall@100.

Scoring is sentence-transformers' `InformationRetrievalEvaluator` (the same numbers the BEIR/MTEB tables
use: binary relevance, ties broken by corpus id). Corpus embeddings come from negforge's embedding cache,
keyed by the model's weights fingerprint: re-evaluating a model is query encoding only, a new checkpoint
gets new entries, and a zero-shot run shares the entries dense mining already wrote for the same corpus.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypedDict

import numpy as np

from negforge.mining.fingerprint import resolve_model_path
from negforge.records import SkipLog
from negforge.sources.corpus import read_corpus
from negforge.sources.qrels import read_qrels, read_queries
from negforge.sources.readers import InputError, require_file
from negforge.training.checkpoint import checkpoint_fingerprint
from negforge.training.prompts import for_evaluation

EvalResult = TypedDict(
    "EvalResult",
    {
        "model": str,
        "fingerprint": str,
        "split": str,
        "ndcg@10": float,
        "mrr@10": float,
        "recall@100": float,
        "queries": int,
        "corpus_docs": int,
        "seconds": float,
        "backend": str,
        "query_prompt": str,
        "corpus_prompt": str,
        "prompts_from": str,
    },
)
Metric = Literal["ndcg@10", "mrr@10", "recall@100"]
METRICS: tuple[Metric, ...] = ("ndcg@10", "mrr@10", "recall@100")


class BeirSplit:
    """Corpus, the split's queries that have a relevant document, and their qrels."""

    def __init__(self, path: str | Path, split: str = "test", max_queries: int | None = None):
        root = Path(path).expanduser()
        skips = SkipLog()
        corpus = read_corpus(require_file(root / "corpus.jsonl", "corpus file"), skips)
        queries = read_queries(require_file(root / "queries.jsonl", "queries file"), skips)
        qrels_path = require_file(root / "qrels" / f"{split}.tsv", f"qrels file for split {split!r}")
        relevant: dict[str, set[str]] = {}
        for j in read_qrels(qrels_path, skips, min_relevance=1):
            qid, did = j.query_id, j.doc_id
            if qid in queries:
                relevant.setdefault(qid, set()).add(did)
        qids = list(relevant)[:max_queries] if max_queries else list(relevant)
        if not qids:
            raise InputError(f"{qrels_path}: no judged query found in {root / 'queries.jsonl'}")
        self.split = split
        self.corpus_ids, self.corpus_texts = corpus.ids, corpus.texts
        self.queries = {q: queries[q] for q in qids}
        self.relevant = {q: relevant[q] for q in qids}
        self.skips = skips


def load_split(path: str | Path, split: str = "test", max_queries: int | None = None) -> BeirSplit:
    """Read a BEIR split once, to score several models on it."""
    return BeirSplit(path, split, max_queries)


class _LoadedEncoder:
    """negforge's TextEncoder protocol over an already loaded model (same encode call as TorchEncoder)."""

    def __init__(self, model: Any, backend: str):
        self.model = model
        self.backend = backend
        dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dim = int(dim())

    def encode(self, texts: Sequence[str], *, batch_size: int) -> np.ndarray:
        out = self.model.encode(
            list(texts), batch_size=batch_size, convert_to_numpy=True,
            normalize_embeddings=True, show_progress_bar=False,
        )  # fmt: skip
        return np.ascontiguousarray(out, dtype=np.float32)


def _corpus_embeddings(
    model: Any,
    fingerprint: str,
    texts: list[str],
    cache_dir: Path,
    max_seq_length: int | None,
    batch_size: int,
    backend: str,
    corpus_prompt: str,
) -> Any:
    """Cached corpus embeddings as a tensor; the spec matches the dense miner's (prompt included), so their
    entries are shared. None when the model would add a default prompt of its own to a plain encode."""
    import torch

    from negforge.mining.embedding_cache import EmbeddingCache, EmbeddingSpec

    if getattr(model, "default_prompt_name", None):
        return None  # a plain encode would add the model's default prompt; the evaluator's would not
    spec = EmbeddingSpec(fingerprint, backend, max_seq_length, True, corpus_prompt)
    emb = EmbeddingCache(cache_dir).get_or_encode(
        spec,
        texts,
        lambda: _LoadedEncoder(model, backend),
        batch_size=batch_size,
        description="encode eval corpus",
    )
    return torch.from_numpy(np.array(emb, dtype=np.float32))


def _eval_precision(
    backend: str,
    path: Path,
    fingerprint: str,
    beir: BeirSplit,
    cache_dir: str | Path | None,
    max_seq_length: int | None,
    batch_size: int,
) -> str:
    """The torch path evaluation encodes with (see `evaluate`'s `backend`)."""
    from negforge.mining.encoders import build_encoder
    from negforge.mining.precision import encoder_runner, gate_sample, resolve_backend

    if backend == "auto" and cache_dir is None:
        return "torch-fp32"
    allowed = ("torch-fp32", "torch-fp16", "torch-bf16")
    choice = resolve_backend(
        backend,
        cache_root=cache_dir or ".",
        model_fingerprint=fingerprint,
        settings={"max_seq_length": max_seq_length, "normalize": True, "prompt": ""},
        sample=lambda: gate_sample(beir.corpus_texts),
        make_runner=lambda p: encoder_runner(
            build_encoder(p, path, max_seq_length=max_seq_length, normalize=True, export_dir="."), batch_size
        ),
        allowed=allowed,
    )
    if choice.path not in allowed:
        raise ValueError(f"evaluation runs torch paths only ({', '.join(allowed)}); got backend {backend!r}")
    return choice.path


def evaluate(
    model: str | Path,
    data: str | Path | BeirSplit,
    split: str = "test",
    *,
    cache_dir: str | Path | None = None,
    batch_size: int = 64,
    max_seq_length: int | None = None,
    max_queries: int | None = None,
    backend: str = "auto",
    query_prompt: str | None = None,
    corpus_prompt: str | None = None,
) -> EvalResult:
    """Encode the split's corpus and queries with `model` and score exact cosine retrieval.

    `query_prompt`/`corpus_prompt`: prepended to queries and to documents; None takes what the checkpoint
    was trained with (its negforge record), else the model's own `query`/`document` prompts, else none
    (negforge.training.prompts). The result names the prompts used.
    `backend`: "auto" picks the encoder precision as dense mining does (negforge.mining.precision: CUDA fp16,
    CPU bf16, else fp32, each only after the parity gate, whose verdict is cached in `cache_dir`; without a
    cache_dir, fp32); "torch" is fp32; "torch-bf16"/"torch-fp16" force a precision. ONNX paths are not used
    here: the evaluator needs a torch model. The result's `backend` names the path used.
    Raises InputError for a missing or empty split (file named).
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator
    from sentence_transformers.util import cos_sim

    from negforge.mining.encoders import TORCH_DTYPES, pick_device

    t0 = time.perf_counter()
    beir = data if isinstance(data, BeirSplit) else BeirSplit(data, split, max_queries)
    path = resolve_model_path(str(model))
    fingerprint = checkpoint_fingerprint(path)
    st = SentenceTransformer(str(path), device=pick_device(), local_files_only=True)
    if max_seq_length:
        st.max_seq_length = max_seq_length
    prompts = for_evaluation(path, query_prompt, corpus_prompt)
    precision = _eval_precision(backend, path, fingerprint, beir, cache_dir, max_seq_length, batch_size)
    dtype = precision.split("-", 1)[1]
    if dtype != "fp32":
        st.to(getattr(torch, TORCH_DTYPES[dtype]))
    queries: dict[str, Any] = dict(beir.queries)  # the evaluator also takes images and arrays
    evaluator = InformationRetrievalEvaluator(
        queries=queries,
        corpus=dict(zip(beir.corpus_ids, beir.corpus_texts, strict=True)),
        relevant_docs=beir.relevant,
        mrr_at_k=[10], ndcg_at_k=[10], accuracy_at_k=[1], precision_recall_at_k=[100], map_at_k=[100],
        score_functions={"cosine": lambda a, b: cos_sim(a.float(), b.float())},
        batch_size=batch_size,
        query_prompt=prompts.query, corpus_prompt=prompts.corpus,
        corpus_chunk_size=max(len(beir.corpus_ids), 1),
        write_csv=False,
        name=beir.split,
    )  # fmt: skip
    corpus_emb = None
    if cache_dir is not None:
        corpus_emb = _corpus_embeddings(
            st, fingerprint, beir.corpus_texts, Path(cache_dir).expanduser(), max_seq_length, batch_size,
            precision, prompts.corpus,
        )  # fmt: skip
    scores: dict[str, dict[int, float]] = evaluator.compute_all_metrics(st, corpus_embeddings=corpus_emb)[
        "cosine"
    ]  # type: ignore[assignment]  # per k
    return {
        "model": str(model),
        "fingerprint": fingerprint,
        "split": beir.split,
        "ndcg@10": float(scores["ndcg@k"][10]),
        "mrr@10": float(scores["mrr@k"][10]),
        "recall@100": float(scores["recall@k"][100]),
        "queries": len(beir.queries),
        "corpus_docs": len(beir.corpus_ids),
        "seconds": round(time.perf_counter() - t0, 2),
        "backend": precision,
        "query_prompt": prompts.query,
        "corpus_prompt": prompts.corpus,
        "prompts_from": prompts.source,
    }


def compare_table(results: Sequence[EvalResult], title: str | None = None) -> Any:
    """Models side by side (a rich Table); every row after the first also shows its change from the first."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title or (f"retrieval on {results[0]['split']}" if results else "retrieval"))
    t.add_column("model", overflow="fold")
    t.add_column("fingerprint")
    for m in METRICS:
        t.add_column(m, justify="right")
    t.add_column("queries", justify="right")
    t.add_column("docs", justify="right")
    t.add_column("s", justify="right")
    prompted = any(r.get("query_prompt") or r.get("corpus_prompt") for r in results)
    if prompted:
        t.add_column("prompts (query | corpus)")
    base = results[0] if results else None
    for i, r in enumerate(results):
        cells = []
        for m in METRICS:
            cell = f"{r[m]:.4f}"
            if i and base is not None:
                d = r[m] - base[m]
                colour = "green" if d > 0 else "red" if d < 0 else "dim"
                cell += f" [{colour}]({d:+.4f})[/{colour}]"
            cells.append(cell)
        extra = (
            [escape(f"{r.get('query_prompt', '')!r} | {r.get('corpus_prompt', '')!r}")] if prompted else []
        )
        t.add_row(escape(r["model"]), r["fingerprint"][:12], *cells, str(r["queries"]), str(r["corpus_docs"]),
                  f"{r['seconds']:.1f}", *extra)  # fmt: skip
    return t


def print_comparison(results: Sequence[EvalResult], console: Any | None = None) -> None:
    """Print `compare_table` (zero-shot first, then fine-tuned) to a rich console."""
    from rich.console import Console

    (console or Console()).print(compare_table(results))
