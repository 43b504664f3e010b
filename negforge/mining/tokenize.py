"""BM25 tokenisers: words of any script are tokens; scripts without spaces become character bigrams.

`unicode` (the default) lowercases (Unicode case folding after NFKC) and takes every run of letters, digits and
combining marks as a word, so a Devanagari, Arabic or Hebrew word keeps its vowel signs (`दिन` stays `दिन`, where
bm25s's `\\b\\w\\w+\\b` regex cut it into `द` and `न` and dropped both). Runs of scripts written without spaces
between words (Han, Hiragana, Katakana, Thai, Lao, Khmer, Myanmar) cannot be split into words without a
dictionary; they are split into overlapping bigrams of characters (grapheme clusters, so a Thai vowel sign stays
on its consonant), the way Lucene's CJKBigramFilter and Elasticsearch's `cjk` analyzer index Chinese and Japanese,
instead of one token per sentence. Every document with such text is counted, so the run's manifest can say which
share of the corpus was split into bigrams rather than words. Other words keep bm25s's rules: at least two
characters, stop words removed, then stemmed.

`bm25s`: bm25s's own regex tokeniser (Latin-script corpora built before negforge 0.2 keep their exact index).

`module:function`: any callable taking a list of texts and returning one list of token strings per text (a
word segmenter such as jieba, fugashi or pythainlp wrapped in a function); stop words and the stemmer are then
the callable's business.
"""

from __future__ import annotations

import importlib
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import regex

#: scripts written without spaces between words (see module doc); shared with answer matching
NOSPACE_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar")
_NOSPACE_CLASS = "".join(rf"\p{{{s}}}" for s in NOSPACE_SCRIPTS)
_WORD = regex.compile(r"\w+")

_PIECE = regex.compile(rf"([{_NOSPACE_CLASS}]+(?:\p{{M}}*))|([^{_NOSPACE_CLASS}]+)")
_GRAPHEME = regex.compile(r"\X")
_HAS_NOSPACE = regex.compile(rf"[{_NOSPACE_CLASS}]")
_SCRIPT_OF = {s: regex.compile(rf"\p{{{s}}}") for s in NOSPACE_SCRIPTS}


@dataclass
class TokenStats:
    """What a tokeniser could not split into words: documents holding text of a no-space script, by script."""

    documents: int = 0
    bigram_documents: int = 0  # documents with at least one run split into character bigrams
    by_script: Counter = field(default_factory=Counter)  # script -> documents containing it

    def as_dict(self) -> dict:
        return {
            "documents": self.documents,
            "bigram_documents": self.bigram_documents,
            "by_script": dict(sorted(self.by_script.items())),
        }


def _bigrams(run: str) -> list[str]:
    g = _GRAPHEME.findall(run)
    return g if len(g) == 1 else [g[i] + g[i + 1] for i in range(len(g) - 1)]


class UnicodeTokenizer:
    """The default BM25 tokeniser (module doc). Call with texts; returns one token list per text and
    updates `stats` with the documents it split into bigrams."""

    name = "unicode"

    def __init__(self, stopwords: frozenset[str] = frozenset(), stemmer=None) -> None:
        self.stopwords = stopwords
        self.stemmer = stemmer
        self.stats = TokenStats()
        self._stems: dict[str, str] = {}  # each distinct word is stemmed once (bm25s stems its vocabulary)

    def _stem(self, words: list[str]) -> list[str]:
        memo = self._stems
        new = [w for w in dict.fromkeys(words) if w not in memo]
        if new:
            memo.update(zip(new, self.stemmer.stemWords(new), strict=True))
        return [memo[w] for w in words]

    def tokens(self, text: str, stats: TokenStats | None = None) -> list[str]:
        """Tokens of one text (list of str), in order; `stats` counts it when it holds no-space script text."""
        out: list[str] = []
        words: list[str] = []
        split = False
        ascii_only = text.isascii()
        folded = (text if ascii_only else unicodedata.normalize("NFKC", text)).casefold()
        if ascii_only or not _HAS_NOSPACE.search(folded):  # the common case: words only, one regex pass
            words = [w for w in _WORD.findall(folded) if len(w) >= 2 and w not in self.stopwords]
        else:
            for w in _WORD.findall(folded):
                for nospace, other in _PIECE.findall(w):
                    if nospace:
                        split = True
                        out.extend(_bigrams(nospace))
                    elif len(other) >= 2 and other not in self.stopwords:
                        words.append(other)
        if words:
            out.extend(self._stem(words) if self.stemmer is not None else words)
        if stats is not None:
            stats.documents += 1
            if split:
                stats.bigram_documents += 1
                for script, pat in _SCRIPT_OF.items():
                    if pat.search(text):
                        stats.by_script[script] += 1
        return out

    def __call__(self, texts: list[str]) -> list[list[str]]:
        return [self.tokens(t, self.stats) for t in texts]


def load_tokenizer(spec: str) -> Callable[[list[str]], list[list[str]]]:
    """The callable named by `module:function` (sources.bm25.tokenizer). Raises ValueError naming the key."""
    mod, _, fn = spec.partition(":")
    if not mod or not fn:
        raise ValueError(f"sources.bm25.tokenizer={spec!r}: expected 'unicode', 'bm25s' or 'module:function'")
    try:
        obj = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise ValueError(f"sources.bm25.tokenizer={spec!r}: cannot load it ({e})") from e
    if not callable(obj):
        raise ValueError(f"sources.bm25.tokenizer={spec!r}: {fn} is not callable")
    return obj


def bigram_note(tokenizer: str, stats: dict) -> str | None:
    """The manifest note when some documents were split into bigrams rather than words; None when none."""
    n, total = stats.get("bigram_documents", 0), stats.get("documents", 0)
    if not n or not total:
        return None
    scripts = ", ".join(f"{s} {c}" for s, c in stats.get("by_script", {}).items())
    return (
        f"bm25 tokenizer {tokenizer!r}: {n} of {total} documents ({100 * n / total:.1f}%) hold text in a script "
        f"written without spaces ({scripts}); it was indexed as overlapping character bigrams, not words. "
        "For word-level BM25 pass a segmenter: sources.bm25.tokenizer='module:function' (README, BM25 and "
        "non-Latin text)"
    )
