"""negforge dense and BM25 mining vs sentence-transformers `util.mine_hard_negatives`, bm25s and rank_bm25;
and the cross-encoder filter batched vs a per-query loop.

Not a test: prints figures side by side, as ratios, from one run. Every dense measurement runs in a fresh
process (cold = empty cache folder, warm = second process over the filled cache) and times the whole unit of
work a user waits for: model load, encoding, search, selection (negforge also writes its datasets). negforge's
cold run includes its parity gate (backend: auto, a fresh cache holds no verdict).

Rows: sentence-transformers as its users run it (fp32); sentence-transformers with the model cast by hand to
the precision negforge's gate chose (so the gain is not only the precision); negforge.

    python benchmarks/mining_vs_st.py [--data ../shared/data/scifact] [--backend auto|torch|onnx|torch-bf16]
        [--max-queries N] [--ce-queries 40]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
SETTINGS = {"num_negatives": 3, "depth": 30, "relative_margin": 0.05, "sampling": "top"}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_st(data: Path, cache: Path, max_queries: int | None, dtype: str = "fp32") -> dict:
    """sentence-transformers at matching settings: range_max=depth, relative_margin, top sampling;
    `dtype` bf16/fp16 casts the model by hand (`model.to(torch.bfloat16)`), as a user could."""
    t0 = time.perf_counter()
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, util

    from negforge.config import DataConfig
    from negforge.mining.fingerprint import resolve_model_path
    from negforge.sources import load_input

    inp = load_input(DataConfig(format="beir", path=str(data), max_queries=max_queries))
    pairs = [(q.text, inp.corpus.texts[r]) for q in inp.queries for r in q.positive_rows]
    ds = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    t_load = time.perf_counter()
    model = SentenceTransformer(
        str(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")), device="cpu"
    )
    if dtype != "fp32":
        model.to({"bf16": torch.bfloat16, "fp16": torch.float16}[dtype])
    out = util.mine_hard_negatives(
        ds,
        model,
        corpus=inp.corpus.texts,
        range_max=SETTINGS["depth"],
        relative_margin=SETTINGS["relative_margin"],
        num_negatives=SETTINGS["num_negatives"],
        sampling_strategy="top",
        output_format="n-tuple",
        batch_size=32,
        cache_folder=str(cache),
        verbose=False,
    )
    seconds = time.perf_counter() - t_load
    negs: dict[str, set[str]] = {}
    for row in out:
        negs.setdefault(row["anchor"], set()).update(v for k, v in row.items() if k.startswith("negative"))
    return {
        "seconds": seconds,
        "total_seconds": time.perf_counter() - t0,
        "rss_mb": peak_rss_mb(),
        "negatives": {k: sorted(v) for k, v in negs.items()},
    }


def child_nf(data: Path, cache: Path, max_queries: int | None, backend: str, out_dir: Path) -> dict:
    t0 = time.perf_counter()
    from datasets import load_from_disk

    from negforge import progress
    from negforge.config import load_config
    from negforge.pipeline import run

    progress.set_enabled(False)
    cfg = load_config(
        None,
        [
            f"data.path={data}",
            f"cache_dir={cache}",
            f"output.dir={out_dir}",
            "output.shard_size=200",
            "output.formats=[rich]",
            "sources.bm25.enabled=false",
            "filters=[]",  # sentence-transformers has no filter stack: compare mining alone
            f"sources.dense.backend={backend}",
            f"selection.num_negatives={SETTINGS['num_negatives']}",
            f"selection.depth={SETTINGS['depth']}",
            f"selection.relative_margin={SETTINGS['relative_margin']}",
            *([f"data.max_queries={max_queries}"] if max_queries else []),
        ],
    )
    t_load = time.perf_counter()
    res = run(cfg, overwrite=True)
    seconds = time.perf_counter() - t_load
    rows = load_from_disk(str(res.dataset_dir))["rich"]
    negs = {r["query"]: sorted(n["text"] for n in r["negatives"]) for r in rows}
    return {
        "seconds": seconds,
        "total_seconds": time.perf_counter() - t0,
        "rss_mb": peak_rss_mb(),
        "negatives": negs,
        "timings": res.manifest["timings"],
        "backend": res.manifest["models"]["dense"]["backend"],
        "backend_choice": res.manifest["models"]["dense"]["backend_choice"],
    }


def spawn(kind: str, args: argparse.Namespace, cache: Path, out_dir: Path, dtype: str = "fp32") -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--data",
        str(args.data),
        "--cache",
        str(cache),
        "--backend",
        args.backend,
        "--out",
        str(out_dir),
        "--dtype",
        dtype,
    ]
    if args.max_queries:
        cmd += ["--max-queries", str(args.max_queries)]
    env = {**os.environ, "NEGFORGE_PROGRESS": "0", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{kind} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def overlap(a: dict[str, list[str]], b: dict[str, list[str]]) -> float:
    """Mean over queries of |A ∩ B| / max(|A|, |B|): 1.0 means the same negatives for every query."""
    vals = []
    for q in set(a) | set(b):
        x, y = set(a.get(q, [])), set(b.get(q, []))
        if x or y:
            vals.append(len(x & y) / max(len(x), len(y)))
    return sum(vals) / len(vals)


def bm25_bench(data: Path, max_queries: int | None) -> dict:
    """Queries/s: negforge's BM25 mining (retrieve + exclude positives) vs bm25s alone vs rank_bm25."""
    import bm25s
    import numpy as np
    from rank_bm25 import BM25Okapi

    from negforge.config import BM25Config, DataConfig
    from negforge.mining.bm25 import BM25Miner, top_k_excluding
    from negforge.mining.fingerprint import texts_digest
    from negforge.sources import load_input

    inp = load_input(DataConfig(format="beir", path=str(data), max_queries=max_queries))
    queries = [q.text for q in inp.queries]
    k = SETTINGS["depth"]
    with tempfile.TemporaryDirectory() as tmp:
        miner = BM25Miner(BM25Config(), tmp)
        miner.prepare(inp.corpus.texts, texts_digest(inp.corpus.texts))
        best = {}
        for _ in range(3):
            t0 = time.perf_counter()
            ids = miner.query_token_ids(queries)
            ours = [
                top_k_excluding(miner.score_all(i), k, q.positive_rows)
                for i, q in zip(ids, inp.queries, strict=True)
            ]
            t_ours = time.perf_counter() - t0
            t0 = time.perf_counter()
            toks = miner._tokenize(queries, return_ids=False)
            ref, _ = miner.retriever.retrieve(
                toks, k=k + max(len(q.positive_rows) for q in inp.queries), show_progress=False
            )
            t_ref = time.perf_counter() - t0
            best["ours"] = min(best.get("ours", 1e9), t_ours)
            best["bm25s"] = min(best.get("bm25s", 1e9), t_ref)
        same = np.mean(
            [
                list(o[0]) == [r for r in ref_row if r not in q.positive_rows][: len(o[0])]
                for o, ref_row, q in zip(ours, ref, inp.queries, strict=True)
            ]
        )
        tokenized = [
            t
            for t in bm25s.tokenize(
                inp.corpus.texts, stopwords="en", stemmer=miner.stemmer, return_ids=False, show_progress=False
            )
        ]
        rank = BM25Okapi(tokenized)
        qtoks = miner._tokenize(queries, return_ids=False)
        t0 = time.perf_counter()
        for q in qtoks:
            scores = rank.get_scores(q)
            np.argpartition(-scores, k)[:k]
        t_rank = time.perf_counter() - t0
    n = len(queries)
    return {
        "queries": n,
        "ours_qps": n / best["ours"],
        "bm25s_qps": n / best["bm25s"],
        "rank_bm25_qps": n / t_rank,
        "same_ranking_share": float(same),
    }


