"""negforge dense and BM25 mining vs sentence-transformers `util.mine_hard_negatives`, bm25s and rank_bm25;
and the cross-encoder filter batched vs a per-query loop. Fair on a shared machine: every row runs in a fresh
process and the rows alternate over rounds (benchmarks/harness.py); each figure is the median with its spread
(min–max) and the 1-minute load average seen, and ratios are ratios of medians.

Dense rows time the whole unit of work a user waits for: model load, encoding, search, selection (negforge
also writes its dataset). Cold = empty cache folder; warm = a second process over the cache the cold run of the
same round filled. negforge's cold run includes its parity gate (backend: auto, an empty cache holds no
verdict); "cold, gate cached" starts from a cache holding only the verdict, as a new corpus on the same machine
does. sentence-transformers is run as its users run it (fp32) and with the model cast by hand to the precision
negforge's gate chose (so the gain is not only precision; skipped when the gate chose fp32). The roofline line
sets the encoder's tokens/s beside the machine's measured matmul rate at that precision.

    python benchmarks/mining_vs_st.py [--data ../shared/data/scifact] [--backend auto|torch|...]
        [--rounds 3] [--max-queries N] [--ce-queries 40] [--skip-dense] [--skip-bm25] [--skip-ce]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from harness import Row, Run, empty, interleave, python, ratio, run_child, seeded, summary
from mining_children import SETTINGS

ROOT = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).resolve().parent / "mining_children.py"
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
#: MiniLM-L6 per token: 2 x 10.6M non-embedding weights, plus attention (4 x seq x 384 x 6 layers at seq 256)
FLOP_PER_TOKEN = 2 * 6 * (4 * 384 * 384 + 2 * 384 * 1536) + 4 * 256 * 384 * 6


def overlap(a: dict[str, list[str]], b: dict[str, list[str]]) -> float:
    """Mean over queries of |A ∩ B| / max(|A|, |B|): 1.0 means the same negatives for every query."""
    vals = []
    for q in set(a) | set(b):
        x, y = set(a.get(q, [])), set(b.get(q, []))
        if x or y:
            vals.append(len(x & y) / max(len(x), len(y)))
    return sum(vals) / len(vals)


def _only(negs: dict[str, list[str]], queries: set[str]) -> dict[str, list[str]]:
    return {q: v for q, v in negs.items() if q in queries}


def exact(a: dict[str, list[str]], b: dict[str, list[str]]) -> float:
    """Share of queries whose negative sets are identical."""
    qs = set(a) | set(b)
    return sum(set(a.get(q, [])) == set(b.get(q, [])) for q in qs) / len(qs)


def dense_rows(args, tmp: Path, cast: str) -> list[Row]:
    common = ["--data", str(args.data), "--backend", args.backend, "--out", str(tmp / "out"),
              *(["--max-queries", str(args.max_queries)] if args.max_queries else [])]  # fmt: skip

    def row(name, kind, cache, prepare=None, dtype="fp32"):
        return Row(name, python(CHILD, kind, "--cache", str(cache), "--dtype", dtype, *common), prepare)

    rows = [row("ST fp32 cold", "st", tmp / "st", empty(tmp / "st")), row("ST fp32 warm", "st", tmp / "st")]
    if cast != "fp32":
        rows += [row(f"ST cast {cast} cold", "st", tmp / "stc", empty(tmp / "stc"), cast),
                 row(f"ST cast {cast} warm", "st", tmp / "stc", dtype=cast)]  # fmt: skip
    rows += [
        row("negforge cold", "nf", tmp / "nf", empty(tmp / "nf")),
        row("negforge warm", "nf", tmp / "nf"),
        row("negforge cold, gate cached", "nf", tmp / "nfg", seeded(tmp / "nfg", tmp / "gate", ["parity"])),
    ]
    return rows


def dense_table(res: dict[str, list[Run]], roof: dict, backend: str) -> tuple[str, dict]:
    ref_cold = summary(res["ST fp32 cold"], "seconds")
    ref_neg = res["ST fp32 cold"][0].result["negatives"]
    single = set(res["ST fp32 cold"][0].result["single_positive"])
    head = f"{'row':<28}{'seconds':>24}{'vs ST fp32 cold':>16}{'vs ST same phase':>17}{'process s':>22}" \
           f"{'peak RSS MB':>20}{'overlap':>9}{'1-pos':>7}{'exact':>7}{'load':>10}"  # fmt: skip
    lines, out = [head, "-" * len(head)], {}
    for name, runs in res.items():
        s, rss, wall = summary(runs, "seconds"), summary(runs, "rss_mb"), summary(runs, "wall_seconds")
        phase = "warm" if name.endswith("warm") else "cold"
        cast = [n for n in res if n.startswith("ST cast") and n.endswith(phase)]
        peer = cast[0] if cast and name.startswith("negforge") else f"ST fp32 {phase}"
        ov = [overlap(ref_neg, r.result["negatives"]) for r in runs]
        ov1 = [overlap(_only(ref_neg, single), _only(r.result["negatives"], single)) for r in runs]
        ex = [exact(ref_neg, r.result["negatives"]) for r in runs]
        same = ratio(s, summary(res[peer], "seconds"))
        lines.append(f"{name:<28}{s.text():>24}{ratio(s, ref_cold):>16.3f}{same:>12.3f} {peer.split()[-2]:>4}"
                     f" {wall.text():>21}{rss.text(0):>20}{min(ov):>9.3f}{min(ov1):>7.3f}{min(ex):>7.3f}{s.load():>10}")  # fmt: skip
        out[name] = {"seconds": s.as_dict(), "process_seconds": wall.as_dict(), "rss_mb": rss.as_dict(), "overlap_min": min(ov), "overlap_single_positive_min": min(ov1),
                     "exact_min": min(ex), "vs_st_fp32_cold": ratio(s, ref_cold), "vs_peer": same,
                     "peer": peer}  # fmt: skip
    nf = res["negforge cold, gate cached"]
    stage = summary(nf, lambda r: r["timings"]["dense_corpus"]["seconds"])
    tps = roof["corpus_tokens"] / stage.median
    prec, rate = next(iter(roof["gflops"].items()))  # the one precision measured: the encoder's
    limit = rate * 1e9 / FLOP_PER_TOKEN
    lines += ["", f"roofline: negforge encodes {tps:,.0f} tokens/s ({backend}, corpus {roof['corpus_tokens']:,} "
              f"tokens, dense_corpus median {stage.median:.1f} s); the machine's {prec} matmul "
              f"{rate:.0f} GFLOP/s at {FLOP_PER_TOKEN / 1e6:.1f} MFLOP/token is "
              f"{limit:,.0f} tokens/s: {tps / limit:.0%} of the limit ({roof['threads']} threads)"]  # fmt: skip
    out["roofline"] = {**roof, "tokens_per_s": tps, "limit_tokens_per_s": limit}
    warm = res["negforge warm"][0].result["timings"]
    lines.append("negforge warm stage timings (round 1): "
                 + ", ".join(f"{k} {v['seconds']:.2f}s" for k, v in warm.items()))  # fmt: skip
    gate = res["negforge cold"][0].result["backend_choice"] or {}
    for c in gate.get("checks", []):
        lines.append(
            f"  gate {c['path']:<11} {c['items_per_s']:7.1f} docs/s  {c['metrics']}  passed={c['passed']}"
        )
    return "\n".join(lines), out


def bm25_table(res: dict[str, list[Run]]) -> tuple[str, dict]:
    ours = res["bm25-negforge"]
    lines, out = [f"{'row':<16}{'queries/s':>26}{'vs bm25s':>10}{'same ranking':>14}{'load':>10}"], {}
    ref = summary(res["bm25s"], "qps")
    for name, runs in res.items():
        s = summary(runs, "qps")
        same = sum(a == b for a, b in zip(runs[0].result["rows"], ours[0].result["rows"], strict=True))
        share = same / len(ours[0].result["rows"])
        lines.append(f"{name:<16}{s.text(0):>26}{ratio(s, ref):>10.3f}{share:>14.1%}{s.load():>10}")
        out[name] = {"qps": s.as_dict(), "vs_bm25s": ratio(s, ref), "same_ranking_as_negforge": share}
    return "\n".join(lines), out


def ce_table(res: dict[str, list[Run]]) -> tuple[str, dict]:
    import numpy as np

    ref = res["loop fp32"][0].result["logits"]
    lines = [
        f"{'scoring':<22}{'pairs/s':>22}{'vs loop, same precision':>25}{'max |Δ logit|':>15}{'load':>10}"
    ]
    out = {}
    for name, runs in res.items():
        s = summary(runs, "pps")
        loop = summary(res["loop " + name.split()[-1]], "pps")
        d = float(np.abs(np.asarray(runs[0].result["logits"]) - np.asarray(ref)).max())
        lines.append(f"{name + ' ' + runs[0].result['backend']:<22}{s.text(1):>22}{ratio(s, loop):>24.2f}x"
                     f"{d:>15.2e}{s.load():>10}")  # fmt: skip
        out[name] = {"pps": s.as_dict(), "vs_loop_same_precision": ratio(s, loop), "max_abs_diff": d,
                     "backend": runs[0].result["backend"]}  # fmt: skip
    return "\n".join(lines), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--backend", default="auto", help="negforge's sources.dense.backend (default auto)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds (each row once per round)")
    ap.add_argument("--max-queries", type=int, default=None)
    ap.add_argument("--ce-queries", type=int, default=40, help="queries x 30 candidates for the CE timing")
    for part in ("dense", "bm25", "ce"):
        ap.add_argument(f"--skip-{part}", action="store_true")
    args = ap.parse_args()
    report, record = [], {"settings": SETTINGS, "rounds": args.rounds, "data": str(args.data)}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = [
            "--data",
            str(args.data),
            *(["--max-queries", str(args.max_queries)] if args.max_queries else []),
        ]
        if not args.skip_dense:
            gate = run_child(
                python(CHILD, "gate", "--cache", str(tmp / "gate"), "--backend", args.backend, *base)
            )
            cast = gate["backend"].split("-")[-1] if gate["backend"].startswith("torch") else "fp32"
            roof = run_child(python(CHILD, "roofline", "--dtype", cast, *base))
            res = interleave(dense_rows(args, tmp, cast), args.rounds)
            nq = len(res["ST fp32 cold"][0].result["negatives"])
            text, record["dense"] = dense_table(res, roof, gate["backend"])
            report += [f"dense mining, {args.data.name} ({nq} queries), MiniLM, {SETTINGS['num_negatives']} "
                       f"negatives, depth {SETTINGS['depth']}, relative margin {SETTINGS['relative_margin']}, top; "
                       f"negforge backend {args.backend} -> {gate['backend']}; median (min–max) of "
                       f"{args.rounds} interleaved rounds, each a fresh process", text,
                       "overlap/exact: the lowest over rounds of the mean shared share / identical sets per query, "
                       "against ST fp32's first cold run; 1-pos: overlap on queries with one positive (ST mines "
                       "each (query, positive) row on its own, against that positive's score: a query with k "
                       "positives gets up to k x 3 negatives there, 3 here); seconds: from after the child's own "
                       "imports (ST: torch and sentence-transformers; negforge: its pipeline module, whose heavy "
                       "imports are lazy) to the end of the work; process s: the child's whole life on the "
                       "parent's clock, imports included, what a user's command waits", ""]  # fmt: skip
        if not args.skip_bm25:
            rows = [Row(k, python(CHILD, k, *base)) for k in ("bm25-negforge", "bm25s", "rank_bm25")]
            text, record["bm25"] = bm25_table(interleave(rows, args.rounds))
            report += [
                f"BM25 query throughput, depth {SETTINGS['depth']} (index built first, not timed)",
                text,
                "",
            ]
        if not args.skip_ce:
            model = tmp / "ce"
            run_child(python(CHILD, "ce-setup", "--data", str(args.data), "--ce-model", str(model)))
            ce = ["--data", str(args.data), "--ce-model", str(model), "--ce-queries", str(args.ce_queries),
                  "--cache", str(tmp / "ce-cache")]  # fmt: skip
            rows = [Row(f"{how} {prec}", python(CHILD, "ce", "--how", how, "--backend",
                                                "torch" if prec == "fp32" else "auto", *ce))
                    for prec in ("fp32", "auto") for how in ("loop", "batched")]  # fmt: skip
            text, record["cross_encoder"] = ce_table(interleave(rows, args.rounds))
            report += [f"cross-encoder filter scoring, {args.ce_queries} queries x 30 pairs (MiniLM, 1 logit; "
                       "batched = one call, sorted by length across queries)", text]  # fmt: skip
    print("\n".join(report))
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "mining_vs_st.json").write_text(json.dumps(record, indent=1))
    (out / "mining_vs_st.txt").write_text("\n".join(report) + "\n")


if __name__ == "__main__":
    main()
