"""Perturbation verifiers: did the edit really perform the contradiction it is labelled with?

CausalNeg (see docs: one perturbation per negative) labels each synthetic negative with the requirement it
breaks; a small model asked for a negation often returns a near-copy or a paraphrase that keeps the meaning,
which is the worst false negative there is. The checks here are token-level (difflib alignment, rapidfuzz
similarity, small lexicons), in the spirit of rule-based counterfactual data augmentation: no NLP model.
A failed check is a reason string; nothing raises on odd text.
"""

from __future__ import annotations

import difflib
from collections import Counter
from dataclasses import dataclass

from rapidfuzz.distance import Indel

from negforge.generators.lexicon import (
    ADJ_SUFFIXES,
    ADJECTIVES,
    DIRECTION_POLARITY,
    NEG_PREFIXES,
    NEGATION_CUES,
    Token,
    entity_like,
    is_content,
    is_value_word,
    looks_like_entity,
    number_value,
    stem,
    tokenize,
)

REASONS = ("perturbation_not_verified", "edit_too_small", "edit_too_large")
# Contradiction kinds with a verifier; every other perturbation kind passes with "no verifier for kind".
VERIFIABLE_KINDS = frozenset({"negation", "changed_value", "entity_shift", "role_reversal"})
NO_VERIFIER = "no verifier for kind"


@dataclass(frozen=True)
class EditVerdict:
    """Outcome of `verify_edit`: `reason` is one of REASONS when `verified` is False, else None."""

    verified: bool
    reason: str | None
    detail: str


def _regions(a: list[Token], b: list[Token]) -> list[tuple[list[Token], list[Token]]]:
    """The changed stretches of a token-level alignment: (removed tokens, added tokens)."""
    sm = difflib.SequenceMatcher(None, [t.norm for t in a], [t.norm for t in b], autojunk=False)
    return [(a[i1:i2], b[j1:j2]) for op, i1, i2, j1, j2 in sm.get_opcodes() if op != "equal"]


def _pair_off(removed: list[str], added: list[str], same) -> tuple[list[str], list[str]]:
    """Drop pairs (r, a) with same(r, a) from both lists: moved words, inflections, equal numbers."""
    rest, left = list(added), []
    for r in removed:
        hit = next((i for i, a in enumerate(rest) if same(r, a)), None)
        if hit is None:
            left.append(r)
        else:
            rest.pop(hit)
    return left, rest


def _same_word(r: str, a: str) -> bool:
    if r == a or stem(r) == stem(a):
        return True
    rv, av = number_value(r), number_value(a)
    return rv is not None and rv == av


def _morph_negation(r: str, a: str) -> bool:
    """effective/ineffective, specific/non-specific: one word is the other with a negative prefix."""
    r, a = r.lower(), a.lower()
    return any(a == p + r or r == p + a for p in NEG_PREFIXES) and min(len(r), len(a)) >= 4


def _changed(regions) -> tuple[list[str], list[str]]:
    removed = [t.norm for rem, _ in regions for t in rem]
    added = [t.norm for _, add in regions for t in add]
    return _pair_off(removed, added, _same_word)


def _other(removed: list[str], added: list[str], explained) -> int:
    """How many content words changed besides the ones `explained` accepts (a substitution counts once)."""
    r = [w for w in removed if is_content(w) and not explained(w)]
    a = [w for w in added if is_content(w) and not explained(w)]
    return max(len(r), len(a))


def _flipped(removed: list[str], added: list[str]) -> bool:
    """A direction word of one polarity replaced by one of the other (reduces -> increases)."""
    r = {DIRECTION_POLARITY[w] for w in removed if w in DIRECTION_POLARITY}
    a = {DIRECTION_POLARITY[w] for w in added if w in DIRECTION_POLARITY}
    return bool(r and a and r != a)


def _cue_delta(removed: list[str], added: list[str]) -> int:
    return sum(w in NEGATION_CUES for w in added) - sum(w in NEGATION_CUES for w in removed)


