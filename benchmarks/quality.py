"""Which negatives train a better retriever? MiniLM fine-tuned per row and seed, scored per query.

    python benchmarks/quality.py --dataset scifact --seeds 13,14,15 --rows zero,inbatch,st,st-nt
    python benchmarks/quality.py --dataset nfcorpus --seeds 13,14,15 --rows nf,ance
    python benchmarks/quality.py --dataset nfcorpus --split dev --rows x --x-name x-deep --x-set selection.depth=50
    python benchmarks/quality.py --dataset scifact --estimate          # time per row, nothing run
    python benchmarks/quality.py --dataset scifact --smoke             # seconds: tiny sizes, 2 steps

Rows (benchmarks/quality_rows.py): zero-shot; in-batch only; sentence-transformers `mine_hard_negatives`
(triplet, n-tuple); negforge's recipe (configs/scifact-ntuple.yaml, n-tuple); + rules and LLM edit negatives;
+ the llm_judge filter; the same judge relabelling instead of dropping (the cross-encoder and NLI filters
need trained models that do not exist offline); one ANCE round (2x steps, re-mine with that checkpoint,
train base MiniLM on it). Every row trains the same number of steps from the same base model on the same
sampled (query, positive) examples (benchmarks/quality_data.py). Mining does not depend on the training
seed (negforge is seeded by --mine-seed, ST's miner is deterministic), so each row mines once and trains once
per seed; only the ANCE row mines per seed (its checkpoint is seed-specific). Every stage of every
(row, seed) is resumable: what exists under --out is reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("NEGFORGE_PROGRESS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality_data import DATASETS, T0, corpus_slice, log, prepare, read_json, read_qrels, write_json
from quality_rows import (
    LLM_ROWS,
    ROWS,
    SEEDED_MINING,
    ST_ROWS,
    drop_checkpoint,
    evaluate_per_query,
    mine_negforge,
    mine_pairs,
    mine_st,
    train_row,
)  # fmt: skip
from quality_stats import METRICS, fmt_ci, mean_sd, paired_bootstrap

ROOT = Path(__file__).resolve().parents[1]
RUN_ORDER = ["zero", "inbatch", "st", "st-nt", "nf", "rules", "ance", "x", "edit", "judge", "relabel"]
# seconds on SciFact at 29 steps, batch 32, 919 examples, 5,183 docs, 2 cores (the retired quality_scifact.py's table,
# llm_judge_leak.txt: SmolLM2 on CPU judges ~2.3 candidates/s): used until this --out has its own figures
REF = {
    "mine": {"inbatch": 1, "st": 160, "st-nt": 70, "nf": 70, "rules": 80, "ance": 45, "x": 70,
             "edit": 1100, "judge": 1100 + 809 * 20 / 2.3, "relabel": 1100 + 809 * 20 / 2.3},
    "train": {"pairs": 115, "triplet": 265, "n-tuple": 450},
    "eval": 90,
}  # fmt: skip


class Row:
    """One row's folder: mine/ (shared by seeds) or seed-S/mine/ (ANCE), seed-S/{train,eval}.json."""

    def __init__(self, args: argparse.Namespace, row: str):
        self.args, self.row = args, row
        self.name = args.x_name if row == "x" else row
        self.folder = args.out / self.name
        self.times_path = self.folder / "timings.json"

    def stage(self, key: str, path: Path, fn: Any) -> Any:
        done = read_json(path)
        if done is not None:
            return done
        log(f"{self.name}: {key} ...")
        t = time.perf_counter()
        out = fn()
        times = read_json(self.times_path) or {}
        times[key] = round(time.perf_counter() - t, 1)
        write_json(path, out)
        write_json(self.times_path, times)
        log(f"{self.name}: {key} done in {times[key]:.1f}s")
        return out

    def mine(self, prep: Any, where: Path, checkpoint: Path | None = None) -> dict:
        a, r = self.args, self.row
        if r == "inbatch":
            fn = lambda: mine_pairs(a, prep.train_folder, where)  # noqa: E731
        elif r in ST_ROWS:
            fn = lambda: mine_st(a, prep.train_folder, where, "triplet" if r == "st" else "n-tuple")  # noqa: E731
        else:
            fn = lambda: mine_negforge(a, r, prep.train_folder, where, checkpoint)  # noqa: E731
        tag = f"mine@{where.parent.name}" if where.parent != self.folder else "mine"
        return self.stage(tag, where / "mined.json", fn)

    def run_seed(self, prep: Any, seed: int, split_fn: Any, qrels: dict) -> dict:
        a, sf = self.args, self.folder / f"seed-{seed}"
        if self.row in SEEDED_MINING:  # the ANCE row: its miner is a seed-specific checkpoint
            base = Row(a, "nf").mine(prep, a.out / "nf" / "mine")
            long = self.stage(
                f"train-long@{seed}", sf / "train-long.json",
                lambda: train_row(a, base, sf / "model-long", seed, 2 * a.steps),
            )  # fmt: skip
            if not (sf / "mine" / "mined.json").is_file() and not Path(long["checkpoint"]).is_dir():
                raise SystemExit(f"{sf}: the long checkpoint is gone; delete train-long.json to retrain")
            mined = self.mine(prep, sf / "mine", Path(long["checkpoint"]))
        else:
            mined = self.mine(prep, self.folder / "mine")
        trained = self.stage(
            f"train@{seed}", sf / "train.json", lambda: train_row(a, mined, sf / "model", seed, a.steps)
        )
        ev = self.stage(
            f"eval@{seed}", sf / "eval.json",
            lambda: evaluate_per_query(trained["checkpoint"], split_fn(), qrels, a.max_seq_length),
        )  # fmt: skip
        if not a.keep_models:
            drop_checkpoint(sf / "model")
            if (sf / "mine" / "mined.json").is_file():
                drop_checkpoint(sf / "model-long")
        log(f"{self.name} seed {seed}: nDCG@10 {ev['ndcg@10']:.4f} ({mined['rows']} rows, {mined['config']})")
        return ev


