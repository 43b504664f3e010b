"""Span edit mode (`mode: edit`): ask the model to rewrite ONE sentence of a base passage under ONE
perturbation, verify that the perturbation happened, and splice the sentence back.

The base is the query's positive for contradicting perturbations (`GenItem.edit_positive`) and its hardest
mined negative for not-answering ones (`GenItem.edit_negative`); the sentence is the one the bi-encoder found
closest to the query. The negative keeps the base's length, style and every other sentence, so it is hard by
construction; `verify_edit` rejects near-copies and meaning-keeping paraphrases (CausalNeg: one perturbation
per negative, the worst false negative is a copy of the positive labelled negative).

A query gets `count` requests (slots), each with one perturbation drawn, seeded, from the kinds whose span
exists; a re-ask keeps the slot's perturbation and draws a new seed. Prompts are the compact `syneg_edit`
templates (system block first and fixed, then the perturbation's worked example as a chat turn, per-item text
last, for vLLM's prefix cache). Neither the query nor the surrounding passage is sent: measured with
SmolLM2-135M, both were copied into the edit instead of editing (and a copied claim in a negative answers the
query); the `copy_of_query` check stays for templates that show it.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Protocol

import numpy as np

from negforge.config import LLMConfig
from negforge.generators.answer_clause import restate
from negforge.generators.checks import (
    EditReply,
    SpanReply,
    edit_response_schema,
    parse_reply,
    sentence_problem,
    span_response_schema,
)
from negforge.generators.client import ChatRequest
from negforge.generators.edit_targets import (
    TARGETED_KINDS,
    EditTarget,
    changed_region,
    edit_targets,
    edit_touches_target,
)
from negforge.generators.lexicon import DIRECTION_POLARITY, is_content, stem, tokenize
from negforge.generators.records import EditSpan, GenItem, GenStats, GenTask, derive_seed, request_key
from negforge.generators.rules import RuleEdit
from negforge.generators.verifiers import VERIFIABLE_KINDS, EditVerdict, similarity, verify_edit
from negforge.prompts import load_template, perturbations
from negforge.records import SyntheticNegative


class Synthesizer(Protocol):
    """What edit mode reads of the run's `negforge.generators.synthesize.Synthesizer` (a Protocol, so this module
    does not import the one that drives it)."""

    cfg: LLMConfig
    seed: int
    served_model: str
    model_fingerprint: str
    stats: GenStats


CONTRADICTING = "contradicting"
REASONING_CHARS = 150
# Bounds for kinds without a verifier (verify_edit already rejects unchanged copies for every kind):
MIN_CONTRADICTION_SIMILARITY = 0.5  # reversed_cause rewrites the same claim: most words stay ...
MIN_ORDERED_SIMILARITY = 0.3  # ... and a cause-effect swap keeps much of the order (a scramble does not)
LENGTH_RATIO = (0.4, 2.5)  # not-answering kinds may reword, but stay one sentence of about the same size
MAX_NOT_ANSWERING_SIMILARITY = 0.9  # ... and must change more than spacing, case or a word or two


def span_for(item: GenItem, perturbation: str) -> EditSpan | None:
    """The span a perturbation edits: the positive's for contradicting kinds, the mined negative's else."""
    kind = perturbations()[perturbation]["kind"]
    return item.edit_positive if kind == CONTRADICTING else item.edit_negative


def target_for(item: GenItem, perturbation: str) -> EditTarget | None:
    """The span of the positive's answer clause a contradicting perturbation must change (edit_targets),
    None for other kinds and when the sentence has none."""
    if perturbation not in TARGETED_KINDS or item.edit_positive is None:
        return None
    return edit_targets(item.edit_positive.sentence, item.query).get(perturbation)


def edit_kinds(item: GenItem) -> list[str]:
    """Perturbation names (menu order) that can be asked for `item`: its base span exists, and for the
    targeted contradicting kinds the answer clause has their target (no "change a value" in a sentence
    whose only value is the query's own); empty when it has no span."""
    return [
        name
        for name in perturbations()
        if span_for(item, name) is not None and (name not in TARGETED_KINDS or target_for(item, name))
    ]


def choose_perturbation(run_seed: int, item: GenItem, slot: int) -> str:
    """The perturbation of request `slot` of an item: a seeded permutation of `edit_kinds(item)`, so the
    item's first slots get different kinds; the same for every attempt (a re-ask redraws only the seed).
    Raises ValueError when the item has no edit span."""
    kinds = edit_kinds(item)
    if not kinds:
        raise ValueError(f"query {item.query_id} has no edit span")
    order = np.random.default_rng(derive_seed(run_seed, item.query_id, "edit-kinds")).permutation(len(kinds))
    return kinds[int(order[slot % len(kinds)])]


def edit_max_tokens(sentence: str, cap: int) -> int:
    """Completion budget of an edit request: the reasoning and sentence limits of the schema at two
    characters a token (scientific text tokenises densely), plus JSON overhead; at most `cap`."""
    return min(cap, 48 + (REASONING_CHARS + 3 * len(sentence)) // 2)


#: what a re-ask tells the model about its previous answer, by rejection reason ({target}: the span)
FEEDBACK = {
    "edit_too_small": "Your last answer kept the meaning. Change {target} so the sentence says something false.",
    "edit_too_large": "Your last answer changed too much. Change only {target} and copy every other word.",
    "off_answer": "Your last answer changed other words. Change {target} and copy every other word.",
    "perturbation_not_verified": "Your last answer did not do what was asked. Change {target} as asked.",
    "answer_restated": "Your last answer left the same fact in the passage. Change {target} as asked.",
}
_JSON_ONLY = "Answer only with the JSON object."


def feedback_for(reason: str | None, target: EditTarget | None) -> str | None:
    """The re-ask line for a rejection `reason` (None: a first ask, no line)."""
    if reason is None:
        return None
    where = f"<span>{target.text}</span>" if target is not None else "the few words the perturbation needs"
    if reason.startswith("response_"):
        return _JSON_ONLY
    return FEEDBACK.get(reason, FEEDBACK["perturbation_not_verified"]).format(target=where)


def plan_edit(
    synth: Synthesizer, item: GenItem, attempt: int, slot: int, rejection: str | None = None
) -> GenTask:
    """The edit request of (item, slot, attempt): one perturbation with its worked example, the sentence and,
    for contradicting kinds, the target span of the answer clause to change (the compact template shows no
    query); on a re-ask, `rejection` (the previous answer's reason) becomes one line of feedback. With a
    target and `edit_answer: span` (mode "span"), the model writes only the target's new text
    ({"replacement"}, bounded to three times the target); else the whole sentence ({"sentence",
    "reasoning"}, bounded to about three times the original).
    The key follows the store's scheme (model fingerprint, template name+sha, messages, params, seed, schema)."""
    cfg = synth.cfg
    kind = choose_perturbation(synth.seed, item, slot)
    span = span_for(item, kind)
    assert span is not None
    target = target_for(item, kind)
    seed = derive_seed(synth.seed, item.query_id, "edit", slot, attempt)
    feedback = feedback_for(rejection, target)
    params: dict = {"temperature": cfg.temperature, "top_p": cfg.top_p}
    if target is not None and cfg.edit_answer == "span":
        mode, tpl = "span", load_template("span")
        messages = tpl.render_span(
            perturbation=kind, sentence=span.sentence, target=target.text, feedback=feedback
        )
        max_chars = 3 * len(target.text) + 20
        schema = span_response_schema(max_chars)
        params["max_tokens"] = min(cfg.max_tokens, 24 + max_chars // 2)
    else:
        mode, tpl = "edit", load_template("edit")
        messages = tpl.render_edit(
            perturbation=kind, query=item.query, sentence=span.sentence,
            target=target.text if target is not None else None, feedback=feedback,
        )  # fmt: skip
        schema = edit_response_schema(max(60, 3 * len(span.sentence)), REASONING_CHARS)
        params["max_tokens"] = edit_max_tokens(span.sentence, cfg.max_tokens)
    if cfg.samples > 1 and mode == "span":  # a few tokens each; whole sentences stay one completion
        params["n"] = cfg.samples
    if cfg.send_seed:
        params["seed"] = seed
    key = request_key(synth.model_fingerprint, (tpl.name, tpl.sha), messages, params, seed, schema)
    return GenTask(
        item,
        mode,
        [kind],
        {},
        attempt,
        seed,
        ChatRequest(key, messages, params, schema),
        span=span,
        slot=slot,
        target=target,
    )


_LABEL = re.compile(r"^\s*(?:the\s+)?(?:new|edited|rewritten|negated)?\s*sentence\s*:\s*", re.I)
_QUOTES = ('"', "'", "“", "”", "‘", "’")


def clean_sentence(text: str, original: str) -> str:
    """The model's sentence made spliceable: one line, no "Sentence:" label or wrapping quotes, and the
    original's final punctuation kept when the model dropped it."""
    s = " ".join(text.split())
    s = _LABEL.sub("", s).strip()
    if len(s) >= 2 and s[0] in _QUOTES and s[-1] in _QUOTES:
        s = s[1:-1].strip()
    end = original.rstrip()[-1:]
    if s and end in ".!?" and s[-1] not in ".!?":
        s += end
    return s


# reversed_cause ("reverse the direction of cause and effect, or the sign of the effect") is verified as a
# role reversal around the same relation, or a value change that flips a direction word (increases ->
# decreases): accepting it unverified let SmolLM2's meaning-keeping paraphrases of the positive through.
EDIT_VERIFIABLE = VERIFIABLE_KINDS | {"reversed_cause"}


def _direction_flipped(original: str, edited: str) -> bool:
    a = Counter(t.norm for t in tokenize(original))
    b = Counter(t.norm for t in tokenize(edited))
    removed = {DIRECTION_POLARITY[w] for w in a - b if w in DIRECTION_POLARITY}
    added = {DIRECTION_POLARITY[w] for w in b - a if w in DIRECTION_POLARITY}
    return bool(removed and added and removed != added)


def verify_span_edit(original: str, edited: str, perturbation: str) -> EditVerdict:
    """`verify_edit` for the kinds it knows; reversed_cause as role_reversal, or changed_value with a
    direction word flipped. Other kinds: verify_edit's answer (only an unchanged copy fails)."""
    if perturbation != "reversed_cause":
        return verify_edit(original, edited, perturbation)
    swap = verify_edit(original, edited, "role_reversal")
    if swap.verified or swap.reason == "edit_too_small":
        return swap
    value = verify_edit(original, edited, "changed_value")
    if value.verified and _direction_flipped(original, edited):
        return value
    if value.verified:
        return EditVerdict(
            False, "perturbation_not_verified", "a value changed but no direction word flipped"
        )
    large = next((v for v in (value, swap) if v.reason == "edit_too_large"), None)
    return large or EditVerdict(
        False, "perturbation_not_verified", "no cause-effect swap and no direction flip"
    )


def bounds_problem(original: str, edited: str, perturbation: str) -> str | None:
    """For kinds without a verifier: `edit_too_large` when a contradiction rewrote or scrambled the claim
    (token overlap below MIN_CONTRADICTION_SIMILARITY, or in order below MIN_ORDERED_SIMILARITY) or a
    not-answering edit left LENGTH_RATIO; `edit_too_small` when a not-answering edit kept the sentence
    (token similarity above MAX_NOT_ANSWERING_SIMILARITY) or only dropped or moved words (no new content
    word: a trimmed copy still says what the base said); else None."""
    if perturbations()[perturbation]["kind"] == CONTRADICTING:
        kept = similarity(original, edited, ordered=False)
        in_order = similarity(original, edited, ordered=True)
        ok = kept >= MIN_CONTRADICTION_SIMILARITY and in_order >= MIN_ORDERED_SIMILARITY
        return None if ok else "edit_too_large"
    ratio = len(edited.split()) / max(1, len(original.split()))
    if not LENGTH_RATIO[0] <= ratio <= LENGTH_RATIO[1]:
        return "edit_too_large"
    if similarity(original, edited) > MAX_NOT_ANSWERING_SIMILARITY:
        return "edit_too_small"
    before = {stem(t.norm) for t in tokenize(original)}
    added = [t.norm for t in tokenize(edited) if stem(t.norm) not in before and is_content(t.norm)]
    return None if added else "edit_too_small"


def splice_replacement(target: EditTarget, replacement: str, stats) -> tuple[str, str]:
    """The sentence with the target replaced by a span answer, and the provenance's reasoning line. A reply
    that is the whole sentence again (at least 70% of its length) is taken as the edited sentence
    (`span_reply_was_sentence` counted), so the verifiers judge what the model meant."""
    rep = _LABEL.sub("", " ".join(replacement.split())).strip()
    if len(rep) >= 2 and rep[0] in _QUOTES and rep[-1] in _QUOTES:
        rep = rep[1:-1].strip()
    if len(rep) >= 0.7 * len(target.sentence):
        stats.counts["span_reply_was_sentence"] += 1
        return clean_sentence(rep, target.sentence), "span reply was a whole sentence"
    new = target.sentence[: target.start] + rep + target.sentence[target.end :]
    return new, f"{target.text!r} -> {rep!r}"


def restated_text(span: EditSpan, target: EditTarget, new: str, kind: str) -> str | None:
    """The spliced passage with the fact edited consistently elsewhere, or None when another sentence still
    states it (`answer_clause.restate`, as for rule edits): a changed value is changed at its other
    whole-word occurrences (the conclusion repeating "2.5-fold"); for other kinds, a sentence holding most
    of the answer clause's content words refuses the edit."""
    region = changed_region(target.sentence, new)
    assert region is not None  # edit_touches_target passed
    a0, a1, b0, b1 = region
    rule_kind = "changed_value" if kind == "changed_value" and a1 > a0 else kind
    edit = RuleEdit(rule_kind, target.clause, new, a0, a1, target.sentence[a0:a1], new[b0:b1])
    start = span.start
    return restate(span.splice(new), start, start + len(new.strip()), edit)


def accept_sampled_edit(synth: Synthesizer, task: GenTask, rec: dict) -> list[SyntheticNegative]:
    """`accept_edit` over a request's samples (`sources.llm.samples`, the API's n; rec["texts"], else the one
    rec["text"]): the first sample, in the server's order, that passes every check; rejection sampling with
    the verifiers as the test (as in best-of-n sampling with a verifier). A request has one outcome in
    `stats.rejected`: its kept edit, or the reason most of its samples were refused (the first such on a
    tie), which is also the re-ask's feedback. `samples_judged` and `samples_rejected` count samples."""
    stats = synth.stats
    texts = rec.get("texts") or [rec.get("text")]
    before = Counter(stats.rejected)
    reasons: list[str] = []
    got: list[SyntheticNegative] = []
    for text in texts:
        stats.counts["samples_judged"] += 1
        got = accept_edit(synth, task, {**rec, "text": text})
        if got:
            break
        reasons.append(task.rejection or "unknown")
    stats.rejected.clear()
    stats.rejected.update(before)
    stats.counts["samples_rejected"] += len(reasons)
    if not got:
        task.rejection = Counter(reasons).most_common(1)[0][0]
        stats.rejected[task.rejection] += 1
    return got


def accept_edit(synth: Synthesizer, task: GenTask, rec: dict) -> list[SyntheticNegative]:
    """The verified negative of one edit answer, or [] with the reason counted in `synth.stats.rejected`:
    response problems (`response_bad_json`...), sentence problems (`refusal`, `meta_text`, `copy_of_query`,
    `empty_sentence`), then `verify_span_edit`'s (`edit_too_small`, `edit_too_large`,
    `perturbation_not_verified`), then, for kinds without a verifier, `bounds_problem`'s; then, for targeted
    contradicting kinds, `off_answer` (the target span of the answer clause was left as it was) and
    `answer_restated` (another sentence still states the fact: `restated_text`). The reason is also left in
    `task.rejection` for the re-ask."""
    stats = synth.stats
    span, kind = task.span, task.perturbations[0]
    assert span is not None
    original = span.sentence
    parsed = parse_reply(rec.get("text"), SpanReply if task.mode == "span" else EditReply)
    if parsed.value is None:
        stats.rejected[f"response_{parsed.problem}"] += 1
        task.rejection = f"response_{parsed.problem}"
        return []
    if parsed.recovered:
        stats.counts["recovered"] += 1
    if isinstance(parsed.value, SpanReply):
        assert task.target is not None
        new, reasoning = splice_replacement(task.target, parsed.value.replacement, stats)
    else:
        assert isinstance(parsed.value, EditReply)
        new, reasoning = clean_sentence(parsed.value.sentence, original), parsed.value.reasoning.strip()
    why = sentence_problem(
        new, query=task.item.query, original=original, copy_threshold=synth.cfg.copy_threshold
    )
    if why is None:
        verdict = verify_span_edit(original, new, kind)
        why = verdict.reason if not verdict.verified else None
        if why is None and kind not in EDIT_VERIFIABLE:
            why = bounds_problem(original, new, kind)
    if why is None and task.target is not None and not edit_touches_target(task.target, new):
        why = "off_answer"  # the answer clause's span still stands: the passage still answers
    text = span.splice(new)
    if why is None and task.target is not None:
        restated = restated_text(span, task.target, new, kind)
        why, text = ("answer_restated", text) if restated is None else (None, restated)
    if why:
        stats.rejected[why] += 1
        task.rejection = why
        return []
    verified = True if kind in EDIT_VERIFIABLE else None
    stats.counts["verified" if verified else "unverifiable_kind"] += 1
    tpl = load_template(task.mode)
    return [
        SyntheticNegative(
            text=text, perturbation=kind, perturbation_kind=perturbations()[kind]["kind"],
            reasoning=reasoning, attributes={}, mode="edit", base_doc_id=span.base_doc_id,
            seed=task.seed, template=tpl.name, template_version=tpl.version, template_sha=tpl.sha,
            model=synth.served_model, model_fingerprint=synth.model_fingerprint,
            prompt_tokens=rec.get("prompt_tokens", 0), completion_tokens=rec.get("completion_tokens", 0),
            latency_s=rec.get("latency_s", 0.0), request_key=task.request.key, source="llm", span=original,
            replacement=new, verified=verified,
        )
    ]  # fmt: skip
