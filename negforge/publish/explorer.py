"""`runs/<name>/report.html`: the run explorer, one self-contained page (no server, no network).

Everything is embedded as one JSON object read by the page's inline script (templates/explorer.html): the run's
header and funnel (manifest), a histogram of positives' scores beside kept and dropped candidates', the report's
PNGs as data URIs, a seeded sample of examples per verdict, a pile-up sentence when candidates crowd the top
scores, and a paginated, searchable browser of every query. To keep a 10,000-query page small, passages are
stored once by doc id and cut to a few hundred characters (the full length is noted), dropped candidates are
arrays, and in runs of more than BIG_RUN queries only the best-scoring dropped candidates of a query carry text
and filter scores, and the JSON is embedded gzipped (base64; the page inflates it with DecompressionStream).
10,000 queries with 5 kept and 25 dropped candidates each, no passage shared: about 15 MB.
Synthetic negatives (`llm`, `rules`) carry the characters their edit changed, found by a word-level diff of
`generation.span` (the original sentence) against `generation.replacement` (the edited one), or of the base
document against the whole text when only those exist; the page highlights them with <mark>.
"""

from __future__ import annotations

import base64
import contextlib
import difflib
import gzip
import html
import json
import os
import random
import re
import sys
import webbrowser
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from negforge.publish.summary import source_scores
from negforge.records import WRITTEN_SOURCES, selection_score

SYNTHETIC = WRITTEN_SOURCES
TEXT_CHARS = 300  # query, positives, kept and synthetic negatives
DROPPED_CHARS = 160  # dropped candidates
BIG_RUN = 2000  # above this many queries ...
DROPPED_TEXTS = 3  # ... only the N best-scoring dropped candidates of a query carry text
KEPT_EXAMPLES = 3
EXAMPLES_PER_REASON = 2
BINS = 30
PER_PAGE = 50
TEMPLATE = Path(__file__).parent / "templates" / "explorer.html"
_WORD = re.compile(r"\S+")


def _r(v):
    return float(f"{v:.4g}") if isinstance(v, float) else v


def _fs(c: dict, keys: dict[str, int]) -> list:
    """Filter scores as a flat [key index, value, ...] list (names in the page's `filter_keys`)."""
    out: list = []
    for k, v in (c.get("filter_scores") or {}).items():
        if v is not None:
            out += [keys.setdefault(k, len(keys)), _r(v)]
    return out


def _norm(text: str | None) -> str | None:
    return None if text is None else " ".join(text.split())


