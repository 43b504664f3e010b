"""Throughput model for a large negforge run: stage time = items / (rate per worker × workers).

Not a benchmark: it measures nothing. It reads the workload shape from a finished run's manifest (tokens per
LLM request, re-ask share, cross-encoder pairs per query) and projects stage times at a target scale for
N GPU workers and R vLLM replicas, from per-worker rates you pass (defaults: the figures in docs/scaling.md;
the GPU ones are assumptions, not measurements). See docs/scaling.md for the formulas.

    python benchmarks/throughput_model.py                                   # MS MARCO scale, defaults
    python benchmarks/throughput_model.py --manifest runs/demo/manifest.json --workers 4 --replicas 4
    python benchmarks/throughput_model.py --fraction 0.15 --tokens-per-request 300 --replica-tokens 2000
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DEFAULTS = {
    "tokens_per_request": 250.0,  # completion tokens per synthetic-negative request (SmolLM2 runs here)
    "reask": 0.0,  # extra requests per request (re-asks)
    "ce_pairs_per_query": 30.0,  # candidates reaching the cross-encoder per query (selection.depth)
    "fraction": 1.0,  # sources.llm.fraction
}


def manifest_shape(path: Path) -> dict[str, float]:
    """Workload shape measured by a run (these transfer across scales; raw rates mostly do not)."""
    m = json.loads(path.read_text())
    out: dict[str, float] = {}
    print(f"manifest {path}: {m['data']['queries']} queries, {m['data']['corpus_docs']} docs")
    for name, t in m.get("timings", {}).items():
        rate = t.get("per_second")
        print(f"  timing {name:<14} {t['seconds']:>10.2f} s  {t.get('items', 0):>9} {t['unit']:<8} {rate} /s")
    gen = m.get("generation") or {}
    counts = gen.get("counts") or {}
    if counts.get("sent_ok"):
        out["tokens_per_request"] = counts.get("completion_tokens", 0) / counts["sent_ok"]
        out["reask"] = counts.get("reasks", 0) / max(1, counts.get("requests", 0) - counts.get("reasks", 0))
        print(f"  generation: {counts}  latency {(gen.get('this_run') or {}).get('latency_s')}")
        out["fraction"] = m["config"]["sources"]["llm"]["fraction"]
    queries = m["data"]["queries"] or 1
    stats = (m.get("filters") or {}).get("stats") or {}
    for f in m["config"].get("filters", []):
        name = f.get("name") or f["type"]
        st = stats.get(name)
        if st is None:
            continue
        seen = sum(st["seen"].values())
        rate = seen / st["seconds"] if st["seconds"] else float("nan")
        print(f"  filter {name} ({f['type']}): {seen} candidates in {st['seconds']} s = {rate:.1f}/s")
        if f["type"] == "cross_encoder":
            out["ce_pairs_per_query"] = seen / queries
    for k, v in out.items():
        print(f"  shape {k} = {v:.3f}")
    return out


def hms(s: float) -> str:
    return f"{s / 3600:.1f} h" if s >= 5400 else f"{s / 60:.0f} min" if s >= 90 else f"{s:.0f} s"


def ivf_seconds(docs: int, dim: int, nlist: int, flops: float) -> float:
    """faiss IVF on CPU: k-means (10 iterations, ≤256 points per centroid) plus assigning every vector."""
    train = min(docs, 256 * nlist)
    return (2 * train * nlist * dim * 10 + 2 * docs * nlist * dim) / flops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--manifest", type=Path, help="a finished run: workload shape is read from it")
    p.add_argument("--docs", type=int, default=8_841_823)
    p.add_argument("--queries", type=int, default=500_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 4, 16], help="GPU workers (N)")
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 4], help="vLLM replicas (R)")
    p.add_argument("--cores-per-worker", type=int, default=8, help="mining threads per GPU worker (c)")
    p.add_argument("--encode-rate", type=float, default=15_000, help="passages/s, driver GPU (assumed)")
    p.add_argument("--query-encode-rate", type=float, default=30_000, help="queries/s, driver GPU (assumed)")
    p.add_argument(
        "--bm25-index-rate", type=float, default=9_900, help="docs/s, driver CPU (measured words/s)"
    )
    p.add_argument("--nlist", type=int, default=65_536, help="IVF lists; 0 for a flat index")
    p.add_argument("--cpu-flops", type=float, default=1e12, help="driver CPU sgemm FLOP/s (assumed)")
    p.add_argument("--mine-rate", type=float, default=8.5, help="queries/s per mining core (measured here)")
    p.add_argument("--replica-tokens", type=float, default=2_500, help="completion tokens/s per replica")
    p.add_argument("--ce-rate", type=float, default=3_000, help="cross-encoder pairs/s per GPU (assumed)")
    p.add_argument("--write-rate", type=float, default=300, help="queries/s, driver finalize (measured here)")
    for k in DEFAULTS:
        p.add_argument("--" + k.replace("_", "-"), type=float, default=None)
    a = p.parse_args()

    shape = dict(DEFAULTS)
    if a.manifest:
        shape.update(manifest_shape(a.manifest))
    shape.update({k: getattr(a, k) for k in DEFAULTS if getattr(a, k) is not None})
    q, f = a.queries, shape["fraction"]
    requests = q * f * (1 + shape["reask"])
    tokens = requests * shape["tokens_per_request"]
    pairs = q * shape["ce_pairs_per_query"]

    one_off = {
        "dense_corpus": a.docs / a.encode_rate,
        "dense_queries": q / a.query_encode_rate,
        "bm25_index": a.docs / a.bm25_index_rate,
        "ivf_build": ivf_seconds(a.docs, a.dim, a.nlist, a.cpu_flops) if a.nlist else 0.0,
    }
    write = q / a.write_rate
    print(f"\n{a.docs:,} docs, {q:,} queries; LLM: {requests:,.0f} requests, {tokens / 1e6:.1f} M tokens; "
          f"cross-encoder: {pairs / 1e6:.1f} M pairs")  # fmt: skip
    print("one-off (driver, cached by fingerprint): "
          + ", ".join(f"{k} {hms(v)}" for k, v in one_off.items()) + f"; write {hms(write)}")  # fmt: skip
    print(f"\n{'N':>3} {'R':>3} {'mine':>9} {'generate':>9} {'cross-enc':>9} {'bottleneck':>11} "
          f"{'shards≈':>9} {'total≈':>9}  balance")  # fmt: skip
    for n in a.workers:
        for r in a.replicas:
            stage = {
                "mine": q / (a.mine_rate * a.cores_per_worker * n),
                "generate": tokens / (a.replica_tokens * r) if f > 0 else 0.0,
                "cross-enc": pairs / (a.ce_rate * n),
            }
            slow = max(stage, key=lambda k: stage[k])
            total = sum(one_off.values()) + stage[slow] + write
            other = max(v for k, v in stage.items() if k != "generate")
            f_star = min(
                1.0, a.replica_tokens * r * other / (q * (1 + shape["reask"]) * shape["tokens_per_request"])
            )
            r_star = tokens / (a.replica_tokens * other) if other else 0.0
            print(f"{n:>3} {r:>3} {hms(stage['mine']):>9} {hms(stage['generate']):>9} {hms(stage['cross-enc']):>9} "
                  f"{slow:>11} {hms(stage[slow]):>9} {hms(total):>9}  f*={f_star:.2f} or R*={r_star:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
