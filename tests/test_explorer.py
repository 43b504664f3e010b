"""The run explorer (runs/<name>/report.html): the embedded data (counts, truncation, seeded examples, the
pile-up sentence, edit highlights, page size at 10,000 queries), and the real page in headless Chromium."""

from __future__ import annotations

import base64
import gzip
import json
import os
import random
import re
import shutil
import subprocess
import time
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from negforge.publish import explorer as ex
from negforge.rich_schema import FILTER_SCORE_KEYS
from tests.conftest import SAMPLE

FS_KEYS = ("length_ratio", "alpha_ratio", "language", "sim_positive", "sim_query")
WORDS = ["cell", "protein", "gene", "mouse", "tumour", "dose", "trial", "cohort", "risk", "insulin", "signal"]


def _cand(doc_id, source, rank, score, **kw) -> dict:
    fs = dict.fromkeys(FILTER_SCORE_KEYS) | {
        "length_ratio": 0.93,
        "alpha_ratio": 0.81,
        "language": "en",
        "sim_positive": round(score * 0.9, 6),
    }
    return {
        "doc_id": doc_id,
        "text": kw.pop("text", None),
        "source": source,
        "sources": [source],
        "rank": rank,
        "scores": {"bm25": None, "dense": score, "hybrid": None},
        "ranks": {"bm25": None, "dense": rank, "random": None, "given": None},
        "generation": kw.pop("generation", None),
        "filter_scores": fs,
        **kw,
    }


