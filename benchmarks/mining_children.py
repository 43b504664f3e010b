"""The child processes of benchmarks/mining_vs_st.py: one measured unit of work each, printed as one JSON line.

    python benchmarks/mining_children.py KIND --data DIR [--cache DIR] [--out DIR] [--dtype fp32|bf16|fp16]
        [--backend auto|torch|...] [--max-queries N] [--ce-model DIR] [--ce-queries N] [--how loop|batched]

KIND: st (sentence-transformers `util.mine_hard_negatives`), nf (negforge's dense mining), gate (negforge's
parity gate alone, to learn its choice and cache its verdict), bm25-negforge / bm25s / rank_bm25 (BM25 query
throughput), ce-setup (save the cross-encoder), ce (cross-encoder scoring), roofline (matmul rate and the
corpus's token count).
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

SETTINGS = {"num_negatives": 3, "depth": 30, "relative_margin": 0.05, "sampling": "top"}
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _input(data: Path, max_queries: int | None):
    from negforge.config import DataConfig
    from negforge.sources import load_input

    return load_input(DataConfig(format="beir", path=str(data), max_queries=max_queries))


def child_st(a: argparse.Namespace) -> dict:
    """sentence-transformers at matching settings: range_max=depth, relative_margin, top sampling;
    `dtype` bf16/fp16 casts the model by hand (`model.to(torch.bfloat16)`), as a user could."""
    t0 = time.perf_counter()
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, util

    from negforge.mining.fingerprint import resolve_model_path

    inp = _input(a.data, a.max_queries)
    pairs = [(q.text, inp.corpus.texts[r]) for q in inp.queries for r in q.positive_rows]
    ds = Dataset.from_dict({"anchor": [x for x, _ in pairs], "positive": [p for _, p in pairs]})
    t_load = time.perf_counter()
    model = SentenceTransformer(str(resolve_model_path(MODEL)), device="cpu")
    if a.dtype != "fp32":
        model.to({"bf16": torch.bfloat16, "fp16": torch.float16}[a.dtype])
    out = util.mine_hard_negatives(
        ds, model, corpus=inp.corpus.texts, range_max=SETTINGS["depth"],
        relative_margin=SETTINGS["relative_margin"], num_negatives=SETTINGS["num_negatives"],
        sampling_strategy="top", output_format="n-tuple", batch_size=32, cache_folder=str(a.cache),
        verbose=False,
    )  # fmt: skip
    seconds = time.perf_counter() - t_load
    negs: dict[str, set[str]] = {}
    for row in out:
        negs.setdefault(row["anchor"], set()).update(v for k, v in row.items() if k.startswith("negative"))
    single = [q.text for q in inp.queries if len(q.positive_rows) == 1]
    return {"seconds": seconds, "total_seconds": time.perf_counter() - t0, "rss_mb": peak_rss_mb(),
            "negatives": {k: sorted(v) for k, v in negs.items()}, "single_positive": single}  # fmt: skip


def _nf_config(a: argparse.Namespace):
    from negforge.config import load_config

    return load_config(
        None,
        [
            f"data.path={a.data}", f"cache_dir={a.cache}", f"output.dir={a.out}", "output.shard_size=200",
            "output.formats=[rich]", "sources.bm25.enabled=false",
            "filters=[]",  # sentence-transformers has no filter stack: compare mining alone
            "selection.calibration.estimate=false",  # nor a hidden-positive estimate
            f"sources.dense.backend={a.backend}", f"selection.num_negatives={SETTINGS['num_negatives']}",
            f"selection.depth={SETTINGS['depth']}", f"selection.relative_margin={SETTINGS['relative_margin']}",
            *([f"data.max_queries={a.max_queries}"] if a.max_queries else []),
        ],
    )  # fmt: skip


def child_nf(a: argparse.Namespace) -> dict:
    t0 = time.perf_counter()
    from datasets import load_from_disk

    from negforge import progress
    from negforge.pipeline import run

    progress.set_enabled(False)
    cfg = _nf_config(a)
    t_load = time.perf_counter()
    res = run(cfg, overwrite=True)
    seconds = time.perf_counter() - t_load
    rows = load_from_disk(str(res.dataset_dir))["rich"]
    negs = {r["query"]: sorted(n["text"] for n in r["negatives"]) for r in rows}
    dense = res.manifest["models"]["dense"]
    return {"seconds": seconds, "total_seconds": time.perf_counter() - t0, "rss_mb": peak_rss_mb(),
            "negatives": negs, "timings": res.manifest["timings"], "backend": dense["backend"],
            "backend_choice": dense["backend_choice"]}  # fmt: skip


def child_gate(a: argparse.Namespace) -> dict:
    """negforge's parity gate on its own sample of the corpus, verdict cached under --cache."""
    from negforge.mining.dense import DenseMiner

    cfg = _nf_config(a)
    inp = _input(a.data, a.max_queries)
    t0 = time.perf_counter()
    miner = DenseMiner(cfg.sources.dense, cfg.cache_path)
    choice = miner.resolve_backend(inp.corpus.texts)  # as the run does: the same sample, the same verdict
    return {"seconds": time.perf_counter() - t0, "backend": choice.path}


