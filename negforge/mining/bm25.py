"""BM25 miner on bm25s: stemmed index saved and reused (memory-mapped), positives excluded after retrieval.

Texts are tokenised by `negforge.mining.tokenize` (words of any script, CJK/Thai as character bigrams) unless
`sources.bm25.tokenizer` names bm25s's own regex or a user's segmenter; what could not be split into words is
saved beside the index and reported in `notes` for the manifest.

bm25s's weight_mask is global, so per-query exclusion happens on the score vector instead. Scoring works
from that full vector, so the BM25 score of any document (positives, dense-only candidates) costs nothing extra.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import bm25s
import numpy as np

from negforge.config import BM25Config
from negforge.mining.tokenize import UnicodeTokenizer, bigram_note, load_tokenizer


def _stemmer(language: str | None):
    if not language:
        return None
    import Stemmer

    return Stemmer.Stemmer(language)


class BM25Miner:
    def __init__(self, cfg: BM25Config, cache_root: str | Path):
        self.cfg = cfg
        self.cache_root = Path(cache_root).expanduser()
        self.stemmer = _stemmer(cfg.stemmer)
        self.retriever: bm25s.BM25 | None = None
        self.loaded_from_cache = False
        self.notes: list[str] = []  # for the manifest: what the tokeniser could not split into words
        self.token_stats: dict = {}
        self._custom = None
        if cfg.tokenizer not in ("unicode", "bm25s"):
            self._custom = load_tokenizer(cfg.tokenizer)

    def _tokenize(self, texts: list[str], return_ids: bool, stats: bool = False):
        """Token lists of `texts` (bm25s's Tokenized ids for the `bm25s` tokeniser with `return_ids`);
        `stats`: record the documents split into bigrams."""
        if self.cfg.tokenizer == "bm25s":
            return bm25s.tokenize(
                texts,
                stopwords=self.cfg.stopwords or [],
                stemmer=self.stemmer,
                return_ids=return_ids,
                show_progress=False,
            )
        if self._custom is not None:
            toks = [list(map(str, t)) for t in self._custom(texts)]
            if len(toks) != len(texts):
                raise ValueError(
                    f"sources.bm25.tokenizer={self.cfg.tokenizer!r} returned {len(toks)} token lists "
                    f"for {len(texts)} texts"
                )
        else:
            tok = UnicodeTokenizer(_stopword_set(self.cfg.stopwords), self.stemmer)
            toks = tok(texts)
            if stats:
                self.token_stats = tok.stats.as_dict()
        return toks  # token strings: bm25s.BM25.index builds the vocabulary from them

    def index_key(self, corpus_digest: str) -> str:
        params = self.cfg.model_dump(exclude={"enabled"})
        blob = json.dumps(
            {"params": params, "corpus": corpus_digest, "bm25s": bm25s.__version__}, sort_keys=True
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def prepare(self, corpus_texts: list[str], corpus_digest: str) -> None:
        """Load the saved index for this corpus and these parameters, or build and save it.

        The index is always used memory-mapped from its saved folder (also right after a build, whose
        in-memory copy is dropped): only the postings that queries touch take memory, and worker processes
        on one machine share the pages.
        """
        folder = self.cache_root / "bm25" / self.index_key(corpus_digest)
        if (folder / "params.index.json").exists():
            self.loaded_from_cache = True
        else:
            retriever = bm25s.BM25(k1=self.cfg.k1, b=self.cfg.b, method=self.cfg.method)
            bm25s_own = self.cfg.tokenizer == "bm25s"
            retriever.index(
                self._tokenize(corpus_texts, return_ids=bm25s_own, stats=True), show_progress=False
            )
            tmp = folder.with_name(folder.name + ".tmp")
            retriever.save(str(tmp), show_progress=False)
            (tmp / "negforge_tokens.json").write_text(json.dumps(self.token_stats))
            del retriever
            if not folder.exists():  # another process may have won the race; its index is identical
                tmp.replace(folder)
            else:
                shutil.rmtree(tmp, ignore_errors=True)
        self.retriever = bm25s.BM25.load(str(folder), load_vocab=True, mmap=True, show_progress=False)
        stats_file = folder / "negforge_tokens.json"
        self.token_stats = json.loads(stats_file.read_text()) if stats_file.exists() else {}
        note = bigram_note(self.cfg.tokenizer, self.token_stats)
        self.notes = [note] if note else []

    def query_token_ids(self, queries: list[str]) -> list[list[int]]:
        assert self.retriever is not None, "call prepare() first"
        vocab = self.retriever.vocab_dict
        return [[vocab[t] for t in toks if t in vocab] for toks in self._tokenize(queries, return_ids=False)]

    def score_all(self, token_ids: list[int]) -> np.ndarray:
        """BM25 score of every document for one tokenised query (zeros when no token is known)."""
        assert self.retriever is not None
        if not token_ids:
            return np.zeros(self.retriever.scores["num_docs"], dtype=np.float32)
        return self.retriever.get_scores_from_ids(token_ids)


def _stopword_set(spec: str | None) -> frozenset[str]:
    """bm25s's stop-word list for a language ("en", "english", "de", ...); empty for None. Raises ValueError
    naming the key for an unknown one."""
    from bm25s.tokenization import _infer_stopwords

    try:
        return frozenset(_infer_stopwords(spec or None))
    except ValueError as e:
        raise ValueError(f"sources.bm25.stopwords={spec!r}: {e}") from e


def top_k_excluding(scores: np.ndarray, k: int, exclude: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The k best rows of a full score vector, skipping `exclude`, best first; zero-score rows are no match."""
    want = min(k + len(exclude), len(scores))
    if want <= 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    top = np.argpartition(-scores, want - 1)[:want] if want < len(scores) else np.arange(len(scores))
    top = top[np.argsort(-scores[top], kind="stable")]
    if exclude:
        top = top[~np.isin(top, np.asarray(exclude))]
    top = top[scores[top] > 0][:k]
    return top.astype(np.int64), scores[top].astype(np.float32)