def _verify_negation(regions, budget: int) -> EditVerdict:
    removed, added = _changed(regions)
    morph = [(r, a) for r in removed for a in added if _morph_negation(r, a)]
    r_cues = Counter(w for w in removed if w in NEGATION_CUES)
    a_cues = Counter(w for w in added if w in NEGATION_CUES)
    if _cue_delta(removed, added) == 0 and not morph:
        return EditVerdict(False, "perturbation_not_verified", "no negation cue added or removed")
    if _flipped(removed, added):  # "reduces" -> "does not increase": two flips, no contradiction
        return EditVerdict(False, "perturbation_not_verified", "negation cancelled by a direction flip")
    morph_words = {w for pair in morph for w in pair}
    n = _other(removed, added, lambda w: w in morph_words)
    if n > budget:
        return EditVerdict(False, "edit_too_large", f"negation plus {n} other changed words")
    if a_cues - r_cues or r_cues - a_cues:
        how, cues = ("added", a_cues - r_cues) if a_cues - r_cues else ("removed", r_cues - a_cues)
        return EditVerdict(True, None, f"negation cue {how}: {' '.join(sorted(cues.elements()))}")
    return EditVerdict(True, None, f"negative prefix: {morph[0][0]} -> {morph[0][1]}")


def _verify_changed_value(regions, budget: int) -> EditVerdict:
    removed, added = _changed(regions)
    r_vals = [w for w in removed if is_value_word(w)]
    a_vals = [w for w in added if is_value_word(w)]
    if not r_vals or not a_vals:
        return EditVerdict(False, "perturbation_not_verified", "no value, unit or direction word replaced")
    if all(w in DIRECTION_POLARITY for w in r_vals + a_vals) and not _flipped(r_vals, a_vals):
        return EditVerdict(False, "perturbation_not_verified", "direction word replaced by a synonym")
    if _flipped(r_vals, a_vals) and _cue_delta(removed, added):
        return EditVerdict(False, "perturbation_not_verified", "direction flip cancelled by a negation")
    n = _other(removed, added, is_value_word)
    if n > budget:
        return EditVerdict(False, "edit_too_large", f"value change plus {n} other changed words")
    return EditVerdict(True, None, f"value changed: {' '.join(r_vals)} -> {' '.join(a_vals)}")


def _verify_entity_shift(regions, budget: int, max_span: int = 4) -> EditVerdict:
    best = None
    for rem, add in regions:
        if not rem or not add or len(rem) > max_span or len(add) > max_span:
            continue
        r_words, a_words = _pair_off([t.norm for t in rem], [t.norm for t in add], _same_word)
        r_ent = [t.text for t in rem if t.norm in r_words and entity_like(t.text)]
        a_ent = [t.text for t in add if t.norm in a_words and entity_like(t.text)]
        if not r_ent or not a_ent:
            continue
        words = [w.lower() for w in r_ent + a_ent if not looks_like_entity(w)]
        if len(words) == len(r_ent + a_ent) and all(
            w in ADJECTIVES or w.endswith(ADJ_SUFFIXES) for w in words
        ):
            continue  # important -> crucial: adjectives, not entities
        best = (rem, add, r_ent, a_ent)
        break
    if best is None:
        return EditVerdict(
            False, "perturbation_not_verified", "no entity or noun replaced by a different one"
        )
    rem, add, r_ent, a_ent = best
    rest = [(r, a) for r, a in regions if r is not rem or a is not add]
    n = _other(*_changed(rest), lambda w: False)
    if n > budget:
        return EditVerdict(False, "edit_too_large", f"entity shift plus {n} other changed words")
    return EditVerdict(True, None, f"entity shifted: {' '.join(r_ent)} -> {' '.join(a_ent)}")


def _swap_window(a: list[str], b: list[str]) -> tuple[list[str], list[str]]:
    """Strip the common prefix and suffix of two token lists."""
    n = min(len(a), len(b))
    i = next((k for k in range(n) if a[k] != b[k]), n)
    j = next((k for k in range(n - i) if a[-1 - k] != b[-1 - k]), n - i)
    return a[i : len(a) - j], b[i : len(b) - j]


_sim = Indel.normalized_similarity


