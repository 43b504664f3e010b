"""Does negforge's data train a better retriever? MiniLM fine-tuned on SciFact train, scored on SciFact test.

Rows (every one trained from the same base MiniLM, same seed, batch size, learning rate, warmup, loss
MultipleNegativesRankingLoss with the no-duplicates sampler, and the SAME number of optimizer steps; every
training and evaluation, zero-shot included, at the same max_seq_length):

    zero-shot  all-MiniLM-L6-v2 as shipped
    a          in-batch negatives only: (anchor, positive) pairs
    b          sentence-transformers `util.mine_hard_negatives` at its documented recommended settings
               (NV-Retriever TopK-PercPos: relative_margin=0.05, sampling_strategy="top", use_faiss=True),
               5 negatives per (query, positive), triplets
    c          negforge hybrid BM25 + dense with the filter stack of configs/scifact-filtered.yaml, 5 negatives
    d          (c) + one SmolLM2 rewrite negative for a fraction of the queries (quotas mined 4 + llm 1)
    e          (c) re-mined once with the checkpoint trained in (c) (ANCE refresh), base MiniLM trained on it
    f          negforge dense-only at the leak benchmark's embedding threshold (added after a-e were seen)
    bn         (b) written as n-tuples (anchor, positive, 5 negatives): sentence-transformers' best shape too
    g          configs/scifact-ntuple.yaml, chosen on the dev slice (--dev-fraction), never on test
    x          an experiment: --x-set overrides on (c), --x-config, --x-name (a folder per experiment)

Every stage is resumable: a row whose dataset / checkpoint / eval JSON already exists under --out is skipped.

    python benchmarks/quality_scifact.py                                   # the full benchmark
    # choose settings on a held-out 20% of train (the `test` split becomes that slice):
    python benchmarks/quality_scifact.py --dev-fraction 0.2 --out benchmarks/results/quality_dev \
        --json benchmarks/results/quality_dev.json --rows x --x-name x-deep --x-config n-tuple \
        --x-set selection.depth=100
    python benchmarks/quality_scifact.py --max-train-queries 30 --max-test-queries 20 --steps 3   # smoke
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

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "scifact"
BASE_CONFIG = ROOT / "configs" / "scifact-filtered.yaml"
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CACHE_DIR = "~/.cache/negforge"
NUM_NEGATIVES = 5
ROW_NAMES = {
    "zero": "zero-shot MiniLM",
    "a": "(a) in-batch only",
    "b": "(b) ST mine_hard_negatives",
    "c": "(c) negforge hybrid+filters",
    "d": "(d) negforge + LLM negs",
    "e": "(e) (c) + ANCE refresh",
    "f": "(f) negforge dense, leak-tuned",
    "bn": "(bn) ST mine, n-tuple",
    "g": "(g) negforge n-tuple (dev)",
    "x": "(x) experiment (--x-set)",
}
# mining dependencies first, the slow LLM row last
RUN_ORDER = ["zero", "b", "bn", "c", "e", "a", "f", "g", "x", "d"]
# row g: configs/scifact-ntuple.yaml, chosen on the dev slice of train (--dev-fraction 0.2; its header
# lists the experiments), trained on its n-tuple config
ROW_G: dict[str, Any] = {"config": "n-tuple", "base": ROOT / "configs" / "scifact-ntuple.yaml"}
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_data import T0, log, read_json, write_json  # noqa: E402  (shared with benchmarks/quality.py)

# ---------------------------------------------------------------- mining


def negforge_config(args: argparse.Namespace, row: str) -> Any:
    from negforge.config import load_config

    overrides = [
        f"run_name=quality-{args.x_name if row == 'x' else row}",
        f"data.path={args.data}",
        "data.split=train",
        f"cache_dir={CACHE_DIR}",
        f"output.dir={args.out / 'runs'}",
        "output.formats=[rich, triplet, n-tuple]",
        f"selection.num_negatives={NUM_NEGATIVES}",
        f"sources.dense.max_seq_length={args.max_seq_length}",
        f"seed={args.seed}",
    ]
    if args.max_train_queries:
        overrides.append(f"data.max_queries={args.max_train_queries}")
    if row == "d":
        overrides += [
            "sources.llm.enabled=true",
            "sources.llm.count=1",
            f"sources.llm.fraction={args.llm_fraction}",
            "sources.llm.max_tokens=450",
            "sources.llm.mode=rewrite",
            "mix.quotas={mined: 4, llm: 1}",
            "mix.fallback=[mined]",
        ]
    if row == "f":
        # added after rows a-e: dense pool scored by dense (as sentence-transformers does), and the embedding
        # filter at max_positive_sim 0.6, the value benchmarks/false_negative_leak.py chose on its train dev half
        overrides += [
            "sources.bm25.enabled=false",
            "filters=[{type: sanity}, {type: duplicate}, {type: embedding, max_positive_sim: 0.6}]",
            "mix.quotas={}",
            "curriculum.enabled=false",
        ]
    if row == "x":
        overrides += list(args.x_set)
    return load_config(ROW_G["base"] if row == "g" else BASE_CONFIG, overrides)


def make_dev_split(data: Path, out: Path, fraction: float, seed: int) -> Path:
    """A BEIR folder whose `test` split is a seeded slice of SciFact *train* (benchmarks/quality_data.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from quality_data import make_dev_split as split

    folder = split(data, out, fraction, seed)
    log(f"dev split: {fraction:g} of train held out as `test` in {folder}")
    return folder


def training_pairs(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[str]]:
    """(query, positive) rows and the corpus exactly as negforge reads them (same queries, same texts)."""
    from negforge.config import DataConfig
    from negforge.sources import load_input

    inp = load_input(
        DataConfig(format="beir", path=str(args.data), split="train", max_queries=args.max_train_queries)
    )
    pairs = [(q.text, inp.corpus.texts[r]) for q in inp.queries for r in q.positive_rows]
    return pairs, list(inp.corpus.texts)


def save_dataset(ds: Any, config: str, folder: Path) -> Path:
    from datasets import DatasetDict

    folder.parent.mkdir(parents=True, exist_ok=True)
    DatasetDict({config: ds}).save_to_disk(str(folder))
    return folder


def mine_pairs(args: argparse.Namespace, folder: Path) -> dict:
    from datasets import Dataset

    pairs, _ = training_pairs(args)
    ds = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    save_dataset(ds, "pairs", folder / "dataset")
    return {"dataset": str(folder / "dataset"), "config": "pairs", "rows": ds.num_rows}


def mine_st(args: argparse.Namespace, folder: Path, output_format: str = "triplet") -> dict:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, util

    from negforge.mining.fingerprint import resolve_model_path

    pairs, corpus = training_pairs(args)
    ds = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    model = SentenceTransformer(str(resolve_model_path(BASE_MODEL)), device="cpu", local_files_only=True)
    model.max_seq_length = args.max_seq_length
    settings = {
        "relative_margin": 0.05,
        "num_negatives": NUM_NEGATIVES,
        "sampling_strategy": "top",
        "use_faiss": True,
    }
    out = util.mine_hard_negatives(
        ds, model, corpus=corpus, output_format=output_format, batch_size=64, verbose=True, **settings
    )
    save_dataset(out, output_format, folder / "dataset")
    return {
        "dataset": str(folder / "dataset"),
        "config": output_format,
        "rows": out.num_rows,
        "settings": settings,
    }


def mine_negforge(args: argparse.Namespace, row: str, folder: Path, checkpoint: Path | None = None) -> dict:
    from negforge import progress
    from negforge.pipeline import run

    progress.set_enabled(False)
    cfg = negforge_config(args, "c" if row == "e" else row)
    if checkpoint is not None:
        from negforge.refresh import refresh

        res = refresh(cfg, checkpoint, run_name=f"quality-{row}", overwrite=True)
    else:
        res = run(cfg, overwrite=True)
    from datasets import load_from_disk

    config = {"x": args.x_config, "g": ROW_G["config"]}.get(row, "triplet")
    n = load_from_disk(str(res.dataset_dir))[config].num_rows
    m = res.manifest
    return {
        "dataset": str(res.dataset_dir),
        "config": config,
        "rows": n,
        "run_dir": str(res.run_dir),
        "counts": m.get("counts"),
        "timings": m.get("timings"),
        "llm": m.get("llm") or m.get("generation"),
        "llm_fraction": args.llm_fraction if row == "d" else None,
        "overrides": {"x": list(args.x_set), "g": [f"config {ROW_G['base'].name}"]}.get(row),
    }


# ---------------------------------------------------------------- train / eval


def train_row(args: argparse.Namespace, mined: dict, folder: Path) -> dict:
    from negforge.training.train import TrainConfig, train

    cfg = TrainConfig(
        dataset=Path(mined["dataset"]),
        config=mined["config"],
        model=BASE_MODEL,
        loss="mnrl",
        batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=args.learning_rate,
        warmup_ratio=args.warmup_ratio,
        seed=args.seed,
        max_seq_length=args.max_seq_length,
        output_dir=folder / "model",
    )
    res = train(cfg)
    return {"checkpoint": str(res.output_dir), "steps": res.steps, "stages": res.info["stages"]}


def eval_row(args: argparse.Namespace, model: str, split: Any) -> dict:
    from negforge.training.evaluate import evaluate

    return dict(
        evaluate(model, split, cache_dir=CACHE_DIR, batch_size=64, max_seq_length=args.max_seq_length)
    )


def do_row(args: argparse.Namespace, row: str, split_fn: Any) -> dict:
    folder = args.out / (args.x_name if row == "x" else row)
    folder.mkdir(parents=True, exist_ok=True)
    times = read_json(folder / "timings.json") or {}

    def stage(name: str, path: Path, fn: Any) -> Any:
        done = read_json(path)
        if done is not None:
            log(f"{row}: {name} already done ({path}), skipped")
            return done
        log(f"{row}: {name} ...")
        t = time.perf_counter()
        out = fn()
        times[name] = round(time.perf_counter() - t, 1)
        write_json(path, out)
        write_json(folder / "timings.json", times)
        log(f"{row}: {name} done in {times[name]:.1f}s")
        return out

    if row == "zero":
        from negforge.mining.fingerprint import resolve_model_path

        base = str(resolve_model_path(BASE_MODEL))
        ev = stage("eval", folder / "eval.json", lambda: eval_row(args, base, split_fn()))
        return {"row": row, "eval": ev, "timings": times}
    if row == "a":
        mined = stage("mine", folder / "mined.json", lambda: mine_pairs(args, folder))
    elif row == "b":
        mined = stage("mine", folder / "mined.json", lambda: mine_st(args, folder))
    elif row == "bn":
        mined = stage("mine", folder / "mined.json", lambda: mine_st(args, folder, "n-tuple"))
    elif row == "e":
        ckpt_c = args.out / "c" / "model"
        if not (ckpt_c / "negforge_checkpoint.json").is_file():
            raise SystemExit("row e needs row c's checkpoint: run --rows c first")
        mined = stage("mine", folder / "mined.json", lambda: mine_negforge(args, row, folder, ckpt_c))
    else:
        mined = stage("mine", folder / "mined.json", lambda: mine_negforge(args, row, folder))
    log(f"{row}: {mined['rows']} training rows ({mined['config']})")
    trained = stage("train", folder / "train.json", lambda: train_row(args, mined, folder))
    ev = stage("eval", folder / "eval.json", lambda: eval_row(args, trained["checkpoint"], split_fn()))
    log(f"{row}: nDCG@10 {ev['ndcg@10']:.4f}  MRR@10 {ev['mrr@10']:.4f}  R@100 {ev['recall@100']:.4f}")
    return {"row": row, "mined": mined, "train": trained, "eval": ev, "timings": times}


# ---------------------------------------------------------------- report


def table(results: dict[str, dict], args: argparse.Namespace) -> str:
    metrics = ("ndcg@10", "mrr@10", "recall@100")
    z = results.get("zero", {}).get("eval")
    b = results.get("b", {}).get("eval")
    head = f"{'row':30} {'rows':>6} {'steps':>5}"
    for m in metrics:
        head += f" {m:>10}"
    head += (
        f" {'dNDCG/zero':>10} {'dNDCG/b':>8} {'dMRR/zero':>9} {'dMRR/b':>7} {'dR100/zero':>10} {'dR100/b':>8}"
    )
    head += f" {'mine s':>7} {'train s':>7} {'eval s':>7}"
    lines = [head, "-" * len(head)]
    experiments: list[str] = []
    for row in [*ROW_NAMES, *sorted(r for r in results if r not in ROW_NAMES)]:
        if row == "x":
            continue
        r = results.get(row)
        if not r or "eval" not in r:
            lines.append(f"{ROW_NAMES[row]:30} (not run)")
            continue
        if row not in ROW_NAMES:
            ov = (r.get("mined") or {}).get("overrides") or []
            experiments.append(f"  {row}: {r.get('mined', {}).get('config')} {' '.join(ov)}")
        ev = r["eval"]
        line = f"{ROW_NAMES.get(row, row):30} {r.get('mined', {}).get('rows', '-')!s:>6} "
        line += f"{r.get('train', {}).get('steps', 0):>5}"
        for m in metrics:
            line += f" {100 * ev[m]:>10.2f}"

        def d(ref: dict | None, m: str, w: int, ev: dict = ev) -> str:
            return f" {100 * (ev[m] - ref[m]):>+{w}.2f}" if ref else f" {'-':>{w}}"

        line += d(z, "ndcg@10", 10) + d(b, "ndcg@10", 8) + d(z, "mrr@10", 9) + d(b, "mrr@10", 7)
        line += d(z, "recall@100", 10) + d(b, "recall@100", 8)
        t = r.get("timings", {})
        line += f" {t.get('mine', 0):>7.0f} {t.get('train', 0):>7.0f} {t.get('eval', 0):>7.0f}"
        lines.append(line)
    if experiments:
        lines += ["experiments:", *experiments]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality_work")
    ap.add_argument(
        "--steps",
        type=int,
        default=None,
        help="optimizer steps, the same for every row (default: one epoch over the (query, positive) pairs)",
    )
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=2e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--max-train-queries", type=int, default=None)
    ap.add_argument("--max-test-queries", type=int, default=None)
    ap.add_argument("--llm-fraction", type=float, default=0.3)
    ap.add_argument(
        "--rows", default="a,b,bn,c,d,e,g", help="subset of a,b,bn,c,d,e,f,g,x (zero-shot always runs)"
    )
    ap.add_argument(
        "--dev-fraction",
        type=float,
        default=None,
        help="tune instead of test: hold out this fraction of SciFact train as the evaluation split",
    )
    ap.add_argument(
        "--x-set", action="append", default=[], help="row x: a negforge config override (repeatable)"
    )
    ap.add_argument("--x-config", default="triplet", help="row x: dataset config to train on")
    ap.add_argument("--x-name", default="x-1", help="row x: its folder under --out and its label")
    ap.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "quality_scifact.json")
    args = ap.parse_args()
    args.out = args.out.resolve()
    args.data = args.data.resolve()
    if args.dev_fraction:
        args.data = make_dev_split(args.data, args.out, args.dev_fraction, args.seed)
    wanted = {"zero", *[r.strip() for r in args.rows.split(",") if r.strip()]}
    if bad := wanted - set(ROW_NAMES):
        raise SystemExit(f"unknown rows: {', '.join(sorted(bad))}")

    if args.steps is None:
        n_pairs = len(training_pairs(args)[0])
        args.steps = -(-n_pairs // args.batch_size)
        log(f"--steps defaults to one epoch over the {n_pairs} (query, positive) pairs: {args.steps} steps")
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    settings_path = args.out / "settings.json"
    old = read_json(settings_path)
    keep = (
        "steps",
        "batch_size",
        "learning_rate",
        "warmup_ratio",
        "seed",
        "max_seq_length",
        "max_train_queries",
        "max_test_queries",
        "dev_fraction",
    )  # llm_fraction only changes row d and is kept in its mined.json
    if old and any(old.get(k) != settings.get(k) for k in keep):
        raise SystemExit(
            f"{args.out} holds results made with other settings ({settings_path}); use another --out"
        )
    write_json(settings_path, settings)
    log(f"settings: {json.dumps({k: settings[k] for k in keep})}")
    log(f"max_seq_length={args.max_seq_length} for training AND evaluation of every row, zero-shot included")

    split_cache: dict[str, Any] = {}

    def split_fn() -> Any:
        if "s" not in split_cache:
            from negforge.training.evaluate import load_split

            split_cache["s"] = load_split(args.data, "test", args.max_test_queries)
        return split_cache["s"]

    results: dict[str, dict] = {}
    for row in RUN_ORDER:
        if row in wanted:
            log(f"=== row {ROW_NAMES[row]} ===")
            results[row] = do_row(args, row, split_fn)
    # rows run earlier (another --rows) still belong in the table
    if "x" in results:
        results[args.x_name] = results.pop("x")
    extra = sorted(f.name for f in args.out.glob("x-*") if (f / "eval.json").is_file())
    for row in [*ROW_NAMES, *extra]:
        if row not in results and (args.out / row / "eval.json").is_file():
            f = args.out / row
            results[row] = {
                "row": row, "eval": read_json(f / "eval.json"), "mined": read_json(f / "mined.json") or {},
                "train": read_json(f / "train.json") or {}, "timings": read_json(f / "timings.json") or {},
            }  # fmt: skip

    wall = time.perf_counter() - T0
    print(flush=True)
    print(
        f"SciFact {'dev slice of train' if args.dev_fraction else 'test'} ({split_fn().queries.__len__()} queries, {len(split_fn().corpus_ids)} docs); "
        f"MiniLM-L6 fine-tuned on SciFact train; metrics x100; deltas in points",
        flush=True,
    )
    print(
        f"shared: seed={args.seed} steps={args.steps} batch={args.batch_size} lr={args.learning_rate} "
        f"warmup_ratio={args.warmup_ratio} loss=MNRL(no-duplicates sampler) "
        f"max_seq_length={args.max_seq_length} (train and eval, all rows incl. zero-shot)",
        flush=True,
    )
    d_mined = results.get("d", {}).get("mined") or {}
    if d_mined:
        gen = (d_mined.get("llm") or {}).get("counts", {})
        print(
            f"row d: llm.fraction={d_mined.get('llm_fraction')} count=1 mode=rewrite max_tokens=450, "
            f"quotas mined 4 + llm 1; requests={gen.get('requests')} valid={gen.get('valid')}",
            flush=True,
        )
    print(
        "rows: (query, positive) pairs, triplets or n-tuples as mined; every row trains the same number of "
        "steps, so each sees steps*batch rows (an n-tuple row carries 5 negatives, a triplet 1)",
        flush=True,
    )
    print(table(results, args), flush=True)
    print(f"total wall time this invocation: {wall:.0f}s", flush=True)
    evals = {r: v["eval"] for r, v in results.items() if "eval" in v}
    if evals:
        best = max(
            (r for r in evals if r in ("c", "d", "e", "f", "g") or r.startswith("x-")),
            key=lambda r: evals[r]["ndcg@10"],
            default=None,
        )
        if best and "b" in evals and "zero" in evals:
            gb = 100 * (evals[best]["ndcg@10"] - evals["b"]["ndcg@10"])
            gz = 100 * (evals[best]["ndcg@10"] - evals["zero"]["ndcg@10"])
            ok = gb >= 1.0 and gz >= 3.0
            print(
                f"target (best negforge row >= b + 1.0 and >= zero-shot + 3.0 nDCG@10): best={best} "
                f"{gb:+.2f} vs b, {gz:+.2f} vs zero-shot -> {'MET' if ok else 'NOT MET'}",
                flush=True,
            )
            if "bn" in evals:
                gn = 100 * (evals[best]["ndcg@10"] - evals["bn"]["ndcg@10"])
                print(f"same shape as sentence-transformers at its best (bn, n-tuple): {gn:+.2f}", flush=True)
    write_json(args.json, {"settings": settings, "wall_seconds": round(wall, 1), "rows": results})
    log(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
