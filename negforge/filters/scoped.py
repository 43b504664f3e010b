"""A filter judged per source: only the sources it is scoped to, each with its own settings.

`sources: [bm25, dense]` leaves LLM passages untouched by, say, the near-duplicate filter;
`per_source: {llm: {...}}` gives LLM passages their own thresholds (an edited positive is meant to be close to
the positive). Candidates outside the scope pass with no scores. Each variant sees only its own sources'
candidates, so within-query near-duplicates are found within a variant; exact text duplicates across sources
are still removed by the mixer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from negforge.filters.base import CandidateBatch, Filter, Verdict


class SourceScopedFilter:
    """Wraps a base filter and per-source variants (built from the same config with overrides)."""

    def __init__(self, base: Filter, variants: Mapping[str, Filter], sources: Sequence[str] | None) -> None:
        self.base = base
        self.variants = variants
        self.sources = None if sources is None else set(sources)
        self.name = base.name

    def describe(self) -> dict[str, Any]:
        d = dict(self.base.describe())
        d["per_source"] = {s: f.describe() for s, f in self.variants.items()}
        return d

    def __getattr__(self, item: str) -> Any:  # fingerprint, cfg, ... of the base filter
        return getattr(self.base, item)

    def calibrate(self, queries: list, seed: int) -> None:
        """Calibrate the base filter and every variant that calibrates (cross-encoder thresholds)."""
        for f in (self.base, *self.variants.values()):
            if hasattr(f, "calibrate"):
                f.calibrate(queries, seed)

    def apply(self, batch: CandidateBatch) -> list[Verdict]:
        """One verdict per candidate: out-of-scope sources kept untouched, the rest by their variant."""
        groups: dict[int, list[int]] = {}
        handlers: dict[int, Filter] = {}
        out: list[Verdict | None] = [None] * len(batch.candidates)
        for i, c in enumerate(batch.candidates):
            if self.sources is not None and c.source not in self.sources:
                out[i] = Verdict(True, out_of_scope=True)
                continue
            f = self.variants.get(c.source, self.base)
            groups.setdefault(id(f), []).append(i)
            handlers[id(f)] = f
        for key, idx in groups.items():
            sub = CandidateBatch(batch.queries, [batch.candidates[i] for i in idx])
            verdicts = handlers[key].apply(sub)
            for i, v in zip(idx, verdicts, strict=True):
                if v.duplicate_of is not None:
                    v.duplicate_of = idx[v.duplicate_of]
                out[i] = v
        return [v if v is not None else Verdict(True) for v in out]
