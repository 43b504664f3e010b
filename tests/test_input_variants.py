"""More instances of the input-fault kinds of ../shared/cases, each read as meant, refused by name, or counted.

Each test holds its tiny input inline. Kinds: a list column written as text (case 02), a labeled-pair grade
column with another name (case 13), missing values spelled as text (case 09), a column of ids read as texts
(case 01: the positive's own document mined as its negative).
"""

import json

import pytest

from negforge.config import DataConfig
from negforge.sources import InputError, load_input
from negforge.sources.values import id_value, list_in_text, passage_list, text_value

P1 = "Title one. The first document is about apples."
P2 = "Title two. The second document is about pears."


def _corpus(tmp_path, n=4):
    docs = [P1, P2] + [f"Filler document {i} about something else entirely." for i in range(3, n + 1)]
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(docs, 1)))
    return path


def _pairs(tmp_path, name, text, **kw):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_input(DataConfig(format="pairs", path=str(path), corpus=str(_corpus(tmp_path)), **kw))


# kind 02: a list column exported as text -----------------------------------------------------------------


def test_numpy_array_repr_is_read_as_its_items_never_concatenated():
    # pandas' to_csv of a column of numpy arrays writes str(array): items separated by spaces, no commas
    assert list_in_text("['first passage' 'second one']") == ["first passage", "second one"]
    assert list_in_text("['a long one'\n 'wrapped \\'here\\''\n \"x\"]") == [
        "a long one",
        "wrapped 'here'",
        "x",
    ]
    assert list_in_text("['a', 'b']") == ["a", "b"] and list_in_text("[citation needed]") is None


def test_numpy_repr_pos_column_in_csv_gives_two_positives(tmp_path):
    data = _pairs(tmp_path, "train.csv", f"query,pos\nwhich fruit,['{P1}' '{P2}']\n")
    (q,) = data.queries
    assert [data.corpus.ids[r] for r in q.positive_rows] == ["d1", "d2"]
    assert len(data.corpus) == 4 and not data.skips.counts()


def test_parenthesised_text_is_a_text_and_elided_numpy_repr_is_refused_by_row_and_column():
    ps, _ = passage_list("('Hello', 'World')", "t.jsonl:2", "pos")  # code-search data: one text, not two
    assert [p.text for p in ps] == ["('Hello', 'World')"]
    with pytest.raises(
        InputError, match=r"t.csv:2: column 'pos' holds a numpy array printed with its middle"
    ):
        passage_list("['a' 'b' ... 'y' 'z']", "t.csv:2", "pos")
    assert list_in_text("(see above)") is None


# kind 13: a labeled pair's grade column under another name --------------------------------------------------


@pytest.mark.parametrize("col", ["rel", "grade", "relevance_score", "is_relevant", "Label", "qrel"])
def test_labeled_pairs_grade_column_names_are_read_as_grades(tmp_path, col):
    text = f"query,passage,{col}\nwhich fruit,{P1},1\nwhich fruit,{P2},0\n"
    data = _pairs(tmp_path, "labeled.csv", text)
    (q,) = data.queries
    assert [data.corpus.ids[r] for r in q.positive_rows] == ["d1"]
    assert [data.corpus.ids[g.row] for g in q.given] == ["d2"]


def test_boolean_labels_are_grades(tmp_path):
    rows = [
        {"query": "which fruit", "passage": P1, "is_relevant": True},
        {"query": "which fruit", "passage": P2, "is_relevant": False},
    ]
    data = _pairs(tmp_path, "labeled.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    (q,) = data.queries
    assert len(q.positive_rows) == 1 and len(q.given) == 1
    csv = _pairs(
        tmp_path, "labeled.csv", f"query,passage,is_relevant\nwhich fruit,{P1},True\nwhich fruit,{P2},false\n"
    )
    (q,) = csv.queries  # pandas writes booleans as True/False
    assert [csv.corpus.ids[r] for r in q.positive_rows] == ["d1"] and len(q.given) == 1


@pytest.mark.parametrize("col", ["relevant", "target", "rating"])
def test_an_unrecognised_grade_like_column_is_refused_not_ignored(tmp_path, col):
    text = f"query,passage,{col}\nwhich fruit,{P1},1\nwhich fruit,{P2},0\n"
    with pytest.raises(InputError, match=rf"labeled.csv:2: column '{col}' looks like a relevance grade"):
        _pairs(tmp_path, "labeled.csv", text)


def test_a_float_score_column_beside_pairs_is_not_taken_for_a_grade(tmp_path):
    data = _pairs(tmp_path, "p.csv", f"query,positive,teacher_score\nwhich fruit,{P1},0.83\n")
    assert len(data.queries) == 1 and "ignored columns 'teacher_score'" in data.layout[0]


def test_the_grade_column_set_by_name_is_used(tmp_path):
    text = f"query,passage,relevant\nwhich fruit,{P1},1\nwhich fruit,{P2},0\n"
    data = _pairs(tmp_path, "labeled.csv", text, columns={"label": "relevant"})
    assert len(data.queries[0].positive_rows) == 1


# kind 09: a missing value spelled as text ---------------------------------------------------------------------


@pytest.mark.parametrize("spelled", ["nan", "NaN", "None", "<NA>", "NaT", "null", "NULL", " nan "])
def test_missing_value_spellings_are_missing(spelled):
    assert text_value(spelled, "f:1", "title") is None
    assert id_value(spelled, "f:1", "_id") is None
    assert text_value(spelled, "f:1", "answer", spellings=False) == spelled.strip()  # an answer "None"


@pytest.mark.parametrize("real", ["NA", "N/A", "Na", "Nan", "Null", "NONE", "#N/A"])
def test_words_that_look_missing_are_read(real):
    """Sodium's symbol, a Wikipedia title, a country code: case-sensitive spellings only."""
    assert text_value(real, "f:1", "title") == real
    assert id_value(real, "f:1", "_id") == real


def test_stringified_nan_title_is_no_title_and_counted(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    pq.write_table(
        pa.table(
            {
                "_id": ["d1", "d2", "d3"],
                "title": ["nan", "None", "Pears"],  # df.astype(str) before to_parquet
                "text": ["Apples are red.", "nan", "Pears are green."],
            }
        ),
        root / "corpus.parquet",
    )
    (root / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "red fruit"})
        + "\n"
        + json.dumps({"_id": "q2", "text": "None"})
        + "\n"
    )
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td3\t1\n")
    data = load_input(
        DataConfig(
            format="qrels",
            qrels=str(root / "qrels" / "train.tsv"),
            queries=str(root / "queries.jsonl"),
            corpus=str(root / "corpus.parquet"),
        )
    )
    assert data.corpus.texts == ["Apples are red.", "Pears Pears are green."]
    assert [q.id for q in data.queries] == ["q1"]
    counts = data.skips.counts()
    assert counts["missing_title"] == 1 and counts["empty_text"] == 2  # d2's text, q2's text