def _verify_role_reversal(a: list[Token], b: list[Token], min_match: float = 0.75) -> EditVerdict:
    keep = lambda toks: [t.norm for t in toks if t.norm not in ("a", "an", "the")]  # noqa: E731
    wa, wb = _swap_window(keep(a), keep(b))
    if len(wa) > 80:
        return EditVerdict(False, "perturbation_not_verified", "changed stretch too long for a swap")
    best, split = 0.0, None
    for i in range(1, len(wa)):
        for j in range(i + 1, len(wa)):
            x, mid, y = wa[:i], wa[i:j], wa[j:]
            if not all(any(is_content(w) for w in part) for part in (x, mid, y)) or set(x) == set(y):
                continue
            # The relation words stay exactly as they were (a passive "is reduced by" is no swap) ...
            for k in range(1, len(wb) - len(mid)):
                if wb[k : k + len(mid)] == mid:
                    # ... and the spans before and after it are the two arguments, swapped.
                    sim = min(_sim(wb[:k], y), _sim(wb[k + len(mid) :], x))
                    if sim > best:
                        best, split = sim, (x, mid, y)
    if split is None or best < min_match:
        return EditVerdict(
            False, "perturbation_not_verified", "no two spans swapped around the same relation"
        )
    x, mid, y = split
    return EditVerdict(
        True, None, f"roles swapped: [{' '.join(x)}] <-> [{' '.join(y)}] around [{' '.join(mid)}]"
    )


def _lower_first(toks: list[Token]) -> list[Token]:
    """A capital that only starts the text says nothing about entities: "Important" is not a name."""
    if toks and toks[0].text[1:].islower():
        toks[0] = Token(toks[0].text.lower(), toks[0].start, toks[0].end)
    return toks


def similarity(original: str, edited: str, *, ordered: bool = True) -> float:
    """Token-level similarity in [0, 1]: Indel (LCS) ratio over lowercased tokens, or, with
    ordered=False, the overlap of the two token multisets (word order ignored)."""
    a, b = [t.norm for t in tokenize(original)], [t.norm for t in tokenize(edited)]
    if ordered:
        return Indel.normalized_similarity(a, b)
    total = len(a) + len(b)
    return 1.0 if total == 0 else 2 * sum((Counter(a) & Counter(b)).values()) / total


def verify_edit(
    original: str, edited: str, kind: str, *, min_similarity: float = 0.5, max_other_changes: int = 2
) -> EditVerdict:
    """Check that `edited` is `original` under the perturbation `kind` (CausalNeg contradiction kinds).

    Inputs: the original text (a sentence or passage), the edited one and the perturbation kind name (from
    negforge/prompts/perturbations.yaml). `min_similarity` is the token-level similarity below which the
    edit counts as a rewrite (word order ignored for role_reversal); `max_other_changes` is how many
    content words may change besides the perturbation itself (grammar fixes, a synonym).
    Output: a EditVerdict. An unchanged copy (equal after lowercasing and dropping punctuation) is
    `edit_too_small` for every kind, since a copy is no perturbation at all; a kind outside
    VERIFIABLE_KINDS is otherwise verified with detail NO_VERIFIER. For verifiable kinds: a rewrite is
    `edit_too_large`; an edit without the perturbation (a paraphrase that keeps the meaning) is
    `perturbation_not_verified`; the perturbation plus too many other changes is `edit_too_large`.
    - negation: a negation cue (not, no, never, n't, cannot, without, lack, fail...) added or removed, or a
      negative prefix (un-, in-, non-...) added to or removed from a word;
    - changed_value: a number, unit, number word, direction word or comparative replaced by another;
    - entity_shift: an entity-shaped token or noun replaced by a different one (at most 4 tokens a side);
    - role_reversal: two spans swapped around the same relation words (A activates B -> B activates A).
    Errors: TypeError when original or edited is not a str; ValueError on a bound outside its range.
    Source: CausalNeg perturbation labels; counterfactual data augmentation for the edit shapes.
    """
    if not isinstance(original, str) or not isinstance(edited, str):
        raise TypeError("original and edited must be str")
    if not 0.0 <= min_similarity <= 1.0 or max_other_changes < 0:
        raise ValueError("min_similarity must lie in [0, 1] and max_other_changes be >= 0")
    a, b = (_lower_first(tokenize(text)) for text in (original, edited))
    if [t.norm for t in a] == [t.norm for t in b]:
        return EditVerdict(False, "edit_too_small", "identical after normalisation")
    if kind not in VERIFIABLE_KINDS:
        return EditVerdict(True, None, NO_VERIFIER)
    sim = similarity(original, edited, ordered=kind != "role_reversal")
    if sim < min_similarity:
        return EditVerdict(False, "edit_too_large", f"token similarity {sim:.2f} < {min_similarity}")
    if kind == "role_reversal":
        return _verify_role_reversal(a, b)
    regions = _regions(a, b)
    if kind == "negation":
        return _verify_negation(regions, max_other_changes)
    if kind == "changed_value":
        return _verify_changed_value(regions, max_other_changes)
    return _verify_entity_shift(regions, max_other_changes)
