"""Filters composed in config order: each sees only the candidates every earlier filter kept."""

from __future__ import annotations

import time
from collections.abc import Sequence

from negforge.filters.base import CandidateBatch, Filter, FilterStats, relabels
from negforge.records import Outcome


class FilterStack:
    def __init__(self, filters: Sequence[Filter]) -> None:
        names = [f.name for f in filters]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"filters: names must be unique, repeated: {sorted(dup)} (set `name:`)")
        self.filters = list(filters)
        self.notes: list[str] = []  # for the manifest, from `check_queries` (see pipeline.prepare_filters)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.filters]

    def check_queries(self, query_ids: list[str], subset: bool = False) -> list[str]:
        """Each filter's check of its side files against the run's query ids (an answers file keyed by ids
        the run does not have); returns the notes for the manifest, raises the filter's InputError."""
        notes: list[str] = []
        for f in self.filters:
            # a source-scoped filter: its base and every per-source variant (which may read its own file)
            for g in (getattr(f, "base", f), *getattr(f, "variants", {}).values()):
                if hasattr(g, "check_queries"):
                    notes += g.check_queries(query_ids, subset)
        return list(dict.fromkeys(notes))  # a variant reading its filter's file notes it once

    def describe(self) -> list[dict]:
        return [{"name": f.name, **f.describe()} for f in self.filters]

    def run(self, batch: CandidateBatch) -> tuple[list[Outcome], dict[str, FilterStats]]:
        """One outcome per candidate; scores of every filter that saw a candidate are merged into it.

        A candidate rejected as a likely positive by a filter set to `on_false_negative: relabel` gets
        `Outcome.relabeled` (see `negforge.filters.base.relabels`); it still counts as rejected by that filter.

        A duplicate's provenance (its sources and id) is merged into the copy that stays.
        """
        outcomes = [Outcome(True) for _ in batch.candidates]
        stats = {f.name: FilterStats() for f in self.filters}
        alive = list(range(len(batch.candidates)))
        for f in self.filters:
            if not alive:
                break
            sub = CandidateBatch(batch.queries, [batch.candidates[i] for i in alive])
            t0 = time.perf_counter()
            verdicts = f.apply(sub)
            st = stats[f.name]
            st.seconds += time.perf_counter() - t0
            if len(verdicts) != len(alive):
                raise RuntimeError(f"filter {f.name!r} returned {len(verdicts)} verdicts for {len(alive)}")
            still = []
            for i, v in zip(alive, verdicts, strict=True):
                c = batch.candidates[i]
                o = outcomes[i]
                o.scores.update(v.scores)
                if v.out_of_scope:
                    still.append(i)
                    continue
                st.seen[c.source] += 1
                if v.keep:
                    st.kept[c.source] += 1
                    still.append(i)
                    continue
                reason = v.reason or "rejected"
                o.kept, o.filter, o.reason = False, f.name, reason
                if relabels(f, reason, c):
                    o.relabeled = True
                    st.relabeled[reason] += 1
                st.rejected[reason] += 1
                st.rejected_by_source[f"{c.source}/{reason}"] += 1
                if v.duplicate_of is not None:
                    keeper_idx = alive[v.duplicate_of]
                    o.duplicate_of = keeper_idx
                    keeper = batch.candidates[keeper_idx]
                    for s in c.sources or [c.source]:
                        if s not in keeper.sources:
                            keeper.sources.append(s)
                    keeper.merged.append(c.key)
            alive = still
        return outcomes, stats
