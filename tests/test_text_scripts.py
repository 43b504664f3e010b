"""One normaliser keeps what carries meaning, in every script; answers and BM25 tokens work in any script.

Right values from ../shared/cases/19-symbol-only-text-collision (operators and Devanagari vowel signs once
collapsed ten positives into five) and from what each script's readers would call two different texts.
"""

import json
from pathlib import Path

import pytest

from negforge.config import AnswerLeakFilterConfig, BM25Config, DataConfig, DuplicateFilterConfig
from negforge.filters.answer_leak import AnswerLeakFilter
from negforge.filters.duplicate import DuplicateFilter, text_hash
from negforge.mining.bm25 import BM25Miner, top_k_excluding
from negforge.mining.identity import IdentityIndex
from negforge.mining.tokenize import UnicodeTokenizer, bigram_note
from negforge.records import Corpus
from negforge.sources import load_input
from negforge.sources.inspect import inspect_data
from negforge.text_identity import IDENTITY_RULE_VERSION, norm_text, text_key
from tests.test_filters import batch, cand

CASE19 = Path(__file__).parent / "fixtures" / "input_cases" / "19-symbol-only-text-collision"

# pairs that say different things: one character (an operator, a sign, a vowel sign, a tone mark, an accent)
DIFFERENT = [
    ("return a - b", "return a + b"),  # code: operators
    ("if x < y: print(x)", "if x > y: print(x)"),
    ("i++", "i--"),
    ("C++ compiler", "C compiler"),
    ("a ≤ b", "a ≥ b"),  # maths
    ("∀x ∃y P(x, y)", "∃x ∀y P(x, y)"),
    ("-40 degrees", "40 degrees"),  # a digit's sign
    ("3.5% growth", "35% growth"),
    ("दिन", "दान"),  # Devanagari: day / donation (vowel signs, Mc)
    ("कील", "कुल"),  # nail / total
    ("все", "всё"),  # Cyrillic: everyone / everything
    ("πότε", "ποτέ"),  # Greek: when / never (the accent's place)
    ("عَلِمَ", "عُلِمَ"),  # Arabic: he knew / it was known (harakat, Mn)
    ("ข้าว", "ขาว"),  # Thai: rice / white (tone mark, Mn)
    ("未来", "末来"),  # CJK
    ("שָׁלוֹם", "שָׁלֵם"),  # Hebrew points
]

# pairs that are one text: case, Unicode form, HTML, whitespace, quotes, full width, a final full stop
SAME = [
    ("Paris is in France.", "paris  is in\tfrance"),
    ("caf\u0065\u0301", "caf\u00e9"),  # NFD / NFC
    ("AT&amp;T&#39;s <b>merger</b>", "AT&T's merger"),
    ("It\u2019s \u201cfine\u201d", 'It\'s "fine"'),
    ("ＡＢＣ １２３", "abc 123"),  # full-width
    ("pan\u00adcreas", "pancreas"),  # soft hyphen (Cf)
    ("ВСЁ ХОРОШО", "всё хорошо"),
    ("ΠΌΤΕ", "πότε"),
    ("a \u2212 b", "a - b"),  # minus sign / hyphen-minus
    ("दिन", "दि\u200dन"),  # a zero-width joiner is invisible
]


@pytest.mark.parametrize("a, b", DIFFERENT)
def test_texts_that_differ_in_a_meaning_character_are_two_texts(a, b):
    assert norm_text(a) != norm_text(b)
    assert text_key(a) != text_key(b)
    assert text_hash(a) != text_hash(b)  # the duplicate filter's exact hash


@pytest.mark.parametrize("a, b", SAME)
def test_copies_in_another_form_are_one_text(a, b):
    assert norm_text(a) == norm_text(b)
    assert text_key(a) == text_key(b)


def test_the_rule_version_changed_with_the_rule():
    # shards judged under v2 (operators erased) or v3 (Unicode 14's format characters) are judged again
    assert IDENTITY_RULE_VERSION == 4


def test_format_characters_of_newer_unicode_are_invisible():
    """Egyptian hieroglyph format controls (U+13439..U+1343F, Cf since Unicode 15) vanish like a soft hyphen."""
    assert norm_text("pan\u00adcreas") == norm_text("pan\U00013439creas") == "pancreas"
    assert norm_text("a\u200bb") == "ab"