def synthetic_rows(
    n: int, seed: int = 0, kept: int = 5, dropped: int = 25, copies: bool = False
) -> list[dict]:
    """Rich rows shaped like a real run's: one positive scoring 0.8, mined candidates between 0.1 and 0.7
    (with `copies`, every query also has a dropped near-copy of its positive at 0.97)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        ks = [
            {**_cand(f"d{i}-{r}", "dense", r, rng.uniform(0.3, 0.7)), "difficulty": None} for r in range(kept)
        ]
        reasons = [("mixer", "not_selected"), ("duplicate", "near_duplicate"), ("embedding", "too_similar")]
        ds = [
            {
                **_cand(
                    f"d{rng.randrange(200_000)}", rng.choice(["dense", "bm25"]), r, rng.uniform(0.1, 0.7)
                ),
                "filter": (v := rng.choice(reasons))[0],
                "reason": v[1],
            }
            for r in range(kept, kept + dropped)
        ]
        if copies:
            ds.append(
                {**_cand(f"copy{i}", "dense", 0, 0.97), "filter": "duplicate", "reason": "copy_of_positive"}
            )
        rows.append(
            {
                "query_id": f"q{i}",
                "query": f"does {rng.choice(WORDS)} {rng.choice(WORDS)} change {rng.choice(WORDS)} (claim {i})",
                "positive_ids": [f"p{i}"],
                "positives": [_TEXTS[i % len(_TEXTS)]],
                "positive_scores": {"bm25": None, "dense": [0.8], "hybrid": None},
                "topic": None,
                "negatives": ks,
                "dropped": ds,
                "short": False,
            }
        )
    return rows


# real abstracts (SciFact sample), so that sizes and compression are those of real text
_TEXTS = [json.loads(x)["text"] for x in (SAMPLE / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]


def _corpus_text(doc_id: str) -> str:
    return _TEXTS[zlib.crc32(doc_id.encode()) % len(_TEXTS)]


def _manifest(rows: list[dict], seed: int = 13) -> dict:
    return {
        "run_name": "synthetic",
        "seed": seed,
        "score_by": "dense",
        "data": {"queries": len(rows)},
        "counts": {"rows": {"rich": len(rows)}},
    }


def test_counts_truncation_and_passages_stored_once():
    rows = synthetic_rows(30)
    rows[1]["negatives"][0]["doc_id"] = rows[0]["negatives"][0]["doc_id"] = "shared"
    data = ex.explorer_data(_manifest(rows), rows, _corpus_text)
    assert len(data["queries"]) == data["meta"]["queries"] == 30
    q0 = data["queries"][0]
    assert q0["i"] == "q0" and len(q0["n"]) == 5 and len(q0["x"]) == 25
    pos = data["passages"][q0["p"][0]]
    full = " ".join(rows[0]["positives"][0].split())
    assert pos[0] == "p0" and pos[1]["t"] == full[: ex.TEXT_CHARS] and pos[1]["n"] == len(full)
    assert isinstance(q0["q"], str)  # short texts are stored as they are
    assert [p[0] for p in data["passages"]].count("shared") == 1
    assert data["queries"][1]["n"][0]["d"] == q0["n"][0]["d"]
    # a dropped candidate: [passage, source, rank, score, verdict, filter scores]; small runs keep every text
    ref, src, rank, score, v, fs = q0["x"][0]
    assert score == float(f"{rows[0]['dropped'][0]['scores']['dense']:.4g}")
    assert data["passages"][ref][1] is not None and data["verdicts"][v].count("/") == 1
    assert data["filter_keys"][fs[0]] in FS_KEYS and rank == 5 and src in ("dense", "bm25")
    assert "sentence" not in data["pileup"] and "rp" not in q0
    # relabeled positives (on_false_negative: relabel) carry their verdict like a dropped candidate
    rows[2]["relabeled_positives"] = [
        {**rows[2]["dropped"][0], "filter": "cross_encoder", "reason": "above_max"}
    ]
    q2 = ex.explorer_data(_manifest(rows), rows, _corpus_text)
    [[ref, _, _, _, v, _]] = q2["queries"][2]["rp"]
    assert q2["verdicts"][v] == "cross_encoder/above_max" and q2["passages"][ref][1] is not None


def test_edit_span_is_highlighted_and_kept_inside_a_truncated_window():
    span = "In adults, the drug reduced mortality by 20 percent."
    repl = "In adults, the drug did not reduce mortality by 20 percent."
    marks = ex.diff_marks(span, repl)
    assert [(repl[a:b], rem) for a, b, rem in marks] == [("did not reduce", "reduced")]
    before = " ".join(["Background sentence here."] * 40)
    text = f"{before} {repl} A closing sentence."
    gen = {"span": span, "replacement": repl, "perturbation": "negation", "mode": "rules", "verified": True}
    [m] = ex.edit_marks(text, gen)
    assert text[m[0] : m[1]] == "did not reduce"
    row = synthetic_rows(1)[0]
    row["negatives"].append({**_cand(None, "rules", 0, 0.79, text=text, generation=gen), "difficulty": None})
    data = ex.explorer_data(_manifest([row]), [row], _corpus_text)
    x = data["queries"][0]["n"][-1]
    assert x["g"]["p"] == "negation" and x["g"]["o"] == span and "d" not in x
    t = x["x"]
    assert t["n"] == len(text) and t["o"] > 0 and len(t["t"]) <= ex.TEXT_CHARS  # the window moved to the edit
    assert text[t["o"] :] == t["t"]  # (here up to the end)
    assert text[t["o"] - 1] == " "  # at a word
    [[a, b, rem]] = t["m"]
    assert t["t"][a:b] == "did not reduce" and rem == "reduced"
    # whole-passage rewrites with a base document: a word diff against it; an unrelated text: no marks
    assert ex.edit_marks("the cat sat on a mat", {}, "the cat sat on the mat") == [[15, 16, "the"]]
    assert ex.edit_marks("entirely different words here", {}, "the cat sat on the mat") == []


def test_examples_are_a_seeded_sample_across_queries():
    rows = synthetic_rows(400)
    a = ex.sample_examples(rows, 13)
    assert a == ex.sample_examples(rows, 13)
    assert a != ex.sample_examples(rows, 14)
    kept = next(g for g in a if g["g"] == "kept")
    assert kept["n"] == 400 * 5 and len(kept["e"]) == ex.KEPT_EXAMPLES
    assert max(qi for qi, _, _ in kept["e"]) > 20  # not the first queries
    groups = [g["g"] for g in a]
    assert groups[0] == "kept" and "dropped: mixer/not_selected" in groups
    assert all(len(g["e"]) == ex.EXAMPLES_PER_REASON for g in a[1:])


def test_pileup_sentence_only_when_there_is_one():
    quiet = ex.pileup(synthetic_rows(200), "dense")
    assert "sentence" not in quiet and quiet["at_or_above_positive"] == {"kept": 0, "dropped": 0}
    loud = ex.pileup(synthetic_rows(200, copies=True), "dense")
    assert loud["at_or_above_positive"] == {"kept": 0, "dropped": 200} and loud["near_top"] == 200
    s = loud["sentence"]
    assert (
        s.startswith("Pile-up at the top score: 200 of 6,200 mined candidates (3.2%)")
        and "false negatives" in s
    )
    # the page carries it, and the histogram has positives beside kept and dropped
    rows = synthetic_rows(200, copies=True)
    data = ex.explorer_data(_manifest(rows), rows, _corpus_text)
    assert data["pileup"]["sentence"] == s
    h = data["hist"]
    assert h["totals"] == {"positives": 200, "kept": 1000, "dropped": 5200}
    assert sum(h["counts"]["positives"]) == 200 and h["hi"] == 0.97
    assert sum(1 for q in data["queries"] if q.get("u")) == 200


def test_page_size_for_10000_queries(tmp_path):
    """A 10,000-query run with 5 kept and 25 dropped candidates a query, no passage shared (the worst case)."""
    rows = synthetic_rows(10_000)
    t0 = time.perf_counter()
    path = ex.write_explorer(tmp_path, _manifest(rows), rows, _corpus_text)
    seconds = time.perf_counter() - t0
    size = path.stat().st_size
    print(f"\nexplorer page for 10,000 queries: {size / 1e6:.1f} MB, written in {seconds:.1f} s")
    data = _embedded(path.read_text())
    assert len(data["queries"]) == 10_000
    texted = sum(1 for q in data["queries"] for x in q["x"] if isinstance(x[0], int))
    assert 10_000 * ex.DROPPED_TEXTS <= texted <= 10_000 * ex.DROPPED_TEXTS + 20  # (+ examples)
    assert sum(len(q["x"]) for q in data["queries"]) == 250_000
    assert size < 40e6


def _embedded(page: str) -> dict:
    m = re.search(r'id="negforge-data" data-encoding="([^"]+)">(.*?)</script>', page, re.S)
    raw = m.group(2) if m.group(1) == "json" else gzip.decompress(base64.b64decode(m.group(2))).decode()
    return json.loads(raw)


def _browser() -> str | None:
    return next(
        (p for n in ("chromium", "chromium-browser", "google-chrome") if (p := shutil.which(n))), None
    )


@pytest.fixture(scope="module")
def explorer_run(tiny_beir, cache_dir, tmp_path_factory) -> Path:
    """A real run on the 12-query SciFact slice: BM25 and dense mining, rule-based edits, the default filters."""
    from negforge.config import load_config
    from negforge.pipeline import run

    out = tmp_path_factory.mktemp("explorer")
    cfg = load_config(
        None,
        [
            f"data.path={tiny_beir}",
            f"cache_dir={cache_dir}",
            f"output.dir={out}",
            "output.shard_size=4",
            "selection.depth=20",
            "sources.rules.enabled=true",
            "sources.rules.count=1",
            "sources.dense.backend=torch",  # fp32: no parity gate to run
            "run_name=explorer",
        ],
    )
    return run(cfg).run_dir


def _chrome(browser: str, url: str, tmp: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
    cmd += [f"--user-data-dir={tmp / 'profile'}", "--virtual-time-budget=5000", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)


def _listed(dom: str) -> list[str]:
    return re.findall(r'<li class="qitem" data-qid="([^"$]*)"', dom)


@pytest.mark.slow  # the run itself: about a minute cold on 2 cores; Chromium adds about 5 s
def test_explorer_in_headless_chromium(explorer_run, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no chromium binary (apt-get install chromium); the explorer page was not rendered")
    import pyarrow.parquet as pq

    page = explorer_run / "report.html"
    manifest = json.loads((explorer_run / "manifest.json").read_text())
    rows = pq.read_table(explorer_run / "dataset" / "parquet" / "rich" / "train.parquet").to_pylist()
    n = manifest["data"]["queries"]
    assert page.is_file() and n == len(rows) == manifest["counts"]["rows"]["rich"] == 12

    # (a) the page renders its query list, (b) with the manifest's count of queries
    dom = _chrome(browser, page.as_uri(), tmp_path, "--dump-dom").stdout
    assert 'data-ready="1"' in dom
    assert _listed(dom) == [r["query_id"] for r in rows]
    assert re.search(r'id="query-count">([\d,]+)<', dom).group(1).replace(",", "") == str(n)
    assert "<svg" in dom and 'src="data:image/png;base64,' in dom and "<table>" in dom

    # (c) #q=<text> pre-fills the search: the query with a rule edit is listed (and opened, edit marked)
    target = next(r for r in rows if any(c["source"] == "rules" for c in r["negatives"]))
    other = next(r for r in rows if r["query_id"] != target["query_id"])
    url = page.as_uri() + "#q=" + re.sub(r"[^\w ]", " ", target["query"]).replace(" ", "%20")
    dom = _chrome(browser, url, tmp_path, "--dump-dom").stdout
    listed = _listed(dom)
    assert listed and listed[0] == target["query_id"] and other["query_id"] not in listed
    assert re.search(r'id="search"[^>]*>', dom)
    assert "<mark>" in dom and "Kept negatives" in dom

    # (d) screenshots of the searched page and of the top (copied to $NEGFORGE_SCREENSHOTS for a look)
    for name, u in (("explorer.png", url), ("explorer-top.png", page.as_uri())):
        shot = tmp_path / name
        _chrome(browser, u, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000")
        assert shot.is_file() and shot.stat().st_size > 30_000
        if keep := os.environ.get("NEGFORGE_SCREENSHOTS"):
            Path(keep).mkdir(parents=True, exist_ok=True)
            shutil.copy(shot, Path(keep) / name)


@pytest.mark.slow  # shares the run
def test_show_open_prints_the_page_and_rebuilds_it(explorer_run, tmp_path, monkeypatch):
    from negforge.cli import app

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    run_dir = tmp_path / "copy"
    shutil.copytree(explorer_run, run_dir, ignore=shutil.ignore_patterns("shards"))
    (run_dir / "report.html").unlink()
    res = CliRunner().invoke(app, ["show", str(run_dir), "--open"])
    assert res.exit_code == 0, res.output
    assert res.output.strip().splitlines()[-1] == str(run_dir / "report.html")
    assert (run_dir / "report.html").stat().st_size > 10_000
