"""Rule-based counterfactual operators: contradiction edits that need no LLM.

Counterfactual data augmentation by small span edits (insert or remove a negation, change a number or a
direction word, swap an entity for another of the same shape from the corpus, swap two entities around their
relation), one CausalNeg perturbation per edit. Every edit passes `verify_edit` for its kind, so these give a
verified floor of synthetic negatives on any machine; `RuleEdit.source` is "rules" so that provenance and the
quality benchmark can tell them from LLM text. Deterministic given the numpy Generator passed in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from negforge.generators.lexicon import (
    DIRECTION_FLIPS,
    FUNCTION_WORDS,
    NEGATION_CUES,
    SCI_VERBS,
    Token,
    is_content,
    is_number,
    is_value_word,
    is_verb,
    stem,
    tokenize,
    word_set,
)
from negforge.generators.verifiers import verify_edit

RULE_KINDS = ("negation", "changed_value", "entity_shift", "role_reversal")
SOURCE = "rules"


@dataclass(frozen=True)
class RuleEdit:
    """One rule edit: `edited` is `original` with original[span_start:span_end] (`replaced`) replaced by
    `replacement`. `kind` is the perturbation name (perturbations.yaml); `source` marks rule-made text."""

    kind: str
    original: str
    edited: str
    span_start: int
    span_end: int
    replaced: str
    replacement: str
    source: str = SOURCE


def _edit(kind: str, text: str, start: int, end: int, replacement: str) -> RuleEdit:
    edited = text[:start] + replacement + text[end:]
    return RuleEdit(kind, text, edited, start, end, text[start:end], replacement)


def _like(word: str, model: str) -> str:
    """`word` with the capitalisation of `model` (Increased -> Decreased, CANNOT -> CAN)."""
    if model.isupper() and len(model) > 1:
        return word.upper()
    return word[:1].upper() + word[1:] if model[:1].isupper() else word


# ---- negation --------------------------------------------------------------------------------------------

_AUX = word_set("is are was were can could may might will would should must does do did")
_PERFECT = frozenset({"has", "have", "had"})
_NT_BASE = {"ca": "can", "wo": "will", "sha": "shall"}
_PREPOSITIONS = word_set(
    "with by in to from for at as on into than of and or via after during about over under between among "
    "within across through against without towards toward upon per"
)
# A verb form right after one of these is a noun or an adjective (the increase, a reduced level, of use).
_NOT_SUBJECT = (FUNCTION_WORDS - {"that", "which", "who", "it", "we", "they", "he", "she"}) | _PREPOSITIONS
_PAST = {"find": "found", "lead": "led", "bind": "bound", "drive": "drove"}
_DOUBLE = word_set("control occur confer")


def _forms(base: str) -> tuple[str, str]:
    """Third person and past of a regular verb (reduces, reduced; studies, studied; binds, bound)."""
    if base.endswith("y") and base[-2] not in "aeiou":
        return base[:-1] + "ies", base[:-1] + "ied"
    third = base + "es" if base.endswith(("s", "x", "ch", "sh", "z")) else base + "s"
    past = base + base[-1] + "ed" if base in _DOUBLE else base + "d" if base.endswith("e") else base + "ed"
    return third, _PAST.get(base, past)


_REPORTING = {
    stem(v)
    for v in word_set("show suggest indicate demonstrate reveal confirm identify find report observe propose")
}
_VERB_FORMS: dict[str, tuple[str, str]] = {}
for _b in sorted(SCI_VERBS):
    for _form, _aux in zip((*_forms(_b), _b), ("does", "did", "do"), strict=True):
        _VERB_FORMS.setdefault(_form, (_b, _aux))


def _gap(text: str, a: Token, b: Token) -> str:
    return text[a.end : b.start]


def negate(sentence: str) -> RuleEdit | None:
    """Insert or remove one negation in `sentence` (CausalNeg `negation`; counterfactual augmentation).

    Input: one sentence (or short span). Output: a RuleEdit of kind "negation", or None when no rule applies.
    An existing negation is removed first ("is not" -> "is", "does not X" -> "does X", "cannot" -> "can",
    "doesn't" -> "does", "was never" -> "was", "was no effect" -> "was an effect"); otherwise the first
    auxiliary is negated ("is" -> "is not", "can" -> "cannot", "has been" -> "has not been") or the first
    relation verb from the lexicon ("increases" -> "does not increase", "reduced X" -> "did not reduce X",
    "statins reduce" -> "do not reduce"); a reporting verb before "that" ("we show that") is passed over for
    the verb of what is reported. The first word of the sentence is never touched, nor a capitalised
    "May"/"Will"/"Can" inside it (a month or a name). Errors: none (non-matching text gives None).
    """
    toks = tokenize(sentence)
    for i, t in enumerate(toks[1:], start=1):
        prev = toks[i - 1]
        if t.norm in ("not", "never") and (prev.norm in _AUX | _PERFECT or t.norm == "never"):
            return _edit("negation", sentence, len(sentence[: t.start].rstrip(" ")), t.end, "")
        if t.norm == "no" and prev.norm in _AUX | _PERFECT and i + 1 < len(toks):
            # "was no difference" -> "was a difference", "were no changes" -> "were changes"
            noun = toks[i + 1]
            plural = noun.norm.endswith("s") and not noun.norm.endswith("ss")
            article = "" if plural else ("an " if noun.norm[0] in "aeiou" else "a ")
            return _edit("negation", sentence, t.start, noun.start, article)
        if t.norm == "n't":
            return _edit(
                "negation", sentence, prev.start, t.end, _like(_NT_BASE.get(prev.norm, prev.text), prev.text)
            )
        if t.norm == "cannot":
            return _edit("negation", sentence, t.start, t.end, _like("can", t.text))
    for i, t in enumerate(toks[1:], start=1):
        prev, nxt = toks[i - 1], (toks[i + 1] if i + 1 < len(toks) else None)
        if nxt is None or nxt.norm in NEGATION_CUES:
            continue
        if t.norm in _AUX and t.text[0].isupper():
            continue  # mid-sentence "May", "Will", "Can": a month or a name, not an auxiliary
        if t.norm == "can":
            return _edit("negation", sentence, t.start, t.end, _like("cannot", t.text))
        if t.norm in _AUX or (t.norm in _PERFECT and (nxt.norm == "been" or nxt.norm.endswith(("ed", "en")))):
            return _edit("negation", sentence, t.end, t.end, " not")
        form = _VERB_FORMS.get(t.norm)
        if form is not None and nxt.norm == "that" and stem(form[0]) in _REPORTING:
            continue  # "we do not show that X" does not deny X: negate X's own verb
        if form is None or prev.norm in _NOT_SUBJECT or prev.norm.endswith("ly") or is_number(prev.norm):
            continue
        base, aux = form
        if aux == "do" and not (prev.norm in ("we", "they") or prev.norm.endswith("s")):
            continue  # a base form is a verb only after a plural subject
        if aux == "did" and (nxt.norm in _PREPOSITIONS or _gap(sentence, t, nxt).strip()):
            continue
        return _edit("negation", sentence, t.start, t.end, f"{aux} not {base}")
    return None


# ---- changed value ---------------------------------------------------------------------------------------

_SKIP_FLIPS = frozenset({"up", "down"})  # phrasal uses (follow up, broken down) would not flip a value
_YEAR = range(1900, 2031)
_LABELS = word_set("type phase grade stage class group figure fig table chromosome")
_FACTORS = (2.0, 0.5, 3.0, 1.5, 0.25, 4.0)


def _new_number(text: str, rng: np.random.Generator, percent: bool) -> str | None:
    core, fold = (text[:-5], "-fold") if text.endswith("-fold") else (text, "")
    thousands = bool(re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", core))
    decimal_comma = "," in core and not thousands
    plain = core.replace(",", "" if thousands else ".")
    if plain.count(".") > 1 or not plain[:1].isdigit():
        return None  # 1.2.3, signed: not a plain value
    decimals = len(plain.split(".")[1]) if "." in plain else 0
    value = float(plain)
    if decimals == 0 and int(value) in _YEAR and not percent and not fold:
        return str(int(value) + int(rng.choice([-3, -2, -1, 1, 2, 3])))
    for f in rng.permutation(_FACTORS):
        new = round(value * float(f), decimals)
        if new != value and new != 0 and not (percent and new > 100):
            out = f"{new:,.{decimals}f}" if thousands else f"{new:.{decimals}f}"
            return (out.replace(".", ",") if decimal_comma else out) + fold
    return None


def change_value(sentence: str, rng: np.random.Generator) -> RuleEdit | None:
    """Change one number or flip one direction word in `sentence` (CausalNeg `changed_value`).

    Input: a sentence and a numpy Generator (which candidate, which new value). Output: a RuleEdit of kind
    "changed_value" or None when the sentence has no number or direction word. Numbers are scaled (x2, x0.5,
    x3, ...) keeping decimals, thousands separators, "-fold" and the unit after them (percentages stay
    <= 100); years shift by 1-3; p-values and the "95% CI" level are left alone. Direction words and
    comparatives flip from the lexicon (increase<->decrease, higher<->lower, more<->less, reduced->increased,
    positive<->negative ...), keeping capitalisation. Errors: none.
    """
    toks = tokenize(sentence)
    cands: list[tuple[Token, str]] = []
    for i, t in enumerate(toks):
        if t.norm in DIRECTION_FLIPS and t.norm not in _SKIP_FLIPS:
            if i and t.norm in ("rise", "fall") and toks[i - 1].norm.startswith(("giv", "gav")):
                continue  # "give rise to" is no direction
            cands.append((t, "flip"))
        elif is_number(t.norm):
            before = [x.norm for x in toks[max(0, i - 2) : i]]
            after = [x.norm for x in toks[i + 1 : i + 3]]
            gap = _gap(sentence, toks[i - 1], t) if i else " "
            if "p" in before or "ci" in after or "confidence" in after or gap.rstrip().endswith("("):
                continue
            if not t.text[0].isdigit() or (i and not gap):
                continue  # signed or glued to a token: exponents (10−5), ranges, codes
            if i and (entity_shape(toks[i - 1].text) or toks[i - 1].norm in _LABELS):
                continue  # HSUR 1, type 2, figure 3: part of a name, not a value
            cands.append((t, "percent" if after[:1] in (["%"], ["percent"]) else "number"))
    for k in rng.permutation(len(cands)) if cands else ():
        t, how = cands[int(k)]
        flip = _like(DIRECTION_FLIPS[t.norm], t.text) if how == "flip" else None
        new = flip or _new_number(t.text, rng, how == "percent")
        if new is not None:
            return _edit("changed_value", sentence, t.start, t.end, new)
    return None


# ---- entities --------------------------------------------------------------------------------------------


# Statistics and numerals in capitals; headings (RESULTS) drop out of the pool as ordinary words.
_NOT_ENTITIES = word_set("CI HR RR SD SE SEM IQR II III IV")


def entity_shape(token: str) -> str | None:
    """Shape class of an entity-looking token: symbol (IL-6, BRCA1, TNF-α), acronym (TNF, HIV, MSCs), mixed
    (p53, mTOR), capitalised (Drosophila), or a biomedical suffix class (drug, disease, enzyme); else None.
    Whether a capitalised word starts the sentence is the caller's concern."""
    if len(token) > 3 and token[-1] == "s" and token[:-1].upper() == token[:-1]:
        token = token[:-1]  # plural acronyms: MSCs, HSURs, APBs
    letters = [c for c in token if c.isalpha()]
    if not letters or len(token) < 2 or "/" in token or token in _NOT_ENTITIES:
        return None
    if not is_content(token.lower()) or is_value_word(token.lower()):
        return None  # AT, NO, UP: read as words, they would change another requirement
    ascii_upper = sum(c.isascii() and c.isupper() for c in letters)
    ascii_lower = sum(c.isascii() and c.islower() for c in letters)
    other = any(c.isdigit() or not c.isascii() for c in token if c.isalnum())
    if ascii_lower == 0 and ascii_upper >= 1 and other:
        return "symbol"
    if ascii_lower == 0 and ascii_upper >= 2:
        return "acronym"
    if ascii_upper >= 1 and ascii_lower >= 1 and (other or not token[0].isupper()):
        return "mixed"
    if token[0].isupper() and ascii_upper == 1 and token[1:].replace("-", "").isalpha():
        return "capitalised"
    w = token.lower()
    if not w.isalpha() or len(w) < 6 or w in _SUFFIX_EXCLUDE or not token.islower():
        return None
    return next((name for name, sufs in _SUFFIX_CLASSES if w.endswith(sufs)), None)


