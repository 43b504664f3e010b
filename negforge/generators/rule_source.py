"""The `rules` source: rule-based counterfactual negatives that need no LLM (a verified floor on any machine).

For each query the sentence of its first positive's body that matches the query best (see `spans`; never the
joined title), and in it the clause that answers the query (`answer_clause`), is edited by a rule operator (negate, change a value or direction word, swap an entity for a same-shape corpus term, reverse
roles), checked by its verifier, and spliced back into the positive. The result contradicts the positive in
exactly one place, keeps its length and style, and is labelled `source: rules` with the operator, span and
replacement in its provenance (CausalNeg's perturbations; counterfactual data augmentation).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter

import numpy as np

from negforge.config import RulesConfig
from negforge.generators.answer_clause import answer_clause, changes_only_the_question, restate
from negforge.generators.rules import apply_rules
from negforge.generators.synthesize import EditSpan
from negforge.records import SyntheticNegative

RULES_VERSION = "4"  # 2: the answer clause only, body only, restated facts followed; 3: no abbreviation swaps; 4: no mid-sentence "May" negated, the reported claim negated, not "we show that"


def _seed(seed: int, query_id: str) -> int:
    return int(hashlib.sha1(f"{seed}:{query_id}:rules".encode()).hexdigest()[:8], 16)


def rule_negatives(
    query_ids: list[str],
    spans: list[EditSpan | None],
    cfg: RulesConfig,
    seed: int,
    pool: dict[str, list[str]] | None,
    queries: list[str] | None = None,
    rejected: Counter | None = None,
) -> dict[str, list[SyntheticNegative]]:
    """Up to `cfg.count` verified rule edits per query (distinct kinds, seeded order); {} for a None span.

    `spans[i]` is the positive's span for `query_ids[i]`, `queries[i]` its text (the answer clause is the
    clause of the span closest to it; without queries, the whole sentence). Edits that change only the
    query's own words (`changes_question`) or leave the fact restated elsewhere (`answer_restated`) are
    refused and counted in `rejected`. Deterministic for the same inputs and seed.
    """
    out: dict[str, list[SyntheticNegative]] = {}
    rejected = rejected if rejected is not None else Counter()
    for i, (qid, span) in enumerate(zip(query_ids, spans, strict=True)):
        if span is None:
            continue
        s = _seed(seed, qid)
        rng = np.random.default_rng(s)
        kinds = [str(k) for k in rng.permutation(cfg.kinds)]
        clause = answer_clause(span.sentence, queries[i] if queries is not None else "")
        made: list[SyntheticNegative] = []
        for edit in apply_rules(clause.text, kinds, rng, pool):
            if len(made) == cfg.count:
                break
            if queries is not None and changes_only_the_question(edit, clause):
                rejected["changes_question"] += 1
                continue
            if edit.kind == "entity_shift" and re.search(
                rf"(?<!\w){re.escape(edit.replacement.strip())}(?!\w)", span.base_text, re.IGNORECASE
            ):
                rejected["replacement_in_passage"] += 1
                continue
            sentence = clause.splice(edit.edited)
            text = restate(span.splice(sentence), span.start, span.start + len(sentence), edit)
            if text is None:
                rejected["answer_restated"] += 1
                continue
            key = hashlib.sha256(f"rules:{RULES_VERSION}:{qid}:{edit.kind}:{sentence}".encode()).hexdigest()[
                :32
            ]
            made.append(
                SyntheticNegative(
                    text=text,
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
                    replacement=sentence,
                    verified=True,
                )
            )
        if made:
            out[qid] = made
    return out
