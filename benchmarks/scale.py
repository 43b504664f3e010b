"""Scale: BM25 + IVF mining over a synthetic 1,000,000-passage corpus through the normal pipeline.

Not a test: prints peak RSS, index build times, mining queries/s and IVF recall@depth against exact search.
Targets (issue 15): peak RSS <= 4 GB for the 1M-passage run; IVF recall@30 >= 0.95 at the index defaults.

The data are generated, nothing is downloaded (seeded numpy; reused from --work when the sizes match):
- passages of 15-30 pseudo-words drawn from topic vocabularies (topic sizes Zipf-like, about 500 passages
  per topic on average, topics grouped into super-topics) over a Zipf background, so BM25 has structure;
- unit embeddings (dim 384, float32) with the same structure: topic centroids near their super-topic's,
  each passage a blend of its topic and a sibling topic plus gaussian noise (so clusters overlap as real
  embeddings do; isotropic random vectors would make IVF recall meaningless), written as .npy;
- one query per sampled passage: a few words of the passage's topic and of the passage itself, embedded as
  the passage's embedding plus noise; one positive per query in qrels/train.tsv.

The embeddings enter negforge's embedding cache with `EmbeddingCache.adopt` (bring your own embeddings), so
the pipeline takes its cache-hit path (memory-mapped .npy) and never loads the model (a guard makes sure).
`negforge.pipeline.run` then runs in a child process (data generation does not count towards its peak RSS)
with BM25 and dense (IVF at its default nlist/nprobe) on, the default filter stack, no LLM. Index caches
are cleared first, so build times are builds; --warm adds a second child over the saved indexes (BM25
memory-mapped, IVF read from file). Recall: the run's saved IVF index against exact inner-product search
(faiss IndexFlatIP, in corpus blocks over the same memory-mapped embeddings) for a seeded query sample.

    python benchmarks/scale.py [--passages 1000000] [--queries 10000] [--sample 500] [--work DIR] [--warm]
    python benchmarks/scale.py --passages 100000 --queries 2000      # a quick check

Figures go to benchmarks/results/scale.txt and scale.json (scale-<passages>.* for other sizes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DIM = 384
SEED = 13
MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # named for the cache key (its fingerprint); never loaded
GEN_VERSION = 1  # bump when the generator changes, so old --work data are regenerated
CHUNK = 50_000


# ---------------------------------------------------------------- data


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_vocab(rng: np.random.Generator, n: int) -> list[str]:
    """`n` distinct pronounceable pseudo-words of 2-4 syllables (no English stopword among them)."""
    onsets = [*"bdfgklmnprstvz", "br", "kr", "st", "tr", "pl", "gr", "sh", "ch"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou", "ea"]
    codas = ["", "", "n", "r", "s", "l", "x", "m"]
    out: dict[str, None] = {}
    while len(out) < n:
        k = 4 * (n - len(out))
        syl = rng.integers(2, 5, size=k)
        parts = [rng.integers(len(a), size=(k, 4)) for a in (onsets, vowels, codas)]
        for j in range(k):
            w = "".join(
                onsets[parts[0][j, s]] + vowels[parts[1][j, s]] + codas[parts[2][j, s]] for s in range(syl[j])
            )
            out.setdefault(w)
            if len(out) == n:
                break
    return list(out)


def zipf_weights(n: int, a: float) -> np.ndarray:
    w = 1.0 / np.arange(1, n + 1) ** a
    return w / w.sum()


def generate(work: Path, n_docs: int, n_queries: int, seed: int) -> dict:
    """Write the BEIR folder and the two .npy files into `work`; returns the generation parameters."""
    from negforge.progress import progress_bar

    params = {
        "version": GEN_VERSION,
        "passages": n_docs,
        "queries": n_queries,
        "seed": seed,
        "dim": DIM,
        "vocab": 50_000,
        "topic_words": 40,
        "topics": max(20, n_docs // 500),
        "super_topics": max(4, n_docs // 25_000),
        "topic_token_share": 0.5,
        "doc_noise": 0.9,
        "query_noise": 0.8,
        "sibling_weight": "uniform(0, 0.5)",
    }
    meta = work / "generated.json"
    if meta.exists() and json.loads(meta.read_text()) == params:
        print(f"data: reusing {work}")
        return params
    shutil.rmtree(work, ignore_errors=True)
    (work / "data" / "qrels").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    n_topics, n_super = params["topics"], params["super_topics"]
    vocab = make_vocab(rng, params["vocab"])
    background = zipf_weights(len(vocab), 1.0)
    topic_vocab = rng.integers(len(vocab), size=(n_topics, params["topic_words"]))
    in_topic = zipf_weights(params["topic_words"], 0.8)
    topic_size = zipf_weights(n_topics, 0.6)[rng.permutation(n_topics)]  # heavy-tailed topic sizes
    topic_super = rng.integers(n_super, size=n_topics)
    supers = unit(rng.standard_normal((n_super, DIM)))
    centroids = unit(supers[topic_super] + 0.9 * unit(rng.standard_normal((n_topics, DIM))))
    by_super = np.argsort(topic_super, kind="stable")  # topics grouped by super-topic
    super_start = np.searchsorted(topic_super[by_super], np.arange(n_super))
    super_size = np.bincount(topic_super, minlength=n_super)

    positives = np.sort(rng.choice(n_docs, size=n_queries, replace=False))
    pos_tokens: dict[int, list[int]] = {}
    doc_topic = np.empty(n_docs, dtype=np.int64)
    emb = np.lib.format.open_memmap(work / "corpus_emb.npy", mode="w+", dtype=np.float32, shape=(n_docs, DIM))
    t0 = time.perf_counter()
    with (
        open(work / "data" / "corpus.jsonl", "w", encoding="utf-8") as f,
        progress_bar("generate passages", n_docs) as advance,
    ):
        for s in range(0, n_docs, CHUNK):
            n = min(CHUNK, n_docs - s)
            topics = rng.choice(n_topics, size=n, p=topic_size)
            doc_topic[s : s + n] = topics
            lengths = rng.integers(15, 31, size=n)
            total = int(lengths.sum())
            owner = np.repeat(topics, lengths)
            from_topic = rng.random(total) < params["topic_token_share"]
            toks = rng.choice(len(vocab), size=total, p=background)
            pick = rng.choice(params["topic_words"], size=int(from_topic.sum()), p=in_topic)
            toks[from_topic] = topic_vocab[owner[from_topic], pick]
            ends = np.cumsum(lengths)
            flat = toks.tolist()
            lines = []
            for j in range(n):
                words = flat[ends[j] - lengths[j] : ends[j]]
                row = s + j
                lines.append(f'{{"_id": "d{row}", "text": "{" ".join(vocab[w] for w in words)}"}}\n')
            f.writelines(lines)
            for row in positives[(positives >= s) & (positives < s + n)]:
                j = row - s
                pos_tokens[int(row)] = flat[ends[j] - lengths[j] : ends[j]]
            # embedding: own topic blended with a sibling topic of the same super-topic, plus noise
            sup = topic_super[topics]
            sib = by_super[super_start[sup] + (rng.random(n) * super_size[sup]).astype(np.int64)]
            w = rng.uniform(0.0, 0.5, size=(n, 1)).astype(np.float32)
            base = (1 - w) * centroids[topics] + w * centroids[sib]
            noise = rng.standard_normal((n, DIM)).astype(np.float32) / np.sqrt(DIM)
            emb[s : s + n] = unit(base + params["doc_noise"] * noise)
            advance(n)
    emb.flush()
    del emb
    corpus_emb = np.load(work / "corpus_emb.npy", mmap_mode="r")
    q_emb = unit(
        corpus_emb[positives]
        + params["query_noise"] * rng.standard_normal((n_queries, DIM)).astype(np.float32) / np.sqrt(DIM)
    )
    np.save(work / "query_emb.npy", q_emb)
    with open(work / "data" / "queries.jsonl", "w", encoding="utf-8") as fq:
        for i, row in enumerate(positives):
            t = doc_topic[row]
            own = rng.choice(pos_tokens[int(row)], size=3, replace=False).tolist()
            topical = topic_vocab[t, rng.choice(params["topic_words"], size=2, p=in_topic)].tolist()
            words = [vocab[w] for w in dict.fromkeys(topical + own)]
            fq.write(f'{{"_id": "q{i}", "text": "{" ".join(words)}"}}\n')
    qrels = ["query-id\tcorpus-id\tscore", *(f"q{i}\td{row}\t1" for i, row in enumerate(positives))]
    (work / "data" / "qrels" / "train.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    params["generate_seconds"] = round(time.perf_counter() - t0, 1)
    meta.write_text(json.dumps({k: v for k, v in params.items() if k != "generate_seconds"}))
    return params


# ---------------------------------------------------------------- the run


def run_config(work: Path, run_name: str):
    from negforge.config import load_config

    return load_config(
        None,
        run_name=run_name,
        seed=SEED,
        cache_dir=str(work / "cache"),
        data={"format": "beir", "path": str(work / "data"), "split": "train"},
        sources={
            "bm25": {"enabled": True},
            "dense": {"enabled": True, "model": MODEL, "backend": "torch", "index": {"type": "ivf"}},
            "random": {"enabled": False},
        },
        selection={"num_negatives": 5, "depth": 30},
        output={"dir": str(work / "runs"), "formats": ["rich", "triplet", "n-tuple"]},
    )


def adopt_embeddings(work: Path) -> None:
    """Enter the generated embeddings into the run's embedding cache under the keys the pipeline computes."""
    from negforge.mining.dense import DenseMiner
    from negforge.sources import load_input

    cfg = run_config(work, "scale")
    data = load_input(cfg.data)  # the texts exactly as the pipeline reads them
    order = np.array([int(q.id[1:]) for q in data.queries])
    q_emb = np.load(work / "query_emb.npy")
    assert [d for d in data.corpus.ids[:3]] == ["d0", "d1", "d2"] and len(data.corpus) == len(
        np.load(work / "corpus_emb.npy", mmap_mode="r")
    ), "corpus rows do not line up with the embeddings"
    miner = DenseMiner(cfg.sources.dense, cfg.cache_path)
    if hasattr(miner, "resolve_backend"):  # the spec names the encoder path (backend torch: no parity gate)
        miner.resolve_backend(data.corpus.texts)
    miner.cache.adopt(miner.embedding_spec("corpus"), data.corpus.texts, work / "corpus_emb.npy")
    miner.cache.adopt(miner.embedding_spec("query"), [q.text for q in data.queries], q_emb[order])


