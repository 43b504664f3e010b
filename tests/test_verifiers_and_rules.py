"""Perturbation verifiers and rule-based counterfactual operators, on real SciFact sentences."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from negforge.generators.rules import (
    RULE_KINDS,
    RuleEdit,
    apply_rules,
    change_value,
    entity_pool,
    negate,
    reverse_roles,
    swap_entity,
)
from negforge.generators.verifiers import NO_VERIFIER, REASONS, VERIFIABLE_KINDS, EditVerdict, verify_edit
from negforge.prompts import perturbations
from tests.conftest import SAMPLE

# Sentences from examples/scifact-sample/corpus.jsonl.
ROS = (
    "Mitochondrial ROS inhibition in vivo reduces disease severity and type I IFN responses in a mouse model "
    "of lupus."
)
BMI = "For every 1 kg m(-2) increase in BMI, the prevalence of GDM increased by 0.92% (95% CI 0.73 to 1.10)."
RACK1 = (
    "RACK1 inhibits Fyn phosphorylation of NR2B and decreases NMDA receptor-mediated currents in CA1 slices."
)
CAPSULE = "Capsule endoscopy may facilitate patient triage and earlier endoscopy, but should not be considered a substitute for EGD."
ATP = "Three millimolar ATP decreased the Km for IMP from 0.33 to 0.09 mM."
REWRITE = "Lupus is an autoimmune disease whose causes remain poorly understood despite decades of research."


@pytest.fixture(scope="module")
def docs() -> list[dict]:
    return [json.loads(line) for line in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def corpus(docs) -> list[str]:
    return [f"{d['title']}. {d['text']}" for d in docs]


@pytest.fixture(scope="module")
def sentences(docs) -> list[str]:
    """The first 200 sentences of at least six words of the SciFact sample's abstracts, in corpus order."""
    out = [s for d in docs for s in re.split(r"(?<=[.!?])\s+(?=[A-Z])", d["text"])]
    return [s for s in out if len(s.split()) >= 6][:200]


@pytest.fixture(scope="module")
def pool(corpus) -> dict[str, list[str]]:
    return entity_pool(corpus, max_terms=300)


def check(original: str, edited: str, kind: str) -> EditVerdict:
    v = verify_edit(original, edited, kind)
    assert v.reason is None or v.reason in REASONS
    assert v.verified == (v.reason is None)
    return v


def consistent(e: RuleEdit) -> None:
    assert e.original[e.span_start : e.span_end] == e.replaced
    assert e.edited == e.original[: e.span_start] + e.replacement + e.original[e.span_end :]
    assert e.source == "rules" and e.kind in RULE_KINDS


# ---- verifiers ----------------------------------------------------------------------------------------------


def test_verifiable_kinds_are_in_the_perturbation_menu():
    assert set(VERIFIABLE_KINDS) <= set(perturbations())


@pytest.mark.parametrize(
    ("original", "edited", "kind"),
    [
        (ROS, ROS.replace("reduces", "does not reduce"), "negation"),
        (CAPSULE, CAPSULE.replace("should not be", "should be"), "negation"),
        (ROS, ROS.replace("in vivo reduces", "in vivo never reduces"), "negation"),
        (RACK1, RACK1.replace("RACK1 inhibits", "RACK1 doesn't inhibit"), "negation"),
        (
            "The SM and LM were obtained by nonspecific esterase staining.",
            "The SM and LM were obtained by specific esterase staining.",
            "negation",
        ),
        (BMI, BMI.replace("0.92%", "1.84%"), "changed_value"),
        (BMI, BMI.replace("GDM increased", "GDM decreased"), "changed_value"),
        (ATP, ATP.replace("mM", "µM"), "changed_value"),
        (ROS, ROS.replace("reduces", "increases"), "changed_value"),
        (RACK1, RACK1.replace("NR2B", "NR2A"), "entity_shift"),
        (ROS, ROS.replace("mouse model", "rat model"), "entity_shift"),
        (ROS, ROS.replace("lupus", "rheumatoid arthritis"), "entity_shift"),
        (RACK1, RACK1.replace("RACK1 inhibits Fyn", "Fyn inhibits RACK1"), "role_reversal"),
        (ATP, "Three millimolar IMP decreased the Km for ATP from 0.33 to 0.09 mM.", "role_reversal"),
        (
            "Interleukin-6 induces the expression of TNF in macrophages.",
            "TNF induces the expression of interleukin-6 in macrophages.",
            "role_reversal",
        ),
    ],
)
def test_hand_written_perturbations_are_verified(original, edited, kind):
    v = check(original, edited, kind)
    assert v.verified, v


