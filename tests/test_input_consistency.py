"""One input, three layouts, the same positives: BEIR SciFact, the shipped demo sample, and a FlagEmbedding
JSONL written from SciFact train. And the demo run's output never hands back a positive or the query."""

import json
import subprocess
import sys

import pytest

from negforge.config import DataConfig
from negforge.sources import load_input
from negforge.text_identity import norm_text
from tests.conftest import ROOT, SAMPLE, SCIFACT

needs_scifact = pytest.mark.skipif(
    not (SCIFACT / "corpus.jsonl").exists(), reason="../shared/data/scifact absent"
)


def _positives(data) -> dict[str, set[str]]:
    return {q.text: {data.corpus.ids[r] for r in q.positive_rows} for q in data.queries}


@needs_scifact
def test_scifact_demo_sample_and_flagembedding_file_give_the_same_positives(tmp_path):
    full = load_input(DataConfig(format="beir", path=str(SCIFACT)))
    sample = load_input(DataConfig(format="beir", path=str(SAMPLE)))
    full_pos = _positives(full)
    sample_pos = _positives(sample)
    assert sample_pos and all(sample_pos[q] == full_pos[q] for q in sample_pos)

    # FlagEmbedding layout: {"query", "pos": [texts], "neg": []}, matched back to the corpus by text
    rows = [
        {"query": q.text, "pos": [full.corpus.texts[r] for r in q.positive_rows], "neg": []}
        for q in full.queries
    ]
    p = tmp_path / "scifact_flag.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    flag = load_input(DataConfig(format="pairs", path=str(p), corpus=str(SCIFACT / "corpus.jsonl")))
    assert len(flag.corpus) == len(full.corpus)  # every positive found in the corpus, none added
    flag_pos = _positives(flag)
    # SciFact has a few claims with the same text under two ids; the pairs layout groups them by text
    merged: dict[str, set[str]] = {}
    for q in full.queries:
        merged.setdefault(q.text, set()).update(full.corpus.ids[r] for r in q.positive_rows)
    assert flag_pos == merged


def _demo(tmp_path, out_dir: str, shard_size: int) -> None:
    out = subprocess.run(
        [
            sys.executable, "-m", "negforge.cli", "run", str(ROOT / "configs" / "demo.yaml"), "--engine", "local",
            "--no-progress", "--set", f"output.dir={tmp_path / out_dir}", "--set", f"cache_dir={tmp_path / 'cache'}",
            "--set", "data.max_queries=12", "--set", "sources.llm.fraction=0.25",
            "--set", f"output.shard_size={shard_size}",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=1500,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]


@pytest.mark.slow
def test_demo_run_output_has_no_negative_equal_to_its_positive_or_query(tmp_path):
    """The shipped demo config (real vLLM with SmolLM2 for a few claims), checked row by row; then the same
    demo with shards of 64 instead of 8 (LLM answers from the run's response cache) writes the same tables."""
    _demo(tmp_path, "runs", 8)
    from datasets import load_from_disk

    rows = load_from_disk(str(tmp_path / "runs" / "demo" / "dataset"))["rich"].to_list()
    assert len(rows) == 12
    for r in rows:
        forbidden = {norm_text(p) for p in r["positives"]} | {norm_text(r["query"])}
        for n in r["negatives"]:
            assert norm_text(n["text"]) not in forbidden, (r["query_id"], n["doc_id"], n["source"])
            assert n["doc_id"] != r["query_id"]
    manifest = json.loads((tmp_path / "runs" / "demo" / "manifest.json").read_text())
    assert manifest["generation"]["this_run"]["requests"] > 0 or manifest["generation"]["counts"]
    assert "identity" in manifest and set(manifest["identity"]["excluded"]) == {
        "same_text_as_positive", "same_text_as_query", "query_document", "positive_of_same_query_text"
    }  # fmt: skip
    _demo(tmp_path, "runs64", 64)
    a = load_from_disk(str(tmp_path / "runs" / "demo" / "dataset"))
    b = load_from_disk(str(tmp_path / "runs64" / "demo" / "dataset"))
    assert sorted(a) == sorted(b) == ["n-tuple", "rich", "triplet"]
    for config in a:
        assert a[config].to_list() == b[config].to_list(), config
