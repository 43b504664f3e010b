"""The data of benchmarks/filter_leak_replay.py: SciFact train queries with two or more positives, the first
positive visible and the others hidden, a seeded dev/test half of those queries, and the BEIR folders negforge
reads (multi-positive queries only; every train query, for the cross-encoder's training negatives)."""

from __future__ import annotations

import csv
import json
import random
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

SCIFACT = Path("/work/shared/data/scifact")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass
class Data:
    beir_dir: Path  # multi-positive queries, first positive only
    beir_all_dir: Path  # every train query, first positive only (cross-encoder training)
    visible: dict[str, str]
    hidden: dict[str, list[str]]
    dev: list[str]
    test: list[str]
    corpus: dict[str, str] = field(repr=False)
    queries: dict[str, str] = field(repr=False)


def read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def write_beir(dst: Path, src: Path, qrels: list[tuple[str, str]]) -> None:
    (dst / "qrels").mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (dst / name).exists():
            shutil.copy(src / name, dst / name)
    with (dst / "qrels" / "train.tsv").open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for q, d in qrels:
            f.write(f"{q}\t{d}\t1\n")


def prepare_data(out: Path, max_queries: int | None, seed: int, src: Path = SCIFACT) -> Data:
    from negforge.sources.corpus import doc_text

    corpus = {
        str(r["_id"]): doc_text(r.get("title"), r.get("text"), True) for r in read_jsonl(src / "corpus.jsonl")
    }
    queries = {str(r["_id"]): r["text"] for r in read_jsonl(src / "queries.jsonl")}
    pos: dict[str, list[str]] = defaultdict(list)
    with (src / "qrels" / "train.tsv").open(encoding="utf-8") as f:
        for r in csv.DictReader(f, delimiter="\t"):
            q, d = r["query-id"], r["corpus-id"]
            if int(r["score"]) >= 1 and d in corpus and q in queries and d not in pos[q]:
                pos[q].append(d)
    multi = [q for q, p in pos.items() if len(p) >= 2]
    if max_queries:
        multi = multi[:max_queries]
    visible = {q: pos[q][0] for q in pos}
    hidden = {q: pos[q][1:] for q in multi}
    order = sorted(multi)
    random.Random(seed).shuffle(order)
    half = len(order) // 2
    dev, test = sorted(order[:half]), sorted(order[half:])
    beir_dir, beir_all = out / "beir-multi", out / "beir-all"
    write_beir(beir_dir, src, [(q, visible[q]) for q in multi])
    write_beir(beir_all, src, [(q, visible[q]) for q in pos])
    return Data(beir_dir, beir_all, visible, hidden, dev, test, corpus, queries)