@pytest.mark.parametrize(
    ("edited", "kind"),
    [
        # Same meaning, other words: the worst false negative there is.
        (
            "Disease severity and type I IFN responses in a mouse model of lupus are reduced by mitochondrial "
            "ROS inhibition in vivo.",
            "negation",
        ),
        (ROS.replace("reduces", "lowers"), "negation"),
        (ROS.replace("reduces", "diminishes"), "changed_value"),
        (ROS.replace("reduces", "lowers"), "changed_value"),  # two "down" words: a synonym
        (ROS.replace("reduces", "does not increase"), "negation"),  # negation + flip cancel out
        (ROS.replace("reduces", "does not increase"), "changed_value"),
        (ROS.replace("in vivo reduces", "in living animals reduces"), "changed_value"),
        (ROS.replace("inhibition", "blockade"), "negation"),
        (ROS.replace("reduces", "attenuates"), "entity_shift"),
        (ROS.replace("a mouse model", "one mouse model"), "entity_shift"),
        (
            "Disease severity and type I IFN responses are reduced by mitochondrial ROS inhibition in vivo in "
            "a mouse model of lupus.",
            "role_reversal",
        ),
    ],
)
def test_paraphrases_are_not_verified(edited, kind):
    assert check(ROS, edited, kind).reason == "perturbation_not_verified"


def test_rack1_passive_is_no_role_reversal():
    passive = "Fyn phosphorylation of NR2B is inhibited by RACK1, which decreases NMDA receptor-mediated currents in CA1 slices."
    assert check(RACK1, passive, "role_reversal").reason == "perturbation_not_verified"


@pytest.mark.parametrize("kind", [*sorted(VERIFIABLE_KINDS), "intent_drift", "background_only"])
def test_unchanged_copy_is_too_small_for_every_kind(kind):
    assert check(ROS, ROS, kind).reason == "edit_too_small"
    loud = ROS.upper().replace(".", "") + "  "
    assert check(ROS, loud, kind).reason == "edit_too_small"


@pytest.mark.parametrize("kind", sorted(VERIFIABLE_KINDS))
def test_wholesale_rewrite_is_too_large(kind):
    v = check(ROS, REWRITE, kind)
    assert v.reason == "edit_too_large" and "similarity" in v.detail


def test_perturbation_plus_rewrite_of_the_rest_is_too_large():
    many = "Mitochondrial ROS inhibition in vivo does not reduce tumour growth and type II IFN signalling in a rat model of lupus."
    v = check(ROS, many, "negation")
    assert v.reason == "edit_too_large" and "other changed words" in v.detail
    assert verify_edit(ROS, many, "negation", max_other_changes=5).verified


def test_kinds_without_a_verifier_pass_explicitly():
    assert "intent_drift" not in VERIFIABLE_KINDS and "scope_shift" not in VERIFIABLE_KINDS
    for kind in ("intent_drift", "scope_shift", "background_only", "attribute_shift"):
        assert verify_edit(ROS, REWRITE, kind) == EditVerdict(True, None, NO_VERIFIER)


def test_bad_arguments_raise():
    with pytest.raises(TypeError):
        verify_edit(ROS, None, "negation")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        verify_edit(ROS, ROS, "negation", min_similarity=1.5)
    with pytest.raises(ValueError):
        verify_edit(ROS, ROS, "negation", max_other_changes=-1)


# ---- rule operators -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sentence", "edited"),
    [
        ("Gli1+ cells are typical MSCs in vitro.", "Gli1+ cells are not typical MSCs in vitro."),
        (
            "Several examples illustrate how the clinician can use this method.",
            "Several examples illustrate how the clinician cannot use this method.",
        ),
        (ROS, ROS.replace("reduces", "does not reduce")),
        (CAPSULE, CAPSULE.replace("should not be", "should be")),
        ("This treatment does not improve survival.", "This treatment does improve survival."),
        ("Aspirin cannot prevent stroke in these patients.", "Aspirin can prevent stroke in these patients."),
        ("The drug doesn't lower blood pressure.", "The drug does lower blood pressure."),
        ("Statins reduce LDL cholesterol in adults.", "Statins do not reduce LDL cholesterol in adults."),
        (
            "The artificially created APBs induced telomeric extension.",
            "The artificially created APBs did not induce telomeric extension.",
        ),
        (
            "Full speciation has been achieved in this case.",
            "Full speciation has not been achieved in this case.",
        ),
        ("There was no significant effect on mortality.", "There was a significant effect on mortality."),
        ("Mutant mice had no lesions in the liver.", "Mutant mice had lesions in the liver."),
        ("Bleeding was never observed in mutant mice.", "Bleeding was observed in mutant mice."),
    ],
)
def test_negate_inserts_or_removes_one_negation(sentence, edited):
    e = negate(sentence)
    assert e is not None and e.edited == edited and e.kind == "negation"
    consistent(e)
    assert check(sentence, e.edited, "negation").verified