_SUFFIX_CLASSES = (
    ("drug", ("mab", "nib", "statin", "mycin", "cillin", "azole", "pril", "sartan", "olol", "formin",
              "profen", "parin", "platin", "taxel", "vir")),
    ("disease", ("itis", "emia", "aemia", "osis", "oma", "pathy")),
    ("enzyme", ("kinase", "ase")),
)  # fmt: skip
_SUFFIX_EXCLUDE = word_set(
    "increase decrease release disease phase database base case cease ease purchase diagnosis prognosis "
    "diploma aroma coma stoma chase erase crease lease vase virus"
)


def _shout(t: Token) -> bool:
    return t.text.isupper() and t.text.isalpha() and len(t.text) > 3


def _shape_here(text: str, toks: list[Token], i: int) -> str | None:
    """Entity shape of toks[i]; None for words of a heading in capitals (MAIN RESULTS) and for capitalised
    words that start a sentence or are common words."""
    t, prev = toks[i], (toks[i - 1] if i else None)
    shape = entity_shape(t.text)
    near = [toks[k] for k in (i - 1, i + 1) if 0 <= k < len(toks)]
    if shape == "acronym" and t.text.isalpha() and any(_shout(n) for n in near):
        return None
    if shape == "capitalised":
        # After a full stop, a colon or a heading ("RESULTS High levels ...") a capital starts a sentence.
        heading = prev is not None and _shout(prev)
        starts = prev is None or heading or re.search(r"[.!?:;\"(]", _gap(text, prev, t))
        if starts or t.norm in FUNCTION_WORDS or is_verb(t.norm) or is_value_word(t.norm) or len(t.text) < 3:
            return None
    return shape if shape is None or len(t.text) <= 30 else None