# kind 01: ids given where texts belong ------------------------------------------------------------------------


def test_a_positive_that_is_a_corpus_id_not_a_text_is_refused(tmp_path):
    row = {"query": "which fruit", "pos": ["d1"]}
    with pytest.raises(InputError, match=r"train.jsonl:1: the positive 'd1' is no corpus text but the id"):
        _pairs(tmp_path, "train.jsonl", json.dumps(row) + "\n")


# kind 06: line ends other than LF / CRLF ----------------------------------------------------------------------


def test_cr_only_line_ends_are_lines_in_every_file_of_a_beir_folder(tmp_path):
    """Classic Mac OS / Excel for Mac exports end lines with CR alone: the whole file was one bad line."""
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "text": f"Document {i} text."} for i in range(1, 4)]
    (root / "corpus.jsonl").write_bytes("\r".join(json.dumps(d) for d in docs).encode() + b"\r")
    qs = [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"}]
    (root / "queries.jsonl").write_bytes("\r".join(json.dumps(q) for q in qs).encode())
    (root / "qrels" / "train.tsv").write_bytes(b"query-id\tcorpus-id\tscore\rq1\td1\t1\rq2\td2\t1\r")
    data = load_input(DataConfig(format="beir", path=str(root)))
    assert len(data.corpus) == 3 and [q.id for q in data.queries] == ["q1", "q2"]
    assert not data.skips.counts()


def test_a_bom_left_in_parquet_column_names_is_dropped(tmp_path):
    """pandas.read_csv without utf-8-sig keeps the BOM in the first column name; to_parquet saves it there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    corpus = tmp_path / "corpus.parquet"
    pq.write_table(
        pa.table({"\ufefftitle": ["Apples", "Pears"], "_id": ["d1", "d2"], "text": ["Red.", "Green."]}),
        corpus,
    )
    qrels = tmp_path / "qrels.parquet"
    pq.write_table(pa.table({"\ufeffquery-id": ["q1"], "corpus-id": ["d1"], "score": [1]}), qrels)
    queries = tmp_path / "queries.jsonl"
    queries.write_text(json.dumps({"_id": "q1", "text": "red fruit"}) + "\n")
    data = load_input(DataConfig(format="qrels", qrels=str(qrels), queries=str(queries), corpus=str(corpus)))
    assert data.corpus.texts == ["Apples Red.", "Pears Green."]  # the title was silently dropped before
    assert [q.id for q in data.queries] == ["q1"]


# kind 13 again: two columns that could each be the grade ----------------------------------------------------


@pytest.mark.parametrize("header", ["query-id\tcorpus-id\tlabel\tscore", "qid\tdocid\trel\tscore"])
def test_qrels_with_two_grade_columns_is_refused_naming_both(tmp_path, header):
    """A retrieval score beside the relevance label: reading the wrong one makes non-relevant documents
    positives; which one grades is the user's call."""
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text(json.dumps({"_id": "d1", "text": P1}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "apples"}) + "\n")
    (root / "qrels" / "train.tsv").write_text(f"{header}\nq1\td1\t0\t7.5\n")
    with pytest.raises(InputError, match=r"train\.tsv.*could both be a qrels file's grade column"):
        load_input(DataConfig(format="beir", path=str(root)))


def test_a_stray_cr_in_a_long_first_record_does_not_make_an_lf_file_cr_only(tmp_path):
    """CR-only line ends are recognised only when the file has no LF at all."""
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    first = {"_id": "d1", "text": "x" * 70_000 + "\r" + P1}
    rows = [first, {"_id": "d2", "text": P2}, {"_id": "d3", "text": "A third document about plums."}]
    (root / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows).replace("\\r", "\r"))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "pears"}) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    data = load_input(DataConfig(format="beir", path=str(root)))
    # the raw CR is invalid JSON (a control character in a string): that line is a counted skip, and every
    # later record is read (read as CR-only, they merged into one bad line)
    assert data.corpus.ids == ["d2", "d3"] and data.skips.counts() == {"bad_json": 1}
    assert data.skips.items[0].where.endswith("corpus.jsonl:1:70024")  # file:line:column