def estimate(args: argparse.Namespace, prep: Any, docs: int, rows: list[str]) -> dict[str, float]:
    """Seconds per row for all --seeds: this --out's measured stage times where they exist, else REF scaled."""
    n_seeds, scale_t, scale_m = len(args.seeds), args.steps / 29, prep.examples / 919
    eval_s = REF["eval"] * docs / 5183
    out = {}
    for row in rows:
        t = read_json(args.out / (args.x_name if row == "x" else row) / "timings.json") or {}

        def per(key: str, ref: float, t: dict = t) -> float:
            got = [v for k, v in t.items() if k.startswith(key + "@")]
            return sum(got) / len(got) if got else ref

        if row == "zero":
            out[row] = t.get("eval", eval_s)
            continue
        config = {"inbatch": "pairs", "st": "triplet"}.get(row, "n-tuple")
        train = per("train", REF["train"][config] * scale_t)
        mine = t.get("mine", REF["mine"][row] * scale_m)
        if row == "ance":
            mine = REF["mine"]["nf"] * scale_m + n_seeds * per("mine", REF["mine"]["ance"] * scale_m)
            train += per("train-long", 2 * train)
        out[row] = mine + n_seeds * (train + per("eval", eval_s))
    return out


def plan(est: dict[str, float], budget_min: float) -> list[str]:
    """Rows packed into invocations of at most `budget_min` minutes each (first fit, longest first)."""
    bins: list[list[str]] = []
    loads: list[float] = []
    lines = []
    for row in sorted((r for r in est if r != "zero"), key=lambda r: -est[r]):
        m = est[row] / 60
        if m > budget_min:
            lines.append(f"  {row}: {m:.0f} min alone, over {budget_min:g}: point --llm-base-url at a GPU server "
                         "or lower --max-train-queries")  # fmt: skip
            continue
        i = next((i for i, load in enumerate(loads) if load + m <= budget_min), None)
        if i is None:
            bins.append([])
            loads.append(0.0)
            i = len(bins) - 1
        bins[i].append(row)
        loads[i] += m
    out = [f"plan: invocations of <= {budget_min:g} min each (zero-shot rides along with any):"]
    out += [f"  --rows {','.join(b)}   ~{load:.0f} min" for b, load in zip(bins, loads, strict=True)]
    return out + lines


