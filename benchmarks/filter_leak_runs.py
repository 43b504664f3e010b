"""One negforge run of benchmarks/filter_leak_replay.py (the mining every row shares, plus the row's overrides
and filters), and the leak / fill metrics of its rows against the hidden positives."""

from __future__ import annotations

import time
from pathlib import Path

MINING = ["selection.depth=20", "selection.num_negatives=5"]  # hybrid BM25 + dense (default), top sampling


def run_negforge(out: Path, beir: Path, name: str, overrides: list[str], filters: list[dict]) -> tuple:
    from datasets import load_from_disk

    from negforge.config import load_config
    from negforge.pipeline import run

    cfg = load_config(
        None,
        [f"data.path={beir}", f"output.dir={out / 'runs'}", f"run_name={name}", *MINING, *overrides],
        filters=filters,
    )
    t0 = time.perf_counter()
    res = run(cfg, overwrite=True)
    secs = time.perf_counter() - t0
    rows = load_from_disk(str(res.dataset_dir))["rich"].to_list()
    return rows, res.manifest, secs


def candidate_ids(row: dict) -> set[str]:
    return {n["doc_id"] for n in row["negatives"]} | {d["doc_id"] for d in row["dropped"]}


def metrics(rows: list[dict], hidden: dict[str, list[str]], qids: list[str]) -> dict:
    by = {r["query_id"]: r for r in rows}
    want = set(qids)
    n_hidden = leaked = in_pool = negs = filled = survivors = 0
    for q in qids:
        r = by[q]
        h = set(hidden[q])
        chosen = [n["doc_id"] for n in r["negatives"]]
        n_hidden += len(h)
        leaked += len(h & set(chosen))
        in_pool += len(h & candidate_ids(r))
        negs += len(chosen)
        filled += (not r["short"]) and len(chosen) >= 5
        survivors += len(chosen) + sum(d["filter"] == "mixer" for d in r["dropped"])
    n = len(want)
    return {
        "queries": n,
        "hidden": n_hidden,
        "in_window": in_pool,
        "leaked": leaked,
        "leak": leaked / n_hidden if n_hidden else float("nan"),
        "negs": negs / n,
        "survivors": survivors / n,
        "filled": filled / n,
    }
