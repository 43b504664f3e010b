"""The reading layer reads every input as meant, refuses it by file:line:column, or counts a skip.

Fixtures in tests/fixtures/input_cases are copies of ../shared/cases inputs (modelled on public bug reports);
the asserted values are the right ones from those cases.
"""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from negforge.config import Columns, DataConfig
from negforge.sources import InputError, load_input
from negforge.sources.values import id_value, passage_list, text_value
from tests.conftest import write_beir

CASES = Path(__file__).parent / "fixtures" / "input_cases"


# kind 2: values of the wrong type are never stringified -------------------------------------------------


@pytest.mark.parametrize("missing", [None, float("nan"), "", "   "])
def test_missing_values_are_missing_not_text(missing):
    assert text_value(missing, "f:1", "text") is None


def test_pandas_na_is_missing():
    pd = pytest.importorskip("pandas")
    assert text_value(pd.NA, "f:1", "text") is None
    assert id_value(pd.NA, "f:1", "_id") is None


@pytest.mark.parametrize(
    "value, found",
    [(["a", "b"], "list"), ({"text": "a"}, "mapping"), (3.0, "float"), (7, "int"), (True, "bool")],
)
def test_a_wrongly_typed_text_is_refused_by_where_and_column(value, found):
    with pytest.raises(InputError, match=rf"data.jsonl:4: column 'text' must be a text, found {found}"):
        text_value(value, "data.jsonl:4", "text")


def test_ids_integral_numbers_are_read_as_ints_fractions_refused():
    assert id_value(12, "f:1", "_id") == "12"
    assert id_value(12.0, "f:1", "_id") == "12"  # pandas int column with gaps
    with pytest.raises(InputError, match="f:1: column '_id' must be an id"):
        id_value(1.5, "f:1", "_id")


def test_a_string_positive_is_one_passage_never_split_into_characters():
    ps, empty = passage_list("Paris is in France.", "f:1", "pos")
    assert [p.text for p in ps] == ["Paris is in France."] and empty == 0


def test_nan_title_is_no_title_and_nan_text_or_query_is_a_counted_skip():
    """Case 09: 39 docs (d40 has no text), 13 queries (q14 has no text; q15's positive is d40)."""
    data = load_input(DataConfig(format="beir", path=str(CASES / "09-nan-missing-values" / "data")))
    assert len(data.corpus) == 39 and len(data.queries) == 13
    assert data.skips.counts() == {"empty_text": 2, "qrels_unknown_query": 1, "qrels_unknown_doc": 1}
    assert not any(t.lower().startswith("nan") or t.lower().endswith(" nan") for t in data.corpus.texts)
    assert data.corpus.texts[0].startswith("The Eiffel Tower is a wrought-iron")
    assert all(q.text.lower() != "nan" for q in data.queries)


def test_corpus_text_holding_a_list_is_refused_with_file_line_and_column(tmp_path):
    root = write_beir(
        tmp_path, [{"_id": "d1", "text": "ok text"}], [{"_id": "q1", "text": "q"}], [("q1", "d1")]
    )
    with (root / "corpus.jsonl").open("a") as f:
        f.write(json.dumps({"_id": "d2", "title": "T", "text": ["one", "two"]}) + "\n")
    with pytest.raises(
        InputError, match=rf"{root / 'corpus.jsonl'}:2: column 'text' must be a text, found list"
    ):
        load_input(DataConfig(format="beir", path=str(root)))


# kind 2: known layouts read as meant (files and datasets alike) --------------------------------------------


