"""The `rules` source: rule-based counterfactual negatives that need no LLM (a verified floor on any machine).

For each query the sentence of its first positive that matches the query best (see `spans`) is edited by a
rule operator (negate, change a value or direction word, swap an entity for a same-shape corpus term, reverse
roles), checked by its verifier, and spliced back into the positive. The result contradicts the positive in
exactly one place, keeps its length and style, and is labelled `source: rules` with the operator, span and
replacement in its provenance (CausalNeg's perturbations; counterfactual data augmentation).
"""

from __future__ import annotations

import hashlib

import numpy as np

from negforge.config import RulesConfig
from negforge.generators.rules import apply_rules
from negforge.generators.synthesize import EditSpan, SyntheticNegative

RULES_VERSION = "1"


def _seed(seed: int, query_id: str) -> int:
    return int(hashlib.sha1(f"{seed}:{query_id}:rules".encode()).hexdigest()[:8], 16)


def rule_negatives(
    query_ids: list[str],
    spans: list[EditSpan | None],
    cfg: RulesConfig,
    seed: int,
    pool: dict[str, list[str]] | None,
) -> dict[str, list[SyntheticNegative]]:
    """Up to `cfg.count` verified rule edits per query (distinct kinds, seeded order); {} for a None span.

    `spans[i]` is the positive's span for `query_ids[i]`. Deterministic for the same inputs and seed.
    """
    out: dict[str, list[SyntheticNegative]] = {}
    for qid, span in zip(query_ids, spans, strict=True):
        if span is None:
            continue
        s = _seed(seed, qid)
        rng = np.random.default_rng(s)
        kinds = [str(k) for k in rng.permutation(cfg.kinds)]
        made = []
        for edit in apply_rules(span.sentence, kinds, rng, pool):
            if len(made) == cfg.count:
                break
            key = hashlib.sha256(
                f"rules:{RULES_VERSION}:{qid}:{edit.kind}:{edit.edited}".encode()
            ).hexdigest()[:32]
            made.append(
                SyntheticNegative(
                    text=span.splice(edit.edited),
                    perturbation=edit.kind,
                    perturbation_kind="contradicting",
                    reasoning=f"rule {edit.kind}: {edit.replaced!r} -> {edit.replacement!r}",
                    attributes={},
                    mode="rules",
                    base_doc_id=span.base_doc_id,
                    seed=s,
                    template="rules",
                    template_version=RULES_VERSION,
                    template_sha="",
                    model="rules",
                    model_fingerprint=f"rules-v{RULES_VERSION}",
                    prompt_tokens=0,
                    completion_tokens=0,
                    latency_s=0.0,
                    request_key=key,
                    source="rules",
                    span=span.sentence,
                    replacement=edit.edited,
                    verified=True,
                )
            )
        if made:
            out[qid] = made
    return out
