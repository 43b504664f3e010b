"""What a domain-adaptation run reads: a corpus alone (`data.format: corpus`), the seeded sample of passages
to write queries for, and the user's few-shot examples. Bad input is refused with the file, line and column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from negforge.config import DataConfig
from negforge.records import Corpus, SkipLog
from negforge.sources.corpus import corpus_from_rows, read_corpus
from negforge.sources.readers import InputError, iter_rows
from negforge.sources.values import text_value


@dataclass(frozen=True)
class FewShotExample:
    """One target-domain example: a query and the passage it was written for; `where` is file:line."""

    query: str
    passage: str
    where: str


def load_corpus_only(data: DataConfig) -> tuple[Corpus, SkipLog, str]:
    """The corpus of `data.path`: a corpus file (JSONL/Parquet/TSV/CSV, gz), a BEIR folder (its
    corpus.jsonl), or a Hugging Face dataset (saved folder or name; `data.split`) with _id/title/text.

    Returns (corpus, skips, origin). Raises InputError when nothing is there or no document is usable (an
    empty corpus), naming the file."""
    skips = SkipLog()
    p = Path(str(data.path)).expanduser()
    if p.is_dir() and (p / "corpus.jsonl").is_file():
        f = p / "corpus.jsonl"
        return read_corpus(f, skips, join_title=data.join_title), skips, str(f)
    if p.is_file():
        return read_corpus(p, skips, join_title=data.join_title), skips, str(p)
    import datasets

    try:
        if p.is_dir():
            ds = datasets.load_from_disk(str(p))
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[data.split]
        else:
            ds = datasets.load_dataset(str(data.path), data.hf_config, split=data.split)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise InputError(f"data.path={data.path}: not a corpus file, BEIR folder or dataset ({e})") from None
    origin = f"{data.path}[{data.split}]"
    rows = ((f"{origin}:row {i + 1}", dict(r)) for i, r in enumerate(ds))
    return corpus_from_rows(rows, skips, origin, join_title=data.join_title), skips, origin


def sample_passages(corpus: Corpus, passages: int | float, seed: int) -> list[int]:
    """Corpus rows to write queries for: `passages` rows (an int) or that share of the corpus (a float in
    (0, 1], at least one row), drawn without replacement with `seed`, in corpus order.

    Raises InputError when the count is larger than the corpus (adapt.generate.passages named)."""
    n = len(corpus)
    want = passages if isinstance(passages, int) else max(1, round(passages * n))
    if want > n:
        raise InputError(
            f"adapt.generate.passages={passages}: the corpus has only {n} usable passages; ask for at most {n} "
            "(or a share such as 0.5)"
        )
    rng = np.random.default_rng(seed)
    return sorted(int(i) for i in rng.choice(n, size=want, replace=False))


def read_fewshot(path: str | Path) -> list[FewShotExample]:
    """Few-shot examples from a JSONL/TSV/CSV/Parquet file with `query` and `passage` columns (`text` is
    accepted for the passage). Every row must have both: a missing or empty cell is refused with file:line
    and column (a few-shot file is small and hand-made: a silently dropped example changes every prompt).

    Raises InputError for a missing file, a row without a query or passage, or a non-text cell."""
    skips = SkipLog()
    out: list[FewShotExample] = []
    for where, row in iter_rows(path, skips, what="few-shot file", header_keys=("query", "passage", "text")):
        key = "passage" if "passage" in row else "text" if "text" in row else None
        if "query" not in row or key is None:
            missing = "query" if "query" not in row else "passage"
            raise InputError(f"{where}: no `{missing}` column (few-shot rows need `query` and `passage`)")
        q = text_value(row["query"], where, "query")
        d = text_value(row[key], where, key)
        if not q or not d:
            raise InputError(f"{where}: column `{'query' if not q else key}` is empty")
        out.append(FewShotExample(q, d, where))
    if skips.counts():
        first = next(iter(skips.examples().values()))[0]
        raise InputError(f"{path}: unreadable rows ({skips.counts()}), first at {first}")
    if not out:
        raise InputError(f"{path}: no few-shot examples")
    return out