def vm_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def child(work: Path, run_name: str, out: Path) -> None:
    """Run the pipeline; record peak RSS (and the peak so far after each stage) into `out`."""
    t0 = time.perf_counter()
    from negforge.mining import encoders, onnx_encoder
    from negforge.pipeline import run
    from negforge.timing import Timings

    def no_model(*a, **k):
        raise RuntimeError("scale benchmark: the embedding model was about to load (embedding cache miss)")

    encoders.TorchEncoder.__init__ = no_model  # the run must take the cache-hit path: no encoder is built
    onnx_encoder.OnnxEncoder.__init__ = no_model
    peaks: dict[str, dict] = {}
    add = Timings.add

    def add_and_measure(self, name, seconds, items=None, unit="items"):
        add(self, name, seconds, items, unit)
        peaks[name] = {"peak_mb": vm_kb("VmHWM") / 1024, "rss_mb": vm_kb("VmRSS") / 1024}

    Timings.add = add_and_measure
    cfg = run_config(work, run_name)
    result = run(cfg, overwrite=True)
    m = result.manifest
    out.write_text(
        json.dumps(
            {
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "seconds": time.perf_counter() - t0,
                "timings": m["timings"],
                "peaks_after_stage": peaks,
                "index": m["models"],
                "counts": {k: m["counts"][k] for k in ("selected", "short_queries", "rows")},
                "data": {k: m["data"][k] for k in ("corpus_docs", "queries")},
            },
            default=str,
        )
    )


