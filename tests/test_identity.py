"""The identity rule: what negforge calls a negative is never its query's positive or the query itself.

Real runs (bm25s, MiniLM, faiss) on the case fixtures; asserted counts are the right values for those inputs.
"""

import json
from pathlib import Path

import pytest

from negforge.config import load_config
from negforge.mining.identity import IdentityIndex
from negforge.pipeline import run
from negforge.records import Corpus, Query
from negforge.text_identity import norm_text, text_key

CASES = Path(__file__).parent / "fixtures" / "input_cases"


def _run(tmp_path, cache_dir, data: dict, *overrides: str):
    cfg = load_config(
        None,
        [
            f"cache_dir={cache_dir}",
            f"output.dir={tmp_path / 'runs'}",
            "selection.num_negatives=3",
            *overrides,
        ],
        data=data,
    )
    return run(cfg)


def _bad_negatives(rows: list[dict]) -> list[tuple]:
    bad = []
    for r in rows:
        forbidden = {norm_text(p) for p in r["positives"]} | {norm_text(r["query"])}
        for n in r["negatives"]:
            t = norm_text(n["text"])
            if t in forbidden or n["doc_id"] == r["query_id"] or any(t.endswith(" " + f) for f in forbidden):
                bad.append((r["query_id"], n["doc_id"], n["text"][:40]))
    return bad


def test_normalisation_nfkc_casefold_whitespace_and_final_punctuation():
    assert norm_text("  Ｐａｒｉｓ,\tFRANCE!  ") == "paris, france"
    assert text_key("Paris") == text_key("paris ") == text_key("PARIS.")
    assert text_key("Paris") != text_key("Berlin")
    assert text_key("   ") == 0


def test_invisible_format_characters_do_not_hide_a_copy():
    assert text_key("pan\u00adcreas hor\u200bmone") == text_key("pancreas hormone")
    assert norm_text("caf\u0065\u0301") == norm_text("caf\u00e9")  # NFD vs NFC


def test_html_escaped_or_tagged_copy_of_the_positive_is_the_same_text():
    plain = "AT&T's merger cost $5 \u2014 about H2O and 3\u00bd billion"
    for copy in (
        "AT&amp;T&#39;s merger cost $5 &mdash; about H<sub>2</sub>O and 3&frac12; billion",
        "<p>AT&amp;amp;T's <b>merger</b> cost $5 \u2014 about H2O and 3\u00bd billion</p>",
    ):
        assert text_key(copy) == text_key(plain), copy
    assert norm_text("<p>one</p><p>two</p>") == "one two" and norm_text("x<y and z>w") == "x<y and z>w"
    c = Corpus(
        ids=["d1", "d2", "d3"],
        texts=[plain, "AT&amp;T&#39;s merger cost $5 &mdash; about H2O and 3&frac12; billion", "Other."],
    )
    assert IdentityIndex(c).for_query(Query("q", "what did it cost", (0,))).excluded == {
        1: "same_text_as_positive"
    }


def test_duplicate_and_answer_filters_normalise_like_the_identity_rule():
    from negforge.filters.duplicate import normalize, text_hash

    assert normalize("Caf\u0065\u0301 &amp; bar") == normalize("Caf\u00e9 & bar") == "café & bar"
    assert text_hash("<p>AT&amp;T</p>") == text_hash("AT&T")


def test_positives_of_a_query_with_the_same_text_are_excluded():
    c = Corpus(ids=["a", "b", "c"], texts=["Alpha text.", "Beta text.", "Gamma text."])
    q1, q2 = Query("1", "Same claim.", (0,)), Query("2", "same claim", (1,))
    idx = IdentityIndex(c)
    sib = IdentityIndex.siblings([q1, q2])
    (rows,) = sib.values()
    assert rows == {0, 1}
    ident = idx.for_query(q1, rows)
    assert ident.excluded == {1: "positive_of_same_query_text"}
    assert ident.text_reason("beta text") == "same_text_as_positive"


def test_identity_index_finds_copies_with_and_without_title():
    c = Corpus(
        ids=["d1", "d1-copy", "q9", "other"],
        texts=["Tower The tower is tall.", "the tower is  TALL", "Tower What is tall?", "Something else."],
        titles=["Tower", "", "Tower", ""],
    )
    q = Query("q9", "what is tall", (0,))
    ident = IdentityIndex(c).for_query(q)
    assert ident.excluded == {1: "same_text_as_positive", 2: "query_document"}
    assert ident.text_reason("THE TOWER IS TALL.") == "same_text_as_positive"
    assert ident.text_reason("What is tall?") == "same_text_as_query"
    assert ident.text_reason("The tower is short.") is None
    assert IdentityIndex(c).shared_texts()["groups"] == 0  # with titles joined the full texts differ