def child_bm25(a: argparse.Namespace, kind: str) -> dict:
    """Queries/s of one BM25 implementation over every query (index built first, not timed; one untimed
    warm-up pass): negforge's miner (retrieve + exclude positives), bm25s alone, or rank_bm25."""
    import tempfile

    import bm25s
    import numpy as np

    from negforge.config import BM25Config
    from negforge.mining.bm25 import BM25Miner, top_k_excluding
    from negforge.mining.fingerprint import texts_digest

    inp = _input(a.data, a.max_queries)
    queries = [q.text for q in inp.queries]
    k = SETTINGS["depth"]
    with tempfile.TemporaryDirectory() as tmp:
        miner = BM25Miner(BM25Config(), tmp)
        miner.prepare(inp.corpus.texts, texts_digest(inp.corpus.texts))
        if kind == "bm25-negforge":

            def once():
                ids = miner.query_token_ids(queries)
                return [top_k_excluding(miner.score_all(i), k, q.positive_rows)[0].tolist()
                        for i, q in zip(ids, inp.queries, strict=True)]  # fmt: skip
        elif kind == "bm25s":
            deep = k + max(len(q.positive_rows) for q in inp.queries)

            def once():
                toks = miner._tokenize(queries, return_ids=False)
                ref, _ = miner.retriever.retrieve(toks, k=deep, show_progress=False)
                return [[int(r) for r in row if r not in q.positive_rows][:k]
                        for row, q in zip(ref, inp.queries, strict=True)]  # fmt: skip
        else:
            from rank_bm25 import BM25Okapi

            docs = bm25s.tokenize(inp.corpus.texts, stopwords="en", stemmer=miner.stemmer, return_ids=False,
                                  show_progress=False)  # fmt: skip
            rank = BM25Okapi(list(docs))

            def once():
                out = []
                for q, qq in zip(miner._tokenize(queries, return_ids=False), inp.queries, strict=True):
                    s = rank.get_scores(q)
                    s[list(qq.positive_rows)] = -np.inf
                    out.append(np.argsort(-s, kind="stable")[:k].tolist())
                return out

        once()
        t0 = time.perf_counter()
        got = once()
        secs = time.perf_counter() - t0
    return {"seconds": secs, "qps": len(queries) / secs, "queries": len(queries), "rows": got}


def child_ce_setup(a: argparse.Namespace) -> dict:
    """MiniLM with a fresh one-logit head (no trained cross-encoder exists offline; speed does not depend on
    the head), saved to --ce-model."""
    import torch
    from sentence_transformers import CrossEncoder

    from negforge.mining.fingerprint import resolve_model_path

    torch.manual_seed(0)
    CrossEncoder(str(resolve_model_path(MODEL)), num_labels=1).save(str(a.ce_model))
    return {"saved": str(a.ce_model)}


def child_ce(a: argparse.Namespace) -> dict:
    """Pairs/s of the cross-encoder filter at `--backend` (torch = fp32, auto = the gate's choice, gated
    first, not timed), scoring each query's 30 seeded corpus passages per query (`--how loop`) or all pairs in
    the filter's one batched call (`--how batched`: sorted by length across queries)."""
    import numpy as np

    from negforge.config import CrossEncoderFilterConfig
    from negforge.filters.cross_encoder import CrossEncoderFilter

    inp = _input(a.data, a.ce_queries)
    rng = np.random.default_rng(0)
    per_query = [[(q.text, inp.corpus.texts[i]) for i in rng.choice(len(inp.corpus), 30, replace=False)]
                 for q in inp.queries]  # fmt: skip
    pairs = [p for ps in per_query for p in ps]
    cfg = CrossEncoderFilterConfig(model=str(a.ce_model), batch_size=32, max_length=256, backend=a.backend)
    f = CrossEncoderFilter(cfg, a.cache)
    f.score(pairs if a.backend == "auto" else pairs[:64])  # gate (auto) and warm-up, not timed
    t0 = time.perf_counter()
    got = f.score(pairs) if a.how == "batched" else np.concatenate([f.score(ps) for ps in per_query])
    secs = time.perf_counter() - t0
    return {"seconds": secs, "pps": len(pairs) / secs, "pairs": len(pairs), "backend": f.describe()["backend"],
            "logits": [round(float(x), 6) for x in got]}  # fmt: skip


def child_roofline(a: argparse.Namespace) -> dict:
    """The machine's matmul rate (GFLOP/s) at --dtype (fp32, bf16 or fp16: the precision the encoder runs
    at; a CPU without native bf16 emulates it slowly, so only the one asked for is measured) on an
    encoder-shaped product (4096x384 @ 384x1536, best of 5), and the corpus's token count at the model's
    max_seq_length."""
    import torch
    from transformers import AutoTokenizer

    from negforge.mining.fingerprint import resolve_model_path

    rates = {}
    dtypes = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    for name, dt in ((a.dtype, dtypes[a.dtype]),):
        x, w = torch.randn(4096, 384, dtype=dt), torch.randn(384, 1536, dtype=dt)
        x @ w
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            for _ in range(10):
                x @ w
            best = min(best, (time.perf_counter() - t0) / 10)
        rates[name] = 2 * 4096 * 384 * 1536 / best / 1e9
    tok = AutoTokenizer.from_pretrained(str(resolve_model_path(MODEL)))
    texts = _input(a.data, a.max_queries).corpus.texts
    n_tokens = sum(len(x) for x in tok(texts, truncation=True, max_length=256)["input_ids"])
    return {
        "gflops": rates,
        "corpus_tokens": n_tokens,
        "docs": len(texts),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["st", "nf", "gate", "bm25-negforge", "bm25s", "rank_bm25", "ce-setup",
                                     "ce", "roofline"])  # fmt: skip
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--cache", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--ce-model", type=Path)
    ap.add_argument("--ce-queries", type=int, default=40)
    ap.add_argument("--how", choices=["loop", "batched"], default="batched")
    a = ap.parse_args()
    fn = {"st": child_st, "nf": child_nf, "gate": child_gate, "ce-setup": child_ce_setup, "ce": child_ce,
          "roofline": child_roofline}.get(a.kind)  # fmt: skip
    print(json.dumps(fn(a) if fn else child_bm25(a, a.kind)))


if __name__ == "__main__":
    main()
