"""Records of the synthetic-negative stage: what is asked (GenItem, EditSpan, GenTask), what comes back
(SyntheticNegative) and the counters (GenStats). Re-exported by negforge.generators.synthesize."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from negforge.generators.client import ChatRequest

if TYPE_CHECKING:
    from negforge.generators.edit_targets import EditTarget


@dataclass
class EditSpan:
    """The sentence of a base passage to rewrite (edit mode): chosen by the bi-encoder as the one matching
    the query best. `start`/`end` are character offsets into `base_text`."""

    base_doc_id: str | None
    base_text: str
    start: int
    end: int
    kind: str  # "positive" (contradiction perturbations) or "negative" (not-answering ones)

    @property
    def sentence(self) -> str:
        return self.base_text[self.start : self.end]

    def splice(self, replacement: str) -> str:
        """The base passage with the span replaced."""
        return self.base_text[: self.start] + replacement.strip() + self.base_text[self.end :]


@dataclass
class GenItem:
    """What one query contributes: its text, first positive, and the mined negative to rewrite (if any).

    Edit mode: `edit_positive` is the span of the positive to rewrite under a contradiction perturbation,
    `edit_negative` the span of the hardest mined negative for a not-answering one (either may be None).
    """

    query_id: str
    query: str
    positive: str
    base_doc_id: str | None = None
    base_text: str | None = None
    edit_positive: EditSpan | None = None
    edit_negative: EditSpan | None = None


@dataclass
class GenTask:
    """One planned request: `perturbations` asked (edit mode: exactly one), the seed, and the ChatRequest.
    Edit mode also carries the `span` to rewrite, the `slot` (which of the query's `count` requests) and,
    for contradicting kinds, the `target` span of the answer clause to change."""

    item: GenItem
    mode: str
    perturbations: list[str]
    attrs: dict[str, str]
    attempt: int
    seed: int
    request: ChatRequest
    span: EditSpan | None = None
    slot: int = 0
    target: EditTarget | None = (
        None  # edit mode: the EditTarget (generators/edit_targets) the edit must change
    )
    rejection: str | None = None  # set by the acceptor: why this answer was refused (the re-ask says it)


def tokens_per_valid(counts: Mapping[str, int]) -> dict[str, float | None]:
    """Prompt and completion tokens per valid negative from generation counters (also summed ones, e.g.
    over shards): tokens of the answers sent in this run plus those read back from the store, divided by
    `valid`; None when nothing was valid."""
    valid = counts.get("valid", 0)
    if not valid:
        return {"prompt": None, "completion": None}
    prompt = counts.get("prompt_tokens", 0) + counts.get("from_store_prompt_tokens", 0)
    completion = counts.get("completion_tokens", 0) + counts.get("from_store_completion_tokens", 0)
    return {"prompt": round(prompt / valid, 1), "completion": round(completion / valid, 1)}


@dataclass
class GenStats:
    """Counters of one synthesizer (requests, tokens, valid...), rejection reasons and latencies."""

    counts: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)

    def as_dict(self) -> dict:
        """For the manifest: the counters, rejections, latency percentiles and tokens per valid negative."""
        lat = np.array(self.latencies) if self.latencies else np.zeros(0)
        return {
            **dict(self.counts),
            "rejected": dict(self.rejected),
            "tokens_per_valid": tokens_per_valid(self.counts),
            "latency_s": {
                "mean": round(float(lat.mean()), 3) if len(lat) else None,
                "p50": round(float(np.percentile(lat, 50)), 3) if len(lat) else None,
                "p95": round(float(np.percentile(lat, 95)), 3) if len(lat) else None,
            },
        }


def derive_seed(*parts: object) -> int:
    """A 31-bit seed from any parts (run seed, query id, attempt...): stable across processes."""
    return int(hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


def request_key(
    model_fingerprint: str, template: tuple[str, str], messages: list, params: dict, seed: int, schema: dict
) -> str:
    """The generation store's key of a request: model fingerprint, template name and sha, the rendered
    messages, the sampling parameters, the seed and the response schema (any change asks again)."""
    blob = json.dumps(
        {
            "model": model_fingerprint,
            "template": list(template),
            "messages": messages,
            "params": params,
            "seed": seed,
            "schema": schema,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:32]
