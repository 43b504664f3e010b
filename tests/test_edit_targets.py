"""LLM edits on the answer span: the target each contradicting perturbation must change, an off-answer edit
refused (`off_answer`), a fact restated elsewhere in the positive followed or refused (`answer_restated`),
and the re-ask saying why. Acceptance is checked directly on planned tasks (no server: the answer text is
what a model could send)."""

import json

import pytest

from negforge.config import LLMConfig
from negforge.generators.edit_mode import accept_edit, edit_kinds, feedback_for
from negforge.generators.edit_targets import changed_region, edit_targets, edit_touches_target
from negforge.generators.store import GenerationStore
from negforge.generators.synthesize import EditSpan, GenItem, Synthesizer

QUERY = "how fast does aspirin lower fever"
SENTENCE = "Aspirin lowers body temperature within 2 hours of a single dose."
RESTATED = (
    "Fever is common in infection. "
    + SENTENCE
    + " In conclusion, a single dose lowered temperature within 2 hours."
)


def synth(tmp_path, edit_answer: str = "span") -> Synthesizer:
    llm = LLMConfig(enabled=True, mode="edit", count=1, max_reasks=0, edit_answer=edit_answer)
    return Synthesizer(
        llm, seed=13, served_model="m", model_fingerprint="fp", store=GenerationStore(tmp_path / "store")
    )


def item_for(passage: str, sentence: str, query: str = QUERY) -> GenItem:
    start = passage.index(sentence)
    span = EditSpan("pos1", passage, start, start + len(sentence), "positive")
    return GenItem("q1", query, passage, None, None, edit_positive=span)


def task_for(s: Synthesizer, it: GenItem, kind: str):
    for slot in range(20):
        task = s.plan(it, 0, slot)
        if task.perturbations == [kind]:
            return task
    pytest.fail(f"{kind} never asked")


def answer(sentence: str) -> dict:
    return {"text": json.dumps({"sentence": sentence, "reasoning": "edited"})}


def span_answer(replacement: str) -> dict:
    return {"text": json.dumps({"replacement": replacement})}


def test_targets_are_spans_of_the_answer_clause_the_query_does_not_name():
    t = edit_targets(SENTENCE, QUERY)
    assert t["changed_value"].text == "2"  # a number first; "lowers" is the query's own word
    assert t["negation"].text == "lowers"
    roles = edit_targets("IL-6 activates STAT3 in tumour cells.", "does IL-6 activate STAT3")
    assert roles["role_reversal"].text == "IL-6 activates STAT3"
    # the answer clause, not a subordinate one: 476 answers "when", the deposition clause does not
    rome = edit_targets(
        "The Western Roman Empire ended in 476 when the last emperor was deposed by Odoacer.",
        "When did the Western Roman Empire fall?",
    )
    assert rome["changed_value"].text == "476" and rome["changed_value"].clause.endswith("in 476")
    # the only value is the query's own: changed_value has no target and is never asked
    assert "changed_value" not in edit_targets("Doses of 5 mg lower fever.", "do 5 mg doses lower fever")


def test_changed_region_and_touch():
    t = edit_targets(SENTENCE, QUERY)
    assert changed_region(SENTENCE, SENTENCE) is None
    assert edit_touches_target(t["changed_value"], SENTENCE.replace("2 hours", "9 hours"))
    assert not edit_touches_target(t["changed_value"], SENTENCE.replace("single", "double"))
    assert edit_touches_target(t["negation"], SENTENCE.replace("lowers", "does not lower"))


def test_kinds_without_a_target_are_not_asked(tmp_path):
    no_value = "Aspirin lowers body temperature in adults with influenza infections."
    kinds = edit_kinds(item_for(no_value, no_value))
    assert "changed_value" not in kinds and "negation" in kinds
    assert "changed_value" in edit_kinds(item_for(SENTENCE, SENTENCE))


def test_the_prompt_names_the_target_and_an_off_answer_edit_is_refused(tmp_path):
    s = synth(tmp_path, edit_answer="sentence")
    it = item_for(SENTENCE, SENTENCE)
    task = task_for(s, it, "changed_value")
    assert "Change this part: <span>2</span>" in task.request.messages[-1]["content"]
    assert "<span>two</span>" in task.request.messages[1]["content"]  # the worked example shows its own
    # a value changed, but not the answer's: "single" -> "double" dose leaves "within 2 hours" standing
    assert accept_edit(s, task, answer(SENTENCE.replace("a single", "a double"))) == []
    assert s.stats.rejected["off_answer"] + s.stats.rejected["perturbation_not_verified"] == 1
    assert task.rejection in ("off_answer", "perturbation_not_verified")
    [neg] = accept_edit(s, task, answer(SENTENCE.replace("2 hours", "9 hours")))
    assert neg.verified is True and "9 hours" in neg.text


def test_span_mode_asks_for_the_target_only_and_splices_it(tmp_path):
    s = synth(tmp_path)
    task = task_for(s, item_for(SENTENCE, SENTENCE), "changed_value")
    msgs = task.request.messages
    assert task.mode == "span" and task.request.schema["required"] == ["replacement"]
    assert "Part to change: <span>2</span>" in msgs[-1]["content"] and SENTENCE in msgs[-1]["content"]
    assert json.loads(msgs[2]["content"]) == {"replacement": "ten"}  # the worked example's answer
    assert task.request.params["max_tokens"] <= 40  # a few tokens, not a sentence
    [neg] = accept_edit(s, task, span_answer("9"))
    assert neg.text == SENTENCE.replace("2 hours", "9 hours") and neg.verified is True
    assert neg.template == "syneg_span" and neg.reasoning == "'2' -> '9'"
    assert accept_edit(s, task, span_answer("2")) == [] and task.rejection == "edit_too_small"
    # a model that sends the whole sentence back: judged as the sentence it wrote
    [again] = accept_edit(s, task, span_answer(SENTENCE.replace("2 hours", "6 hours")))
    assert (
        again.text == SENTENCE.replace("2 hours", "6 hours")
        and s.stats.counts["span_reply_was_sentence"] == 1
    )


