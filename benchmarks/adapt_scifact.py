"""Domain adaptation from a corpus alone: does training on SmolLM2-written queries beat zero-shot MiniLM?

For each dataset (SciFact, then NFCorpus), no training label is read: SmolLM2-135M (managed CPU vLLM) writes
one query for each passage of a seeded sample (InPars generic few-shot template), and all-MiniLM-L6-v2 is
trained (MNRL, the quality benchmark's settings: batch 32, lr 2e-5, warmup 0.1, max_seq_length 128, one
epoch over each row's queries, seed 13) on

    A  generated queries, in-batch negatives only (every parseable, non-copy query)
    B  + consistency filter (Promptagator round trip: BM25 finds the passage in its top 10)
    C  + mined hard negatives (negforge's build on B's pairs: hybrid pool, default filters, n-tuple of 3)

and evaluated on the dataset's test split beside zero-shot (nDCG@10, MRR@10, Recall@100, deltas). Printed
too: queries written per second, the consistency pass rate, and ten example queries with their passages.

    python benchmarks/adapt_scifact.py                          # both datasets, 300 passages each
    python benchmarks/adapt_scifact.py --datasets scifact --passages 200
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = {
    "scifact": ROOT.parent / "shared" / "data" / "scifact",
    "nfcorpus": ROOT.parent / "shared" / "data" / "nfcorpus",
}
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BATCH, LR, WARMUP, MAX_LEN, SEED = 32, 2e-5, 0.1, 128, 13


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def train_on(folder: Path, config: str, out: Path, rows: int) -> Path:
    """One epoch over `rows` training rows (MNRL); reuses a finished checkpoint in `out`."""
    from negforge.training.train import TrainConfig, train

    if (out / "negforge_checkpoint.json").is_file():
        return out
    steps = max(1, math.ceil(rows / BATCH))
    cfg = TrainConfig(dataset=folder, config=config, model=MODEL, loss="mnrl", batch_size=BATCH, max_steps=steps,
                      learning_rate=LR, warmup_ratio=WARMUP, seed=SEED, max_seq_length=MAX_LEN, output_dir=out)  # fmt: skip
    return train(cfg).output_dir


def pairs_dataset(queries: list, corpus, folder: Path) -> Path:
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_dict(
        {"anchor": [q.text for q in queries], "positive": [corpus.texts[q.passage_row] for q in queries]}
    )
    DatasetDict({"pair": ds}).save_to_disk(str(folder))
    return folder


def run_dataset(name: str, args: argparse.Namespace) -> dict:
    from negforge.adapt.consistency import apply_consistency
    from negforge.adapt.inputs import load_corpus_only, sample_passages
    from negforge.adapt.pipeline import build_config, write_beir
    from negforge.adapt.querygen import dedupe_queries, examples_for, generate_queries
    from negforge.config import load_config
    from negforge.generators.llm_stage import LLMEndpoint, start_llm
    from negforge.mining.bm25 import BM25Miner
    from negforge.mining.fingerprint import texts_digest
    from negforge.pipeline import run
    from negforge.training.evaluate import evaluate

    src, out = DATA[name], args.out / name
    out.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, [
        "data.format=corpus", f"data.path={src}", f"run_name=adapt-{name}", f"output.dir={out / 'runs'}",
        f"cache_dir={args.cache_dir}", "sources.llm.model=smollm2", f"sources.llm.server.python={args.vllm_python}",
        f"sources.llm.concurrency={args.concurrency}", f"adapt.generate.passages={args.passages}",
        "selection.num_negatives=3", "output.formats=[rich,n-tuple]",
    ])  # fmt: skip
    corpus, _, _ = load_corpus_only(cfg.data)
    rows = sample_passages(corpus, cfg.adapt.generate.passages, cfg.seed)
    log(f"{name}: {len(corpus)} passages; writing queries for {len(rows)}")
    llm = start_llm(cfg)
    try:
        t0 = time.perf_counter()
        gen = generate_queries(corpus, rows, cfg.adapt.generate, LLMEndpoint.from_stage(llm), seed=cfg.seed,
                               examples=examples_for(cfg.adapt.generate))  # fmt: skip
        gen_s = time.perf_counter() - t0
    finally:
        llm.close()
    from negforge.text_identity import norm_text

    valid, seen = [], set()  # row A: every query that passed the checks, once per text
    for q in gen.kept():
        if norm_text(q.text) not in seen:
            seen.add(norm_text(q.text))
            valid.append(q)
    log(
        f"  {len(gen.queries)} written in {gen_s:.0f} s ({gen.from_store} from the store); statuses {dict(gen.counts)}"
    )
    folder_a = pairs_dataset(valid, corpus, out / "data-a")
    bm25 = BM25Miner(cfg.sources.bm25, cfg.cache_path)
    bm25.prepare(corpus.texts, texts_digest(corpus.texts))
    rep = apply_consistency(gen.queries, cfg.adapt.consistency, corpus, bm25)
    dedupe_queries(gen.queries)
    kept = gen.kept()
    log(
        f"  consistency (bm25 top {cfg.adapt.consistency.k}): {len(kept)}/{rep.judged} kept ({rep.pass_rate:.1%})"
    )
    folder_b = pairs_dataset(kept, corpus, out / "data-b")
    write_beir(out / "generated", corpus, kept)
    build = run(build_config(cfg, out / "generated"))
    ntuple_rows = build.manifest["counts"]["rows"].get("n-tuple", 0)
    log(f"  mined: {ntuple_rows} n-tuple rows")

    models = {"zero-shot": MODEL}
    for label, folder, config, n in (("A", folder_a, "pair", len(valid)), ("B", folder_b, "pair", len(kept)),
                                     ("C", build.run_dir, "n-tuple", len(kept))):  # fmt: skip
        t0 = time.perf_counter()
        models[label] = str(train_on(folder, config, out / f"model-{label}", n))
        log(f"  trained {label} in {time.perf_counter() - t0:.0f} s")
    evals = {}
    for label, model in models.items():
        evals[label] = evaluate(
            model, src, "test", cache_dir=args.cache_dir, batch_size=64, max_seq_length=MAX_LEN
        )
        log(f"  {label}: nDCG@10 {evals[label]['ndcg@10']:.4f}")
    examples = [{"query": q.text, "passage": corpus.texts[q.passage_row][:200], "rank": q.consistency_rank}
                for q in kept[:10]]  # fmt: skip
    return {
        "dataset": name, "corpus": len(corpus), "passages": len(rows), "written": len(gen.queries),
        "gen_seconds": gen_s, "from_store": gen.from_store, "queries_per_s": len(gen.queries) / gen_s if gen_s else None,
        "statuses": dict(gen.counts), "valid": len(valid), "kept": len(kept), "pass_rate": rep.pass_rate,
        "completion_tokens": gen.completion_tokens, "evals": evals, "examples": examples,
    }  # fmt: skip


def print_dataset(r: dict) -> None:
    names = {"zero-shot": "zero-shot MiniLM", "A": "A generated queries, in-batch only",
             "B": "B + consistency filter", "C": "C + mined hard negatives"}  # fmt: skip
    z = r["evals"]["zero-shot"]
    print(
        f"\n=== {r['dataset']}: {r['corpus']} passages, test split {z['queries']} queries; no training label read ==="
    )
    qps = f"{r['queries_per_s']:.2f}" if r["queries_per_s"] and not r["from_store"] else "n/a (from store)"
    print(f"queries written: {r['written']} for {r['passages']} passages, {qps} queries/s, "
          f"{r['completion_tokens']} completion tokens; statuses {r['statuses']}")  # fmt: skip
    print(
        f"valid (parseable, not a copy): {r['valid']}; consistency pass rate {r['pass_rate']:.1%} -> {r['kept']} kept"
    )
    hdr = (
        f"{'row':38} {'train rows':>10} {'nDCG@10':>9} {'Δ':>8} {'MRR@10':>8} {'Δ':>8} {'R@100':>8} {'Δ':>8}"
    )
    print(hdr)
    print("-" * len(hdr))
    rows = {"zero-shot": 0, "A": r["valid"], "B": r["kept"], "C": r["kept"]}
    for k, e in r["evals"].items():
        d = [e[m] - z[m] for m in ("ndcg@10", "mrr@10", "recall@100")]
        print(f"{names[k]:38} {rows[k]:>10} {e['ndcg@10']:>9.4f} {d[0]:>+8.4f} {e['mrr@10']:>8.4f} {d[1]:>+8.4f} "
              f"{e['recall@100']:>8.4f} {d[2]:>+8.4f}")  # fmt: skip
    best = max((k for k in r["evals"] if k != "zero-shot"), key=lambda k: r["evals"][k]["ndcg@10"])
    gain = 100 * (r["evals"][best]["ndcg@10"] - z["ndcg@10"])
    print(f"best row {best}: {gain:+.2f} nDCG@10 points vs zero-shot (target on SciFact: >= +1.5)")
    print("example kept queries (rank of their passage under BM25):")
    for ex in r["examples"]:
        print(f"  [{ex['rank']}] {ex['query']!r}  <-  {ex['passage'][:110]!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", nargs="+", default=["scifact", "nfcorpus"], choices=sorted(DATA))
    ap.add_argument("--passages", type=int, default=300, help="passages sampled per dataset (one query each)")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path("/tmp/negforge-adapt-bench"))
    ap.add_argument("--cache-dir", default="~/.cache/negforge")
    ap.add_argument("--vllm-python", default=str(ROOT / ".venv-vllm" / "bin" / "python"))
    args = ap.parse_args()
    t0 = time.perf_counter()
    results = [run_dataset(d, args) for d in args.datasets]
    for r in results:
        print_dataset(r)
    print(f"\nTotal {time.perf_counter() - t0:.0f} s")
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
