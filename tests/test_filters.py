"""Filters one by one, the stack, and the mixer. Models are real: no trained cross-encoder or NLI model can
be fetched here, so both are built from the offline MiniLM backbone with a fresh (seeded) head; that runs
the real loading, batching and scoring code. Decision logic is tested with injected scores."""

from __future__ import annotations

import json

import numpy as np
import pytest

from negforge.config import (
    AnswerLeakFilterConfig,
    CrossEncoderFilterConfig,
    DuplicateFilterConfig,
    EmbeddingFilterConfig,
    NLIFilterConfig,
    SanityFilterConfig,
    load_config,
)
from negforge.filters import CandidateBatch, FilterCandidate, FilterQuery, FilterStack, Verdict
from negforge.filters.answer_leak import AnswerLeakFilter, read_answers
from negforge.filters.cross_encoder import CrossEncoderFilter
from negforge.filters.duplicate import DuplicateFilter
from negforge.filters.nli import NLIFilter, label_positions
from negforge.filters.sanity import SanityFilter
from negforge.records import SyntheticNegative
from negforge.sources.readers import InputError

POS = (
    "Aspirin reduced the risk of a first myocardial infarction by 44 percent in a randomized trial of 22,071 "
    "male physicians followed for five years, with a small increase in hemorrhagic stroke."
)
QUERY = "Does aspirin prevent a first heart attack in men?"


def cand(text: str, source: str = "dense", qi: int = 0, **kw) -> FilterCandidate:
    return FilterCandidate(qi=qi, text=text, source=source, sources=[source], **kw)


def written(request_key: str = "r" * 16, perturbation_kind: str = "contradicting") -> SyntheticNegative:
    """The generation record of an LLM-written candidate, with the two fields the filters read."""
    return SyntheticNegative(
        text="",
        perturbation="",
        perturbation_kind=perturbation_kind,
        reasoning="",
        attributes={},
        mode="edit",
        base_doc_id=None,
        seed=0,
        template="",
        template_version="",
        template_sha="",
        model="",
        model_fingerprint="",
        prompt_tokens=0,
        completion_tokens=0,
        latency_s=0.0,
        request_key=request_key,
    )


def batch(*cands: FilterCandidate, positives: list[str] | None = None) -> CandidateBatch:
    return CandidateBatch([FilterQuery("q1", QUERY, positives or [POS], (0,))], list(cands))


# ---- sanity ----


def test_sanity_reasons_and_scores():
    f = SanityFilter(SanityFilterConfig())
    long_text = " ".join(["aspirin trial outcome"] * 80)
    verdicts = f.apply(
        batch(
            cand("Too short."),
            cand("A statin lowered cholesterol in women but had no effect on the incidence of strokes."),
            cand(long_text),
            cand("12 34 56 78 90 12 34 56 78 90 12 34 56 78 90 12 34 56 78 90 a b c d e f"),
            cand(
                "I'm sorry, but as an AI language model I cannot write this passage about heart attacks.",
                "llm",
            ),
            cand(
                "Here is a passage: aspirin was studied in a large trial of heart disease in older women.",
                "llm",
            ),
            cand(
                "Die Studie untersuchte die Wirkung von Aspirin auf Herzinfarkte bei älteren Frauen in Europa."
            ),
            cand(
                "Clopidogrel lowered the rate of a second stroke in patients with atrial fibrillation in a "
                "multicentre randomized trial lasting three years."
            ),
        )
    )
    reasons = [v.reason for v in verdicts]
    assert reasons == [
        "too_few_words",
        None,
        "too_long",
        "few_letters",
        "refusal",
        "boilerplate",
        "language",
        None,
    ]
    assert verdicts[1].scores["language"] == "en"
    assert verdicts[6].scores["language"] == "de"
    assert 0 < verdicts[1].scores["length_ratio"] < 1


def test_refusal_and_meta_rules_judge_llm_text_only():
    """A corpus passage may argue about someone who refuses treatment; only a model's refusal is junk."""
    f = SanityFilter(SanityFilterConfig())
    text = "I'm sorry, but I cannot accept that patients who refuse aspirin after a heart attack do as well."
    here = "Here is a summary of the trial: aspirin lowered the rate of heart attacks among older men."
    verdicts = f.apply(batch(cand(text, "bm25"), cand(text, "llm"), cand(here, "dense"), cand(here, "llm")))
    assert [v.reason for v in verdicts] == [None, "refusal", None, "boilerplate"]


