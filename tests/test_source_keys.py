"""Grouping keys and column names: queries without ids never merge different questions; known columns are found
in any case, ambiguous ones refused, unknown ones named to the user."""

import hashlib
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from negforge.config import DataConfig
from negforge.mining.identity import IdentityIndex
from negforge.records import SAME_QUERY_POSITIVE, Corpus, SkipLog
from negforge.sources import InputError, load_input
from negforge.sources.pairs import _Grouper
from negforge.text_identity import query_key, text_key
from tests.conftest import write_beir

SEPARATE = [  # each pair differs in a letter, digit, symbol, punctuation or case: different questions
    ("C++ compiler", "C compiler"),
    ("What is 5-HT?", "What is 5 HT"),
    ("cost in %", "cost in $"),
    ("Paris", "paris"),
]
COPIES = [  # one query exported twice: other whitespace runs, NFD vs NFC
    ("what lowers  fever", "what\tlowers fever"),
    ("caf\u00e9 hours", "cafe\u0301 hours"),
]


def _pairs(tmp_path, queries: list[str]) -> DataConfig:
    p = tmp_path / "pairs.jsonl"
    rows = [{"query": q, "positive": f"passage number {i} for the query"} for i, q in enumerate(queries)]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return DataConfig(format="pairs", path=str(p))


def test_pairs_without_query_id_keep_different_queries_apart_and_group_copies(tmp_path):
    texts = [t for pair in SEPARATE + COPIES for t in pair]
    data = load_input(_pairs(tmp_path, texts))
    by_text = {q.text: q for q in data.queries}
    assert len(data.queries) == 2 * len(SEPARATE) + len(COPIES)
    for a, b in SEPARATE:
        assert by_text[a].id != by_text[b].id
        assert len(by_text[a].positive_rows) == len(by_text[b].positive_rows) == 1
    for a, _ in COPIES:
        assert len(by_text[a].positive_rows) == 2  # the copy's positive joined the first row's query
    assert len({q.id for q in data.queries}) == len(data.queries)
    # the id is stable: q- and 12 hex digits of the SHA-1 of the query key
    paris = by_text["Paris"]
    assert paris.id == "q-" + hashlib.sha1(b"Paris").hexdigest()[:12]
    assert any("queries differ from another only in case" in line for line in data.layout)
    # the lenient identity rule still keeps "paris"'s positive out of "Paris"'s negatives
    siblings = IdentityIndex.siblings(data.queries)
    excl = IdentityIndex(data.corpus).for_query(paris, siblings[text_key("Paris")]).excluded
    assert excl == {by_text["paris"].positive_rows[0]: SAME_QUERY_POSITIVE}


def test_query_key_is_strict_but_whitespace_and_unicode_form_blind():
    for a, b in SEPARATE:
        assert query_key(a) != query_key(b)
    for a, b in COPIES:
        assert query_key(a) == query_key(b)
    assert query_key(" x\u00a0 y\n") == "x y"
    assert query_key("x\u00b2") != query_key("x2")  # NFC, not NFKC: a superscript is not a digit


def test_minted_query_ids_never_collide():
    g = _Grouper(Corpus([], []), SkipLog(), False)
    short = "q-" + hashlib.sha1(b"a").hexdigest()[:12]
    g.keys[short] = "another text with the same 12 digits"
    assert g.minted_id("a") == "q-" + hashlib.sha1(b"a").hexdigest()
    assert g.minted_id("a") == "q-" + hashlib.sha1(b"a").hexdigest()  # the same text keeps its id
    g.keys["q-" + hashlib.sha1(b"b").hexdigest()[:12]] = g.keys["q-" + hashlib.sha1(b"b").hexdigest()] = "c"
    with pytest.raises(InputError, match="would name two texts"):
        g.minted_id("b")


DOCS = [
    {"_ID": "d1", "Title": "Aspirin", "TEXT": "Aspirin lowers fever.", "heading": "Drugs"},
    {"_ID": "d2", "Title": "Sleep", "TEXT": "Sleep improves memory.", "heading": "Health"},
]
QUERIES = [{"_id": "q1", "text": "what lowers fever"}]


def test_corpus_columns_in_any_case_are_read_and_unknown_ones_named(tmp_path):
    folder = write_beir(tmp_path, DOCS, QUERIES, [("q1", "d1")])
    data = load_input(DataConfig(format="beir", path=str(folder)))
    assert data.corpus.ids == ["d1", "d2"]
    assert data.corpus.titles == ["Aspirin", "Sleep"]
    assert data.corpus.texts[0] == "Aspirin Aspirin lowers fever."
    assert data.skips.counts() == {}  # no row lost: an unread column is named, not counted as a skip
    (note,) = data.skips.unread_columns()
    assert "corpus.jsonl:1" in note and "'heading' is not read" in note


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_corpus_with_title_and_Title_is_refused_naming_both(tmp_path, fmt):
    rows = [{"_id": "d1", "title": "A", "Title": "B", "text": "Aspirin lowers fever."}]
    path = tmp_path / f"corpus.{fmt}"
    if fmt == "parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif fmt == "csv":
        path.write_text("_id,title, Title ,text\nd1,A,B,Aspirin lowers fever.\n")
    else:
        path.write_text(json.dumps(rows[0]) + "\n")
    (tmp_path / "q.jsonl").write_text(json.dumps(QUERIES[0]) + "\n")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    cfg = DataConfig(
        format="qrels", qrels=str(tmp_path / "qrels.tsv"), queries=str(tmp_path / "q.jsonl"), corpus=str(path)
    )
    with pytest.raises(InputError, match=r"corpus\.\w+.*'title', '( Title |Title)'"):
        load_input(cfg)


def test_queries_and_qrels_headers_and_pair_columns_in_any_case(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"ID": "d1", "Text": "Aspirin lowers fever."}) + "\n")
    (tmp_path / "q.tsv").write_text("QID\tText\tsource\nq1\twhat lowers fever\tweb\n")
    (tmp_path / "qrels.tsv").write_text("Query-ID\tCorpus-ID\tScore\nq1\td1\t1\n")
    data = load_input(
        DataConfig(
            format="qrels",
            qrels=str(tmp_path / "qrels.tsv"),
            queries=str(tmp_path / "q.tsv"),
            corpus=str(corpus),
        )
    )
    assert [(q.text, q.positive_rows) for q in data.queries] == [("what lowers fever", (0,))]
    assert data.skips.counts() == {} and len(data.skips.unread_columns()) == 1  # the queries' `source`
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"Query": "what lowers fever", " Positive ": "Aspirin lowers fever."}) + "\n")
    data = load_input(DataConfig(format="pairs", path=str(pairs), corpus=str(corpus)))
    assert data.corpus.ids[data.queries[0].positive_rows[0]] == "d1"
    pairs.write_text(json.dumps({"query": "q", "Query": "q", "positive": "p"}) + "\n")
    with pytest.raises(InputError, match="'query', 'Query'"):
        load_input(DataConfig(format="pairs", path=str(pairs)))


def test_unread_columns_are_shown_by_inspect_not_counted_as_skips(tmp_path):
    from typer.testing import CliRunner

    from negforge.cli import app

    folder = write_beir(tmp_path / "data", DOCS, QUERIES, [("q1", "d1")])
    cfg = tmp_path / "run.yaml"
    cfg.write_text(json.dumps({"data": {"format": "beir", "path": str(folder)}}))
    res = CliRunner().invoke(app, ["inspect", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "skips: none" in res.output
    assert "columns not read" in res.output and "'heading' is not read" in res.output
