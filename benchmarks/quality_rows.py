"""What each row of benchmarks/quality.py mines, how it trains, and how a checkpoint is scored per query."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
CACHE_DIR = "~/.cache/negforge"
NUM_NEGATIVES = 5
RECIPE = (
    ROOT / "configs" / "scifact-ntuple.yaml"
)  # negforge's dev-chosen recipe (SciFact), start for NFCorpus

ROWS = {
    "zero": "zero-shot MiniLM",
    "inbatch": "in-batch only",
    "st": "ST mine_hard_negatives, triplet",
    "st-nt": "ST mine_hard_negatives, n-tuple",
    "nf": "negforge recipe (n-tuple)",
    "rules": "nf + rule edits (1 of 5)",
    "edit": "nf + rules + LLM edit negs",
    "judge": "edit + llm_judge filter",
    "relabel": "judge, relabel instead of drop",
    "ance": "nf + ANCE refresh (2x steps)",
    "x": "experiment (--x-set on nf)",
}
ST_ROWS = ("st", "st-nt")
LLM_ROWS = ("edit", "judge", "relabel")
# rows whose mined data depends on the training seed (mined again per seed)
SEEDED_MINING = ("ance",)


def negforge_config(args: Any, row: str, train_folder: Path) -> Any:
    """The negforge RunConfig of a negforge row; seeded by --mine-seed, never by the training seed."""
    from negforge.config import LLMJudgeFilterConfig, RunConfig, load_config

    name = args.x_name if row == "x" else row
    overrides = [
        f"run_name=quality-{args.dataset}-{args.split}-{name}",
        f"data.path={train_folder}",
        "data.split=train",
        f"data.min_relevance={args.min_relevance}",
        f"cache_dir={CACHE_DIR}",
        f"output.dir={args.out / 'runs'}",
        "output.formats=[rich, triplet, n-tuple]",
        f"selection.num_negatives={NUM_NEGATIVES}",
        f"sources.dense.max_seq_length={args.max_seq_length}",
        f"seed={args.mine_seed}",
    ]
    if row == "rules":
        overrides += [
            "sources.rules.enabled=true",
            "sources.rules.count=1",
            "mix.quotas={dense: 2, bm25: 2, rules: 1}",
            "mix.fallback=[dense, bm25]",
        ]
    if row in LLM_ROWS:
        overrides += [
            "sources.rules.enabled=true",
            "sources.rules.count=1",
            "sources.llm.enabled=true",
            "sources.llm.mode=edit",
            "sources.llm.count=1",
            f"sources.llm.fraction={args.llm_fraction}",
            "sources.llm.max_tokens=200",
            f"sources.llm.server.python={ROOT / '.venv-vllm' / 'bin' / 'python'}",
            "mix.quotas={dense: 2, bm25: 1, rules: 1, llm: 1}",
            "mix.fallback=[dense, bm25, rules]",
        ]
        if args.llm_base_url:
            overrides.append(f"sources.llm.base_urls=[{args.llm_base_url}]")
    if row == "x":
        overrides += list(args.x_set)
    cfg = load_config(getattr(args, "recipe", None) or RECIPE, overrides)
    if row in ("judge", "relabel"):
        judge = LLMJudgeFilterConfig(
            threshold=args.judge_threshold, on_false_negative="relabel" if row == "relabel" else "drop"
        )
        data = cfg.model_dump(mode="json")
        data["filters"] = [*data["filters"], judge.model_dump(mode="json")]
        cfg = RunConfig.model_validate(data)
    return cfg


def training_pairs(folder: Path, min_relevance: int) -> tuple[list[tuple[str, str]], list[str]]:
    """(query, positive) texts and the corpus exactly as negforge reads the folder."""
    from negforge.config import DataConfig
    from negforge.sources import load_input

    inp = load_input(DataConfig(format="beir", path=str(folder), split="train", min_relevance=min_relevance))
    pairs = [(q.text, inp.corpus.texts[r]) for q in inp.queries for r in q.positive_rows]
    return pairs, list(inp.corpus.texts)


def _save(ds: Any, config: str, folder: Path) -> str:
    from datasets import DatasetDict

    folder.parent.mkdir(parents=True, exist_ok=True)
    DatasetDict({config: ds}).save_to_disk(str(folder))
    return str(folder)


def mine_pairs(args: Any, train_folder: Path, folder: Path) -> dict:
    from datasets import Dataset

    pairs, _ = training_pairs(train_folder, args.min_relevance)
    ds = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    return {"dataset": _save(ds, "pairs", folder / "dataset"), "config": "pairs", "rows": ds.num_rows}


def mine_st(args: Any, train_folder: Path, folder: Path, output_format: str) -> dict:
    """sentence-transformers' util.mine_hard_negatives at its documented recommended settings."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, util

    from negforge.mining.fingerprint import resolve_model_path

    pairs, corpus = training_pairs(train_folder, args.min_relevance)
    ds = Dataset.from_dict({"anchor": [a for a, _ in pairs], "positive": [p for _, p in pairs]})
    model = SentenceTransformer(str(resolve_model_path(BASE_MODEL)), device="cpu", local_files_only=True)
    model.max_seq_length = args.max_seq_length
    settings = {"relative_margin": 0.05, "num_negatives": NUM_NEGATIVES, "sampling_strategy": "top"}
    settings["use_faiss"] = True
    out = util.mine_hard_negatives(
        ds, model, corpus=corpus, output_format=output_format, batch_size=64, verbose=False, **settings
    )
    path = _save(out, output_format, folder / "dataset")
    return {"dataset": path, "config": output_format, "rows": out.num_rows, "settings": settings}


