"""Rebuild examples/scifact-sample from a full BEIR SciFact folder.

The sample keeps 50 train queries with all their positives, and a ~1,000-document corpus made of those
positives, each query's top BM25 neighbours (so the demo has real hard negatives to find), and seeded
random documents. Usage: python examples/make_scifact_sample.py ../shared/data/scifact
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import bm25s
import Stemmer

N_QUERIES, N_DOCS, NEIGHBOURS, SEED = 50, 1000, 12, 13


def main(src: Path, dst: Path) -> None:
    corpus = [json.loads(line) for line in (src / "corpus.jsonl").open(encoding="utf-8")]
    queries = {q["_id"]: q for q in map(json.loads, (src / "queries.jsonl").open(encoding="utf-8"))}
    qrels_lines = (src / "qrels" / "train.tsv").read_text(encoding="utf-8").splitlines()
    header, rows = qrels_lines[0], [line.split("\t") for line in qrels_lines[1:] if line.strip()]
    order: list[str] = []
    for qid, _, _ in rows:
        if qid not in order:
            order.append(qid)
    chosen = order[:N_QUERIES]
    keep_rows = [r for r in rows if r[0] in chosen]
    ids = [d["_id"] for d in corpus]
    keep = {r[1] for r in keep_rows}
    stem = Stemmer.Stemmer("english")
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(
            [f"{d['title']} {d['text']}" for d in corpus], stopwords="en", stemmer=stem, show_progress=False
        ),
        show_progress=False,
    )
    hits, _ = retriever.retrieve(
        bm25s.tokenize(
            [queries[q]["text"] for q in chosen], stopwords="en", stemmer=stem, show_progress=False
        ),
        k=NEIGHBOURS,
        show_progress=False,
    )
    for row in hits:
        keep.update(ids[i] for i in row)
    rng = random.Random(SEED)
    rest = [i for i in ids if i not in keep]
    keep.update(rng.sample(rest, N_DOCS - len(keep)))
    (dst / "qrels").mkdir(parents=True, exist_ok=True)
    with (dst / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for d in corpus:
            if d["_id"] in keep:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    with (dst / "queries.jsonl").open("w", encoding="utf-8") as f:
        for q in chosen:
            f.write(json.dumps(queries[q], ensure_ascii=False) + "\n")
    (dst / "qrels" / "train.tsv").write_text("\n".join([header, *("\t".join(r) for r in keep_rows)]) + "\n")
    print(f"{len(chosen)} queries, {len(keep_rows)} qrels, {len(keep)} documents -> {dst}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(__file__).resolve().parent / "scifact-sample")
