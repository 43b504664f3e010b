"""Every model response is checked here, whatever the server claims: servers that ignore structured-output
fields still answer 200. A failed check is a reason string, counted in the manifest; nothing raises."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError
from rapidfuzz import fuzz


class GeneratedNegative(BaseModel):
    perturbation: str
    reasoning: str
    passage: str


class GeneratedNegatives(BaseModel):
    negatives: list[GeneratedNegative]


def response_schema(count: int, perturbation_names: list[str], max_chars: int) -> dict:
    """JSON schema sent as response_format: exactly `count` items, perturbations from the menu."""
    item = {
        "type": "object",
        "properties": {
            "perturbation": {"type": "string", "enum": sorted(set(perturbation_names))},
            "reasoning": {"type": "string", "maxLength": 600},
            "passage": {"type": "string", "minLength": 1, "maxLength": max_chars},
        },
        "required": ["perturbation", "reasoning", "passage"],
        "additionalProperties": False,
    }
    return {
        "type": "object",
        "properties": {"negatives": {"type": "array", "items": item, "minItems": count, "maxItems": count}},
        "required": ["negatives"],
        "additionalProperties": False,
    }


@dataclass(frozen=True)
class ParsedResponse:
    """What `parse_response` made of one model reply.

    `items` are the validated negatives (empty when `problem` is set); `problem` is the rejection reason
    (`empty_response`, `bad_json`, `schema`) or None; `recovered` is True when the JSON had to be dug out
    of a Markdown code fence or surrounding prose (a server that ignored `response_format`).
    """

    items: list[GeneratedNegative] = field(default_factory=list)
    problem: str | None = None
    recovered: bool = False


M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ParsedReply(Generic[M]):
    """What `parse_reply` made of one model reply: the validated `value` (None when `problem` is set), the
    rejection reason (`empty_response`, `bad_json`, `schema`) or None, and whether it was `recovered`."""

    value: M | None = None
    problem: str | None = None
    recovered: bool = False


_DECODER = json.JSONDecoder()
# Only finds where fenced blocks sit; the JSON inside is still decoded by the json module.
_FENCE = re.compile(r"```[^\n`]*\n(.*?)```", re.S)


def _scan_objects(text: str, model: type[M]) -> tuple[M | None, bool]:
    """First JSON object in `text` (trying every `{`) that validates, and whether any object decoded."""
    decoded_any = False
    start = text.find("{")
    while start != -1:
        try:
            data, _ = _DECODER.raw_decode(text, start)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            decoded_any = True
            try:
                return model.model_validate(data), True
            except ValidationError:
                pass
        start = text.find("{", start + 1)
    return None, decoded_any


def parse_reply(text: str | None, model: type[M]) -> ParsedReply[M]:
    """A model reply validated as the pydantic `model`, or the reason it is unusable.

    A reply that is plain JSON is validated as it is. Otherwise the JSON is recovered: the contents of
    Markdown code fences first, then the whole text, each scanned for the first `{` that decodes to an
    object matching `model`; such a reply has `recovered=True`. Nothing that decodes to an object is
    `schema`; nothing that decodes at all is `bad_json`; blank text is `empty_response`.
    """
    if not text or not text.strip():
        return ParsedReply(problem="empty_response")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        pass
    else:
        try:
            return ParsedReply(value=model.model_validate(data))
        except ValidationError:
            return ParsedReply(problem="schema")
    decoded_any = False
    for part in [*(m.group(1) for m in _FENCE.finditer(text)), text]:
        found, decoded = _scan_objects(part, model)
        if found is not None:
            return ParsedReply(value=found, recovered=True)
        decoded_any = decoded_any or decoded
    return ParsedReply(problem="schema" if decoded_any else "bad_json")


def parse_response(text: str | None) -> ParsedResponse:
    """Validated items of a model reply, or the reason it is unusable (empty_response, bad_json, schema).

    `parse_reply` with the SyNeg schema ({"negatives": [...]}): plain JSON is validated as it is, JSON in
    a code fence or prose is recovered (`recovered=True`).
    """
    got = parse_reply(text, GeneratedNegatives)
    items = got.value.negatives if got.value is not None else []
    return ParsedResponse(items=items, problem=got.problem, recovered=got.recovered)


class EditReply(BaseModel):
    """Edit mode's reply: why the edit applies the perturbation, and the rewritten sentence."""

    reasoning: str = ""
    sentence: str