def ce_bench(data: Path, tmp: Path, n_queries: int) -> dict:
    """Cross-encoder pairs/s: the filter's one batched call (fp32 and auto) vs a per-query loop (fp32, auto).

    The cross-encoder is MiniLM with a fresh one-logit head (no trained cross-encoder exists offline): speed
    does not depend on the head. Pairs: each query with 30 seeded corpus passages (as a depth-30 window).
    """
    import numpy as np
    import torch
    from sentence_transformers import CrossEncoder

    from negforge.config import CrossEncoderFilterConfig, DataConfig
    from negforge.filters.cross_encoder import CrossEncoderFilter
    from negforge.mining.fingerprint import resolve_model_path
    from negforge.sources import load_input

    torch.manual_seed(0)
    ce_path = tmp / "ce"
    CrossEncoder(str(resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")), num_labels=1).save(
        str(ce_path)
    )
    inp = load_input(DataConfig(format="beir", path=str(data), max_queries=n_queries))
    rng = np.random.default_rng(0)
    per_query = [[(q.text, inp.corpus.texts[i]) for i in rng.choice(len(inp.corpus), 30, replace=False)]
                 for q in inp.queries]  # fmt: skip
    all_pairs = [p for ps in per_query for p in ps]
    cfg = CrossEncoderFilterConfig(model=str(ce_path), batch_size=32, max_length=256)
    filters = {"fp32": CrossEncoderFilter(cfg.model_copy(update={"backend": "torch"}), tmp / "ce-cache"),
               "auto": CrossEncoderFilter(cfg, tmp / "ce-cache")}  # fmt: skip
    filters["auto"].score(all_pairs)  # the gate runs here, on these pairs (not timed)
    rows: dict = {}
    ref = None
    for prec in ("fp32", "auto"):
        f = filters[prec]
        f.score(all_pairs[:64])  # warm-up
        for how in ("per-query loop", "batched"):
            t0 = time.perf_counter()
            got = (
                f.score(all_pairs) if how == "batched" else np.concatenate([f.score(ps) for ps in per_query])
            )
            secs = time.perf_counter() - t0
            ref = got if ref is None else ref
            name = f"{how}, {f.describe()['backend'] if prec == 'auto' else 'fp32'}"
            rows[name] = {"seconds": secs, "pps": len(all_pairs) / secs,
                          "max_abs_diff": float(np.abs(got - ref).max())}  # fmt: skip
    choice = filters["auto"].describe()["backend_choice"] or {}
    return {"queries": len(per_query), "pairs": len(all_pairs), "rows": rows,
            "gate": {c["path"]: c["metrics"] for c in choice.get("checks", [])}}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument(
        "--backend",
        choices=["auto", "torch", "onnx", "torch-bf16", "torch-fp16", "onnx-int8"],
        default="auto",
        help="negforge's sources.dense.backend (default auto: the parity gate picks)",
    )
    ap.add_argument("--ce-queries", type=int, default=40, help="queries x 30 candidates for the CE timing")
    ap.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--child", choices=["st", "nf"], help=argparse.SUPPRESS)
    ap.add_argument("--cache", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == "st":
        print(json.dumps(child_st(args.data, args.cache, args.max_queries, args.dtype)))
        return
    if args.child == "nf":
        print(json.dumps(child_nf(args.data, args.cache, args.max_queries, args.backend, args.out)))
        return

    from rich.console import Console
    from rich.table import Table

    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        r = {}
        for phase in ("cold", "warm"):  # negforge first: its gate decides the precision ST is cast to
            console.print(f"running negforge {phase} ...")
            r["nf", phase] = spawn("nf", args, tmp / "cache-nf", tmp / "out")
        # the gate is paid once per model and machine: a new corpus on this machine starts from here
        console.print("running negforge cold, parity verdict already cached ...")
        (tmp / "cache-nf-gated").mkdir()
        if (tmp / "cache-nf" / "parity").exists():
            shutil.copytree(tmp / "cache-nf" / "parity", tmp / "cache-nf-gated" / "parity")
        r["nf", "cold, gate cached"] = spawn("nf", args, tmp / "cache-nf-gated", tmp / "out")
        cast = r["nf", "cold"]["backend"].split("-")[1]
        for kind, dtype in (("st", "fp32"), ("st-cast", cast)):
            for phase in ("cold", "warm"):
                console.print(f"running sentence-transformers {dtype} {phase} ...")
                r[kind, phase] = spawn("st", args, tmp / f"cache-{kind}", tmp / "out", dtype)
        console.print("running BM25 ...")
        bm = bm25_bench(args.data, args.max_queries)
        console.print("running cross-encoder batched vs per-query ...")
        ce = ce_bench(args.data, tmp, args.ce_queries)

    nq = len(r["nf", "cold"]["negatives"])
    t = Table(
        title=f"dense mining, SciFact train ({nq} queries), MiniLM, {SETTINGS['num_negatives']} negatives, "
        f"depth {SETTINGS['depth']}, relative margin {SETTINGS['relative_margin']}, top; negforge backend "
        f"{args.backend} -> {r['nf', 'cold']['backend']}"
    )
    for col in ("run", "phase", "seconds", "vs ST fp32 cold", "vs ST same phase", "peak RSS MB", "overlap"):
        t.add_column(col, justify="right")
    ref_neg = r["st", "cold"]["negatives"]
    for kind, label in (("st", "ST fp32"), ("st-cast", f"ST cast {cast}"), ("nf", "negforge")):
        for phase in ("cold", "warm", "cold, gate cached"):
            if (kind, phase) not in r:
                continue
            x = r[kind, phase]
            t.add_row(
                label,
                phase,
                f"{x['seconds']:.2f}",
                f"{x['seconds'] / r['st', 'cold']['seconds']:.3f}",
                f"{x['seconds'] / r['st', phase.split(',')[0]]['seconds']:.3f}",
                f"{x['rss_mb']:.0f}",
                f"{overlap(ref_neg, x['negatives']):.3f}",
            )
    console.print(t)
    console.print("overlap: mean per query of shared negatives with ST fp32's cold run (1.0 = the same)")
    gate = r["nf", "cold"]["backend_choice"] or {}
    for c in gate.get("checks", []):
        console.print(
            f"  gate {c['path']:<11} {c['items_per_s']:7.1f} docs/s  {c['metrics']}  passed={c['passed']}"
        )
    console.print(
        "negforge cold stage timings: "
        + ", ".join(f"{k} {v['seconds']:.1f}s" for k, v in r["nf", "cold"]["timings"].items())
    )
    c = Table(
        title=f"cross-encoder filter scoring, {ce['queries']} queries, {ce['pairs']} pairs (MiniLM, 1 logit)"
    )
    for col in ("scoring", "pairs/s", "vs per-query loop fp32", "max |Δ logit| vs loop fp32"):
        c.add_column(col, justify="right")
    for name, row in ce["rows"].items():
        c.add_row(name, f"{row['pps']:.1f}", f"{row['pps'] / ce['rows']['per-query loop, fp32']['pps']:.2f}x",
                  f"{row['max_abs_diff']:.2e}")  # fmt: skip
    console.print(c)
    console.print(f"  CE gate: {ce['gate']}")
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mining_vs_st.json").write_text(
        json.dumps({"dense": {f"{k}/{p}": {kk: vv for kk, vv in v.items() if kk != "negatives"}
                              for (k, p), v in r.items()}, "bm25": bm, "cross_encoder": ce}, indent=1)
    )  # fmt: skip
    b = Table(title=f"BM25 mining, {bm['queries']} queries, depth {SETTINGS['depth']} (best of 3)")
    for col in (
        "negforge q/s",
        "bm25s q/s",
        "negforge overhead vs bm25s",
        "rank_bm25 q/s",
        "negforge / rank_bm25",
        "same ranking",
    ):
        b.add_column(col, justify="right")
    b.add_row(
        f"{bm['ours_qps']:.0f}",
        f"{bm['bm25s_qps']:.0f}",
        f"{bm['bm25s_qps'] / bm['ours_qps'] - 1:+.1%}",
        f"{bm['rank_bm25_qps']:.1f}",
        f"{bm['ours_qps'] / bm['rank_bm25_qps']:.0f}x",
        f"{bm['same_ranking_share']:.1%}",
    )
    console.print(b)


if __name__ == "__main__":
    main()