_WORDLIKE = ("capitalised", "acronym")  # shapes an ordinary word takes in titles and headings


def entity_pool(texts: Iterable[str], max_terms: int = 500) -> dict[str, list[str]]:
    """Candidate entity terms of a corpus, grouped by shape, for `swap_entity` (counterfactual augmentation).

    Input: corpus texts (titles, passages) and the number of terms kept per shape. Output: shape name
    (symbol, acronym, mixed, capitalised, drug, disease, enzyme; see `entity_shape`) -> terms, most
    frequent first, ties alphabetical (deterministic). Sentence-initial capitalised words are not entities.
    Errors: ValueError when max_terms < 1.
    """
    if max_terms < 1:
        raise ValueError("max_terms must be >= 1")
    texts = list(texts)
    counts: dict[str, Counter[str]] = {}
    for text in texts:
        toks = tokenize(text)
        for i, t in enumerate(toks):
            shape = _shape_here(text, toks, i)
            if shape is not None:
                counts.setdefault(shape, Counter())[t.text] += 1
    lower = Counter(t.norm for text in texts for t in tokenize(text) if t.text.islower())
    for shape in _WORDLIKE:
        c = counts.get(shape, Counter())
        for w in [w for w in c if lower[w.lower()] >= c[w]]:
            del c[w]  # Study, Patients in a title, WORDS in a heading: ordinary words, not names
    ranked = {s: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[:max_terms] for s, c in counts.items()}
    return {s: [w for w, _ in r] for s, r in ranked.items() if r}