def test_negate_leaves_nouns_and_adjectives_alone():
    assert negate("An increase of the telomere repeat length.") is None
    assert negate("The reduced expression of cyclin A in mice.") is None


def test_negate_denies_what_is_reported_not_the_reporting():
    # "we do not show that clathrin stabilizes ..." leaves the claim standing (SciFact train, rules v3)
    assert negate("Here, we show that clathrin stabilizes fibres of the mitotic spindle.") is None
    e = negate("Here, we show that clathrin inhibits fibre growth.")
    assert e is not None and e.edited == "Here, we show that clathrin does not inhibit fibre growth."
    e = negate("We found that statins reduce mortality.")
    assert e is not None and e.edited == "We found that statins do not reduce mortality."


def test_negate_leaves_months_and_names_that_spell_an_auxiliary_alone():
    # SmolLM2 was asked to negate "May" in "follow-up conducted in May and June 2000" (CI, stop 31)
    assert negate("Telephone follow-up conducted in May and June 2000.") is None
    e = negate("Follow-up was conducted in May and June 2000.")
    assert e is not None and e.edited == "Follow-up was not conducted in May and June 2000."
    assert negate("Patients seen by Will Smith in clinic.") is None


def test_value_words_are_not_entities():
    edited = "The risk rose 24-fold in carriers of the High-risk allele."
    original = edited.replace("24-fold", "12-fold")
    assert check(original, edited, "changed_value").verified
    assert check(original, edited, "entity_shift").reason == "perturbation_not_verified"


def test_headings_words_and_sentence_starts_are_not_swapped(pool):
    s = "RESULTS High circulating levels of SHBG were associated with increased risks in Europe (ABSTRACT TRUNCATED AT 250 WORDS)."
    assert not {"NO", "AT", "WORDS"} & set(pool["acronym"])
    for seed in range(20):
        e = swap_entity(s, pool, np.random.default_rng(seed))
        assert e is not None and e.replaced in ("SHBG", "Europe")
        assert check(s, e.edited, "entity_shift").verified


def test_an_abbreviation_in_parentheses_is_not_the_swapped_entity(pool):
    # "Endoplasmic reticulum (ER) stress" -> "(IAP) stress" changes no fact: the expansion still states it
    s = "Endoplasmic reticulum (ER) stress causes dysfunction of SHBG in Europe."
    for seed in range(20):
        e = swap_entity(s, pool, np.random.default_rng(seed))
        assert e is not None and e.replaced != "ER"
    assert (
        swap_entity("Endoplasmic reticulum (ER) stress causes dysfunction.", pool, np.random.default_rng(0))
        is None
    )


def test_change_value_scales_numbers_keeping_units_and_format():
    for seed in range(20):
        e = change_value(BMI, np.random.default_rng(seed))
        assert e is not None
        consistent(e)
        assert check(BMI, e.edited, "changed_value").verified
        assert ("95% CI" in e.edited and "0.73 to 1.10" in e.edited) or e.replaced in ("0.73", "1.10")
        if e.replaced == "0.92":
            assert re.fullmatch(r"\d+\.\d\d", e.replacement) and float(e.replacement) <= 100
    e = change_value("The curves were first published in 1966 for children.", np.random.default_rng(0))
    assert e is not None and e.replaced == "1966" and 1963 <= int(e.replacement) <= 1969
    e = change_value("Cases rose to 1,200 in the cohort.", np.random.default_rng(0))
    assert e is not None and re.fullmatch(r"\d{1,3}(,\d{3})+", e.replacement)


