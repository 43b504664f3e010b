"""Datasets for benchmarks/quality.py: the training sample every row shares, and the evaluation split.

Training: a BEIR folder whose qrels/train.tsv holds only the sampled (query, positive) examples; negforge's
rows, sentence-transformers' rows and the in-batch row all read that same folder, so every row trains on
the same (query, positive) set. Sampling is seeded by its own seed (never the training seed): queries are
drawn without replacement (`max_queries`), then per query at most `max_positives` positives, highest
grade first, ties in a seeded order. Evaluation: `test`, or `dev` (NFCorpus's dev qrels; for SciFact, which
has no dev split, a seeded held-out slice of train, removed from the training side before sampling).
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

T0 = time.perf_counter()  # log lines count from the benchmark's start


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:7.1f}s] {msg}", flush=True)


def read_json(p: Path) -> Any:
    return json.loads(p.read_text()) if p.is_file() else None


def write_json(p: Path, obj: Any) -> None:
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    tmp.replace(p)


ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    path: Path
    has_dev: bool
    max_positives: int | None  # default K: None keeps every positive
    max_queries: int | None  # default training queries: None keeps all


DATASETS = {
    # SciFact: 809 train claims, 919 (claim, abstract) pairs: kept whole
    "scifact": DatasetSpec("scifact", DATA / "scifact", False, None, None),
    # NFCorpus: 2,590 train queries x ~43 positives; 500 queries x 2 positives ~ SciFact's 29 steps at batch 32
    "nfcorpus": DatasetSpec("nfcorpus", DATA / "nfcorpus", True, 2, 500),
}


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """{qid: {doc_id: grade}} from a BEIR qrels TSV (header skipped)."""
    out: dict[str, dict[str, int]] = {}
    lines = path.read_text().splitlines()
    for ln in lines[1:]:
        parts = ln.split("\t")
        if len(parts) >= 3 and parts[0]:
            out.setdefault(parts[0], {})[parts[1]] = int(float(parts[2]))
    return out


def _link(folder: Path, data: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        link = folder / name
        if not link.exists():
            link.symlink_to((data / name).resolve())


def _write_qrels(path: Path, rows: list[tuple[str, str, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = [f"{q}\t{d}\t{g}" for q, d, g in rows]
    path.write_text("\n".join(["query-id\tcorpus-id\tscore", *body]) + "\n")


def make_dev_split(data: Path, out: Path, fraction: float, seed: int) -> Path:
    """A BEIR folder whose `test` split is a seeded slice of *train* and whose `train` is the rest.

    Settings are chosen on this held-out slice, never on test: every row trains on the rest of train and is
    scored on the slice, with the full corpus (the slice's positives stay retrievable but are never mined
    as anyone's positive).
    """
    folder = out / f"dev-data-{fraction:g}-{seed}"
    lines = (data / "qrels" / "train.tsv").read_text().splitlines()
    header, rows = lines[0], [ln for ln in lines[1:] if ln.strip()]
    qids = sorted({ln.split("\t")[0] for ln in rows})

    def held_out(qid: str) -> bool:
        h = hashlib.sha256(f"{seed}:{qid}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2**64 < fraction

    dev = {q for q in qids if held_out(q)}
    _link(folder, data)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    for split, keep in (("train", False), ("test", True)):
        body = [ln for ln in rows if (ln.split("\t")[0] in dev) == keep]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join([header, *body]) + "\n")
    return folder


def sample_examples(
    qrels: dict[str, dict[str, int]],
    *,
    max_positives: int | None,
    max_queries: int | None,
    seed: int,
    min_relevance: int = 1,
) -> list[tuple[str, str, int]]:
    """The shared training examples: (qid, doc_id, grade), queries in a seeded order, positives by grade."""
    rng = random.Random(f"quality-sample:{seed}")
    qids = sorted(q for q, rel in qrels.items() if any(g >= min_relevance for g in rel.values()))
    rng.shuffle(qids)
    if max_queries is not None:
        qids = qids[:max_queries]
    out = []
    for q in qids:
        pos = sorted((d, g) for d, g in qrels[q].items() if g >= min_relevance)
        keys = {d: rng.random() for d, _ in pos}
        pos.sort(key=lambda dg: (-dg[1], keys[dg[0]]))
        out += [(q, d, g) for d, g in pos[:max_positives]]
    return out


@dataclass
class Prepared:
    train_folder: Path  # BEIR folder, split `train` = the sampled examples
    eval_folder: Path
    eval_split: str
    examples: int
    queries: int
    describe: str


def prepare(
    spec: DatasetSpec,
    out: Path,
    *,
    split: str,
    max_positives: int | None,
    max_queries: int | None,
    sample_seed: int,
    min_relevance: int = 1,
    dev_fraction: float = 0.2,
) -> Prepared:
    """Write (or reuse) the shared training folder and name the evaluation split."""
    source, eval_folder, eval_split = spec.path, spec.path, split
    if split == "dev" and not spec.has_dev:
        source = eval_folder = make_dev_split(spec.path, out, dev_fraction, sample_seed)
        eval_split = "test"
    qrels = read_qrels(source / "qrels" / "train.tsv")
    examples = sample_examples(
        qrels,
        max_positives=max_positives,
        max_queries=max_queries,
        seed=sample_seed,
        min_relevance=min_relevance,
    )
    tag = f"k{max_positives or 'all'}-q{max_queries or 'all'}-s{sample_seed}-r{min_relevance}"
    folder = out / f"train-{spec.name}-{split}-{tag}"
    _link(folder, spec.path)
    _write_qrels(folder / "qrels" / "train.tsv", examples)
    n_q = len({q for q, _, _ in examples})
    total = sum(1 for rel in qrels.values() for g in rel.values() if g >= min_relevance)
    describe = (
        f"training sample (the same for every row, ST rows included): {len(examples)} (query, positive) "
        f"examples from {n_q} of {len(qrels)} train queries ({total} positives at grade >= {min_relevance}); "
        f"queries drawn with seed {sample_seed} (max {max_queries or 'all'}), per query at most "
        f"{max_positives or 'all'} positives, highest grade first, ties in a seeded order; "
        "relevant documents left out of the sample are unknown to every miner alike"
    )
    (folder / "sample.json").write_text(
        json.dumps({"examples": len(examples), "queries": n_q, "describe": describe}, indent=2)
    )
    return Prepared(folder, eval_folder, eval_split, len(examples), n_q, describe)


def corpus_slice(prep: Prepared, out: Path, eval_queries: int, extra_docs: int) -> Prepared:
    """--smoke: one folder with the sample's positives, the first `eval_queries` evaluation queries' relevant
    documents and the first `extra_docs` other documents, so mining and every evaluation take seconds."""
    folder = out / f"slice-{prep.train_folder.name}-{eval_queries}-{extra_docs}"
    train = read_qrels(prep.train_folder / "qrels" / "train.tsv")
    ev = read_qrels(prep.eval_folder / "qrels" / f"{prep.eval_split}.tsv")
    ev = dict(list(ev.items())[:eval_queries])
    keep = {d for rel in (*train.values(), *ev.values()) for d in rel}
    lines = (prep.eval_folder / "corpus.jsonl").read_text().splitlines()
    extra = 0
    body = []
    for ln in lines:
        doc = json.loads(ln)["_id"]
        if doc in keep or extra < extra_docs:
            extra += doc not in keep
            body.append(ln)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("\n".join(body) + "\n")
    q = folder / "queries.jsonl"
    if not q.exists():
        q.symlink_to((prep.eval_folder / "queries.jsonl").resolve())
    _write_qrels(
        folder / "qrels" / "train.tsv", [(a, d, g) for a, rel in train.items() for d, g in rel.items()]
    )
    _write_qrels(folder / "qrels" / "slice.tsv", [(a, d, g) for a, rel in ev.items() for d, g in rel.items()])
    describe = f"{prep.describe}; SMOKE: corpus cut to {len(body)} documents"
    return Prepared(folder, folder, "slice", prep.examples, prep.queries, describe)