def _as_pool(candidates: Mapping[str, Sequence[str]] | Sequence[str]) -> Mapping[str, Sequence[str]]:
    if isinstance(candidates, Mapping):
        return candidates
    pool: dict[str, list[str]] = {}
    for term in candidates:
        shape = entity_shape(term)
        if shape is not None:
            pool.setdefault(shape, []).append(term)
    return pool


def swap_entity(
    sentence: str, candidates: Mapping[str, Sequence[str]] | Sequence[str], rng: np.random.Generator
) -> RuleEdit | None:
    """Replace one entity of `sentence` by a different corpus term of the same shape (CausalNeg `entity_shift`).

    Input: a sentence; candidates as `entity_pool` returns them (shape -> terms) or a flat list of terms
    (grouped by shape here), e.g. gene/protein symbols IL-6, TNF, BRCA1 or capitalised names; a numpy
    Generator picks the entity and its replacement. Only one occurrence is replaced; a replacement never
    repeats a word already in the sentence; an abbreviation in parentheses ("reticulum (ER)") is never the
    entity (its expansion still states the fact). Output: a RuleEdit of kind "entity_shift", or None when no
    entity has a same-shape alternative. Errors: none.
    """
    pool = _as_pool(candidates)
    toks = tokenize(sentence)
    present = {stem(t.norm) for t in toks}
    options: list[tuple[Token, list[str]]] = []
    known = {w for shape in _WORDLIKE for w in pool.get(shape, ())}
    for i, t in enumerate(toks):
        if sentence[t.start - 1 : t.start] == "(" and sentence[t.end : t.end + 1] == ")":
            continue  # "endoplasmic reticulum (ER)": an abbreviation's definition; swapping it changes no fact
        shape = _shape_here(sentence, toks, i)
        alts = [w for w in pool.get(shape, ()) if stem(w) not in present] if shape else []
        if alts and (shape not in _WORDLIKE or t.text in known):  # a name the corpus knows
            options.append((t, alts))
    if not options:
        return None
    t, alts = options[int(rng.integers(len(options)))]
    return _edit("entity_shift", sentence, t.start, t.end, alts[int(rng.integers(len(alts)))])


