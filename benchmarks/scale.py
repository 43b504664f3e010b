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
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ChildFailed, python, run_child
from scale_data import DIM, generate

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SEED = 13
MODEL = "sentence-transformers/all-MiniLM-L6-v2"  # named for the cache key (its fingerprint); never loaded


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


def child(work: Path, run_name: str) -> dict:
    """Run the pipeline; return peak RSS (and the peak so far after each stage), timings and counts."""
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
    return {
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": time.perf_counter() - t0,
        "timings": m["timings"],
        "peaks_after_stage": peaks,
        "index": m["models"],
        "counts": {k: m["counts"][k] for k in ("selected", "short_queries", "rows")},
        "data": {k: m["data"][k] for k in ("corpus_docs", "queries")},
    }


def spawn(work: Path, run_name: str) -> dict:
    """`child` in a fresh process (benchmarks/harness.py's `run_child`): its result, plus `wall_seconds`."""
    shutil.rmtree(work / "runs" / run_name, ignore_errors=True)  # finished shards would be reused, not mined
    try:
        return run_child(python(__file__, "--child", run_name, "--work", str(work)))
    except ChildFailed as e:
        raise SystemExit(f"pipeline child {run_name} failed: {e}") from None


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
        print(json.dumps(child(args.work, args.child), default=str))  # the last stdout line, for run_child
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
