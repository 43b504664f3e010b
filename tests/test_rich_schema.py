"""The rich row's schema is pinned to its version, carries every field a candidate holds, and a run folder whose
shards were stored under another version is judged again rather than read into a table they do not fit."""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa

from negforge.publish.rich import rich_table
from negforge.records import Corpus, FilterCandidate, Judged, Kept, Outcome, Query, QueryResult
from negforge.rich_schema import RICH_SCHEMA, RICH_SCHEMA_VERSION
from negforge.run_store.shards import ShardStore

#: sha256 (first 16 hex) of RICH_SCHEMA's text per version: a schema change without a version bump fails here
PINNED = {2: "573afa8dcfc32221"}


def test_schema_change_bumps_the_version():
    digest = hashlib.sha256(RICH_SCHEMA.to_string(show_schema_metadata=False).encode()).hexdigest()[:16]
    assert PINNED.get(RICH_SCHEMA_VERSION) == digest, (
        "RICH_SCHEMA changed: bump RICH_SCHEMA_VERSION and pin its digest here"
    )


def test_named_candidate_fields_reach_the_rich_row():
    corpus = Corpus(["p", "d1", "d2"], ["the positive", "a negative", "its copy"])
    kept = FilterCandidate(
        qi=0,
        text="a negative",
        source="dense",
        row=1,
        doc_id="d1",
        rank=3,
        scores={"dense": 0.5},
        sources=["dense", "bm25"],
        ranks={"dense": 3, "bm25": 7},
        merged=["d2"],
    )
    copy = FilterCandidate(qi=0, text="its copy", source="bm25", row=2, doc_id="d2", ranks={"bm25": 9})
    r = QueryResult(query=Query("q", "query", (0,)), topic=None, positive_scores={"dense": [0.9]}, window=[])
    r.negatives = [Kept(kept, {"sim_positive": 0.4})]
    r.dropped = [Judged(copy, Outcome(False, "duplicate", "exact_duplicate", {"duplicate_of": "d1"}))]
    row = rich_table([r], corpus).to_pylist()[0]
    neg, dropped = row["negatives"][0], row["dropped"][0]
    assert neg["merged"] == ["d2"] and neg["sources"] == ["dense", "bm25"]
    assert neg["ranks"] == {"bm25": 7, "dense": 3, "random": None, "given": None}
    assert neg["generation"] is None
    assert abs(neg["filter_scores"]["sim_positive"] - 0.4) < 1e-6
    assert dropped["merged"] == [] and dropped["ranks"]["bm25"] == 9
    assert (dropped["filter"], dropped["reason"]) == ("duplicate", "exact_duplicate")
    assert dropped["filter_scores"]["duplicate_of"] == "d1"


def test_shards_of_another_schema_version_are_judged_again(tmp_path):
    store = ShardStore(tmp_path / "run")
    identity = {"config": "c", "corpus": "x", "shard_schema": f"rich-v{RICH_SCHEMA_VERSION}"}
    assert store.open(identity) == []
    store.write(0, pa.table({"query_id": ["q"]}), {"queries": 1})
    assert store.is_done(0)
    state = json.loads((store.dir / "state.json").read_text())
    state["shard_schema"] = "rich-v1"  # written by a release whose rows had no `merged`
    (store.dir / "state.json").write_text(json.dumps(state))
    changes = store.open(identity)
    assert len(changes) == 1 and changes[0].startswith("shard_schema changed")
    assert not store.is_done(0)
