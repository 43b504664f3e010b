"""Sources: every input form, and every kind of bad input named by file:line or counted as a skip."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from negforge.config import Columns, DataConfig
from negforge.sources import InputError, load_input
from tests.conftest import SAMPLE, write_beir

DOCS = [
    {"_id": "d1", "title": "Aspirin", "text": "Aspirin lowers fever."},
    {"_id": "d2", "title": "", "text": "Ibuprofen treats pain."},
    {"_id": "d3", "title": "Sleep", "text": "Sleep improves memory."},
]
QUERIES = [{"_id": "q1", "text": "what lowers fever"}, {"_id": "q2", "text": "memory and sleep"}]


def test_beir_sample_keeps_several_positives_per_query():
    data = load_input(DataConfig(format="beir", path=str(SAMPLE)))
    assert len(data.queries) == 50
    assert len(data.corpus) == 1000
    qrels = (SAMPLE / "qrels" / "train.tsv").read_text().splitlines()[1:]
    assert sum(len(q.positive_rows) for q in data.queries) == len(qrels)
    assert any(len(q.positive_rows) > 1 for q in data.queries)
    # BEIR's `metadata` (corpus and queries) is not read, by design: neither a skip nor an unread-column note
    assert data.skips.counts() == {} and data.skips.unread_columns() == []
    q = data.queries[0]
    assert all(data.corpus.ids[r] in {line.split("\t")[1] for line in qrels} for r in q.positive_rows)


def test_title_joined_with_text(tmp_path):
    data = load_input(
        DataConfig(format="beir", path=str(write_beir(tmp_path, DOCS, QUERIES, [("q1", "d1")])))
    )
    assert data.corpus.texts[0] == "Aspirin Aspirin lowers fever."
    assert data.corpus.texts[1] == "Ibuprofen treats pain."


def test_bad_lines_are_counted_with_file_and_line(tmp_path):
    root = write_beir(tmp_path, DOCS, QUERIES, [("q1", "d1"), ("q2", "d3"), ("q2", "missing"), ("q9", "d1")])
    with (root / "corpus.jsonl").open("ab") as f:
        f.write(b'{"_id": "d4", "text": "caf\xe9 bad bytes"}\n')  # latin-1, not UTF-8
        f.write(b"{not json\n")
        f.write(b'{"_id": "d5", "text": "   "}\n')
        f.write(b'{"_id": "d1", "text": "duplicate id"}\n')
    data = load_input(DataConfig(format="beir", path=str(root)))
    counts = data.skips.counts()
    assert counts == {
        "not_utf8": 1,
        "bad_json": 1,
        "empty_text": 1,
        "duplicate_id": 1,
        "qrels_unknown_doc": 1,
        "qrels_unknown_query": 1,
    }
    ex = data.skips.examples()
    assert ex["not_utf8"][0].startswith(f"{root / 'corpus.jsonl'}:4")
    assert ex["duplicate_id"][0].startswith(f"{root / 'corpus.jsonl'}:7")
    assert ex["qrels_unknown_doc"][0].startswith(f"{root / 'qrels' / 'train.tsv'}:4")
    assert [q.id for q in data.queries] == ["q1", "q2"]


def test_missing_folder_file_and_split(tmp_path):
    with pytest.raises(InputError, match="BEIR folder not found"):
        load_input(DataConfig(format="beir", path=str(tmp_path / "nope")))
    root = write_beir(tmp_path / "b", DOCS, QUERIES, [("q1", "d1")])
    with pytest.raises(InputError, match="no qrels for split 'test'; available: train"):
        load_input(DataConfig(format="beir", path=str(root), split="test"))
    (root / "queries.jsonl").unlink()
    with pytest.raises(InputError, match=r"queries.jsonl: queries file not found"):
        load_input(DataConfig(format="beir", path=str(root)))


def test_no_usable_positive_is_an_error(tmp_path):
    root = write_beir(tmp_path, DOCS, QUERIES, [("q1", "zzz")])
    with pytest.raises(InputError, match="no query has a usable positive"):
        load_input(DataConfig(format="beir", path=str(root)))


def test_qrels_files_in_parquet(tmp_path):
    pq.write_table(pa.Table.from_pylist(DOCS), tmp_path / "corpus.parquet")
    pq.write_table(pa.Table.from_pylist(QUERIES), tmp_path / "queries.parquet")
    pq.write_table(
        pa.table({"query-id": ["q1", "q2", "q2"], "corpus-id": ["d1", "d3", "d2"], "score": [1, 1, 0]}),
        tmp_path / "qrels.parquet",
    )
    data = load_input(
        DataConfig(
            format="qrels",
            qrels=str(tmp_path / "qrels.parquet"),
            queries=str(tmp_path / "queries.parquet"),
            corpus=str(tmp_path / "corpus.parquet"),
        )
    )
    assert [(q.id, [data.corpus.ids[r] for r in q.positive_rows]) for q in data.queries] == [
        ("q1", ["d1"]),
        ("q2", ["d3"]),
    ]
    assert data.skips.counts() == {"below_min_relevance": 1}


def test_corpus_parquet_without_text_column(tmp_path):
    pq.write_table(pa.table({"_id": ["a"], "body": ["x"]}), tmp_path / "corpus.parquet")
    (tmp_path / "q.jsonl").write_text(json.dumps(QUERIES[0]) + "\n")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\ta\t1\n")
    with pytest.raises(InputError, match=r"corpus.parquet: missing column\(s\) text; found _id, body"):
        load_input(
            DataConfig(
                format="qrels",
                qrels=str(tmp_path / "qrels.tsv"),
                queries=str(tmp_path / "q.jsonl"),
                corpus=str(tmp_path / "corpus.parquet"),
            )
        )


def test_pairs_group_repeated_queries_and_add_missing_positives(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    rows = [
        {"q": "what lowers fever", "p": "Aspirin Aspirin lowers fever."},
        {"q": "what lowers fever", "p": "Paracetamol also lowers fever."},
        {"q": "memory and sleep", "p": "Sleep Sleep improves memory."},
        {"q": "", "p": "orphan"},
    ]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    data = load_input(
        DataConfig(
            format="pairs", path=str(pairs), corpus=str(corpus), columns=Columns(query="q", positive="p")
        )
    )
    assert len(data.queries) == 2
    first = data.queries[0]
    assert [data.corpus.texts[r] for r in first.positive_rows] == [
        "Aspirin Aspirin lowers fever.",
        "Paracetamol also lowers fever.",
    ]
    assert data.corpus.ids[first.positive_rows[0]] == "d1"  # matched to the corpus by text
    assert len(data.corpus) == 4  # the paracetamol positive joined the corpus
    assert data.skips.counts() == {"empty_text": 1, "positive_added_to_corpus": 1}


def test_pairs_parquet_missing_column_is_named(tmp_path):
    pq.write_table(pa.table({"text_a": ["a"], "positive": ["b"]}), tmp_path / "pairs.parquet")
    with pytest.raises(
        InputError,
        match=r"pairs.parquet: no query column \(looked for query, anchor, question\); found text_a, positive",
    ):
        load_input(DataConfig(format="pairs", path=str(tmp_path / "pairs.parquet")))


def test_pairs_jsonl_missing_column_names_the_line(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text(json.dumps({"query": "a", "positive": "b"}) + "\n" + json.dumps({"positive": "c"}) + "\n")
    with pytest.raises(InputError, match=rf"{p}:2: missing column 'query'"):
        load_input(DataConfig(format="pairs", path=str(p)))


def test_hf_dataset_from_local_folder(tmp_path):
    from datasets import Dataset, DatasetDict

    ds = Dataset.from_dict(
        {
            "anchor": ["what lowers fever", "what lowers fever", "memory"],
            "positive": ["aspirin", "paracetamol", "sleep"],
        }
    )
    DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "hf"))
    data = load_input(
        DataConfig(
            format="hf", path=str(tmp_path / "hf"), columns=Columns(query="anchor", positive="positive")
        )
    )
    assert [len(q.positive_rows) for q in data.queries] == [2, 1]
    assert sorted(data.corpus.texts) == ["aspirin", "paracetamol", "sleep"]
    with pytest.raises(InputError, match="no split 'dev'"):
        load_input(DataConfig(format="hf", path=str(tmp_path / "hf"), split="dev"))


def test_max_queries_keeps_input_order():
    data = load_input(DataConfig(format="beir", path=str(SAMPLE), max_queries=3))
    full = load_input(DataConfig(format="beir", path=str(SAMPLE)))
    assert [q.id for q in data.queries] == [q.id for q in full.queries[:3]]


def test_sample_folder_has_a_licence_note():
    assert "CC BY-NC" in (Path(SAMPLE) / "README.md").read_text()
