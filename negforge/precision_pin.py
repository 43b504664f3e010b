"""Every model's numeric path decided once, in the driver, before the run identity is taken.

`backend: auto` (see negforge.mining.precision) lets a parity gate pick the fastest path that stays exact
enough: bf16 on a CPU with AVX512-BF16, fp16 on a GPU, fp32 otherwise. Left to the shards, each worker would
gate on its own hardware (two Dask workers on different machines could score with different paths) and the
run identity could only record "auto". `pin_precision` resolves every `auto` here instead:

- the dense encoder's, on a seeded sample of the corpus (as before);
- each cross-encoder and NLI filter's, on a seeded sample of the run's (query, positive) pairs: real inputs
  of the model, read before any shard runs, so the verdict does not depend on which shard ran first;
- a per-source variant of such a filter that loads another model (or the same one at another max_length or
  device) gets its own verdict; a variant that only changes thresholds inherits its filter's.

The returned config names the paths (`torch-bf16`, ...), so the run identity records what is actually used,
a resumed run that resolves another path judges every shard again, and shard workers take the driver's
path. The models loaded to decide are handed on (`PinnedRun.dense`, `PinnedRun.scorers`) so nothing is
loaded or gated twice and the manifest keeps the gate's figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from negforge.config import RunConfig
from negforge.config.filters import MODEL_FILTER_CONFIGS
from negforge.filters.pair_scorer import scorer_key
from negforge.records import TrainingInput

if TYPE_CHECKING:
    from negforge.filters.pair_scorer import PairScorer
    from negforge.mining.dense import DenseMiner

#: filter types whose model runs through a PairScorer (and so has a `backend`)


@dataclass
class PinnedRun:
    """The run's config with every `backend: auto` replaced by the path chosen, and the models loaded to
    choose: `dense` (hand it to `pipeline.prepare_dense`) and `scorers` by `scorer_key` (hand them to
    `pipeline.prepare_filters`). `dense` is None and `scorers` empty when nothing was `auto`."""

    cfg: RunConfig
    dense: DenseMiner | None = None
    scorers: dict[str, PairScorer] = field(default_factory=dict)


def positive_pairs(data: TrainingInput) -> list[tuple[str, str]]:
    """(query text, positive text) for every positive of every query, in input order; the gate samples them."""
    texts = data.corpus.texts
    return [(q.text, texts[p]) for q in data.queries for p in q.positive_rows]


def pin_precision(cfg: RunConfig, data: TrainingInput) -> PinnedRun:
    """Resolve every `backend: auto` (dense source, cross-encoder and NLI filters, their per-source
    variants) to the path the parity gate picks on this machine; verdicts are cached under
    `<cache_dir>/parity/`, without a cache_dir a filter runs in fp32. Returns a `PinnedRun` whose config names
    those paths; a config with nothing on `auto` comes back unchanged (an equal copy). The config fingerprint
    leaves `backend` out, so a pinned config finds the same run folder as the one it came from.
    Raises what loading a model raises (a missing model folder: OSError)."""
    raw = cfg.model_dump(mode="json")
    pinned = PinnedRun(cfg)
    dense = cfg.sources.dense
    if dense.enabled and dense.backend == "auto":
        from negforge.mining.dense import DenseMiner

        pinned.dense = DenseMiner(dense, cfg.cache_path)
        raw["sources"]["dense"]["backend"] = pinned.dense.resolve_backend(data.corpus.texts).path
    pairs: list[tuple[str, str]] | None = None
    for i, fc in enumerate(cfg.filters):
        if not isinstance(fc, MODEL_FILTER_CONFIGS):
            continue
        for src in [None, *fc.per_source]:
            eff = fc if src is None else fc.for_source(src)
            if eff.backend != "auto":
                continue
            if src is not None and scorer_key(eff) == scorer_key(fc) and "backend" not in fc.per_source[src]:
                continue  # the filter's own model and settings: it inherits the filter's pinned path
            pairs = positive_pairs(data) if pairs is None else pairs
            path = _scorer(eff, cfg, pinned).resolve(pairs).path
            if src is None:
                raw["filters"][i]["backend"] = path
            else:
                raw["filters"][i]["per_source"][src]["backend"] = path
    pinned.cfg = RunConfig.model_validate(raw)
    if pinned.dense is not None:
        pinned.dense.cfg = pinned.cfg.sources.dense
    return pinned


def _scorer(fc, cfg: RunConfig, pinned: PinnedRun) -> PairScorer:
    from negforge.filters.pair_scorer import PairScorer

    key = scorer_key(fc)
    if key not in pinned.scorers:
        pinned.scorers[key] = PairScorer(
            fc.model, max_length=fc.max_length, device=fc.device, batch_size=fc.batch_size,
            backend="auto", cache_root=cfg.cache_path,
        )  # fmt: skip
    return pinned.scorers[key]