def test_source_scoped_filter_settings():
    from negforge.filters import build_stack

    near = POS.replace("44 percent", "45 percent")
    stack = build_stack(
        [
            SanityFilterConfig(sources=["bm25", "dense"], min_words=30),
            DuplicateFilterConfig(per_source={"llm": {"against_positives": False}}),
        ]
    )
    b = batch(
        cand("Short text of eleven words about aspirin and heart attacks in men.", "llm"),
        cand(near, "llm"),
        cand(near, "dense"),
    )
    outcomes, stats = stack.run(b)
    assert [(o.kept, o.filter, o.reason) for o in outcomes] == [
        (True, None, None),  # sanity is scoped to mined sources: the short LLM passage is not judged by it
        (True, None, None),  # near the positive, but LLM edits are meant to be: against_positives off for llm
        (False, "duplicate", "near_copy_of_positive"),
    ]
    assert stats["sanity"].seen == {"dense": 1}
    assert stack.describe()[1]["per_source"]["llm"]["against_positives"] is False


def test_per_source_override_errors_name_the_key():
    from negforge.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=r"per_source.llm: near_treshold"):
        load_config(
            None,
            ["data.path=x"],
            filters=[{"type": "duplicate", "per_source": {"llm": {"near_treshold": 80}}}],
        )


# ---- duplicates and the stack ----


def test_duplicates_exact_near_positive_and_provenance_merge():
    other = "Beta blockers after a heart attack reduced mortality in a large randomized trial of elderly men."
    b = batch(
        cand(other, "dense", doc_id="d1"),
        cand(other.upper().replace(".", " !"), "bm25", doc_id="d2"),  # same text, other case and punctuation
        cand(other.replace("elderly", "older"), "llm", generation=written("abcdef123456789")),  # near copy
        cand(POS.replace("44", "forty-four"), "bm25", doc_id="d3"),  # near copy of the positive
        cand(
            "Statins prevented strokes in a trial of women with diabetes over four years of follow-up.", "llm"
        ),
    )
    stack = FilterStack([DuplicateFilter(DuplicateFilterConfig())])
    outcomes, stats = stack.run(b)
    assert [o.reason for o in outcomes] == [
        None,
        "exact_duplicate",
        "near_duplicate",
        "near_copy_of_positive",
        None,
    ]
    assert outcomes[1].duplicate_of == 0 and outcomes[2].duplicate_of == 0
    assert outcomes[1].scores["duplicate_of"] == "d1"
    # the copy that stays carries every source and id of the ones dropped
    assert b.candidates[0].sources == ["dense", "bm25", "llm"]
    assert b.candidates[0].merged == ["d2", "llm:abcdef123456"]
    assert stats["duplicate"].rejected == {
        "exact_duplicate": 1,
        "near_duplicate": 1,
        "near_copy_of_positive": 1,
    }


def test_stack_passes_only_survivors_on_and_names_the_rejecting_filter():
    seen: list[int] = []

    class CountingFilter:
        name = "counting"

        def describe(self):
            return {}

        def apply(self, b):
            seen.append(len(b.candidates))
            return [Verdict(True, scores={"ce_prob": 0.1}) for _ in b.candidates]

    text = "Beta blockers after a heart attack reduced mortality in a large randomized trial of elderly men."
    stack = FilterStack(
        [SanityFilter(SanityFilterConfig()), DuplicateFilter(DuplicateFilterConfig()), CountingFilter()]
    )
    outcomes, stats = stack.run(batch(cand("short"), cand(text), cand(text, "bm25")))
    assert seen == [1]
    assert [(o.kept, o.filter, o.reason) for o in outcomes] == [
        (False, "sanity", "too_few_words"),
        (True, None, None),
        (False, "duplicate", "exact_duplicate"),
    ]
    assert outcomes[1].scores["ce_prob"] == 0.1 and "length_ratio" in outcomes[1].scores
    assert stats["sanity"].seen == {"dense": 2, "bm25": 1}
    with pytest.raises(ValueError, match="unique"):
        FilterStack([CountingFilter(), CountingFilter()])


# ---- answer leak ----