def test_pairs_alone_keep_ten_positives_that_differ_only_in_symbols_or_vowel_signs():
    """Case 19, run 1: no corpus file; the corpus is the distinct positives (15 + 10 = 25 documents)."""
    want = json.loads((CASE19 / "expected.json").read_text())
    data = load_input(DataConfig(format="pairs", path=str(CASE19 / "pairs.jsonl")))
    assert len(data.corpus) == 25
    by_text = {q.text: q for q in data.queries}
    for w in want:
        q = by_text[w["query"]]
        assert [data.corpus.texts[r] for r in q.positive_rows] == [w["text"]], w["query"]


def test_pairs_with_a_corpus_match_each_positive_to_the_document_with_exactly_its_text():
    """Case 19, run 2: each positive is the corpus document with its own text, never its one-symbol twin."""
    want = json.loads((CASE19 / "expected.json").read_text())
    data = load_input(
        DataConfig(format="pairs", path=str(CASE19 / "pairs.jsonl"), corpus=str(CASE19 / "corpus.jsonl"))
    )
    by_text = {q.text: q for q in data.queries}
    for w in want:
        q = by_text[w["query"]]
        assert [data.corpus.ids[r] for r in q.positive_rows] == [w["doc_id"]], w["query"]
    ident = IdentityIndex(data.corpus)
    for w in want:  # and no twin is excluded as "the same text as the positive"
        assert ident.for_query(by_text[w["query"]]).excluded == {}, w["query"]


def test_two_ids_with_one_text_are_reported_with_examples(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    docs = [
        ("d1", "return a - b"),
        ("d2", "return a + b"),
        ("d3", "RETURN a - b."),
        ("d4", "दिन"),
        ("d5", "दान"),
    ]
    corpus.write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs))
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "subtract", "positive": "return a - b"}) + "\n")
    rep = inspect_data(DataConfig(format="pairs", path=str(pairs), corpus=str(corpus)))
    assert rep.shared_texts["groups"] == 1 and rep.shared_texts["documents"] == 2
    assert rep.shared_texts["examples"][0]["doc_ids"] == ["d1", "d3"]
    c = Corpus(ids=[i for i, _ in docs], texts=[t for _, t in docs])
    assert IdentityIndex(c).shared_texts()["groups"] == 1


# ---- the duplicate filter --------------------------------------------------------------------------------


def test_duplicate_filter_keeps_one_symbol_twins_and_drops_copies():
    f = DuplicateFilter(DuplicateFilterConfig(near_threshold=None))
    v = f.apply(
        batch(
            cand("दिन का समय"),
            cand("दान का समय"),  # another word: kept
            cand("दिन  का समय."),  # a copy: dropped
            cand("x < y"),
            cand("x > y"),
            positives=["something else"],
        )
    )
    assert [x.keep for x in v] == [True, True, False, True, True]


# ---- answer_leak: the answer as written, at token boundaries, in any script ---------------------------------

LEAKS = [
    ("C++", "The engine is written in C++.", True),
    ("C++", "The engine is written in C#.", False),
    ("-40", "It freezes at -40 degrees.", True),
    ("-40", "The B-40 rocket.", False),
    ("−40", "It freezes at -40 degrees.", True),  # a minus sign is a hyphen-minus
    (".NET", "It runs on the .NET runtime.", True),
    (".NET", "It runs on ASP.NET Core.", False),
    ("3.5%", "Growth was 3.5% last year.", True),
    ("3.5%", "Growth was 13.5% last year.", False),
    ("U.S.", "He was born in the U.S. in 1961.", True),
    ("U.S.", "He was born in the U.S.A. in 1961.", False),
    ("दिन", "एक दिन में यह हुआ।", True),
    ("दिन", "उसने दान दिया।", False),
    ("कुल", "कील ठोकी गई।", False),
    ("Москва", "Столица России — Москва.", True),
    ("Αθήνα", "Η πρωτεύουσα είναι η Αθήνα.", True),
    ("القاهرة", "عاصمة مصر هي القاهرة.", True),
    ("北京", "我去北京了。", True),  # no spaces between words: a CJK character is a boundary
    ("東京", "我去北京了。", False),
    ("กรุงเทพ", "เมืองหลวงคือกรุงเทพมหานคร", True),
    ("Paris", "A Parisian cafe.", False),
]


@pytest.mark.parametrize("answer, text, leaks", LEAKS)
def test_answer_leak_matches_the_answer_as_written_at_token_boundaries(tmp_path, answer, text, leaks):
    p = tmp_path / "answers.jsonl"
    p.write_text(json.dumps({"query_id": "q1", "answers": [answer]}, ensure_ascii=False) + "\n")
    v = AnswerLeakFilter(AnswerLeakFilterConfig(answers=str(p))).apply(batch(cand(text)))[0]
    assert (not v.keep) == leaks, (answer, text)