def collect(args: argparse.Namespace) -> dict[str, dict[int, dict]]:
    """Every (row, seed) evaluated under --out, this invocation's or an earlier one's."""
    res: dict[str, dict[int, dict]] = {}
    zero = read_json(args.out / "zero" / "eval.json")
    if zero:
        res["zero"] = {s: zero for s in args.seeds}  # zero-shot does not train: one evaluation for every seed
    for folder in sorted(p for p in args.out.iterdir() if p.is_dir()):
        for s in args.seeds:
            ev = read_json(folder / f"seed-{s}" / "eval.json")
            if ev:
                res.setdefault(folder.name, {})[s] = ev
    return res


def paired_ci(args: argparse.Namespace, res: dict[str, dict[int, dict]], row: str, ref: str) -> str:
    """`row` minus `ref`: paired bootstrap of the seed-mean per-query nDCG@10 difference, formatted
    "+d [lo, hi]" (points), over the seeds both rows share; "-" when they share none."""
    import numpy as np

    common = [s for s in sorted(res[row]) if s in res[ref]]
    if not common:
        return "-"
    qids = list(res[ref][common[0]]["per_query"])
    a = np.array([[res[row][s]["per_query"][q]["ndcg@10"] for q in qids] for s in common])
    b = np.array([[res[ref][s]["per_query"][q]["ndcg@10"] for q in qids] for s in common])
    return fmt_ci(*paired_bootstrap(a, b, resamples=10_000, seed=args.boot_seed))