def test_answer_leak(tmp_path):
    p = tmp_path / "answers.jsonl"
    p.write_text(json.dumps({"query_id": "q1", "answers": ["44 percent", "of"]}) + "\n")
    f = AnswerLeakFilter(AnswerLeakFilterConfig(answers=str(p)))
    v = f.apply(
        batch(
            cand("The risk fell by 44 Percent, said the authors of a later review."),
            cand("Risk of 440 percent"),
        )
    )
    assert (v[0].reason, v[0].scores["leak_span"]) == ("contains_answer", "44 percent")
    assert v[1].keep  # "of" is below min_chars; 440 is not 44
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query_id": "q1", "answers": ["x"]}\n{"oops": 1}\n')
    with pytest.raises(InputError, match=r"bad.jsonl:2"):
        read_answers(bad)


def test_answer_file_read_like_every_input_bom_ids_missing_and_numbers(tmp_path):
    """A BOM on a TSV answers file made the first query id '\ufeffq1': its answers were never checked."""
    tsv = tmp_path / "answers.tsv"
    tsv.write_bytes(b"\xef\xbb\xbfquery_id\tanswer\r\nq1 \t44 percent\r\n7\tParis\r\n")
    assert read_answers(tsv) == {"q1": ["44 percent"], "7": ["Paris"]}
    f = AnswerLeakFilter(AnswerLeakFilterConfig(answers=str(tsv)))
    assert f.apply(batch(cand("The risk fell by 44 percent.")))[0].reason == "contains_answer"
    cr = tmp_path / "cr.tsv"
    cr.write_bytes(b"q1\tEiffel\rq2\tParis\r")  # classic Mac line ends
    assert read_answers(cr) == {"q1": ["Eiffel"], "q2": ["Paris"]}
    jl = tmp_path / "answers.jsonl"
    rows = [
        '{"query_id": 7.0, "answers": [null, NaN, "None", "NA", 1945, "Caf\\u0065\\u0301"]}',
        '{"query_id": "q2", "answers": "x"}',
    ]
    jl.write_bytes(b"\xef\xbb\xbf" + "\n".join(rows).encode() + b"\n")
    # JSON null and NaN are no answer; the texts "None" and "NA" are answers (none of them, sodium's symbol)
    assert read_answers(jl) == {"7": ["None", "NA", "1945", "Cafe\u0301"], "q2": ["x"]}
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"query_id": "q1", "answers": [["Eiffel", "Tower"]]}\n')
    with pytest.raises(InputError, match=r"nested.jsonl:1: column 'answers\[0\]' must be a text, found list"):
        read_answers(nested)
    u16 = tmp_path / "u16.tsv"
    u16.write_text("q1\tEiffel\n", encoding="utf-16")
    with pytest.raises(InputError, match="UTF-16"):
        read_answers(u16)


def test_answer_leak_matches_an_answer_in_another_unicode_form(tmp_path):
    p = tmp_path / "answers.jsonl"
    p.write_text(json.dumps({"query_id": "q1", "answers": ["Caf\u00e9 Tortoni"]}) + "\n")
    f = AnswerLeakFilter(AnswerLeakFilterConfig(answers=str(p)))
    v = f.apply(batch(cand("They met at the Cafe\u0301 Tortoni in 1920."), cand("They met at AT&amp;T.")))
    assert v[0].reason == "contains_answer" and v[1].keep


# ---- cross-encoder ----


def test_cross_encoder_real_model_batched_equals_per_query(fresh_cross_encoder):
    f = CrossEncoderFilter(CrossEncoderFilterConfig(model=fresh_cross_encoder, max_prob=None, batch_size=4))
    q2 = FilterQuery("q2", "Do statins prevent stroke?", ["Statins cut stroke risk in a trial."], (1,))
    cands = [
        cand("Aspirin and bleeding in older adults.", qi=0),
        cand("Stroke incidence fell in a cohort taking statins for ten years.", qi=1),
        cand("Heart attacks were rarer in men who took aspirin every second day.", qi=0),
        cand("An unrelated passage about soil bacteria.", qi=1),
    ]
    together = f.apply(CandidateBatch([batch().queries[0], q2], cands))
    alone = [f.apply(CandidateBatch([batch().queries[0], q2], [c]))[0].scores["ce_score"] for c in cands]
    np.testing.assert_allclose([v.scores["ce_score"] for v in together], alone, atol=1e-4)
    for v in together:
        assert v.keep and 0 < v.scores["ce_prob"] < 1
        assert v.scores["ce_prob"] == pytest.approx(1 / (1 + np.exp(-v.scores["ce_score"])), abs=1e-4)
    assert "sigmoid" in f.describe()["scale"] and len(f.describe()["model_fingerprint"]) == 20