_CLAUSE_BREAKS = word_set("that which and or but whereas while although because")


def reverse_roles(sentence: str, max_gap: int = 5) -> RuleEdit | None:
    """Swap two entities around a relation verb: "IL-6 induces TNF" -> "TNF induces IL-6" (CausalNeg
    `role_reversal`). Input: a sentence; max_gap bounds how many tokens apart the two entities may be. The
    first pair of different entity-shaped tokens in one clause (no punctuation, "that" or "and" between)
    where the first is directly followed by a lowercase relation verb (not a reporting verb such as show or
    confirm) is swapped. Output: a RuleEdit or None. Errors: none.
    """
    toks = tokenize(sentence)
    ents = [i for i in range(len(toks)) if _shape_here(sentence, toks, i) and _head(sentence, toks, i)]
    for x, i in enumerate(ents):
        verb = toks[i + 1] if i + 1 < len(toks) else None
        if verb is None or not is_verb(verb.norm) or not verb.text.islower() or stem(verb.norm) in _REPORTING:
            continue  # the first entity must be the subject right before its relation verb
        for j in ents[x + 1 :]:
            if j < i + 2 or j - i > max_gap or toks[i].norm == toks[j].norm:
                continue
            clause = not re.search(r"[,;:()\[\]]", _gap(sentence, toks[i], toks[j]))
            if clause and not {t.norm for t in toks[i + 1 : j]} & _CLAUSE_BREAKS:
                a, b = toks[i], toks[j]
                return _edit(
                    "role_reversal", sentence, a.start, b.end, b.text + sentence[a.end : b.start] + a.text
                )
    return None


def _head(text: str, toks: list[Token], i: int) -> bool:
    """toks[i] ends its noun phrase: not glued to what follows (Gli1+ cells) and not followed by a noun."""
    if i + 1 >= len(toks):
        return True
    gap = _gap(text, toks[i], toks[i + 1])
    if gap[:1] in ("+", "-") or gap[:1].isalnum():
        return False
    nxt = toks[i + 1].norm
    return bool(gap.strip()) or nxt in FUNCTION_WORDS or nxt in _PREPOSITIONS or is_verb(nxt) or nxt == "not"


def apply_rules(
    sentence: str,
    kinds: Iterable[str],
    rng: np.random.Generator,
    entity_pool: Mapping[str, Sequence[str]] | Sequence[str] | None = None,
) -> list[RuleEdit]:
    """Try the rule operator of each perturbation kind on `sentence` (CausalNeg; counterfactual augmentation).

    Input: a sentence, the perturbation kinds wanted (kinds outside RULE_KINDS are skipped: they have no rule
    operator), a numpy Generator, and the corpus entity pool for entity_shift (without one, entity_shift is
    skipped). Output: the edits made, in the order of `kinds`, each one checked with `verify_edit` (an edit
    that fails is dropped, never returned). Same sentence, kinds, pool and seed give the same edits.
    Errors: none.
    """
    ops = {
        "negation": lambda: negate(sentence),
        "changed_value": lambda: change_value(sentence, rng),
        "entity_shift": lambda: None if entity_pool is None else swap_entity(sentence, entity_pool, rng),
        "role_reversal": lambda: reverse_roles(sentence),
    }
    out: list[RuleEdit] = []
    for kind in kinds:
        edit = ops[kind]() if kind in ops else None
        if edit is not None and verify_edit(edit.original, edit.edited, kind).verified:
            out.append(edit)
    return out