def test_copy_of_the_positive_under_another_id_is_never_a_negative(tmp_path, cache_dir):
    """Case 01: d01-mirror copies d01; ans-fr and ans-hilton are both "Paris". Default config."""
    res = _run(tmp_path, cache_dir, {"format": "beir", "path": str(CASES / "01-dup-text-positive" / "data")})
    from datasets import load_from_disk

    dd = load_from_disk(str(res.dataset_dir))
    assert _bad_negatives(dd["rich"].to_list()) == []
    assert all(norm_text(t["negative"]) != norm_text(t["positive"]) for t in dd["triplet"])
    ident = res.manifest["identity"]
    assert ident["excluded"] == {
        "same_text_as_positive": 3,
        "same_text_as_query": 0,
        "query_document": 0,
        "positive_of_same_query_text": 0,
    }
    assert ident["shared_texts"]["groups"] == 2 and ident["shared_texts"]["documents"] == 4
    dropped = {
        (r["query_id"], d["doc_id"])
        for r in dd["rich"].to_list()
        for d in r["dropped"]
        if d["filter"] == "identity"
    }
    assert dropped == {("q01", "d01-mirror"), ("q16", "ans-hilton"), ("q17", "ans-fr")}


def test_arguana_style_query_document_is_never_its_own_negative(tmp_path, cache_dir):
    """Case 08: each of the 6 queries is also a corpus document with the same id (and a title in front)."""
    for name, extra in [("plain", ["filters=[]", "selection.relative_margin=null"]), ("defaults", [])]:
        res = _run(
            tmp_path,
            cache_dir,
            {"format": "beir", "path": str(CASES / "08-arguana-query-in-corpus" / "data")},
            f"run_name={name}",
            *extra,
        )
        from datasets import load_from_disk

        rows = load_from_disk(str(res.dataset_dir))["rich"].to_list()
        assert len(rows) == 6
        assert _bad_negatives(rows) == [], name
        assert res.manifest["identity"]["excluded"]["query_document"] == 6


def test_given_negative_equal_to_the_positive_is_dropped_by_the_identity_rule(tmp_path, cache_dir):
    d = CASES / "02-flagembedding-pos-list"
    rows = [json.loads(x) for x in (d / "train.jsonl").read_text().splitlines()]
    rows[0]["neg"].append(rows[0]["pos"][0].upper())  # the positive again, shouted
    rows[1]["neg"].append(rows[1]["query"])  # the query itself
    p = tmp_path / "train.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = _run(tmp_path, cache_dir, {"format": "pairs", "path": str(p), "corpus": str(d / "corpus.jsonl")})
    from datasets import load_from_disk

    rich = load_from_disk(str(res.dataset_dir))["rich"].to_list()
    assert _bad_negatives(rich) == []
    given_dropped = [
        (r["query"], x["reason"])
        for r in rich
        for x in r["dropped"]
        if x["filter"] == "identity" and x["source"] == "given"
    ]
    assert (rows[0]["query"], "same_text_as_positive") in given_dropped
    assert (rows[1]["query"], "same_text_as_query") in given_dropped
    assert res.manifest["data"]["given_negatives"] == 17
    # every given negative leaves with a verdict: kept, or dropped with a reason (here easy ones lose to mined)
    seen = sum(1 for r in rich for n in [*r["negatives"], *r["dropped"]] if n["source"] == "given")
    assert seen == 17


def test_given_negatives_fill_their_own_quota(tmp_path, cache_dir):
    d = CASES / "02-flagembedding-pos-list"
    res = _run(
        tmp_path,
        cache_dir,
        {"format": "pairs", "path": str(d / "train.jsonl"), "corpus": str(d / "corpus.jsonl")},
        "mix.quotas={given: 1, mined: 2}",
        "filters=[]",
        "selection.relative_margin=null",
    )
    from datasets import load_from_disk

    rich = load_from_disk(str(res.dataset_dir))["rich"].to_list()
    src = [json.loads(x) for x in (d / "train.jsonl").read_text().splitlines()]
    by_query = {s["query"]: s for s in src}
    for r in rich:
        given = [n for n in r["negatives"] if n["source"] == "given"]
        assert len(given) == 1 and given[0]["text"] == by_query[r["query"]]["neg"][0]
        assert given[0]["ranks"]["given"] == 1
    assert res.manifest["counts"]["selected"]["given"] == 15


@pytest.mark.parametrize("case", ["01-dup-text-positive", "08-arguana-query-in-corpus"])
def test_inspect_reports_what_the_identity_rule_will_exclude(case):
    from negforge.config import DataConfig
    from negforge.sources.inspect import inspect_data

    rep = inspect_data(DataConfig(format="beir", path=str(CASES / case / "data")))
    want = {"01-dup-text-positive": (3, 0), "08-arguana-query-in-corpus": (0, 6)}[case]
    assert (rep.identity["same_text_as_positive"], rep.identity["query_document"]) == want
