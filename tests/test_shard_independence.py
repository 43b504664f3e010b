"""Same inputs and config, same dataset: nothing depends on shard size, worker count or resume.

Right values from ../shared/cases/22-shard-size-changes-negatives: the fetch depth was the largest over the
shard's queries, so a query's pool, its per-query min-max hybrid scores and its negatives changed with whoever
shared its shard; and a written passage's embedding moved with its padded batch neighbours. Here every table
must be equal row for row across shard sizes 1, 7 and 64 (tests/test_flow.py: 1 thread vs 2 Dask workers).
"""

from __future__ import annotations

import pytest
from datasets import load_from_disk

from negforge.pipeline import run

COMMON = [
    "selection.depth=8",  # a shallow window: the pool's edge decides which candidates are in
    "selection.num_negatives=4",
    "sources.random.enabled=true",
    "sources.random.count=2",
    "sources.rules.enabled=true",
    "output.formats=[rich,triplet,n-tuple]",
    "output.scores=true",
]


def _tables(make_config, name: str, *extra: str) -> dict[str, list[dict]]:
    res = run(make_config(*COMMON, f"run_name={name}", *extra))
    dd = load_from_disk(str(res.dataset_dir))
    return {c: dd[c].to_list() for c in sorted(dd)}


@pytest.fixture(scope="module")
def reference(tiny_beir, cache_dir, tmp_path_factory):
    from negforge.config import load_config

    out = tmp_path_factory.mktemp("shard_ref")

    def make(*o):
        return load_config(
            None, [f"data.path={tiny_beir}", f"cache_dir={cache_dir}", f"output.dir={out}", *o]
        )

    return make, _tables(make, "ref64", "output.shard_size=64")


@pytest.mark.parametrize(
    "extra",
    [("output.shard_size=1",), ("output.shard_size=7",), ("output.shard_size=3", "data.max_queries=8")],
    ids=["shard1", "shard7", "shard3-first8"],
)
def test_every_table_is_the_same_whatever_the_shards_and_workers(reference, extra):
    make, ref = reference
    got = _tables(make, "run-" + "-".join(x.split("=")[1] for x in extra), *extra)
    assert sorted(got) == sorted(ref)
    if "data.max_queries=8" in extra:  # fewer queries: the same rows for those it has
        assert len(got["rich"]) == 8
        keep = {r["query"] for r in ref["rich"][:8]}
        ref = {n: [r for r in rows if (r.get("query") or r.get("anchor")) in keep] for n, rows in ref.items()}
    for name in ref:
        assert len(got[name]) == len(ref[name]), name
        for a, b in zip(got[name], ref[name], strict=True):
            assert a == b, (name, a.get("query_id") or a.get("anchor"))
