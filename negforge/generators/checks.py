"""Every model response is checked here, whatever the server claims: servers that ignore structured-output
fields still answer 200. A failed check is a reason string, counted in the manifest; nothing raises."""

from __future__ import annotations

import json
import re

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


def parse_response(text: str | None) -> tuple[list[GeneratedNegative], str | None]:
    """Items of a response, or the reason it is unusable (empty, bad_json, schema)."""
    if not text or not text.strip():
        return [], "empty_response"
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return [], "bad_json"
    try:
        return GeneratedNegatives.model_validate(data).negatives, None
    except ValidationError:
        return [], "schema"


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
