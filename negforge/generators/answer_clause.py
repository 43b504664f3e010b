"""Where the answer is: the clause of the answer sentence that answers the query, and edits that change it.

An edit of the positive is a negative only if it changes what answers the query. "The Western Roman Empire ended
in 476 when the last emperor was deposed by Odoacer" answers "When did the Western Roman Empire fall?" in its
first clause; negating the second ("was not deposed") leaves "ended in 476" standing, so the passage still
answers and is a false negative by construction (facebookresearch/DPR#95: a hard negative must not contain
the answer). The sentence is split into clauses at subordinators (when, which, because, ...), semicolons and
comma-participle phrases (", rising 8,849 metres"); the answer clause is the one sharing most word stems with
the query (CausalNeg: break exactly the requirement the query asks about). Rule operators edit that clause
only, and an edit that changes only words of the query itself (it changes the question, not the answer) is
refused. A fact restated elsewhere in the passage (a title, a concluding sentence) is edited the same way, or
the edit is refused as `answer_restated`; a swap whose new term already occurs in the passage ("Everest" ->
"Himalayas" in a passage about the Himalayas) is refused as `replacement_in_passage`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from negforge.generators.lexicon import is_content, stem, tokenize
from negforge.generators.rules import RuleEdit

_SUBORDINATORS = (
    "when|while|which|who|whom|whose|because|although|though|after|before|since|until|unless|whereas|where"
)
# a clause break: before a subordinator, at a semicolon, at ", <word>ing" (a participle phrase), or at "and"
# before a lowercase -s/-ed word (a second predicate: "carries more water ... and flows through Brazil")
_BREAK = re.compile(
    rf"(?:,\s*|\s+)(?=(?:{_SUBORDINATORS})\b)|;\s*|,\s+(?=\w+ing\b)|,?\s+and\s+(?=[a-z]+(?:s|ed)\b)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class AnswerClause:
    """The clause of `sentence` that answers the query: sentence[start:end]."""

    sentence: str
    start: int
    end: int
    query_stems: frozenset[str]

    @property
    def text(self) -> str:
        return self.sentence[self.start : self.end]

    def splice(self, edited_clause: str) -> str:
        """The sentence with the clause replaced by `edited_clause`."""
        return self.sentence[: self.start] + edited_clause + self.sentence[self.end :]


def _stems(text: str) -> frozenset[str]:
    return frozenset(stem(t.norm) for t in tokenize(text) if is_content(t.norm))


def clauses(sentence: str) -> list[tuple[int, int]]:
    """(start, end) offsets of the clauses of `sentence`, in order, covering it (module doc)."""
    out, start = [], 0
    for m in _BREAK.finditer(sentence):
        if m.start() > start:
            out.append((start, m.start()))
        start = m.end()
    if start < len(sentence):
        out.append((start, len(sentence)))
    return out or [(0, len(sentence))]


def answer_clause(sentence: str, query: str) -> AnswerClause:
    """The clause of `sentence` with the most content-word stems in common with `query` (the first on a tie)."""
    q = _stems(query)
    best = max(clauses(sentence), key=lambda ab: (len(_stems(sentence[ab[0] : ab[1]]) & q), -ab[0]))
    return AnswerClause(sentence, best[0], best[1], q)


def changes_only_the_question(edit: RuleEdit, clause: AnswerClause) -> bool:
    """Whether the edit replaces only words the query itself contains (entity or value swaps of a query
    term): the passage then answers another question, not this one wrongly."""
    replaced = _stems(edit.replaced)
    return bool(replaced) and replaced <= clause.query_stems


def restate(passage: str, sentence_start: int, sentence_end: int, edit: RuleEdit) -> str | None:
    """`passage` (whose sentence at [sentence_start, sentence_end) is already edited) with the fact edited
    consistently elsewhere: a swapped entity or changed value is replaced at every other whole-word
    occurrence (the title "Mount Everest" follows "Everest" -> "K2"). None when another sentence restates the
    clause in a way a word swap cannot follow (a negation or role reversal with the clause's content words all
    present elsewhere): such a passage still states the answer (`answer_restated`)."""
    before, middle, after = (
        passage[:sentence_start],
        passage[sentence_start:sentence_end],
        passage[sentence_end:],
    )
    if edit.kind in ("entity_shift", "changed_value") and edit.replaced.strip():
        word = re.compile(rf"(?<!\w){re.escape(edit.replaced.strip())}(?!\w)")
        return word.sub(edit.replacement.strip(), before) + middle + word.sub(edit.replacement.strip(), after)
    fact = _stems(edit.original)
    if fact:
        for other in re.split(r"(?<=[.!?])\s+", before + " " + after):
            if len(fact & _stems(other)) >= max(2, int(0.8 * len(fact))):
                return None
    return passage
