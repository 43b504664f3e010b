"""`runs/<name>/report.md`: the funnel, score histograms per source (PNG), and kept and dropped examples.

Written from the manifest and the `rich` rows, so it can be rebuilt for any finished run.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

from negforge.ownership import atomic_write
from negforge.publish.explorer import write_explorer
from negforge.publish.markdown import code, md
from negforge.publish.summary import source_scores
from negforge.versions import package_version

EXAMPLES_PER_REASON = 2
SNIPPET = 280


def _snip(text: str | None) -> str:
    if not text:
        return "_(text not stored; see doc_id)_"
    text = " ".join(text.split())
    return md((text[:SNIPPET] + "…") if len(text) > SNIPPET else text)


PLOT_VERSION = 1  # bump when the figure's look changes: cached PNGs of the old look are then not reused


def plot_histograms(
    rows: list[dict], score_key: str | None, out_dir: Path, cache_dir: Path | None = None
) -> list[Path]:
    """One PNG per source (`out_dir/scores_<source>.png`): kept vs dropped candidates by their selection score
    (`negforge.publish.summary.source_scores`: written ones by dense unless the run selects by dense). Returns
    the paths written.

    `cache_dir`: PNGs are kept there under a digest of what they plot (scores, labels, matplotlib's version),
    so a rerun whose figures did not change copies them and never imports matplotlib (~1.5 s).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for src, sc in source_scores(rows, score_key).items():
        key, kept, dropped = sc.key, sc.kept, sc.dropped
        path = out_dir / f"scores_{src}.png"
        cached = None
        if cache_dir is not None:
            spec = [PLOT_VERSION, package_version("matplotlib"), src, key, kept, dropped]
            digest = hashlib.blake2b(json.dumps(spec).encode(), digest_size=16).hexdigest()
            cached = cache_dir / f"{digest}.png"
        if cached is not None and cached.is_file():
            shutil.copyfile(cached, path)
        else:
            _histogram(src, key, kept, dropped, path)
            if cached is not None:
                cached.parent.mkdir(parents=True, exist_ok=True)
                atomic_write(cached, path.read_bytes())
        paths.append(path)
    return paths


def _histogram(src: str, key: str | None, kept: list[float], dropped: list[float], path: Path) -> None:
    """Draw one source's histogram to `path` (matplotlib's object API: no pyplot state, safe in threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    data = [x for x in (kept, dropped) if x]
    lo, hi = min(min(x) for x in data), max(max(x) for x in data)
    bins = 30 if hi > lo else 1
    if kept:
        ax.hist(kept, bins=bins, range=(lo, hi), alpha=0.7, label=f"kept ({len(kept)})")
    if dropped:
        ax.hist(dropped, bins=bins, range=(lo, hi), alpha=0.5, label=f"dropped ({len(dropped)})")
    ax.set_title(f"{src}: {key} score of candidates")
    ax.set_xlabel(f"{key} score")
    ax.set_ylabel("candidates")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def _funnel_table(filters: dict) -> list[str]:
    funnel = filters.get("funnel") or []
    if not funnel:
        return ["_(no candidates)_"]
    cols = list(funnel[0].keys())
    lines = ["| " + " | ".join(md(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    for row in funnel:
        lines.append("| " + " | ".join(md(row.get(c, "")) for c in cols) + " |")
    return lines


def _input_lines(manifest: dict) -> list[str]:
    """What was read (layout, skips) and what the identity rule excluded."""
    data = manifest.get("data") or {}
    out = [f"- {md(line)}" for line in data.get("layout") or []]
    skips = (manifest.get("skips") or {}).get("counts") or {}
    out.append(f"- Input skips by reason: {md(skips or 'none')}")
    ident = manifest.get("identity") or {}
    if ident:
        out.append(
            "- Never negatives (identity rule: same text as a positive or the query, or the query's own "
            f"document): {md(ident.get('excluded'))}"
        )
        st = ident.get("shared_texts") or {}
        out.append(
            f"- Corpus texts shared under different ids: {st.get('groups', 0)} texts, {st.get('documents', 0)} documents"
        )
    return out


def write_report(
    run_dir: Path,
    manifest: dict,
    rows: list[dict],
    corpus_text: Callable[[str], str | None] | None = None,
    plot_cache: Path | None = None,
) -> Path:
    """Write report.md and report/*.png next to the manifest; returns the report path. `plot_cache`: see
    `plot_histograms`."""
    score_key = manifest.get("score_by")
    plots = plot_histograms(rows, score_key, run_dir / "report", plot_cache)
    filters = manifest.get("filters") or {}
    counts = manifest.get("counts", {})
    lines = [
        f"# negforge run {code(manifest.get('run_name'))}",
        "",
        f"Config fingerprint {code(manifest.get('config_fingerprint'))}, seed {manifest.get('seed')}, "
        f"{manifest.get('data', {}).get('queries')} queries, {manifest.get('data', {}).get('corpus_docs')} "
        f"documents, created {manifest.get('created_at')}.",
        "",
        "## Funnel",
        "",
        "Candidates per source → after the selection margins → after each filter (in stack order) → mixed "
        "into the final negatives.",
        "",
        *_funnel_table(filters),
        "",
        f"Rows written: {counts.get('rows')}. Short queries (fewer negatives than asked): "
        f"{counts.get('short_queries', 0)}.",
        *[f"- {code(q)}: {md(why)}" for q, why in (counts.get("short_reasons") or {}).items()],
        "",
        "## Input and the identity rule",
        "",
        *_input_lines(manifest),
        "",
        "## Filters",
        "",
    ]
    for f in filters.get("stack") or []:
        name = f.get("name")
        st = (filters.get("stats") or {}).get(name, {})
        settings = ", ".join(
            f"{k}={v}" for k, v in f.items() if k not in ("name", "calibration") and v is not None
        )
        lines.append(f"- **{md(name)}** ({md(settings)}): saw {sum(st.get('seen', {}).values())}, "
                     f"rejected {md(st.get('rejected', {}))}, {st.get('seconds', 0)} s")  # fmt: skip
        if f.get("calibration"):
            lines.append(f"  - calibration: {md(f['calibration'])}")
    if not filters.get("stack"):
        lines.append("_(no filters configured)_")
    lines += ["", "All verdicts (filter/reason → candidates):", ""]
    lines += [f"- {code(k)}: {md(v)}" for k, v in (filters.get("verdicts") or {}).items()]
    lines += _false_negative_lines(manifest)
    lines += _written_lines(manifest)
    sep = manifest.get("separability") or {}
    if sep:
        lines += ["", "## Written negatives vs real passages", "",
                  "A 5-fold logistic-regression probe on embeddings, written negatives against the run's positives: "
                  "ROC AUC 0.5 means it cannot tell them apart; near 1.0 a trainer could learn \"written\" as a "
                  "shortcut (SyNeg's adversarial gap).", "",
                  "| source | passages | probe AUC | length ratio | new-word share |", "|---|---|---|---|---|"]  # fmt: skip
        for src, v in sep.items():
            lines.append(f"| {md(src)} | {v.get('n')} | {v.get('auc') if v.get('auc') is not None else md(v.get('note', ''))} | "
                         f"{v.get('length_ratio', '')} | {v.get('new_word_share', '')} |")  # fmt: skip
    lines += ["", "## Score histograms", ""]
    lines += [f"![{p.stem}](report/{p.name})" for p in plots]
    lines += ["", "## Examples", ""]
    lines += _examples(rows, corpus_text)
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_explorer(run_dir, manifest, rows, corpus_text)  # report.html, the run explorer
    return path


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _false_negative_lines(manifest: dict) -> list[str]:
    """The run's measured false-negative leak (hidden-positive folds) with its interval, `auto`'s choice and
    frontier, and the share of kept negatives above their weakest positive."""
    cal, out = manifest.get("calibration"), manifest.get("outscoring") or {}
    lines = ["", "## False negatives", ""]
    if cal:
        est = cal["estimate"]
        lo, hi = est["leak_ci"]
        lines.append(
            f"Measured leak of this run's settings ({md(est['setting'])}): {est['leaked']} of {est['hidden']} "
            f"hidden positives came back as kept negatives, {_pct(est['leak'])} (95% Wilson interval "
            f"{_pct(lo)} to {_pct(hi)}), with {_pct(est['fill'])} of queries full; from {cal['queries']} queries "
            f"with two or more positives x {cal['folds']} folds, one positive hidden per fold."
        )
        if cal.get("chosen_relative_margin") is not None:
            lines += ["", f"`relative_margin auto` chose {cal['chosen_relative_margin']} (the lowest leak with at "
                      f"least {_pct(cal['fill_target'])} of queries full). Frontier:", "",
                      "| setting | leak | 95% CI | fill | negatives/query |", "|---|---|---|---|---|"]  # fmt: skip
            for p in cal.get("frontier") or []:
                lo, hi = p["leak_ci"]
                lines.append(f"| {md(p['setting'])} | {_pct(p['leak'])} | {_pct(lo)} to {_pct(hi)} | "
                             f"{_pct(p['fill'])} | {p['negatives_per_query']} |")  # fmt: skip
    else:
        lines.append("No leak measured: fewer than 10 queries have two or more positives to hide one of (or "
                     "`selection.calibration.estimate` is off); `negforge calibrate` says more.")  # fmt: skip
    if out.get("negatives"):
        lines += ["", f"Kept negatives scoring above their query's weakest positive ({md(out['score'])}): "
                  f"{out['outscoring']} of {out['negatives']} ({_pct(out['share'])})."]  # fmt: skip
    return lines


LARGER_MODEL_ADVICE = (
    "At this model size written negatives did not measurably help in negforge's benchmark (SciFact test, "
    "3 seeds: mined + rule edits vs mined alone +0.06 nDCG@10, paired 95% CI [-0.47, +0.62]; README, "
    '"Which negatives help"), so the default mix leaves them off. To try a larger model: serve it with '
    "vLLM on a GPU (`sources.llm.server.python` pointing at an environment with `vllm`, `sources.llm.model` "
    "a checkpoint folder) or point `sources.llm.base_urls` at any OpenAI-compatible endpoint "
    "(key in `NEGFORGE_LLM_API_KEY`), with `edit_answer: sentence` for models that rewrite well; then compare "
    "with `benchmarks/quality.py --rows nf,edit --llm-base-url URL`."
)


def _counts(d: dict) -> str:
    return ", ".join(f"{code(k)} {v}" for k, v in sorted(d.items(), key=lambda kv: -kv[1])) or "none"


def _written_lines(manifest: dict) -> list[str]:
    """The written sources' funnel: rule edits made and refused, LLM requests, samples, verified edits and
    every rejection by reason (manifest `rules` and `generation.this_run`); [] when neither ran."""
    rules, gen = manifest.get("rules") or {}, (manifest.get("generation") or {}).get("this_run") or {}
    if not rules and not gen:
        return []
    lines = ["", "## Written negatives", ""]
    if rules:
        lines.append(f"- **rules**: {rules.get('made', 0)} verified edits ({_counts(rules.get('by_kind', {}))}), "
                     f"{rules.get('queries_without_edit', 0)} queries without one; refused "
                     f"{_counts(rules.get('rejected', {}))}")  # fmt: skip
    if gen:
        req = gen.get("requests", 0)
        ok = gen.get("verified", 0) + gen.get("unverifiable_kind", 0)
        share = f"{100 * ok / req:.0f}%" if req else "-"
        lines.append(f"- **llm**: {req} requests ({gen.get('reasks', 0)} re-asks, {gen.get('from_store', 0)} "
                     f"answered from the store), {gen.get('samples_judged', req)} samples judged; accepted "
                     f"{ok} ({share} of requests): {gen.get('verified', 0)} verified contradictions, "
                     f"{gen.get('unverifiable_kind', 0)} not-answering rewrites; refused (one reason per "
                     f"request) {_counts(gen.get('rejected', {}))}")  # fmt: skip
    return [*lines, "", LARGER_MODEL_ADVICE]


def _examples(rows: list[dict], corpus_text: Callable[[str], str | None] | None) -> list[str]:
    kept: list[tuple[dict, dict]] = []
    by_reason: dict[str, list[tuple[dict, dict]]] = defaultdict(list)
    for r in rows:
        for n in r["negatives"]:
            if len(kept) < 3:
                kept.append((r, n))
        for d in r.get("dropped") or []:
            key = f"{d['filter']}/{d['reason']}"
            if len(by_reason[key]) < EXAMPLES_PER_REASON:
                by_reason[key].append((r, d))
    out = ["### Kept", ""]
    for r, n in kept:
        out += _example(r, n, corpus_text)
    for key in sorted(by_reason):
        out += [f"### Dropped: {code(key)}", ""]
        for r, d in by_reason[key]:
            out += _example(r, d, corpus_text)
    return out


def _example(row: dict, cand: dict, corpus_text: Callable[[str], str | None] | None) -> list[str]:
    text = cand.get("text")
    if text is None and cand.get("doc_id") and corpus_text is not None:
        text = corpus_text(cand["doc_id"])
    fs = {
        k: round(v, 3) if isinstance(v, float) else v
        for k, v in (cand.get("filter_scores") or {}).items()
        if v is not None
    }
    sc = {k: round(v, 4) for k, v in (cand.get("scores") or {}).items() if v is not None}
    return [
        f"- query {code(row['query_id'])}: {md(textwrap.shorten(row['query'], 200))}",
        f"  - {md(cand['source'])} {code(cand.get('doc_id') or 'synthetic')} scores {md(sc)} filter scores {md(fs)}",
        f"  - > {_snip(text)}",
        "",
    ]
