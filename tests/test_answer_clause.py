"""Rule edits change what answers the query, in the body, consistently: right values from
../shared/cases/24-rule-edit-keeps-answer (a title-only edit and an off-answer negation were both `verified`)."""

from __future__ import annotations

from collections import Counter

from negforge.config import RulesConfig
from negforge.generators.answer_clause import answer_clause, clauses, restate
from negforge.generators.records import EditSpan
from negforge.generators.rule_source import rule_negatives
from negforge.generators.rules import RuleEdit, entity_pool
from negforge.generators.spans import choose_spans


def test_the_answer_clause_is_the_one_the_query_asks_about():
    s = "The Western Roman Empire ended in 476 when the last emperor was deposed by Odoacer."
    assert [s[a:b] for a, b in clauses(s)] == [
        "The Western Roman Empire ended in 476",
        "when the last emperor was deposed by Odoacer.",
    ]
    assert (
        answer_clause(s, "When did the Western Roman Empire fall?").text
        == "The Western Roman Empire ended in 476"
    )
    s2 = "Mount Everest is the highest mountain above sea level, rising 8,849 metres in the Himalayas."
    assert (
        answer_clause(s2, "What is the tallest mountain?").text
        == "Mount Everest is the highest mountain above sea level"
    )
    s3 = "The Amazon River carries more water than any other river and flows through Brazil to the Atlantic."
    assert answer_clause(s3, "Which river carries the most water?").text.endswith("than any other river")


def _rules(text: str, start: int, query: str, pool_texts: list[str], kinds=None):
    span = EditSpan("d1", text, start, len(text), "positive")
    cfg = RulesConfig(enabled=True, count=1, **({"kinds": kinds} if kinds else {}))
    rejected: Counter = Counter()
    out = rule_negatives(["q1"], [span], cfg, 13, entity_pool(pool_texts), queries=[query], rejected=rejected)
    return out.get("q1", []), rejected


def test_an_off_answer_negation_is_never_made():
    text = "Roman Empire The Western Roman Empire ended in 476 when the last emperor was deposed by Odoacer."
    made, _ = _rules(text, 13, "When did the Western Roman Empire fall?", [text], kinds=["negation"])
    for g in made:  # a negation of the answer clause, or nothing: never "was not deposed"
        assert "was not deposed" not in g.text and "ended in 476" not in g.text


def test_an_edit_of_the_querys_own_words_is_refused():
    text = "Insulin Insulin is a hormone made by the pancreas that lowers blood sugar."
    pool = [text, "Glucagon is a hormone.", "Leptin is a hormone.", "The liver stores glycogen."]
    made, rejected = _rules(text, 8, "What does insulin do to blood sugar?", pool, kinds=["entity_shift"])
    assert all("Insulin" in g.text.split(" is ")[0] for g in made) or rejected["changes_question"] >= 1


def test_a_swapped_entity_is_swapped_in_the_title_too():
    edit = RuleEdit("entity_shift", "Everest is high", "K2 is high", 0, 7, "Everest", "K2")
    passage = "Mount Everest Mount K2 is high. Everest was climbed in 1953."
    assert restate(passage, 14, 30, edit) == "Mount K2 Mount K2 is high. K2 was climbed in 1953."


def test_a_negated_fact_restated_elsewhere_is_refused():
    edit = RuleEdit(
        "negation", "statins lower cholesterol", "statins do not lower cholesterol", 8, 8, "", "do not "
    )
    passage = (
        "Statins do not lower cholesterol in adults. In conclusion, statins lower cholesterol in adults."
    )
    assert restate(passage, 0, 43, edit) is None  # the conclusion still says it
    alone = "Statins do not lower cholesterol in adults. Side effects were rare."
    assert restate(alone, 0, 43, edit) == alone


def test_edit_spans_come_from_the_body_never_the_joined_title():
    import numpy as np

    text = "TCP protocol TCP provides reliable, ordered delivery of a byte stream between applications."
    enc = lambda texts: np.ones((len(texts), 4), dtype=np.float32)  # noqa: E731 (every sentence alike)
    span = choose_spans(enc, np.ones((1, 4), dtype=np.float32), [("d15", text)], "positive", [13])[0]
    assert span.start == 13 and span.sentence.startswith("TCP provides")
    made, _ = _rules(
        text, span.start, "What protocol gives reliable ordered delivery?", [text, "UDP is fast."]
    )
    for g in made:
        assert not g.text.endswith(text[13:])  # the body changed, not only the title


def test_the_probe_tells_shifted_embeddings_apart_and_not_alike_ones():
    import numpy as np

    from negforge.publish.separability import probe_auc

    rng = np.random.default_rng(0)
    real = rng.normal(size=(80, 16))
    assert probe_auc(rng.normal(size=(80, 16)) + 1.0, real, 13) > 0.95
    assert abs(probe_auc(rng.normal(size=(80, 16)), real, 13) - 0.5) < 0.15


def test_the_probe_does_not_score_near_copies_when_pairs_share_a_fold():
    import numpy as np

    from negforge.publish.separability import probe_auc

    rng = np.random.default_rng(1)
    real = rng.normal(size=(60, 16))
    edited = real + rng.normal(scale=0.01, size=real.shape)  # one-span edits: near-copies of their positives
    groups = np.concatenate([np.arange(60), np.arange(60)])
    assert abs(probe_auc(edited, real, 13, groups) - 0.5) < 0.2