def test_flagembedding_pos_list_is_several_positives_and_neg_are_given_negatives():
    """Case 02: 15 queries, 17 positives matched to the 40 corpus documents by text; `neg` is given."""
    d = CASES / "02-flagembedding-pos-list"
    data = load_input(DataConfig(format="pairs", path=str(d / "train.jsonl"), corpus=str(d / "corpus.jsonl")))
    assert len(data.queries) == 15 and len(data.corpus) == 40
    assert sum(len(q.positive_rows) for q in data.queries) == 17
    assert not any(t.startswith("[") for t in data.corpus.texts)
    src = [json.loads(x) for x in (d / "train.jsonl").read_text().splitlines()]
    for q, row in zip(data.queries, src, strict=True):
        assert [data.corpus.texts[r] for r in q.positive_rows] == row["pos"]
        assert [data.corpus.texts[g.row] for g in q.given] == row["neg"]
        assert all(g.where.endswith(f"train.jsonl:{src.index(row) + 1}") for g in q.given)
    assert "FlagEmbedding layout" in data.layout[0]


def _tevatron_rows() -> list[dict]:
    return [
        {
            "query_id": "7",
            "query": "what lowers fever",
            "positive_passages": [{"docid": "d1", "title": "Aspirin", "text": "Aspirin lowers fever."}],
            "negative_passages": [
                {"docid": "d2", "title": "", "text": "Ibuprofen treats pain."},
                {"docid": "d3", "title": "Sleep", "text": "Sleep improves memory."},
            ],
        }
    ]


def test_tevatron_passages_from_a_jsonl_file(tmp_path):
    p = tmp_path / "tevatron.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in _tevatron_rows()))
    data = load_input(DataConfig(format="pairs", path=str(p)))
    (q,) = data.queries
    assert q.id == "7" and q.text == "what lowers fever"
    assert [data.corpus.ids[r] for r in q.positive_rows] == ["d1"]
    assert data.corpus.texts[q.positive_rows[0]] == "Aspirin Aspirin lowers fever."
    assert [data.corpus.ids[g.row] for g in q.given] == ["d2", "d3"]
    assert "Tevatron layout" in data.layout[0]


def test_tevatron_rows_from_a_hugging_face_dataset_read_the_same(tmp_path):
    from datasets import Dataset

    Dataset.from_list(_tevatron_rows()).save_to_disk(str(tmp_path / "ds"))
    p = tmp_path / "tevatron.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in _tevatron_rows()))
    a = load_input(DataConfig(format="hf", path=str(tmp_path / "ds")))
    b = load_input(DataConfig(format="pairs", path=str(p)))
    assert a.corpus.ids == b.corpus.ids and a.corpus.texts == b.corpus.texts
    assert [(q.id, q.positive_rows, [g.row for g in q.given]) for q in a.queries] == [
        (q.id, q.positive_rows, [g.row for g in q.given]) for q in b.queries
    ]


def test_sentence_transformers_ntuple_parquet_negative_columns_are_given(tmp_path):
    t = pa.table(
        {
            "anchor": ["q one", "q two"],
            "positive": ["pos one", "pos two"],
            "negative_1": ["neg a", "neg b"],
            "negative_2": ["neg c", None],
        }
    )
    pq.write_table(t, tmp_path / "nt.parquet")
    data = load_input(DataConfig(format="pairs", path=str(tmp_path / "nt.parquet")))
    assert [[data.corpus.texts[g.row] for g in q.given] for q in data.queries] == [
        ["neg a", "neg c"],
        ["neg b"],
    ]
    assert "n-tuple" in data.layout[0]


def test_labeled_pairs_grade_zero_is_a_given_negative_not_a_positive(tmp_path):
    p = tmp_path / "labeled.jsonl"
    rows = [
        {"query": "q", "passage": "relevant text", "label": 1},
        {"query": "q", "passage": "irrelevant text", "label": 0},
    ]
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_input(DataConfig(format="pairs", path=str(p)))
    (q,) = data.queries
    assert [data.corpus.texts[r] for r in q.positive_rows] == ["relevant text"]
    assert [data.corpus.texts[g.row] for g in q.given] == ["irrelevant text"]


def test_a_float_label_is_not_taken_for_a_grade(tmp_path):
    p = tmp_path / "scored.jsonl"
    p.write_text(json.dumps({"query": "q", "positive": "p", "label": 0.73}) + "\n")
    with pytest.raises(InputError, match=r"scored.jsonl:1: column 'label' = 0.73 is not an integer"):
        load_input(DataConfig(format="pairs", path=str(p)))


