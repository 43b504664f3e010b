"""What an LLM edit of the positive must change: the span of the answer clause that a perturbation targets.

SyNeg's multi-attribute generation names the attribute to perturb and asks to keep everything else; CausalNeg
asks for exactly one broken requirement. A small model told only "change a value" in a sentence with no value,
or a value the query itself names, returns a copy or edits the wrong clause. So negforge finds, in the answer
clause (`answer_clause`: the clause of the answer sentence sharing most stems with the query), the span each
contradicting perturbation needs, with the rule operators' own lexicons:

- `changed_value`: the first number the query does not contain, else the first such direction word (increases,
  higher, ...);
- `negation`: the word a rule negation would negate (an auxiliary, a relation verb) or the negation to remove;
- `role_reversal`: the two entities around a relation verb (`reverse_roles`'s span);
- `reversed_cause`: that span, else a direction word.

A perturbation with no target is not asked for that query. The target goes into the prompt, and
`edit_touches_target` checks that the model's edit changed it (an edit elsewhere is `off_answer`).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache

from negforge.generators.answer_clause import answer_clause
from negforge.generators.lexicon import DIRECTION_FLIPS, is_number, stem, tokenize
from negforge.generators.rules import negate, reverse_roles

TARGETED_KINDS = ("changed_value", "negation", "role_reversal", "reversed_cause")


@dataclass(frozen=True)
class EditTarget:
    """The span `sentence[start:end]` an edit must change, inside the answer clause [clause_start, clause_end)."""

    sentence: str
    start: int
    end: int
    clause_start: int
    clause_end: int

    @property
    def text(self) -> str:
        return self.sentence[self.start : self.end]

    @property
    def clause(self) -> str:
        return self.sentence[self.clause_start : self.clause_end]


def _value_span(clause: str, query_stems: frozenset[str]) -> tuple[int, int] | None:
    """The first number of the clause the query does not name, else its first such direction word."""
    toks = [t for t in tokenize(clause) if stem(t.norm) not in query_stems]
    for test in (lambda w: is_number(w), lambda w: w in DIRECTION_FLIPS):
        hit = next((t for t in toks if test(t.norm)), None)
        if hit is not None:
            return hit.start, hit.end
    return None


def _direction_span(clause: str) -> tuple[int, int] | None:
    return next(((t.start, t.end) for t in tokenize(clause) if t.norm in DIRECTION_FLIPS), None)


def _negation_span(clause: str) -> tuple[int, int] | None:
    edit = negate(clause)
    if edit is None:
        return None
    if edit.span_end > edit.span_start:
        return edit.span_start, edit.span_end
    # an insertion ("is" -> "is not"): the word before the insertion point is what gets negated
    words = [t for t in tokenize(clause) if t.end <= edit.span_start]
    return (words[-1].start, words[-1].end) if words else None


def _role_span(clause: str) -> tuple[int, int] | None:
    edit = reverse_roles(clause)
    return (edit.span_start, edit.span_end) if edit is not None else None


@lru_cache(maxsize=4096)
def edit_targets(sentence: str, query: str) -> dict[str, EditTarget]:
    """The target of each contradicting perturbation in `sentence`'s answer clause for `query` (module doc);
    kinds without one are absent. Deterministic; no errors (odd text gives fewer targets)."""
    clause = answer_clause(sentence, query)
    text, off = clause.text, clause.start
    finders = {
        "changed_value": lambda: _value_span(text, clause.query_stems),
        "negation": lambda: _negation_span(text),
        "role_reversal": lambda: _role_span(text),
        "reversed_cause": lambda: _role_span(text) or _direction_span(text),
    }
    out = {}
    for kind, find in finders.items():
        span = find()
        if span is not None:
            out[kind] = EditTarget(sentence, off + span[0], off + span[1], clause.start, clause.end)
    return out


def changed_region(original: str, edited: str) -> tuple[int, int, int, int] | None:
    """Character ranges (a_start, a_end, b_start, b_end): the part of `original` that the edit replaced or
    deleted, and what stands there in `edited`, from the first to the last changed token (an insertion gives
    an empty original range at its point); None when no token changed."""
    a, b = tokenize(original), tokenize(edited)
    matcher = difflib.SequenceMatcher(None, [t.norm for t in a], [t.norm for t in b], autojunk=False)
    ops = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    if not ops:
        return None
    i1, i2, j1, j2 = ops[0][1], ops[-1][2], ops[0][3], ops[-1][4]

    def span(toks, lo, hi, text):
        start = toks[lo].start if lo < len(toks) else len(text)
        return (start, toks[hi - 1].end) if hi > lo else (start, start)

    return (*span(a, i1, i2, original), *span(b, j1, j2, edited))


def edit_touches_target(target: EditTarget, edited: str) -> bool:
    """Whether `edited` (the model's version of target.sentence) changed the target span: the changed region
    overlaps it, or an insertion lands at its edge ("lowers" -> "does not lower" replaces it; "is" -> "is not"
    inserts right after it)."""
    region = changed_region(target.sentence, edited)
    if region is None:
        return False
    start, end = region[0], region[1]
    if start == end:  # pure insertion: at the target, or only whitespace after it
        return target.start <= start and not target.sentence[target.end : start].strip()
    return start < target.end and end > target.start
