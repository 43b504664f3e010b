"""The word lists and tokenizer the perturbation verifiers and rule edits read: tokens with spans, stems,
negation cues, function words, direction words with their opposites and polarity, units, number words, verbs.

Kept apart from the checks (`negforge.generators.verifiers`) the way bm25s keeps its stopwords beside its
scorer: a list can grow without touching a verifier.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Token:
    """One word, number or value symbol of a text, with its character span; `norm` is lowercased."""

    text: str
    start: int
    end: int

    @property
    def norm(self) -> str:
        return normalise(self.text).lower()


_TOKEN = re.compile(
    r"[+\-−]?\d+(?:[.,]\d+)*(?:-fold)?(?![\w\-])"  # numbers (a number glued to letters is a word: 5mg, 10-year)
    r"|[^\W_]+(?=n['’]t\b)"  # "does" of "doesn't"
    r"|n['’]t\b"
    r"|[^\W_]+(?:[-'’/][^\W_]+)*"  # words, incl. IL-6, TNF-α, patient's
    r"|[%<>≤≥=±]"
)
_NUMBER = re.compile(r"^[+\-−]?\d+(?:[.,]\d+)*(?:-fold)?$")


def word_set(text: str) -> frozenset[str]:
    """The whitespace-separated words of `text` as a frozenset (lexicons written as one string)."""
    return frozenset(text.split())


NEGATION_CUES = word_set(
    "not no never none neither nor without cannot n't nobody nothing nowhere lack lacks lacked lacking "
    "fail fails failed failing unable absence absent"
)
NEG_PREFIXES = ("non-", "non", "un", "in", "im", "ir", "il", "dis")
FUNCTION_WORDS = word_set(
    "a an the this that these those is are was were be been being am do does did has have had will would "
    "can could may might should must shall of in on at by for with to from as into onto and or but than "
    "it its their there which who whom whose we our they them he she his her also then such so both"
)
# Direction words and comparatives as (up, down) pairs, then one-way extras word:opposite by polarity.
_UP_DOWN = (
    "increase decrease|increases decreases|increased decreased|increasing decreasing|higher lower|"
    "high low|highest lowest|more less|most least|greater smaller|up down|upregulated downregulated|"
    "upregulates downregulates|upregulation downregulation|up-regulated down-regulated|positive negative|"
    "positively negatively|better worse|improved worsened|gain loss|above below|longer shorter|"
    "faster slower|stronger weaker|earlier later|rise fall|maximal minimal|maximum minimum|"
    "beneficial harmful|raises lowers|raised lowered|raising lowering|lengthen shorten"
)
_MORE_UP = "larger:smaller largest:smallest elevated:reduced enhanced:reduced enhances:reduces enhance:reduce"
_MORE_DOWN = (
    "reduced:increased reduces:increases reduce:increase reducing:increasing reduction:increase fewer:more "
    "decline:increase declined:increased diminished:increased"
)


def _lexicon() -> tuple[dict[str, str], dict[str, int]]:
    flips: dict[str, str] = {}
    polarity: dict[str, int] = {}
    for up, down in (p.split() for p in _UP_DOWN.split("|")):
        flips[up], flips[down], polarity[up], polarity[down] = down, up, 1, -1
    for text, sign in ((_MORE_UP, 1), (_MORE_DOWN, -1)):
        for word, opposite in (p.split(":") for p in text.split()):
            flips.setdefault(word, opposite)
            polarity.setdefault(word, sign)
    return flips, polarity


# word -> its opposite, and word -> +1 (up) / -1 (down).
DIRECTION_FLIPS, DIRECTION_POLARITY = _lexicon()
DIRECTION_WORDS = frozenset(DIRECTION_FLIPS) | frozenset(DIRECTION_FLIPS.values())
UNITS = word_set(
    "% percent mg g kg µg μg ng pg ml l dl µl μl mmol µmol μmol nmol mol mm cm m km µm μm nm h hr hrs hour "
    "hours min minutes s sec seconds day days week weeks month months year years mmhg iu units kcal bpm "
    "fold times"
)
NUMBER_WORDS = word_set(
    "zero one two three four five six seven eight nine ten eleven twelve twenty hundred thousand million "
    "once twice thrice half double triple quadruple first second third"
)
# Relation verbs (base forms) seen in biomedical claims; used to spot verbs and relations.
SCI_VERBS = word_set(
    "increase decrease reduce induce inhibit promote cause require regulate activate improve affect predict "
    "prevent enhance suppress mediate contribute associate correlate lead result bind express block impair "
    "confer depend control modulate drive trigger produce show suggest indicate demonstrate reveal play "
    "remain occur exhibit influence determine alter limit facilitate protect target encode involve contain "
    "stimulate attenuate elevate lower raise reverse restore accelerate delay exacerbate mitigate abolish "
    "disrupt interact recruit phosphorylate repress upregulate downregulate identify find report observe "
    "support confirm provide represent define explain use develop lengthen shorten enable increase "
    "worsen predispose"
)
ADJECTIVES = word_set(
    "large big small major minor key main novel new important crucial critical significant marked strong "
    "potent robust common rare severe mild essential central primary notable substantial considerable "
    "dramatic modest slight"
)
ADJ_SUFFIXES = tuple(word_set("al ive ous ful able ible ic ant ent ary ory ly ed ing"))


def normalise(text: str) -> str:
    """NFKC with curly apostrophes straightened: the form tokens are compared in."""
    return unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")


def tokenize(text: str) -> list[Token]:
    """Words, numbers and value symbols (%, <, ±...) of `text` with their spans; other punctuation dropped.

    Spans index `text` itself; comparisons use each token's `norm` (NFKC, straight apostrophe, lowercase).
    """
    return [Token(m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def stem(word: str) -> str:
    """Crude inflection stem so that increases/increased/increase and cells/cell compare equal."""
    w = word.lower()
    if any(c.isdigit() for c in w) or len(w) <= 3:
        return w
    for suf, rep in (("ies", "y"), ("ied", "y"), ("ing", ""), ("es", ""), ("ed", ""), ("s", "")):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)] + rep
            break
    return w[:-1] if w.endswith("e") and len(w) > 4 else w


def is_number(word: str) -> bool:
    return bool(_NUMBER.match(word))


def number_value(word: str) -> float | None:
    w = word.lower().removesuffix("-fold").replace("−", "-").replace(",", "")
    try:
        return float(w)
    except ValueError:
        return None


def is_value_word(word: str) -> bool:
    """Numbers, units, number words, direction words and comparatives: what `changed_value` may change."""
    w = word.lower()
    return is_number(w) or w in UNITS or w in NUMBER_WORDS or w in DIRECTION_WORDS or w in "<>≤≥=±"


def is_content(word: str) -> bool:
    w = word.lower()
    return w not in FUNCTION_WORDS and w not in NEGATION_CUES


def is_verb(word: str) -> bool:
    return stem(word) in _VERB_STEMS


_VERB_STEMS = frozenset(stem(v) for v in SCI_VERBS)


def looks_like_entity(token: str) -> bool:
    """A capital, or letters mixed with digits or Greek: IL-6, TNF, p53, mTOR, MSCs, Drosophila."""
    has_alpha = any(c.isalpha() for c in token)
    return has_alpha and any(c.isupper() or c.isdigit() or not c.isascii() for c in token)


def entity_like(text: str) -> bool:
    """A name-shaped token or a lowercase noun-ish word; never a value, direction or function word."""
    w = text.lower()
    if not is_content(w) or is_value_word(w):
        return False
    return looks_like_entity(text) or (not is_verb(w) and w not in ADJECTIVES)