def test_a_number_in_the_query_column_is_refused_with_row_and_column(tmp_path):
    from datasets import Dataset

    Dataset.from_dict({"query": [1.5], "positive": ["p"]}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(InputError, match=r"row 0: column 'query' must be a text, found float"):
        load_input(DataConfig(format="hf", path=str(tmp_path / "ds")))


def test_explicit_columns_still_win(tmp_path):
    p = tmp_path / "pairs.jsonl"
    p.write_text(json.dumps({"question": "q", "answer_passage": "p", "neg": ["n"]}) + "\n")
    data = load_input(
        DataConfig(format="pairs", path=str(p), columns=Columns(query="question", positive="answer_passage"))
    )
    assert data.corpus.texts[data.queries[0].positive_rows[0]] == "p"
    assert len(data.queries[0].given) == 1


# kind 4: file dialects ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("folder", ["data", "data-jsonl-bom"])
def test_bom_and_crlf_are_read_as_plain_utf8(folder):
    """Case 06: 40 documents, 15 queries, 15 positives, no skips."""
    data = load_input(DataConfig(format="beir", path=str(CASES / "06-bom-crlf-beir" / folder)))
    assert (len(data.corpus), len(data.queries)) == (40, 15)
    assert sum(len(q.positive_rows) for q in data.queries) == 15
    assert data.skips.counts() == {}
    assert not any(t.endswith("\r") for t in data.corpus.texts)


def test_tsv_fields_are_literal_quotes_are_characters(tmp_path):
    (tmp_path / "qrels.tsv").write_text('query-id\tcorpus-id\tscore\n"q1\t"d1"\t1\n', encoding="utf-8")
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": '"q1', "text": "a query"}) + "\n")
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": '"d1"', "text": "a doc"}) + "\n")
    data = load_input(
        DataConfig(
            format="qrels",
            qrels=str(tmp_path / "qrels.tsv"),
            queries=str(tmp_path / "queries.jsonl"),
            corpus=str(tmp_path / "corpus.jsonl"),
        )
    )
    assert data.queries[0].id == '"q1' and data.corpus.ids[data.queries[0].positive_rows[0]] == '"d1"'


def test_a_broken_json_line_names_line_and_column(tmp_path):
    root = write_beir(tmp_path, [{"_id": "d1", "text": "x y"}], [{"_id": "q1", "text": "q"}], [("q1", "d1")])
    with (root / "corpus.jsonl").open("a") as f:
        f.write('{"_id": "d2", "text": oops}\n')
    data = load_input(DataConfig(format="beir", path=str(root)))
    (ex,) = data.skips.examples()["bad_json"]
    assert ex.startswith(f"{root / 'corpus.jsonl'}:2:23") and "column 23" in ex


def _qrels_input(tmp_path: Path, qrels_text: str) -> DataConfig:
    d = CASES / "13-qrels-relevance-column"
    (tmp_path / "qrels.tsv").write_text(qrels_text)
    return DataConfig(
        format="qrels",
        qrels=str(tmp_path / "qrels.tsv"),
        queries=str(d / "queries.jsonl"),
        corpus=str(d / "corpus.jsonl"),
    )


def test_qrels_grade_column_named_relevance_is_recognised():
    """Case 13: 30 judgements, 15 of grade 0; only the 15 graded >= 1 are positives."""
    d = CASES / "13-qrels-relevance-column"
    data = load_input(
        DataConfig(
            format="qrels",
            qrels=str(d / "qrels.tsv"),
            queries=str(d / "queries.jsonl"),
            corpus=str(d / "corpus.jsonl"),
        )
    )
    zero = json.loads((d / "zero.json").read_text())
    assert sum(len(q.positive_rows) for q in data.queries) == 15
    assert all(zero[q.id] not in [data.corpus.ids[r] for r in q.positive_rows] for q in data.queries)
    assert data.skips.counts() == {"below_min_relevance": 15}
    assert "grade 'relevance' (by name)" in data.layout[0]


def test_trec_four_column_qrels_without_header(tmp_path):
    data = load_input(_qrels_input(tmp_path, "q01 0 d01 2\nq01 0 d02 0\nq02 Q0 d04 1\n"))
    assert {q.id: [data.corpus.ids[r] for r in q.positive_rows] for q in data.queries} == {
        "q01": ["d01"],
        "q02": ["d04"],
    }
    assert "4-column TREC" in data.layout[0]


def test_qrels_whose_grade_column_cannot_be_identified_is_an_error(tmp_path):
    with pytest.raises(InputError, match=r"qrels.tsv:1: qrels has no grade column"):
        load_input(_qrels_input(tmp_path, "query-id\tcorpus-id\tjudge\tnote\tx\nq01\td01\ta\tb\tc\n"))
    with pytest.raises(InputError, match=r"qrels.tsv:1: cannot tell the qrels layout"):
        load_input(_qrels_input(tmp_path, "q01\td01\n"))


def test_qrels_grade_by_position_in_the_three_column_beir_layout(tmp_path):
    data = load_input(_qrels_input(tmp_path, "qid\tdocid\tjudgement_value\nq01\td01\t1\nq01\td02\t0\n"))
    assert [data.corpus.ids[r] for r in data.queries[0].positive_rows] == ["d01"]
    assert "3-column BEIR" in data.layout[0]


def test_null_is_missing_in_parquet_corpora_too(tmp_path):
    pq.write_table(
        pa.table({"_id": ["d1", "d2"], "title": [None, "T"], "text": ["body one", None]}),
        tmp_path / "corpus.parquet",
    )
    (tmp_path / "q.jsonl").write_text(json.dumps({"_id": "q", "text": "query"}) + "\n")
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq\td1\t1\n")
    data = load_input(
        DataConfig(
            format="qrels",
            qrels=str(tmp_path / "qrels.tsv"),
            queries=str(tmp_path / "q.jsonl"),
            corpus=str(tmp_path / "corpus.parquet"),
        )
    )
    assert data.corpus.texts == ["body one"]
    assert data.skips.counts() == {"empty_text": 1}


def _qrels_cfg(tmp_path: Path, corpus: str, queries: str) -> DataConfig:
    (tmp_path / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n1\t7\t1\n")
    return DataConfig(
        format="qrels",
        qrels=str(tmp_path / "qrels.tsv"),
        queries=str(tmp_path / queries),
        corpus=str(tmp_path / corpus),
    )


def test_ms_marco_headerless_tsv_collection_and_queries(tmp_path):
    (tmp_path / "collection.tsv").write_text('7\tA "quoted" passage about fever.\n8\tAnother passage.\n')
    (tmp_path / "queries.tsv").write_text("1\twhat lowers fever\n")
    data = load_input(_qrels_cfg(tmp_path, "collection.tsv", "queries.tsv"))
    assert data.corpus.ids == ["7", "8"] and data.corpus.texts[0] == 'A "quoted" passage about fever.'
    assert data.queries[0].text == "what lowers fever" and data.skips.counts() == {}


def test_csv_quoted_field_may_hold_commas_and_line_breaks(tmp_path):
    (tmp_path / "corpus.csv").write_text(
        '_id,title,text\r\n7,"Fever, high","line one\nline two"\r\n8,,plain\r\n'
    )
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": 1, "text": "fever"}) + "\n")
    data = load_input(_qrels_cfg(tmp_path, "corpus.csv", "queries.jsonl"))
    assert data.corpus.texts == ["Fever, high line one\nline two", "plain"]
    assert data.queries[0].id == "1"  # an integer id in JSON reads as the qrels' "1"


def test_json_array_and_gzip_files(tmp_path):
    import gzip

    docs = [{"_id": "7", "text": "doc seven"}, {"_id": "8", "text": "doc eight"}]
    (tmp_path / "corpus.json").write_text(json.dumps(docs))
    with gzip.open(tmp_path / "queries.jsonl.gz", "wt") as f:
        f.write(json.dumps({"_id": "1", "text": "seven"}) + "\n")
    data = load_input(_qrels_cfg(tmp_path, "corpus.json", "queries.jsonl.gz"))
    assert data.corpus.texts == ["doc seven", "doc eight"] and data.queries[0].text == "seven"


def test_utf16_file_is_refused_by_name(tmp_path):
    (tmp_path / "corpus.jsonl").write_bytes(json.dumps({"_id": "7", "text": "x"}).encode("utf-16"))
    (tmp_path / "queries.jsonl").write_text(json.dumps({"_id": "1", "text": "q"}) + "\n")
    with pytest.raises(InputError, match=r"corpus.jsonl: the file is UTF-16/UTF-32"):
        load_input(_qrels_cfg(tmp_path, "corpus.jsonl", "queries.jsonl"))


# instances found by a fresh-eyes trial ------------------------------------------------------------------------


def test_tevatron_docid_naming_another_corpus_text_is_refused(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(
        json.dumps({"_id": "d1", "text": "Photosynthesis converts light energy."})
        + "\n"
        + json.dumps({"_id": "d2", "text": "A volcano erupts."})
        + "\n"
    )
    row = {
        "query_id": "q1",
        "query": "how do plants use light",
        "positive_passages": [{"docid": "d2", "title": "", "text": "Photosynthesis converts light energy."}],
    }
    (tmp_path / "train.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(InputError, match=r"train.jsonl:1: positive docid 'd2' has the text"):
        load_input(
            DataConfig(
                format="pairs", path=str(tmp_path / "train.jsonl"), corpus=str(tmp_path / "corpus.jsonl")
            )
        )


@pytest.mark.parametrize("sep, suffix", [(",", "csv"), ("\t", "tsv")])
def test_pandas_csv_export_of_list_columns_reads_the_lists(tmp_path, sep, suffix):
    pd = pytest.importorskip("pandas")
    d = CASES / "02-flagembedding-pos-list"
    rows = [json.loads(x) for x in (d / "train.jsonl").read_text().splitlines()]
    pd.DataFrame(rows).to_csv(tmp_path / f"train.{suffix}", index=False, sep=sep)
    from_csv = load_input(
        DataConfig(format="pairs", path=str(tmp_path / f"train.{suffix}"), corpus=str(d / "corpus.jsonl"))
    )
    from_jsonl = load_input(
        DataConfig(format="pairs", path=str(d / "train.jsonl"), corpus=str(d / "corpus.jsonl"))
    )
    assert len(from_csv.corpus) == 40 and not any(t.startswith("[") for t in from_csv.corpus.texts)
    assert [(q.positive_rows, [g.row for g in q.given]) for q in from_csv.queries] == [
        (q.positive_rows, [g.row for g in q.given]) for q in from_jsonl.queries
    ]


def test_a_list_written_as_text_where_one_text_is_expected_is_refused(tmp_path):
    (tmp_path / "pairs.csv").write_text("query,positive\n\"['q one', 'q two']\",some passage\n")
    with pytest.raises(InputError, match=r"pairs.csv:2: column 'query' holds a list written as text"):
        load_input(DataConfig(format="pairs", path=str(tmp_path / "pairs.csv")))


def test_qrels_header_with_odd_names_is_not_read_by_position(tmp_path):
    with pytest.raises(InputError, match="qrels has no grade column"):
        load_input(_qrels_input(tmp_path, "query-id\tcorpus-id\trelevancy\tannotator\nq01\td01\t1\t2\n"))


def test_conflicting_judgements_are_counted(tmp_path):
    data = load_input(_qrels_input(tmp_path, "query-id\tcorpus-id\tscore\nq01\td01\t1\nq01\td01\t0\n"))
    assert data.skips.counts()["conflicting_judgement"] == 1


def test_query_variants_by_case_and_punctuation_stay_apart_unicode_forms_group(tmp_path):
    """Case and punctuation can change the question, so such variants stay separate queries (the identity
    rule keeps each one's positives out of the other's negatives); NFC and NFD spellings are one query."""
    rows = [
        {"query": "What causes ocean tides?", "positive": "The Moon's gravity causes tides."},
        {"query": "what causes ocean tides", "positive": "The Sun also pulls on the oceans."},
        {"query": "caf\u00e9 opening hours", "positive": "Open at nine."},
        {"query": "cafe\u0301 opening hours", "positive": "Closed on Sundays."},
    ]
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_input(DataConfig(format="pairs", path=str(p)))
    assert [len(q.positive_rows) for q in data.queries] == [1, 1, 2]
    assert any("2 queries differ from another only in case" in line for line in data.layout)


def test_hugging_face_nested_sequence_of_passages(tmp_path):
    from datasets import Dataset, Features, Sequence, Value

    feats = Features(
        {
            "query_id": Value("string"),
            "query": Value("string"),
            "positive_passages": Sequence(
                {"docid": Value("string"), "title": Value("string"), "text": Value("string")}
            ),
            "negative_passages": Sequence(
                {"docid": Value("string"), "title": Value("string"), "text": Value("string")}
            ),
        }
    )

    def columnar(passages: list[dict]) -> dict[str, list]:
        return {k: [x[k] for x in passages] for k in ("docid", "title", "text")}

    rows = [
        {
            **r,
            "positive_passages": columnar(r["positive_passages"]),
            "negative_passages": columnar(r["negative_passages"]),
        }
        for r in _tevatron_rows()
    ]
    Dataset.from_list(rows, features=feats).save_to_disk(str(tmp_path / "ds"))
    data = load_input(DataConfig(format="hf", path=str(tmp_path / "ds")))
    (q,) = data.queries
    assert [data.corpus.ids[r] for r in q.positive_rows] == ["d1"]
    assert [data.corpus.ids[g.row] for g in q.given] == ["d2", "d3"]


def test_null_positive_in_a_triplet_row_is_a_counted_skip(tmp_path):
    t = pa.table({"anchor": ["q", "q"], "positive": ["p", None], "negative": ["n1", "n2"]})
    pq.write_table(t, tmp_path / "trip.parquet")
    data = load_input(DataConfig(format="pairs", path=str(tmp_path / "trip.parquet")))
    assert data.skips.counts() == {"empty_text": 1}
    assert len(data.queries[0].given) == 2


def test_given_negatives_added_to_the_corpus_are_only_their_own_querys(tmp_path):
    (tmp_path / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": "real passage"}) + "\n")
    rows = [
        {"query": "q one", "pos": ["real passage"], "neg": ["only a given negative"]},
        {"query": "q two", "pos": ["another positive"], "neg": []},
    ]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = load_input(
        DataConfig(format="pairs", path=str(tmp_path / "train.jsonl"), corpus=str(tmp_path / "corpus.jsonl"))
    )
    only = [data.corpus.texts[r] for r in data.given_only]
    assert only == ["only a given negative"]  # the added positive is a real document for everyone


def test_tsv_fields_are_literal_unless_csv_quoted_by_pandas():
    """Case 02's TSV export: the old lenient normaliser hid that `"[""text""]"` was read with its quotes."""
    from negforge.sources.readers import _tsv_field

    assert _tsv_field('"Hello"') == '"Hello"'  # a quoted title in a BEIR TSV stays as written
    assert _tsv_field('say "hi"') == 'say "hi"'
    assert _tsv_field('"say ""hi"" now"') == 'say "hi" now'  # pandas' to_csv(sep="\t") quoting
    assert _tsv_field('"[""a"", ""b""]"') == '["a", "b"]'
    assert _tsv_field('"a"" b"c"') == '"a"" b"c"'  # a lone quote inside: not CSV quoting, literal