def mine_negforge(
    args: Any, row: str, train_folder: Path, folder: Path, checkpoint: Path | None = None
) -> dict:
    from datasets import load_from_disk

    from negforge import progress
    from negforge.pipeline import run

    progress.set_enabled(False)
    cfg = negforge_config(args, "nf" if row == "ance" else row, train_folder)
    if checkpoint is not None:
        from negforge.training.refresh import refresh

        res = refresh(cfg, checkpoint, run_name=f"{cfg.run_name}-{folder.parent.name}", overwrite=True)
    else:
        res = run(cfg, overwrite=True)
    config = args.x_config if row == "x" else "n-tuple"
    m = res.manifest
    return {
        "dataset": str(res.dataset_dir),
        "config": config,
        "rows": load_from_disk(str(res.dataset_dir))[config].num_rows,
        "run_dir": str(res.run_dir),
        "counts": m.get("counts"),
        "timings": m.get("timings"),
        "llm": m.get("llm") or m.get("generation"),
        "overrides": list(args.x_set) if row == "x" else None,
    }


def train_row(args: Any, mined: dict, out_dir: Path, seed: int, steps: int) -> dict:
    from negforge.training.train import TrainConfig, train

    cfg = TrainConfig(
        dataset=Path(mined["dataset"]),
        config=mined["config"],
        model=BASE_MODEL,
        loss="mnrl",
        batch_size=args.batch_size,
        max_steps=steps,
        learning_rate=args.learning_rate,
        warmup_ratio=args.warmup_ratio,
        seed=seed,
        max_seq_length=args.max_seq_length,
        output_dir=out_dir,
    )
    res = train(cfg)
    return {"checkpoint": str(res.output_dir), "steps": res.steps, "seed": seed}


def evaluate_per_query(model: str | Path, split: Any, qrels: dict, max_seq_length: int) -> dict:
    """negforge's evaluate (the ST evaluator's aggregates) plus per-query metrics from the same encodings.

    Queries are encoded exactly as the evaluator does (encode_query, batch 64, the precision evaluate
    chose); the corpus embeddings are the cached ones evaluate used; ranking is exact cosine, top 100.
    """
    import numpy as np
    import torch
    from quality_stats import per_query_metrics, rank_corpus
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.util import cos_sim

    from negforge.mining.encoders import TORCH_DTYPES, pick_device
    from negforge.mining.fingerprint import resolve_model_path
    from negforge.training.evaluate import _corpus_embeddings, evaluate

    ev = dict(evaluate(model, split, cache_dir=CACHE_DIR, batch_size=64, max_seq_length=max_seq_length))
    path = resolve_model_path(str(model))
    st = SentenceTransformer(str(path), device=pick_device(), local_files_only=True)
    st.max_seq_length = max_seq_length
    dtype = ev["backend"].split("-", 1)[1]
    if dtype != "fp32":
        st.to(getattr(torch, TORCH_DTYPES[dtype]))
    corpus = _corpus_embeddings(
        st,
        ev["fingerprint"],
        split.corpus_texts,
        Path(CACHE_DIR).expanduser(),
        max_seq_length,
        64,
        ev["backend"],
        ev["corpus_prompt"],
    )
    if corpus is None:
        corpus = st.encode_document(
            split.corpus_texts, batch_size=64, convert_to_tensor=True, prompt=ev["corpus_prompt"] or None
        )
    qids = list(split.queries)
    q = st.encode_query(
        [split.queries[i] for i in qids],
        batch_size=64,
        convert_to_tensor=True,
        prompt=ev["query_prompt"] or None,
    )
    scores = cos_sim(q.float(), corpus.float()).cpu().numpy().astype(np.float64)
    ranked = dict(zip(qids, rank_corpus(scores, split.corpus_ids, 100), strict=True))
    per_q = per_query_metrics(ranked, {i: qrels[i] for i in qids})
    means = {
        k: float(np.mean([per_q[i][k] for i in qids])) for k in ("ndcg@10_binary", "mrr@10", "recall@100")
    }
    ev["check"] = {
        "ndcg@10_binary_vs_evaluator": means["ndcg@10_binary"] - ev["ndcg@10"],
        "mrr@10_vs_evaluator": means["mrr@10"] - ev["mrr@10"],
        "recall@100_vs_evaluator": means["recall@100"] - ev["recall@100"],
    }
    ev["evaluator"] = {k: ev.pop(k) for k in ("ndcg@10", "mrr@10", "recall@100")}
    for k in ("ndcg@10", "mrr@10", "recall@100"):
        ev[k] = float(np.mean([per_q[i][k] for i in qids]))
    ev["per_query"] = per_q
    return ev


def drop_checkpoint(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
