"""When two texts are "the same text": the one normalisation behind the identity rule, duplicates and answers.

norm_text folds only what never carries meaning: HTML entities decoded (`&amp;`, `&#39;`, `&mdash;`,
twice-escaped `&amp;amp;` too) and HTML tags (`<p>`, `<b>`, `<br/>`, ...) removed, invisible format characters
(Unicode category Cf: soft hyphen, zero-width joiners, BOM) removed, Unicode NFKC (full-width letters, ligatures,
`½`), case-folded, typographic quotes made ASCII (`’` is `'`, `“` is `"`), hyphen, dash and minus variants made
`-`, every run of whitespace one space, and sentence punctuation (`.,;:!?…`) that ends the whole text dropped.
Everything else is kept: operators and symbols (`return a - b` is not `return a + b`, `x < y` is not `x > y`),
punctuation inside or around tokens (`C++`, `.NET`, `U.S.`, `3.5%`, `-40`), and combining marks (categories
Mn/Mc/Me: Devanagari, Thai, Arabic and Hebrew vowel signs; `दिन` "day" is not `दान` "donation"), since two texts
that differ in such a character say different things. So a copy re-saved with other case, spacing, quotes or
Unicode form, or scraped as HTML (`AT&amp;T`, `<p>AT&T</p>`), is one text with the original, the way
sentence-transformers' miner and BEIR's `ignore_identical_ids` intend, and nothing with another meaning is.

query_key: the stricter rule for "the same query" where rows come without a query id (pairs layouts):
Unicode NFC (so NFD and NFC spellings of one text agree), every run of whitespace (spaces, tabs, line breaks,
no-break spaces) one space, stripped; nothing else. Case is kept too, because it can change what is asked
("US" is not "us"), and merging two queries would silently give one the other's positives.
"""

from __future__ import annotations

import hashlib
import html
import re
import unicodedata

import regex

#: bumped whenever `norm_text` calls other texts equal (2: HTML entities and tags; 3: operators, in-token
#: punctuation and combining marks kept; 4: format characters as the regex module's Unicode tables know them):
#: part of the run identity, so shards judged under an older rule are
#: judged again, never reused
IDENTITY_RULE_VERSION = 4

# typographic quotes and dash/minus variants that NFKC leaves alone; each is one ASCII character
_FOLD = str.maketrans(
    {
        **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u02bc", "'"),
        **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033", '"'),
        **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63", "-"),
    }
)
_WORDS = regex.compile(r"\w+")  # the regex module's \w: letters, digits and combining marks of any script
_TRAILING_PUNCT = re.compile(r"[\s.,;:!?\u2026]+$")
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
# inline tags go without a trace (`H<sub>2</sub>O` is `H2O`); block tags separate words (`<p>a</p><p>b</p>`)
_INLINE = "a|abbr|b|big|cite|code|del|em|font|i|ins|kbd|mark|q|s|small|span|strike|strong|sub|sup|tt|u"
_BLOCK = "blockquote|br|caption|dd|div|dl|dt|h[1-6]|hr|img|li|ol|p|pre|table|tbody|td|tfoot|th|thead|tr|ul"
_INLINE_TAG = re.compile(rf"</?(?:{_INLINE})(?:\s[^<>]*)?/?>", re.IGNORECASE)
_BLOCK_TAG = re.compile(rf"</?(?:{_BLOCK})(?:\s[^<>]*)?/?>", re.IGNORECASE)


#: every invisible format character (Unicode category Cf: soft hyphen, zero-width space and joiners, BOM), as the
#: regex module's Unicode tables know them: one C-level scan, and no per-process table build over every code point
_FORMAT_CHARS = regex.compile(r"\p{Cf}+")


def _unhtml(text: str) -> str:
    """Text with HTML entities decoded (at most twice: `&amp;amp;`) and common HTML tags removed."""
    for _ in range(2):
        if "&" not in text or not _ENTITY.search(text):
            break
        text = html.unescape(text)
    if "<" in text:
        text = _BLOCK_TAG.sub(" ", _INLINE_TAG.sub("", text))
    return text


def norm_text(text: str) -> str:
    """The normalised form of a text (see module doc); "" for an empty or whitespace-only text.

    Invisible format characters (Unicode category Cf: soft hyphen, zero-width space and joiners, BOM) are
    removed first, so `pan\u00adcreas` equals `pancreas`; so are HTML entities and tags (`AT&amp;T` is `AT&T`).
    No letter, digit, mark, operator or in-text punctuation is ever removed: `norm_text("a - b") != "a + b"`.
    """
    return _TRAILING_PUNCT.sub("", norm_span(text))


def norm_span(text: str) -> str:
    """`norm_text` without dropping the punctuation that ends the text: the form in which an answer (`U.S.`)
    is searched for inside a passage (`... born in the U.S. in 1961`), both sides normalised alike."""
    text = _FORMAT_CHARS.sub("", _unhtml(text))
    text = unicodedata.normalize("NFKC", text).casefold().translate(_FOLD)
    return " ".join(text.split())


def word_key(text: str) -> str:
    """The words of `norm_span(text)` (letters, digits and combining marks of any script), one space apart:
    a loose key for near-repeats where erring towards "same" only drops a candidate (LLM-written queries that
    repeat each other or copy a passage). Never the identity rule: it erases operators (`a - b` is `a b`)."""
    return " ".join(_WORDS.findall(norm_span(text)))


def query_key(text: str) -> str:
    """The grouping key of a query text given without an id (see module doc): NFC, whitespace runs one space,
    stripped; case, punctuation, symbols and digits kept. "" for a blank text.

    Two copies of one query exported twice (other whitespace, NFD vs NFC) get one key; texts that differ in
    any letter, digit, symbol or case get different keys.
    """
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_key(text: str) -> int:
    """A 63-bit key of the normalised text (blake2b), 0 reserved for "no text"."""
    n = norm_text(text)
    if not n:
        return 0
    k = int.from_bytes(hashlib.blake2b(n.encode("utf-8"), digest_size=8).digest(), "little") >> 1
    return k or 1