def _clip(text: str | None, limit: int, marks: list | None = None):
    """A text as the page stores it: the string itself, or {t, n: full length, o: offset, m: marks}."""
    if text is None:
        return None
    if len(text) <= limit and not marks:
        return text
    start = 0
    if marks and marks[0][0] > limit * 2 // 3 and len(text) > limit:
        start = max(0, min(marks[0][0] - limit // 3, len(text) - limit))
        if (sp := text.find(" ", start, marks[0][0])) != -1:
            start = sp + 1  # begin at a word
    end = start + limit
    out: dict = {"t": text[start:end]}
    if len(text) > limit:
        out["n"] = len(text)
    if start:
        out["o"] = start
    kept = [
        [max(a, start) - start, min(b, end) - start, rem] for a, b, rem in marks or [] if start <= a <= end
    ]
    if kept:
        out["m"] = kept
    return out


def diff_marks(old: str, new: str, offset: int = 0) -> list[list]:
    """Word-level diff: [start, end, removed words] per change, as character offsets into `new` (+ offset);
    start == end marks a pure deletion at that point."""
    a = [m.group() for m in _WORD.finditer(old)]
    bm = list(_WORD.finditer(new))
    sm = difflib.SequenceMatcher(None, a, [m.group() for m in bm], autojunk=False)
    marks = []
    for op, i1, i2, j1, j2 in sm.get_opcodes():
        if op == "equal":
            continue
        if j2 > j1:
            s, e = bm[j1].start(), bm[j2 - 1].end()
        else:
            s = e = bm[j1].start() if j1 < len(bm) else len(new)
        marks.append([offset + s, offset + e, " ".join(a[i1:i2])])
    return marks


def edit_marks(text: str, gen: dict | None, base_text: str | None = None) -> list[list]:
    """Where a synthetic negative differs from what it was made from (empty when that is not recorded)."""
    gen = gen or {}
    span, repl = _norm(gen.get("span")), _norm(gen.get("replacement"))
    if span and repl and (at := text.find(repl)) >= 0:
        return diff_marks(span, repl, at) or [[at, at + len(repl), ""]]
    if base_text and difflib.SequenceMatcher(None, base_text, text, autojunk=False).quick_ratio() >= 0.5:
        return diff_marks(base_text, text)
    return []


class _Passages:
    """Corpus passages stored once: [doc_id, text] rows referenced by index."""

    def __init__(self, corpus_text: Callable[[str], str | None] | None):
        self.rows: list[list] = []
        self.index: dict[str, int] = {}
        self.limit: list[int] = []
        self.corpus_text = corpus_text

    def text_of(self, doc_id: str, text: str | None) -> str | None:
        if text is None and self.corpus_text is not None:
            with contextlib.suppress(KeyError, IndexError):
                text = self.corpus_text(doc_id)
        return _norm(text)

    def ref(self, doc_id: str, text: str | None, limit: int) -> int:
        i = self.index.get(doc_id)
        if i is None:
            i = self.index[doc_id] = len(self.rows)
            self.rows.append([doc_id, None])
            self.limit.append(0)
        if limit > self.limit[i]:
            t = self.text_of(doc_id, text)
            if t is not None:
                self.rows[i][1], self.limit[i] = _clip(t, limit), limit
        return i


def _weakest_positive(row: dict, key: str | None) -> float | None:
    vals = [v for v in ((row.get("positive_scores") or {}).get(key) or []) if v is not None] if key else []
    return min(vals) if vals else None


def _synthetic(c: dict, passages: _Passages, limit: int) -> dict:
    g = c.get("generation") or {}
    text = _norm(c.get("text")) or ""
    base = passages.text_of(g["base_doc_id"], None) if g.get("base_doc_id") and not g.get("span") else None
    info = {"p": g.get("perturbation"), "m": g.get("mode"), "b": g.get("base_doc_id"), "v": g.get("verified")}
    if g.get("span"):
        info["o"] = _clip(_norm(g["span"]), limit)
    return {"x": _clip(text, limit, edit_marks(text, g, base)), "g": {k: v for k, v in info.items() if v}}


def _kept(c: dict, passages: _Passages, keys: dict[str, int]) -> dict:
    out: dict = {"s": c["source"], "r": c.get("rank")}
    if c.get("doc_id") is not None:
        out["d"] = passages.ref(c["doc_id"], c.get("text"), TEXT_CHARS)
    else:
        out.update(_synthetic(c, passages, TEXT_CHARS))
    if len(c.get("sources") or []) > 1:
        out["ss"] = c["sources"]
    out["sc"] = {k: _r(v) for k, v in (c.get("scores") or {}).items() if v is not None}
    out["f"] = _fs(c, keys)
    if c.get("difficulty"):
        out["k"] = c["difficulty"]
    return {k: v for k, v in out.items() if v not in (None, {}, [])}


def _dropped(c: dict, key, verdicts: dict, keys: dict, passages: _Passages, with_text: bool) -> list:
    """[passage index, or the bare doc id when it carries no text, or synthetic {x, g}; source, rank, score,
    verdict index, filter scores (only with text)]."""
    ref: Any
    if c.get("doc_id") is None:
        ref = _synthetic(c, passages, DROPPED_CHARS)
    elif with_text:
        ref = passages.ref(c["doc_id"], c.get("text"), DROPPED_CHARS)
    else:
        ref = c["doc_id"]
    v = verdicts.setdefault(f"{c.get('filter')}/{c.get('reason')}", len(verdicts))
    fs = _fs(c, keys) if with_text else []
    return [ref, c["source"], c.get("rank"), _r(selection_score(c, key)), v, *([fs] if fs else [])]


def histogram(rows: list[dict], key: str | None, bins: int = BINS) -> dict | None:
    """Positives' scores beside kept and dropped mined candidates' (synthetic ones left out), by `key`."""
    groups: dict[str, list[float]] = {"positives": [], "kept": [], "dropped": []}
    for r in rows:
        groups["positives"] += [
            float(v) for v in ((r.get("positive_scores") or {}).get(key) or []) if v is not None
        ]
    for src, sc in source_scores(rows, key).items():  # the numbers report.md's histograms draw
        if src not in SYNTHETIC:
            groups["kept"] += sc.kept
            groups["dropped"] += sc.dropped
    allv = [v for g in groups.values() for v in g]
    if not key or not allv:
        return None
    lo, hi = min(allv), max(allv)
    width = (hi - lo) / bins or 1.0
    counts = {}
    for name, vals in groups.items():
        c = [0] * bins
        for v in vals:
            c[min(bins - 1, int((v - lo) / width))] += 1
        counts[name] = c
    return {
        "key": key,
        "lo": _r(lo),
        "hi": _r(hi),
        "counts": counts,
        "totals": {k: len(v) for k, v in groups.items()},
    }


def pileup(rows: list[dict], key: str | None) -> dict:
    """How many mined candidates score at or above their query's weakest positive, and how many sit within 1%
    of the top score (of the score range); `sentence` says it in words when either is a pile-up."""
    n = ge_kept = ge_dropped = 0
    vals: list[float] = []
    for r in rows:
        weakest = _weakest_positive(r, key)
        for kept, cands in ((True, r["negatives"]), (False, r.get("dropped") or [])):
            for c in cands:
                if c["source"] in SYNTHETIC or (v := selection_score(c, key)) is None:
                    continue
                n += 1
                vals.append(v)
                if weakest is not None and v >= weakest:
                    ge_kept += kept
                    ge_dropped += not kept
    out: dict = {"candidates": n, "at_or_above_positive": {"kept": ge_kept, "dropped": ge_dropped}}
    if not n:
        return out
    top, bottom = max(vals), min(vals)
    near = sum(v >= top - 0.01 * (top - bottom) for v in vals)
    out |= {"top": _r(top), "near_top": near}
    ge = ge_kept + ge_dropped
    if (ge >= 3 and ge / n >= 0.02) or (near >= 3 and near / n >= 0.02):
        out["sentence"] = (
            f"Pile-up at the top score: {ge:,} of {n:,} mined candidates ({ge / n:.1%}) score at or above their "
            f"query's weakest positive by {key} ({ge_kept:,} kept, {ge_dropped:,} dropped), and {near:,} "
            f"({near / n:.1%}) sit within 1% of the top score {top:.3f}. Candidates up there are often copies of "
            "a positive or unlabeled positives (false negatives): check the kept ones (search is:above-positive)."
        )
    return out


def sample_examples(rows: list[dict], seed: int) -> list[dict]:
    """Kept and dropped-per-reason examples drawn with a seeded sample across all queries: [qi, 'n'|'x', ci]."""
    groups: dict[str, list[tuple[int, str, int]]] = defaultdict(list)
    for qi, r in enumerate(rows):
        groups["kept"] += [(qi, "n", ci) for ci in range(len(r["negatives"]))]
        for ci, d in enumerate(r.get("dropped") or []):
            groups[f"dropped: {d.get('filter')}/{d.get('reason')}"].append((qi, "x", ci))
    rng = random.Random(seed)
    out = []
    for g in sorted(groups, key=lambda g: (g != "kept", g)):
        k = KEPT_EXAMPLES if g == "kept" else EXAMPLES_PER_REASON
        picks = sorted(rng.sample(groups[g], min(k, len(groups[g]))))
        out.append({"g": g, "n": len(groups[g]), "e": [list(p) for p in picks]})
    return out


def explorer_data(
    manifest: dict, rows: list[dict], corpus_text: Callable[[str], str | None] | None = None, pngs=()
) -> dict:
    """The JSON object the page reads."""
    key = manifest.get("score_by")
    passages = _Passages(corpus_text)
    verdicts: dict[str, int] = {}
    keys: dict[str, int] = {}
    limited = len(rows) > BIG_RUN
    examples = sample_examples(rows, int(manifest.get("seed") or 0))
    shown = {(qi, ci) for g in examples for qi, kind, ci in g["e"] if kind == "x"}  # examples show text
    queries: list[dict[str, Any]] = []

    def score(c: dict) -> float:
        return v if (v := selection_score(c, key)) is not None else float("-inf")

    for r in rows:
        weakest = _weakest_positive(r, key)
        dropped = r.get("dropped") or []
        order = sorted(range(len(dropped)), key=lambda i: -score(dropped[i]))
        texted = set(order[:DROPPED_TEXTS]) if limited else set(range(len(dropped)))
        texted |= {ci for qi, ci in shown if qi == len(queries)}
        q: dict = {
            "i": r["query_id"],
            "q": _clip(_norm(r["query"]), TEXT_CHARS),
            "p": [
                passages.ref(d, t, TEXT_CHARS)
                for d, t in zip(r["positive_ids"], r["positives"], strict=False)
            ],
            "ps": {k: [_r(v) for v in vs] for k, vs in (r.get("positive_scores") or {}).items() if vs},
            "n": [_kept(c, passages, keys) for c in r["negatives"]],
            "x": [_dropped(c, key, verdicts, keys, passages, i in texted) for i, c in enumerate(dropped)],
        }
        mined = [c for c in [*r["negatives"], *dropped] if c["source"] not in SYNTHETIC]
        above = 0 if weakest is None else sum(score(c) >= weakest for c in mined)
        if rel := r.get("relabeled_positives"):  # judged likely positives and kept as such (relabel)
            q["rp"] = [_dropped(c, key, verdicts, keys, passages, True) for c in rel]
        q |= {"sh": 1} if r.get("short") else {}
        q |= {"u": above} if above else {}
        queries.append(q)
    data, counts, filters = (
        manifest.get("data") or {},
        manifest.get("counts") or {},
        manifest.get("filters") or {},
    )
    meta = {
        "run": manifest.get("run_name"),
        "fingerprint": manifest.get("config_fingerprint"),
        "seed": manifest.get("seed"),
        "created": manifest.get("created_at"),
        "score_by": key,
        "queries": data.get("queries", len(rows)),
        "positives": data.get("positives"),
        "corpus_docs": data.get("corpus_docs"),
        "rows": counts.get("rows"),
        "short": counts.get("short_queries", 0),
        "counts_funnel": counts.get("funnel"),
        "funnel": filters.get("funnel") or [],
        "stack": [f.get("name") for f in filters.get("stack") or []],
        "limits": {
            "text": TEXT_CHARS,
            "dropped": DROPPED_CHARS,
            "dropped_texts": DROPPED_TEXTS if limited else None,
        },
    }
    return {
        "meta": meta,
        "per_page": PER_PAGE,
        "verdicts": list(verdicts),
        "filter_keys": list(keys),
        "passages": passages.rows,
        "queries": queries,
        "hist": histogram(rows, key),
        "pileup": pileup(rows, key),
        "examples": examples,
        "pngs": [
            [p.stem, "data:image/png;base64," + base64.b64encode(p.read_bytes()).decode()] for p in pngs
        ],
    }


def render(data: dict, compress: bool = False) -> str:
    """The page; `compress` embeds the JSON gzipped and base64-encoded (about a third of the size), which the
    page inflates with the browser's DecompressionStream."""
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":")).replace("<", "\\u003c")
    if compress:
        payload = base64.b64encode(gzip.compress(payload.encode(), 6, mtime=0)).decode()
    title = html.escape(f"negforge run {data['meta'].get('run')}")
    page = TEMPLATE.read_text(encoding="utf-8").replace("__NEGFORGE_TITLE__", title)
    page = page.replace("__NEGFORGE_ENCODING__", "gzip-base64" if compress else "json")
    return page.replace("__NEGFORGE_DATA__", payload)


def write_explorer(
    run_dir: Path, manifest: dict, rows: list[dict], corpus_text: Callable[[str], str | None] | None = None
) -> Path:
    """Write runs/<name>/report.html; returns its path."""
    pngs = sorted((run_dir / "report").glob("*.png"))
    path = run_dir / "report.html"
    tmp = path.with_name(path.name + ".tmp")
    page = render(explorer_data(manifest, rows, corpus_text, pngs), compress=len(rows) > BIG_RUN)
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(path)
    return path


def open_explorer(run_dir: Path) -> Path:
    """The run's report.html (rebuilt from the manifest and the `rich` Parquet when missing), opened in a
    browser when a display is available."""
    path = run_dir / "report.html"
    if not path.is_file():
        import pyarrow.parquet as pq

        rich = run_dir / "dataset" / "parquet" / "rich" / "train.parquet"
        if not rich.is_file():
            raise FileNotFoundError(f"{path}: no explorer and no rich config to build it from")
        manifest = json.loads((run_dir / "manifest.json").read_text())
        write_explorer(run_dir, manifest, pq.read_table(rich).to_pylist())
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform in ("darwin", "win32"):
        with contextlib.suppress(Exception):
            webbrowser.open(path.resolve().as_uri())
    return path
