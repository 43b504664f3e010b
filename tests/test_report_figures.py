"""report.md and report.html describe the same numbers (issue 26): one `selection_score` picks every candidate's
score, one `source_scores` feeds both pages' histograms, and the page embeds the very PNGs report.md links."""

import base64
import json
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from negforge.publish.summary import source_scores
from negforge.records import WRITTEN_SOURCES, score_on, selection_key, selection_score


def test_written_candidates_are_shown_on_dense_when_the_run_selects_by_bm25():
    rule = {"source": "rules", "scores": {"dense": 0.71}}
    mined = {"source": "bm25", "scores": {"bm25": 12.5, "dense": 0.64}}
    assert selection_key("rules", "bm25") == "dense" and selection_key("bm25", "bm25") == "bm25"
    assert selection_score(rule, "bm25") == 0.71 and selection_score(mined, "bm25") == 12.5
    assert score_on(rule, "bm25") is None  # the strict form never crosses scales (training labels)
    assert (
        selection_score(mined, None) is None
        and selection_score({"source": "llm", "scores": None}, "dense") is None
    )


def _page_data(page: Path) -> dict:
    m = re.search(r'<script type="application/json" id="negforge-data" data-encoding="json">(.*?)</script>',
                  page.read_text(encoding="utf-8"), re.S)  # fmt: skip
    assert m, "report.html embeds no plain JSON payload"
    return json.loads(m.group(1))


@pytest.fixture(scope="module")
def bm25_run(tiny_beir, cache_dir, tmp_path_factory) -> Path:
    """A real run on the 12-query slice, selecting by BM25, with dense mining and rule edits beside it."""
    from negforge.config import load_config
    from negforge.pipeline import run

    cfg = load_config(None, [
        f"data.path={tiny_beir}", f"cache_dir={cache_dir}", f"output.dir={tmp_path_factory.mktemp('figures')}",
        "output.shard_size=4", "selection.depth=20", "selection.score_by=bm25", "sources.rules.enabled=true",
        "sources.rules.count=1", "sources.dense.backend=torch", "run_name=figures",
    ])  # fmt: skip
    return run(cfg).run_dir


@pytest.mark.slow  # one real run: about a minute on 2 cores with a cold cache
def test_report_md_and_report_html_show_the_same_figures(bm25_run):
    manifest = json.loads((bm25_run / "manifest.json").read_text())
    rows = pq.read_table(bm25_run / "dataset" / "parquet" / "rich" / "train.parquet").to_pylist()
    key = manifest["score_by"]
    assert key == "bm25"
    per = source_scores(rows, key)
    assert "rules" in per and per["rules"].key == "dense" and per["bm25"].key == "bm25"
    report = (bm25_run / "report.md").read_text(encoding="utf-8")
    linked = re.findall(r"!\[(scores_[a-z0-9_]+)\]\(report/(scores_[a-z0-9_]+\.png)\)", report)
    assert sorted(stem for stem, _ in linked) == sorted(f"scores_{s}" for s in per)  # one figure per source

    data = _page_data(bm25_run / "report.html")
    embedded = {stem: base64.b64decode(uri.split(",", 1)[1]) for stem, uri in data["pngs"]}
    for stem, name in linked:  # the page shows report.md's figures, byte for byte
        assert embedded[stem] == (bm25_run / "report" / name).read_bytes()
    hist = data["hist"]  # the page's own histogram: mined candidates, the same numbers
    mined = [s for s in per if s not in WRITTEN_SOURCES]
    assert hist["key"] == key
    assert hist["totals"]["kept"] == sum(len(per[s].kept) for s in mined) > 0
    assert hist["totals"]["dropped"] == sum(len(per[s].dropped) for s in mined)
    assert sum(hist["counts"]["kept"]) == hist["totals"]["kept"]

    # every candidate the page's browser lists carries the score report.md's histograms drew for it
    def sig4(v: float) -> float:
        return float(f"{v:.4g}")  # the page's rounding

    kept = sorted(n["sc"][selection_key(n["s"], key)] for q in data["queries"] for n in q["n"]
                  if selection_key(n["s"], key) in n.get("sc", {}))  # fmt: skip
    assert kept == sorted(sig4(v) for s in per.values() for v in s.kept) and kept
    dropped = sorted(x[3] for q in data["queries"] for x in q["x"] if x[3] is not None)
    assert dropped == sorted(sig4(v) for s in per.values() for v in s.dropped)
