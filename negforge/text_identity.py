"""When two texts are "the same text": the normalisation behind the identity rule and text matching.

norm_text: Unicode NFKC, case-folded, every run of punctuation, symbols, underscores and whitespace collapsed
to one space, stripped. Two passages that differ only in case, spacing, quotes or punctuation are one text
(the way sentence-transformers' miner and BEIR's `ignore_identical_ids` intend; stricter than exact string
equality, which misses a copy re-saved with other whitespace or quotes).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)


def norm_text(text: str) -> str:
    """The normalised form of a text (see module doc); "" for an empty or punctuation-only text.

    Invisible format characters (Unicode category Cf: soft hyphen, zero-width space and joiners, BOM) are
    removed first, so `pan\u00adcreas` equals `pancreas`.
    """
    if any(unicodedata.category(ch) == "Cf" for ch in text):
        text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_key(text: str) -> int:
    """A 63-bit key of the normalised text (blake2b), 0 reserved for "no text"."""
    n = norm_text(text)
    if not n:
        return 0
    k = int.from_bytes(hashlib.blake2b(n.encode("utf-8"), digest_size=8).digest(), "little") >> 1
    return k or 1