def spawn(work: Path, run_name: str) -> dict:
    out = work / f"{run_name}.result.json"
    out.unlink(missing_ok=True)
    shutil.rmtree(work / "runs" / run_name, ignore_errors=True)  # finished shards would be reused, not mined
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, __file__, "--child", run_name, "--work", str(work)]
    proc = subprocess.run(cmd, env=env, check=False)
    if proc.returncode != 0 or not out.exists():
        raise SystemExit(f"pipeline child {run_name} failed (exit {proc.returncode})")
    return json.loads(out.read_text())


# ---------------------------------------------------------------- recall


def recall(work: Path, sample: int, k: int, nprobes: list[int]) -> dict:
    """IVF (the run's saved index) vs exact inner product, recall@k on a seeded sample of queries."""
    import faiss

    from negforge.config import IndexConfig

    corpus = np.load(work / "corpus_emb.npy", mmap_mode="r")
    queries = np.load(work / "query_emb.npy", mmap_mode="r")
    rng = np.random.default_rng(SEED)
    pick = np.sort(rng.choice(len(queries), size=min(sample, len(queries)), replace=False))
    xq = np.ascontiguousarray(queries[pick])
    best_s = np.full((len(xq), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(xq), k), -1, dtype=np.int64)
    t0 = time.perf_counter()
    for s in range(0, len(corpus), 200_000):  # exact search in corpus blocks, merged
        flat = faiss.IndexFlatIP(DIM)
        flat.add(np.ascontiguousarray(corpus[s : s + 200_000]))
        d, i = flat.search(xq, k)
        all_s, all_i = np.concatenate([best_s, d], 1), np.concatenate([best_i, i + s], 1)
        top = np.argsort(-all_s, axis=1, kind="stable")[:, :k]
        best_s, best_i = np.take_along_axis(all_s, top, 1), np.take_along_axis(all_i, top, 1)
    exact_seconds = time.perf_counter() - t0
    [path] = list((work / "cache" / "faiss").glob("*-ivf-*/index.faiss"))
    index = faiss.read_index(str(path))
    default = IndexConfig().nprobe
    out = {"k": k, "sample": len(xq), "nlist": index.nlist, "exact_seconds": round(exact_seconds, 2)}
    by = {}
    for nprobe in sorted({default, *nprobes}):
        index.nprobe = min(nprobe, index.nlist)
        t0 = time.perf_counter()
        _, got = index.search(xq, k)
        secs = time.perf_counter() - t0
        hits = [len(set(g) & set(e)) / k for g, e in zip(got, best_i, strict=True)]
        by[nprobe] = {"recall": float(np.mean(hits)), "qps": len(xq) / secs}
    out["by_nprobe"] = by
    out["default_nprobe"] = default
    out["recall"] = by[default]["recall"]
    # the mined positive is the query's nearest row by construction: is it found too?
    return out