def test_span_answers_through_the_synthesizer_and_a_server(tmp_path):
    from negforge.generators.client import GeneratorClient
    from tests.fault_server import FaultyOpenAIServerDouble

    s = synth(tmp_path)
    s.cfg = s.cfg.model_copy(update={"count": 3})
    it = item_for(SENTENCE, SENTENCE)
    with FaultyOpenAIServerDouble(default="negate_edit") as srv:  # replies {"replacement": "not <target>"}
        out = s.generate_sync(
            [it], lambda: GeneratorClient([srv.base_url], "double", timeout=10.0, max_retries=1)
        )
    modes = {s.plan(it, 0, k).mode for k in range(3)}
    assert modes == {"span"} and all(
        "replacement" in r["response_format"]["json_schema"]["schema"]["properties"] for r in srv.requests
    )
    assert not s.stats.rejected.get("response_schema")  # span replies are parsed as span replies
    negs = out["q1"]
    # "not lowers" is a negation; "not 2" is no changed value and "not lowers" no reversed cause
    assert [n.perturbation for n in negs] == ["negation"] and negs[0].template == "syneg_span"
    assert negs[0].text == SENTENCE.replace("lowers", "not lowers") and negs[0].verified is True
    assert s.stats.rejected == {"perturbation_not_verified": 2}


def test_a_restated_value_is_changed_everywhere(tmp_path):
    s = synth(tmp_path)
    task = task_for(s, item_for(RESTATED, SENTENCE), "changed_value")
    [neg] = accept_edit(s, task, span_answer("9"))
    assert "2 hours" not in neg.text and neg.text.count("9 hours") == 2  # the conclusion follows


def test_a_negation_with_the_fact_restated_is_refused(tmp_path):
    s = synth(tmp_path)
    passage = "Fever is common. " + SENTENCE + " Aspirin lowers body temperature within 2 hours of one dose."
    task = task_for(s, item_for(passage, SENTENCE), "negation")
    assert accept_edit(s, task, span_answer("does not lower")) == []
    assert s.stats.rejected == {"answer_restated": 1} and task.rejection == "answer_restated"


def test_reask_feedback_names_the_reason_and_the_target():
    t = edit_targets(SENTENCE, QUERY)["changed_value"]
    assert feedback_for(None, t) is None
    assert feedback_for("off_answer", t) == (
        "Your last answer changed other words. Change <span>2</span> and copy every other word."
    )
    assert feedback_for("response_bad_json", t) == "Answer only with the JSON object."


def _through_double(s: Synthesizer, it: GenItem, mode: str):
    from negforge.generators.client import GeneratorClient
    from tests.fault_server import FaultyOpenAIServerDouble

    with FaultyOpenAIServerDouble(default=mode) as srv:
        out = s.generate_sync(
            [it], lambda: GeneratorClient([srv.base_url], "double", timeout=10.0, max_retries=1)
        )
    return out, srv.requests


def test_samples_keep_the_first_that_passes_every_check(tmp_path):
    """samples=3 asks once with n=3; the first sample is the span unchanged, the second a negation: the
    request is one verified edit, no rejection, and the unchanged sample is counted as a sample only."""
    s = synth(tmp_path)
    s.cfg = s.cfg.model_copy(
        update={"samples": 3, "count": 3}
    )  # asks negation, changed_value, reversed_cause
    it = item_for(SENTENCE, SENTENCE)
    out, requests = _through_double(s, it, "copy_edit+negate_edit")
    assert [r.get("n") for r in requests] == [3, 3, 3]
    negs = out["q1"]
    assert [n.perturbation for n in negs] == ["negation"] and negs[0].verified is True
    assert negs[0].text == SENTENCE.replace("lowers", "not lowers")
    # each request has one outcome: kept, or its samples' most common reason counted once; the copies
    # (edit_too_small) are outvoted by "not <target>" failing the other two kinds' verifiers
    assert s.stats.counts["requests"] == 3 and s.stats.counts["verified"] == 1
    assert s.stats.rejected == {"perturbation_not_verified": 2}
    assert s.stats.counts["samples_judged"] == 2 + 3 + 3 and s.stats.counts["samples_rejected"] == 1 + 3 + 3


def test_a_request_whose_samples_all_fail_counts_one_rejection(tmp_path):
    s = synth(tmp_path)
    s.cfg = s.cfg.model_copy(update={"samples": 4})
    it = item_for(SENTENCE, SENTENCE)
    out, requests = _through_double(s, it, "copy_edit")
    assert out == {"q1": []} and len(requests) == 1 and requests[0]["n"] == 4
    assert s.stats.rejected == {"edit_too_small": 1}
    assert s.stats.counts["samples_judged"] == s.stats.counts["samples_rejected"] == 4


def test_one_sample_sends_no_n(tmp_path):
    s = synth(tmp_path)
    s.cfg = s.cfg.model_copy(update={"samples": 1})
    _, requests = _through_double(s, item_for(SENTENCE, SENTENCE), "negate_edit")
    assert requests and all("n" not in r for r in requests)


def test_whole_sentence_answers_are_one_completion(tmp_path):
    s = synth(tmp_path, edit_answer="sentence")
    s.cfg = s.cfg.model_copy(update={"samples": 4})
    task = task_for(s, item_for(SENTENCE, SENTENCE), "negation")
    assert task.mode == "edit" and "n" not in task.request.params