def report(args: argparse.Namespace, prep: Any, res: dict[str, dict[int, dict]], n_q: int, docs: int) -> str:
    import numpy as np

    lines = [
        f"{args.dataset} {args.split} ({n_q} queries, {docs} docs); MiniLM-L6 fine-tuned per row and seed; "
        f"metrics x100, mean ± sd over seeds {','.join(map(str, args.seeds))}",
        f"shared: steps={args.steps} batch={args.batch_size} lr={args.learning_rate} warmup={args.warmup_ratio} "
        f"loss=MNRL (no-duplicates sampler) max_seq_length={args.max_seq_length} (train and eval, all rows)",
        prep.describe,
        f"mining once per row (negforge seed={args.mine_seed}, ST deterministic), reused for every training "
        "seed; ANCE mines per seed with that seed's 2x-steps checkpoint",
        "nDCG@10: ir-measures/pytrec_eval, graded qrels, linear gain (= grade, trec_eval/BEIR); MRR@10 and "
        "R@100 binary (grade >= 1); ranking exact cosine top-100, ties by corpus id",
        "ex: rows of the mined dataset (pairs, triplets with 1 negative, n-tuples with 5); every row trains "
        "steps x batch of them",
    ]
    st_best = max(
        (r for r in ST_ROWS if r in res),
        key=lambda r: np.mean([res[r][s]["ndcg@10"] for s in res[r]]),
        default=None,
    )
    ref = args.versus if args.versus in res else st_best
    ref_label = "ST's best row on the mean" if ref == st_best else "the --versus row"
    lines.append(
        f"d/{'ST' if ref == st_best else ref}: paired bootstrap over {n_q} {args.split} queries (10,000 resamples, "
        f"seed {args.boot_seed}) of the seed-mean per-query nDCG@10 difference to {ref_label} "
        f"({ref or 'not run'}); seeds both rows share. cost: this row's measured mine + train + eval minutes, all seeds"
    )
    d_head = f"d/{'ST' if ref == st_best else ref} nDCG@10 [95% CI]"
    head = f"{'row':32} {'ex':>6} {'seeds':>5} {'nDCG@10':>13} {'MRR@10':>13} {'R@100':>13} {d_head:>26} {'cost':>6}"
    lines += [head, "-" * len(head)]
    checks: list[float] = []
    gaps: list[float] = []
    for row in [*[r for r in RUN_ORDER if r != "x"], *sorted(r for r in res if r not in ROWS)]:
        if row not in res:
            continue
        evs = res[row]
        seeds = sorted(evs)
        cells = []
        for m in METRICS:
            mu, sd = mean_sd([evs[s][m] for s in seeds])
            cells.append(f"{100 * mu:6.2f} ± {100 * sd:4.2f}")
        ci = paired_ci(args, res, row, ref) if ref and row != ref else "-"
        mined = read_json(args.out / row / "mine" / "mined.json")
        mined = mined or read_json(args.out / row / f"seed-{seeds[0]}" / "mine" / "mined.json") or {}
        checks += [abs(v["check"]["ndcg@10_binary_vs_evaluator"]) for v in evs.values()]
        gaps += [v["ndcg@10"] - v["evaluator"]["ndcg@10"] for v in evs.values()]
        label = ROWS.get(row, row)
        cost = sum((read_json(args.out / row / "timings.json") or {}).values()) / 60
        lines.append(
            f"{label:32} {mined.get('rows', '-')!s:>6} {len(seeds):>5} {' '.join(f'{c:>13}' for c in cells)} "
            f"{ci:>26} {cost:5.1f}m"
        )
    if "inbatch" in res and st_best and "[" in (ci := paired_ci(args, res, "inbatch", st_best)):
        lo, hi = (float(x) for x in ci.split("[")[1].rstrip("]").split(","))
        verdict = "passes: rows can be told apart" if lo > 0 or hi < 0 else "FAILS: train longer (--steps)"
        lines.append(f"power check: in-batch vs {st_best} nDCG@10 {ci}, interval excludes 0? {verdict}")
    graded = any(g > 1 for rel in read_qrels(prep.eval_folder / "qrels" / f"{prep.eval_split}.tsv").values()
                 for g in rel.values())  # fmt: skip
    if checks:
        lines.append(
            f"check: per-query binary nDCG@10 mean vs sentence-transformers' evaluator, max |diff| "
            f"{max(checks):.2e} over {len(checks)} evaluations"
            + (
                f"; graded qrels: the table's graded nDCG@10 minus the evaluator's binary one is "
                f"{100 * min(gaps):+.2f} to {100 * max(gaps):+.2f} points (by design)"
                if graded
                else "; binary qrels: the table's nDCG@10 is the evaluator's"
            )
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=sorted(DATASETS), default="scifact")
    ap.add_argument(
        "--split", choices=["test", "dev"], default="test", help="dev: choose settings, never test"
    )
    ap.add_argument("--seeds", default="13,14,15")
    ap.add_argument("--rows", default="zero,inbatch,st,st-nt,nf,edit,judge,relabel,ance")
    ap.add_argument(
        "--out", type=Path, default=None, help="default benchmarks/results/quality-<dataset>-<split>"
    )
    ap.add_argument("--steps", type=int, default=None, help="default: one epoch over the sampled examples")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--max-positives", type=int, default=None, help="K per query (dataset default)")
    ap.add_argument("--max-train-queries", type=int, default=None, help="dataset default")
    ap.add_argument("--max-eval-queries", type=int, default=None)
    ap.add_argument("--min-relevance", type=int, default=1, help="qrels grade that counts as a positive")
    ap.add_argument("--sample-seed", type=int, default=13, help="the training sample (all rows, all seeds)")
    ap.add_argument("--mine-seed", type=int, default=13, help="negforge's seed (all seeds)")
    ap.add_argument("--boot-seed", type=int, default=0)
    ap.add_argument("--llm-fraction", type=float, default=0.1, help="edit rows: share of queries asked")
    ap.add_argument("--llm-base-url", default=None, help="LLM rows: a running OpenAI-compatible server")
    ap.add_argument(
        "--judge-threshold",
        type=float,
        default=0.9,
        help="llm_judge p(yes) cut (0.9: llm_judge_leak.txt dev)",
    )
    ap.add_argument("--keep-models", action="store_true", help="keep checkpoints after evaluation")
    ap.add_argument(
        "--recipe", type=Path, default=None, help="negforge rows' base config (configs/scifact-ntuple.yaml)"
    )
    ap.add_argument("--x-set", action="append", default=[], help="row x: negforge override on nf")
    ap.add_argument("--x-config", default="n-tuple")
    ap.add_argument("--x-name", default="x-1")
    ap.add_argument("--estimate", action="store_true", help="print the time estimate per row and exit")
    ap.add_argument("--budget-min", type=float, default=90, help="minutes per invocation for the plan")
    ap.add_argument("--smoke", action="store_true", help="tiny: 24 train queries, 20 eval queries, 2 steps")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--versus", default=None, help="row the d column compares with (default: ST's best row)")
    args = ap.parse_args(argv)
    spec = DATASETS[args.dataset]
    if args.smoke:
        args.max_train_queries = args.max_train_queries or 24
        args.max_eval_queries = args.max_eval_queries or 20
        args.steps = args.steps or 2
        args.batch_size = 8
    args.max_positives = args.max_positives or spec.max_positives
    args.max_train_queries = args.max_train_queries or spec.max_queries
    args.seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    tag = f"quality-{args.dataset}-{args.split}" + ("-smoke" if args.smoke else "")
    args.out = (args.out or ROOT / "benchmarks" / "results" / tag).resolve()
    args.json = args.json or args.out.parent / f"{tag}.json"
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    rows = ["zero", *[r.strip() for r in args.rows.split(",") if r.strip() and r.strip() != "zero"]]
    if bad := set(rows) - set(ROWS):
        raise SystemExit(f"unknown rows: {', '.join(sorted(bad))} (rows: {', '.join(ROWS)})")
    args.out.mkdir(parents=True, exist_ok=True)
    prep = prepare(
        DATASETS[args.dataset], args.out, split=args.split, max_positives=args.max_positives,
        max_queries=args.max_train_queries, sample_seed=args.sample_seed, min_relevance=args.min_relevance,
    )  # fmt: skip
    if args.smoke:
        prep = corpus_slice(prep, args.out, args.max_eval_queries, extra_docs=300)
    if args.steps is None:
        args.steps = -(-prep.examples // args.batch_size)
    keep = ("dataset", "split", "steps", "batch_size", "learning_rate", "warmup_ratio", "max_seq_length",
            "max_positives", "max_train_queries", "max_eval_queries", "min_relevance", "sample_seed",
            "mine_seed", "llm_fraction", "judge_threshold", "recipe")  # fmt: skip
    settings = {k: str(v) if isinstance(v := getattr(args, k), Path) else v for k in keep}
    old = read_json(args.out / "settings.json")
    if old and any(old.get(k, v) != v for k, v in settings.items()):  # a key added later: its default
        raise SystemExit(f"{args.out} holds results made with other settings {old}; use another --out")
    write_json(args.out / "settings.json", settings)
    log(prep.describe)
    log(f"settings: {json.dumps(settings)}")

    from negforge.training.evaluate import load_split

    split = load_split(prep.eval_folder, prep.eval_split, args.max_eval_queries)
    docs = len(split.corpus_ids)
    est = estimate(args, prep, docs, rows)
    total = sum(est.values())
    log("estimate per row, all seeds (measured stage times under --out where they exist, else the SciFact "
        "reference times scaled by steps, examples and corpus size):")  # fmt: skip
    for r in rows:
        log(f"  {ROWS[r]:32} {est[r] / 60:7.1f} min" + ("  (LLM rows: CPU SmolLM2)" if r in LLM_ROWS else ""))
    log(f"  total {total / 60:.1f} min for {len(rows)} rows x {len(args.seeds)} seeds")
    for line in plan(est, args.budget_min):
        log(line)
    if args.estimate:
        return
    qrels = read_qrels(prep.eval_folder / "qrels" / f"{prep.eval_split}.tsv")
    for row in [r for r in RUN_ORDER if r in rows]:
        log(f"=== {ROWS[row]} ===")
        if row == "zero":
            from quality_rows import BASE_MODEL

            from negforge.mining.fingerprint import resolve_model_path

            base = str(resolve_model_path(BASE_MODEL))
            z = Row(args, "zero")
            z.stage(
                "eval",
                z.folder / "eval.json",
                lambda base=base: evaluate_per_query(base, split, qrels, args.max_seq_length),
            )
            continue
        for seed in args.seeds:
            Row(args, row).run_seed(prep, seed, lambda: split, qrels)
    res = collect(args)
    text = report(args, prep, res, len(split.queries), docs)
    print("\n" + text, flush=True)
    print(f"wall time this invocation: {time.perf_counter() - T0:.0f}s", flush=True)
    write_json(
        args.json,
        {"settings": settings, "sample": prep.describe, "table": text, "estimate_s": est,
         "rows": {r: {s: {k: v for k, v in ev.items() if k != "per_query"} for s, ev in e.items()}
                  for r, e in res.items()}},
    )  # fmt: skip
    log(f"wrote {args.json} (per-query scores stay in {args.out}/<row>/seed-S/eval.json)")


if __name__ == "__main__":
    sys.exit(main())
