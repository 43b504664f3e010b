"""When two texts are "the same text": the normalisation behind the identity rule and text matching.

norm_text: HTML entities decoded (`&amp;`, `&#39;`, `&mdash;`, twice-escaped `&amp;amp;` too) and HTML tags
(`<p>`, `<b>`, `<br/>`, ...) removed, Unicode NFKC, case-folded, every run of punctuation, symbols,
underscores and whitespace collapsed to one space, stripped. Two passages that differ only in case, spacing, quotes or punctuation are one text
(the way sentence-transformers' miner and BEIR's `ignore_identical_ids` intend; stricter than exact string
equality, which misses a copy re-saved with other whitespace or quotes, or scraped as HTML: `AT&amp;T` and
`<p>AT&T</p>` are `AT&T`).

query_key: the much stricter rule for "the same query" where rows come without a query id (pairs layouts):
Unicode NFC (so NFD and NFC spellings of one text agree), every run of whitespace (spaces, tabs, line breaks,
no-break spaces) one space, stripped; nothing else. Case, punctuation and symbols are kept, because they can
change what is asked ("C++ compiler" is not "C compiler", "5-HT" is not "5 HT", "US" is not "us"), and merging
two queries would silently give one the other's positives. `norm_text` stays the identity rule's lenient
comparison (a candidate against positives and queries), where erring towards "same" only excludes a negative.
"""

from __future__ import annotations

import functools
import hashlib
import html
import re
import sys
import unicodedata

#: bumped whenever `norm_text` starts calling other texts equal (2: HTML entities and tags): part of the run
#: identity, so shards judged under an older rule are judged again, never reused
IDENTITY_RULE_VERSION = 2

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_ENTITY = re.compile(r"&(?:#\d+|#[xX][0-9a-fA-F]+|[A-Za-z][A-Za-z0-9]*);")
# inline tags go without a trace (`H<sub>2</sub>O` is `H2O`); block tags separate words (`<p>a</p><p>b</p>`)
_INLINE = "a|abbr|b|big|cite|code|del|em|font|i|ins|kbd|mark|q|s|small|span|strike|strong|sub|sup|tt|u"
_BLOCK = "blockquote|br|caption|dd|div|dl|dt|h[1-6]|hr|img|li|ol|p|pre|table|tbody|td|tfoot|th|thead|tr|ul"
_INLINE_TAG = re.compile(rf"</?(?:{_INLINE})(?:\s[^<>]*)?/?>", re.IGNORECASE)
_BLOCK_TAG = re.compile(rf"</?(?:{_BLOCK})(?:\s[^<>]*)?/?>", re.IGNORECASE)


@functools.cache
def _format_chars() -> re.Pattern[str]:
    """Every invisible format character (Unicode category Cf, ~160 of them) as one character class: a C-level
    scan, where a Python loop over each character's category cost ~4x the rest of `norm_text`."""
    ranges: list[
        list[int]
    ] = []  # as ranges (~21): a class of ~160 single characters scans slower than the loop
    for c in range(sys.maxunicode + 1):
        if unicodedata.category(chr(c)) == "Cf":
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
    body = "".join(re.escape(chr(a)) + ("-" + re.escape(chr(b)) if b > a else "") for a, b in ranges)
    return re.compile(f"[{body}]")


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
    """The normalised form of a text (see module doc); "" for an empty or punctuation-only text.

    Invisible format characters (Unicode category Cf: soft hyphen, zero-width space and joiners, BOM) are
    removed first, so `pan\u00adcreas` equals `pancreas`; so are HTML entities and tags (`AT&amp;T` is `AT&T`).
    """
    text = _format_chars().sub("", _unhtml(text))
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


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