class CrossEncoderFilterWithInjectedScores(CrossEncoderFilter):
    """The real filter with its model output replaced by scores set in the test (decision logic only)."""

    def __init__(self, cfg, scores: dict[str, float]):
        self.cfg, self.name, self.fixed = cfg, "cross_encoder", scores
        self.calibrated_threshold, self.calibration = None, None

    def score(self, pairs):
        return np.array([self.fixed[p] for _, p in pairs], dtype=np.float32)


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"max_prob": 0.9}, [None, None, "ce_above_max_prob"]),
        ({"max_prob": None, "absolute_margin": 0.5}, [None, "ce_absolute_margin", "ce_absolute_margin"]),
        ({"max_prob": None, "relative_margin": 0.1}, [None, "ce_relative_margin", "ce_relative_margin"]),
    ],
)
def test_cross_encoder_decisions_with_injected_scores(settings, expected):
    scores = {POS: 2.0, "weak": -1.0, "close": 1.9, "above": 3.0}
    f = CrossEncoderFilterWithInjectedScores(CrossEncoderFilterConfig(model="x", **settings), scores)
    v = f.apply(batch(cand("weak"), cand("close"), cand("above")))
    assert [x.reason for x in v] == expected
    assert v[0].scores["ce_positive"] == 2.0  # recorded whatever the settings


def test_cross_encoder_calibration_is_a_quantile_of_positive_scores():
    queries = [FilterQuery(f"q{i}", f"query {i}", [f"pos{i}"]) for i in range(10)]
    scores = {f"pos{i}": float(i) for i in range(10)} | {"a": 2.5, "b": 1.5, POS: 9.0}
    f = CrossEncoderFilterWithInjectedScores(
        CrossEncoderFilterConfig(model="x", max_prob=None, calibrate_quantile=0.2, calibration_queries=10),
        scores,
    )
    f.calibrate(queries, seed=1)
    assert f.calibration["threshold_score"] == pytest.approx(np.quantile(np.arange(10.0), 0.2))
    v = f.apply(batch(cand("a"), cand("b")))
    assert [x.reason for x in v] == ["ce_scores_like_positive", None]


def test_cross_encoder_refuses_a_three_way_model(fresh_nli):
    with pytest.raises(ValueError, match="3 outputs"):
        CrossEncoderFilter(CrossEncoderFilterConfig(model=fresh_nli))


# ---- NLI ----


def test_nli_label_order_comes_from_id2label(fresh_nli):
    f = NLIFilter(NLIFilterConfig(model=fresh_nli))
    assert f.labels == {"neutral": 0, "contradiction": 1, "entailment": 2}
    probs = f.probabilities([(POS, "Aspirin did not change heart attack risk."), (POS, "Soil bacteria.")])
    assert probs.shape == (2, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="exactly one 'entailment'"):
        label_positions({0: "LABEL_0", 1: "LABEL_1", 2: "LABEL_2"})


def test_nli_decisions_with_injected_probabilities(fresh_nli):
    f = NLIFilter(NLIFilterConfig(model=fresh_nli, max_entailment=0.5, min_contradiction=0.5))
    table = {  # (neutral, contradiction, entailment), the model's order
        "restates": [0.1, 0.1, 0.8],
        "contradicts": [0.1, 0.8, 0.1],
        "weak contradiction": [0.6, 0.3, 0.1],
        "neutral mined": [0.6, 0.3, 0.1],
    }
    f.probabilities = lambda pairs: np.array([table[h] for _, h in pairs], dtype=np.float32)
    v = f.apply(
        batch(
            cand("restates"),
            cand("contradicts", "llm", generation=written(perturbation_kind="contradicting")),
            cand("weak contradiction", "llm", generation=written(perturbation_kind="contradicting")),
            cand("neutral mined"),
        )
    )
    assert [x.reason for x in v] == ["entailed_by_positive", None, "contradiction_not_confirmed", None]
    assert v[1].scores == {"nli_entailment": pytest.approx(0.1), "nli_contradiction": pytest.approx(0.8)}


# ---- config ----


def test_filter_config_errors_name_the_key(tmp_path):
    from negforge.config import ConfigError

    p = tmp_path / "c.yaml"
    p.write_text("data: {path: x}\nfilters:\n  - {type: embedding, max_positive_sim: 0.9, typo: 1}\n")
    with pytest.raises(ConfigError, match=r"filters\.0\.embedding\.typo"):
        load_config(p)
    p.write_text("data: {path: x}\nsources: {dense: {enabled: false}}\nfilters: [{type: embedding}]\n")
    with pytest.raises(ConfigError, match="needs sources.dense"):
        load_config(p)
    p.write_text("data: {path: x}\nfilters: [{type: sanity}, {type: sanity}]\n")
    with pytest.raises(ConfigError, match="share a name"):
        load_config(p)
    p.write_text("data: {path: x}\nmix: {quotas: {mined: 2, bm25: 1}}\n")
    with pytest.raises(ConfigError, match="either `mined`"):
        load_config(p)


