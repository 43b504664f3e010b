"""Exports of the `rich` config for other trainers: FlagEmbedding, Tevatron, GPL-style MarginMSE.

The rich rows already hold every text, id and score; each exporter only reshapes them. Positives relabeled
by the filters (`relabeled_positives`) are exported as positives after the input's own. LLM-written negatives
have no corpus id, so they get a stable made-up one (`llm-<request_key[:12]>-<i>`) that is the same on every
export of the same run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from negforge.publish.run_files import PublishError, RunFiles
from negforge.publish.trainer import training_positives
from negforge.records import score_on

DEFAULT_SCORE = "hybrid"


def rich_rows(run: RunFiles) -> Iterator[dict]:
    """The run's rich rows, one query at a time (batches keep memory flat on big runs)."""
    path = (run.parquet.get("rich") or {}).get("train")
    if path is None:
        raise PublishError(
            f"{run.run_dir}: no rich config; exporters need dataset/parquet/rich/train.parquet"
        )
    for batch in pq.ParquetFile(path).iter_batches(batch_size=512):
        yield from batch.to_pylist()


def score_key(run: RunFiles, score: str | None) -> str:
    """The score to export: the one asked for, else the scale selection used, else hybrid."""
    return score or run.manifest.get("score_by") or DEFAULT_SCORE


def negative_id(neg: dict, i: int) -> str:
    """Corpus id, or a stable synthetic id for a generated negative (request key, else text hash)."""
    if neg.get("doc_id"):
        return str(neg["doc_id"])
    key = (neg.get("generation") or {}).get("request_key")
    if not key:
        key = hashlib.sha1((neg.get("text") or "").encode()).hexdigest()
    return f"llm-{key[:12]}-{i}"


def _pos_scores(row: dict, key: str) -> list[float | None]:
    """Scores of `training_positives(row)` on `key`: the input positives', then the relabeled ones'."""
    scores = (row.get("positive_scores") or {}).get(key) or []
    n = len(row.get("positives") or [])
    given = [scores[i] if i < len(scores) else None for i in range(n)]
    return given + [(p.get("scores") or {}).get(key) for p in row.get("relabeled_positives") or []]


def export_flagembedding(run: RunFiles, path: Path, *, score: str | None = None, prompt: str = "") -> int:
    """FlagEmbedding fine-tuning JSONL: query, pos, neg, pos_scores, neg_scores, prompt. Scores are the chosen
    scale's; when any is missing for a row, both score lists are left out (FlagEmbedding treats them as
    optional) rather than filled with made-up numbers."""
    key = score_key(run, score)
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rich_rows(run):
            negs = row.get("negatives") or []
            rec: dict = {
                "query": row["query"],
                "pos": training_positives(row),
                "neg": [x["text"] for x in negs],
            }
            pos_s, neg_s = _pos_scores(row, key), [score_on(x, key) for x in negs]
            if None not in pos_s and None not in neg_s:
                rec["pos_scores"], rec["neg_scores"] = pos_s, neg_s
            rec["prompt"] = prompt
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def export_tevatron(run: RunFiles, path: Path, *, score: str | None = None) -> int:
    """Tevatron training JSONL: query_id, query, positive_passages and negative_passages of {docid, title, text}.
    Titles are empty: negforge keeps title and body joined in `text`."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for row in rich_rows(run):
            pos_ids = row.get("positive_ids") or []
            positives = [
                {
                    "docid": str(pos_ids[i]) if i < len(pos_ids) else f"pos-{row['query_id']}-{i}",
                    "title": "",
                    "text": t,
                }
                for i, t in enumerate(row.get("positives") or [])
            ] + [
                {"docid": str(p["doc_id"]), "title": "", "text": p["text"]}
                for p in row.get("relabeled_positives") or []
            ]
            negatives = [
                {"docid": negative_id(x, i), "title": "", "text": x["text"]}
                for i, x in enumerate(row.get("negatives") or [])
            ]
            rec = {
                "query_id": str(row["query_id"]),
                "query": row["query"],
                "positive_passages": positives,
                "negative_passages": negatives,
            }
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def export_marginmse(run: RunFiles, path: Path, *, score: str | None = None) -> int:
    """GPL-style MarginMSE table (Parquet): query, positive, negative, margin = score(pos) − score(neg) on the
    chosen scale, one row per positive × negative. Pairs with a missing score are left out."""
    key = score_key(run, score)
    cols: dict[str, list] = {"query": [], "positive": [], "negative": [], "margin": []}
    for row in rich_rows(run):
        pos_s = _pos_scores(row, key)
        for pos, ps in zip(training_positives(row), pos_s, strict=True):
            for neg in row.get("negatives") or []:
                ns = score_on(neg, key)
                if ps is None or ns is None:
                    continue
                cols["query"].append(row["query"])
                cols["positive"].append(pos)
                cols["negative"].append(neg["text"])
                cols["margin"].append(float(ps) - float(ns))
    schema = pa.schema(
        [
            ("query", pa.string()),
            ("positive", pa.string()),
            ("negative", pa.string()),
            ("margin", pa.float32()),
        ]
    )
    table = pa.table(cols, schema=schema).replace_schema_metadata({"negforge.score": key})
    pq.write_table(table, path)
    return table.num_rows


Exporter = Callable[..., int]
EXPORTERS: dict[str, tuple[Exporter, str]] = {
    "flagembedding": (export_flagembedding, "flagembedding.jsonl"),
    "tevatron": (export_tevatron, "tevatron.jsonl"),
    "marginmse": (export_marginmse, "marginmse.parquet"),
}


def export(run: RunFiles, kind: str, out_dir: Path | str, *, score: str | None = None) -> Path:
    """Write one export into `out_dir` (file name from the format) and return its path."""
    if kind not in EXPORTERS:
        raise PublishError(f"unknown export {kind!r}; choose from {', '.join(EXPORTERS)}")
    fn, name = EXPORTERS[kind]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    fn(run, path, score=score)
    return path