class SpanReply(BaseModel):
    """Span mode's reply: the new text for the target span only."""

    replacement: str


def span_response_schema(max_chars: int) -> dict:
    """JSON schema sent as response_format in span mode: {"replacement": str}, bounded by `max_chars`."""
    return {
        "type": "object",
        "properties": {"replacement": {"type": "string", "minLength": 1, "maxLength": max_chars}},
        "required": ["replacement"],
        "additionalProperties": False,
    }


def edit_response_schema(max_chars: int, reasoning_chars: int = 150) -> dict:
    """JSON schema sent as response_format in edit mode: {"sentence": str, "reasoning": str}, the sentence
    first (a small model that reasons first drifts away from the sentence) and both bounded (`max_chars`
    for the sentence, about three times the original) so a small model cannot ramble."""
    return {
        "type": "object",
        "properties": {
            "sentence": {"type": "string", "minLength": 1, "maxLength": max_chars},
            "reasoning": {"type": "string", "maxLength": reasoning_chars},
        },
        "required": ["sentence", "reasoning"],
        "additionalProperties": False,
    }


_META = re.compile(
    r"^\s*(here is|here's|here are|sure[,!]|certainly|below is|the following|as requested|note:|passage:)",
    re.I,
)
_REFUSAL = re.compile(
    r"\b(as an ai|i cannot|i can't|i can not|i'm sorry|i am sorry|i won't|unable to comply|language model)\b",
    re.I,
)


def passage_problem(
    passage: str,
    *,
    query: str,
    positive: str,
    base: str | None,
    min_ratio: float,
    max_ratio: float,
    copy_threshold: float,
) -> str | None:
    """Why a generated passage cannot be a negative, or None when it passes."""
    text = passage.strip()
    if not text:
        return "empty_passage"
    if _REFUSAL.search(text):
        return "refusal"
    if _META.search(text):
        return "meta_text"
    words, pos_words = len(text.split()), max(1, len(positive.split()))
    if words < min_ratio * pos_words:
        return "too_short"
    if words > max_ratio * pos_words:
        return "too_long"
    if fuzz.ratio(text, positive) >= copy_threshold or fuzz.partial_ratio(positive, text) >= 98:
        return "copy_of_positive"
    if fuzz.ratio(text, query) >= copy_threshold:
        return "copy_of_query"
    if base is not None and text == base.strip():
        return "unchanged_base"
    return None


def sentence_problem(sentence: str, *, query: str, original: str, copy_threshold: float) -> str | None:
    """Why an edited sentence (edit mode) cannot be used, before its perturbation is verified, or None:
    `empty_sentence`, `refusal`, `meta_text` (a preamble such as "Here is"), `copy_of_query` (the sentence
    is the query, or contains it nearly verbatim where the `original` sentence did not: spliced into a
    negative, a copied claim would answer the query)."""
    text = sentence.strip()
    if not text:
        return "empty_sentence"
    if _REFUSAL.search(text):
        return "refusal"
    if _META.search(text):
        return "meta_text"
    q, low = query.strip().lower(), text.lower()
    if fuzz.ratio(low, q) >= copy_threshold:
        return "copy_of_query"
    if len(q.split()) >= 4 and fuzz.partial_ratio(q, low) >= copy_threshold > fuzz.partial_ratio(
        q, original.lower()
    ):
        return "copy_of_query"
    return None