def test_unusable_answers_are_counted_and_named_never_silently_skipped(tmp_path):
    p = tmp_path / "answers.jsonl"
    rows = [
        {"query_id": "q1", "answers": ["Eiffel", "C", "yes", "<b></b>"]},
        {"query_id": "q2", "answers": ["the", "北京"]},
    ]
    p.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    f = AnswerLeakFilter(AnswerLeakFilterConfig(answers=str(p)))
    d = f.describe()["unusable_answers"]
    assert {k: v["count"] for k, v in d.items()} == {"empty": 1, "shorter_than_min_chars": 1, "too_common": 2}
    assert d["too_common"]["examples"] == [
        {"query_id": "q1", "answer": "yes"},
        {"query_id": "q2", "answer": "the"},
    ]
    notes = f.check_queries(["q1", "q2"])
    assert (
        len(notes) == 1 and "1 too common" not in notes[0] and "2 too common (e.g. 'yes', 'the')" in notes[0]
    )
    assert f.describe()["queries_with_answers"] == 2  # 北京 counts two wide characters: usable


# ---- BM25 tokens in any script ---------------------------------------------------------------------------


def test_unicode_tokenizer_keeps_vowel_signs_and_bigrams_cjk():
    t = UnicodeTokenizer()
    assert t.tokens("दिन दान कील कुल") == ["दिन", "दान", "कील", "कुल"]
    assert t.tokens("مُحَمَّد والكتاب") == ["مُحَمَّد", "والكتاب"]
    assert t.tokens("Привет, мир") == ["привет", "мир"]
    assert t.tokens("我去北京了。東京") == ["我去", "去北", "北京", "京了", "東京"]
    assert t.tokens("ข้าวขาว") == ["ข้า", "าว", "วข", "ขา", "าว"]  # grapheme clusters: ข้ keeps its tone mark
    assert t.tokens("return a - b") == ["return"]  # single characters are no token (as in bm25s)


def _bm25(tmp_path, texts, **kw):
    m = BM25Miner(BM25Config(**kw), tmp_path)
    m.prepare(texts, f"digest-{hash(tuple(texts))}-{kw}")
    return m


def test_bm25_finds_devanagari_and_chinese_documents_by_their_words(tmp_path):
    texts = ["आज का दिन अच्छा है", "उसने दान दिया", "我去北京了", "东京很大", "the sky is blue"]
    m = _bm25(tmp_path, texts)
    for query, want in [("दिन", 0), ("दान", 1), ("北京", 2), ("东京", 3), ("blue sky", 4)]:
        rows, _ = top_k_excluding(m.score_all(m.query_token_ids([query])[0]), 1, ())
        assert rows.tolist() == [want], query
    assert m.token_stats == {"documents": 5, "bigram_documents": 2, "by_script": {"Han": 2}}
    assert m.notes and "2 of 5 documents (40.0%)" in m.notes[0] and "Han 2" in m.notes[0]
    again = _bm25(tmp_path, texts)  # loaded from the saved index: the same note
    assert again.loaded_from_cache and again.notes == m.notes
    latin = _bm25(tmp_path, ["the sky is blue", "grass is green"])
    assert latin.notes == []  # nothing split into bigrams: no note


def user_tokenizer(texts):
    """A user's tokeniser for sources.bm25.tokenizer (tests: 'tests.test_text_scripts:user_tokenizer')."""
    return [t.split() for t in texts]


def test_bm25_takes_a_users_tokenizer_by_module_and_function(tmp_path):
    m = _bm25(tmp_path, ["a-b c", "d"], tokenizer="tests.test_text_scripts:user_tokenizer")
    rows, _ = top_k_excluding(m.score_all(m.query_token_ids(["a-b"])[0]), 2, ())
    assert rows.tolist() == [0]
    with pytest.raises(ValueError, match="sources.bm25.tokenizer='nope': expected"):
        BM25Miner(BM25Config(tokenizer="nope"), tmp_path)
    with pytest.raises(ValueError, match="sources.bm25.tokenizer='no_such_mod:f': cannot load it"):
        BM25Miner(BM25Config(tokenizer="no_such_mod:f"), tmp_path)


def test_bigram_note_names_tokenizer_and_share():
    assert bigram_note("unicode", {"documents": 10, "bigram_documents": 0}) is None
    note = bigram_note("unicode", {"documents": 8, "bigram_documents": 2, "by_script": {"Thai": 2}})
    assert note.startswith("bm25 tokenizer 'unicode': 2 of 8 documents (25.0%)") and "Thai 2" in note