def test_embedding_filter_config_band_validation():
    with pytest.raises(ValueError, match="query_percentile"):
        EmbeddingFilterConfig(query_percentile=(60, 10))


def test_with_a_cross_encoder_in_the_stack_labels_are_gpl_margins(fresh_cross_encoder, make_config):
    """output.scores with a cross_encoder filter: `label` = CE(q, pos) − CE(q, neg) (GPL's MarginMSE labels)
    for single-positive queries; a query with several positives has no CE label for each (None: MarginMSE
    training leaves its rows out)."""
    from datasets import load_from_disk

    from negforge.pipeline import run

    ce = {"type": "cross_encoder", "model": fresh_cross_encoder, "max_prob": None}
    res = run(make_config("run_name=gpl", "output.scores=true", "selection.num_negatives=2", filters=[ce]))
    assert res.manifest["label_by"] == "cross_encoder"
    dd = load_from_disk(str(res.dataset_dir))
    trip = dd["triplet"].to_list()
    at = 0
    checked = 0
    for r in dd["rich"]:
        for _pos in r["positives"]:
            for n in r["negatives"]:
                fs = n["filter_scores"]
                want = fs["ce_positive"] - fs["ce_score"] if len(r["positives"]) == 1 else None
                got = trip[at]["label"]
                assert (got is None) if want is None else got == pytest.approx(want, abs=1e-4)
                checked += want is not None
                at += 1
    assert at == len(trip) and checked > 0


def test_an_answers_file_keyed_by_ids_the_run_lacks_is_refused_or_noted(tmp_path):
    """Answers under ids the run does not have check nothing: all of them unknown is an error naming the
    file (unless the run reads a subset of its queries), some of them a note with the count."""
    p = tmp_path / "answers.jsonl"
    p.write_text("".join(json.dumps({"query_id": q, "answers": ["1889"]}) + "\n" for q in ("1", "2", "q03")))
    f = AnswerLeakFilter(AnswerLeakFilterConfig(answers=str(p)))
    assert f.check_queries(["q01", "q02", "q03"]) == [
        f"filters.answer_leak: 2 of 3 query ids in {p} are not queries of this run (e.g. '1', '2'); "
        "their answers are not used"
    ]
    assert f.check_queries(["1", "2", "q03", "q04"]) == []
    with pytest.raises(InputError, match=r"answers\.jsonl: none of its 3 query ids is a query of this run"):
        f.check_queries(["q01", "q02"])
    assert "3 of 3" in f.check_queries(["q01", "q02"], subset=True)[0]  # data.max_queries: a note only
    stack = FilterStack([f])
    assert stack.check_queries(["q01", "q03"]) == f.check_queries(["q01", "q03"])


def test_an_answers_file_with_nothing_to_check_is_refused_and_per_source_files_are_checked(tmp_path):
    from negforge.filters import build_stack

    empty = tmp_path / "empty.tsv"
    empty.write_text("query_id\tanswer\n")  # a header alone
    with pytest.raises(InputError, match=r"empty\.tsv: no usable answer \(the file has none"):
        AnswerLeakFilter(AnswerLeakFilterConfig(answers=str(empty)))
    short = tmp_path / "short.tsv"
    short.write_text("q1\tNa\n")  # shorter than min_chars: nothing would ever be matched
    with pytest.raises(
        InputError, match=r"short\.tsv: no usable answer \(1 shorter than min chars \(e\.g\. 'Na'\)"
    ):
        AnswerLeakFilter(AnswerLeakFilterConfig(answers=str(short)))
    ok, other = tmp_path / "ok.tsv", tmp_path / "other.tsv"
    ok.write_text("q1\tEiffel\n")
    other.write_text("7\tParis\n")  # the LLM source's own answers, keyed by ids this run lacks
    cfg = AnswerLeakFilterConfig(answers=str(ok), per_source={"llm": {"answers": str(other)}})
    stack = build_stack([cfg])
    with pytest.raises(InputError, match=r"other\.tsv: none of its 1 query ids is a query of this run"):
        stack.check_queries(["q1", "q2"])