# ---------------------------------------------------------------- report


def fmt_table(res: dict) -> str:
    cold, rec = res["cold"], res["recall"]
    t = cold["timings"]

    def sec(name):
        return f"{t[name]['seconds']:.1f} s" if name in t else "-"

    def rate(name):
        return f"{t[name].get('per_second', 0):,.0f}/s" if name in t else "-"

    gb = cold["peak_rss_mb"] / 1024
    rows = [
        ("corpus passages", f"{res['params']['passages']:,}"),
        ("queries mined", f"{res['params']['queries']:,}"),
        ("peak RSS (pipeline process)", f"{gb:.2f} GB  (target <= 4 GB: {'met' if gb <= 4 else 'MISSED'})"),
        ("load corpus + queries", sec("load")),
        ("BM25 index build", f"{sec('bm25_index')}  ({rate('bm25_index')} docs)"),
        ("dense: cached embeddings + IVF build", f"{sec('dense_corpus')}  (nlist {rec['nlist']})"),
        ("mining (BM25 + IVF + select + filters)", f"{sec('mine')}  ({rate('mine')} queries)"),
        ("write datasets (+ report)", f"{sec('write')} (+ {sec('report')})"),
        ("pipeline wall, whole child", f"{cold['seconds']:.1f} s"),
        (
            f"IVF recall@{rec['k']} vs exact, nprobe {rec['default_nprobe']}",
            f"{rec['recall']:.3f}  (target >= 0.95: {'met' if rec['recall'] >= 0.95 else 'MISSED'};"
            f" {rec['sample']} queries)",
        ),
    ]
    for nprobe, v in rec["by_nprobe"].items():
        rows.append(
            (f"  recall@{rec['k']} at nprobe {nprobe}", f"{v['recall']:.3f}  ({v['qps']:,.0f} queries/s)")
        )
    if res.get("warm"):
        w = res["warm"]
        wt = w["timings"]
        rows += [
            ("warm run: peak RSS", f"{w['peak_rss_mb'] / 1024:.2f} GB"),
            ("warm run: BM25 index load (memory-mapped)", f"{wt['bm25_index']['seconds']:.1f} s"),
            ("warm run: IVF index load", f"{wt['dense_corpus']['seconds']:.1f} s"),
            (
                "warm run: mining",
                f"{wt['mine']['seconds']:.1f} s ({wt['mine'].get('per_second', 0):,.0f} queries/s)",
            ),
        ]
    width = max(len(a) for a, _ in rows)
    lines = [f"{a:<{width}}  {b}" for a, b in rows]
    lines.append("")
    lines.append("peak RSS so far after each stage (MB):")
    for name, p in cold["peaks_after_stage"].items():
        lines.append(f"  {name:<16} peak {p['peak_mb']:>8,.0f}   now {p['rss_mb']:>8,.0f}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--passages", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=10_000)
    ap.add_argument("--sample", type=int, default=500, help="queries for IVF recall against exact search")
    ap.add_argument(
        "--work", type=Path, default=None, help="data, cache and runs (default /tmp/negforge-scale-N)"
    )
    ap.add_argument("--warm", action="store_true", help="a second pipeline run over the saved indexes")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.work, args.child, args.work / f"{args.child}.result.json")
        return
    work = args.work or Path(f"/tmp/negforge-scale-{args.passages}")
    params = generate(work, args.passages, args.queries, SEED)
    shutil.rmtree(work / "cache", ignore_errors=True)  # index caches cleared: the cold run builds
    t0 = time.perf_counter()
    adopt_embeddings(work)
    print(f"embeddings adopted into the cache in {time.perf_counter() - t0:.1f} s")
    res: dict = {"params": params, "cold": spawn(work, "scale")}
    if args.warm:
        res["warm"] = spawn(work, "scale-warm")
    res["recall"] = recall(work, args.sample, 30, [8, 16, 32, 64, 128])
    table = fmt_table(res)
    print("\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    stem = "scale" if args.passages == 1_000_000 else f"scale-{args.passages}"
    (RESULTS / f"{stem}.txt").write_text(table + "\n")
    (RESULTS / f"{stem}.json").write_text(json.dumps(res, indent=2, default=str))
    print(f"\nwritten: {RESULTS / stem}.txt, .json")


if __name__ == "__main__":
    main()