def test_change_value_flips_direction_words_and_skips_p_values():
    e = change_value("Higher numbers of proteins were adsorbed onto the particles.", np.random.default_rng(0))
    assert e is not None and e.replacement == "Lower"
    e = change_value(ROS, np.random.default_rng(0))
    assert e is not None and e.edited == ROS.replace("reduces", "increases")
    assert change_value("The effect was significant (P < 0.05).", np.random.default_rng(0)) is None
    assert change_value("They give rise to all craniofacial bones.", np.random.default_rng(0)) is None


def test_entity_pool_groups_corpus_terms_by_shape(corpus, pool):
    assert {"symbol", "acronym", "capitalised"} <= set(pool)
    assert "IL-6" in pool["symbol"] and "DNA" in pool["acronym"]
    assert "RESULTS" not in pool["acronym"] and "CI" not in pool["acronym"]
    assert "Patients" not in pool["capitalised"]  # an ordinary word capitalised in a title
    assert all(len(v) <= 300 for v in pool.values())
    assert entity_pool(corpus, max_terms=300) == pool
    with pytest.raises(ValueError):
        entity_pool(corpus, max_terms=0)


def test_swap_entity_uses_a_same_shape_corpus_term(pool):
    seen = set()
    for seed in range(10):
        e = swap_entity(RACK1, pool, np.random.default_rng(seed))
        assert e is not None
        consistent(e)
        assert check(RACK1, e.edited, "entity_shift").verified
        assert e.replacement not in RACK1
        seen.add(e.replaced)
    assert len(seen) > 1
    a = swap_entity(RACK1, pool, np.random.default_rng(3))
    assert a == swap_entity(RACK1, pool, np.random.default_rng(3))
    e = swap_entity(
        "Levels of IL-6 rose in these patients.",
        ["IL-6", "TNF", "Drosophila", "IL-8"],
        np.random.default_rng(0),
    )
    assert e is not None and e.replaced == "IL-6" and e.replacement == "IL-8"
    assert swap_entity("levels rose in these patients.", pool, np.random.default_rng(0)) is None


def test_reverse_roles_swaps_subject_and_object():
    e = reverse_roles(ATP)
    assert e is not None and e.edited == "Three millimolar IMP decreased the Km for ATP from 0.33 to 0.09 mM."
    consistent(e)
    assert check(ATP, e.edited, "role_reversal").verified
    assert (
        reverse_roles("Ablation of Gli1+ cells leads to craniosynostosis and arrest of skull growth.") is None
    )
    assert reverse_roles("qRT-PCR confirmed KRT14 in these cells.") is None  # a reporting verb
    e = reverse_roles("qRT-PCR confirmed that these microRNA target TNF.")  # the relation after it
    assert e is not None and e.edited.endswith("these TNF target microRNA.")
    assert reverse_roles("MAIN RESULTS AND THE ROLE OF CHANCE The mean was 1.50.") is None  # a heading


def test_apply_rules_is_deterministic_and_verified(sentences, pool):
    kinds = [*RULE_KINDS, "intent_drift"]
    for s in sentences[:50]:
        a = apply_rules(s, kinds, np.random.default_rng(7), pool)
        assert a == apply_rules(s, kinds, np.random.default_rng(7), pool)
        for e in a:
            consistent(e)
            assert e.kind != "intent_drift" and verify_edit(e.original, e.edited, e.kind).verified
    assert all(e.kind != "entity_shift" for e in apply_rules(RACK1, RULE_KINDS, np.random.default_rng(0)))


def test_apply_rates_on_200_scifact_sentences(sentences, pool):
    """Every edit verifies for its kind; the rates below are the floor the operators reach on SciFact."""
    assert len(sentences) == 200
    rng = np.random.default_rng(0)
    applied: Counter[str] = Counter()
    for s in sentences:
        for kind, edit in (
            ("negation", negate(s)),
            ("changed_value", change_value(s, rng)),
            ("entity_shift", swap_entity(s, pool, rng)),
            ("role_reversal", reverse_roles(s)),
        ):
            if edit is not None:
                applied[kind] += 1
                consistent(edit)
                assert verify_edit(s, edit.edited, kind).verified, (kind, s, edit.edited)
    rates = {k: applied[k] / len(sentences) for k in RULE_KINDS}
    print("apply rates on 200 SciFact sentences:", rates)
    assert rates["negation"] >= 0.7 and rates["entity_shift"] >= 0.5 and rates["changed_value"] >= 0.3
