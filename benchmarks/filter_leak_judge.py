"""The llm_judge rows of benchmarks/filter_leak_replay.py: one real run at the default threshold, the threshold
tuned on dev by replaying its p(yes), how well p(yes) separates hidden positives from other candidates, and the
--judge-only report."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from filter_leak_data import Data, log
from filter_leak_runs import metrics, run_negforge
from filter_leak_settings import NO_MARGIN, choose, describe, replay, replay_table
from filter_leak_tables import pct, table

JUDGE_THRESHOLDS = [0.5, 0.7, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0]


def judge_scores(rows: list[dict]) -> dict[tuple[str, str], float]:
    """p(yes) of every judged candidate of an llm_judge run: (query id, doc id) -> judge_p_yes."""
    out = {}
    for r in rows:
        for c in list(r["negatives"]) + list(r["dropped"]):
            p = (c.get("filter_scores") or {}).get("judge_p_yes")
            if p is not None:
                out[(r["query_id"], c["doc_id"])] = float(p)
    return out


def judge_separation(p: dict[tuple[str, str], float], hidden: dict[str, list[str]]) -> dict:
    """Mean p(yes) of hidden positives vs other candidates, and the AUC of p(yes) as a hidden-positive
    detector (0.5 = no better than chance)."""
    import numpy as np

    pos = [v for (q, d), v in p.items() if d in set(hidden.get(q, []))]
    neg = [v for (q, d), v in p.items() if d not in set(hidden.get(q, []))]
    if not pos or not neg:
        return {"pos": len(pos), "neg": len(neg), "mean_pos": math.nan, "mean_neg": math.nan, "auc": math.nan}
    a, b = np.asarray(pos), np.asarray(neg)
    auc = float(
        ((a[:, None] > b[None, :]).sum() + 0.5 * (a[:, None] == b[None, :]).sum()) / (a.size * b.size)
    )
    return {
        "pos": a.size,
        "neg": b.size,
        "mean_pos": float(a.mean()),
        "mean_neg": float(b.mean()),
        "auc": auc,
    }


def separation_table(info: dict) -> str:
    """The p(yes) separation of `judge_separation` as a table."""
    return table(
        ["candidates", "n", "mean p(yes)"],
        [
            ["hidden positives", info["pos"], f"{info['mean_pos']:.3f}"],
            ["other candidates", info["neg"], f"{info['mean_neg']:.3f}"],
            ["AUC (hidden positive vs other)", "", f"{info['auc']:.3f}"],
        ],
        "llm_judge p(yes) on every judged window candidate (SmolLM2-135M, logprobs)",
    )


def judge_overrides(vllm_python: Path) -> list[str]:
    """The run's LLM for the judge: SmolLM2 on a managed local vLLM server (generation itself off)."""
    return [
        "sources.llm.model=smollm2",
        f"sources.llm.server.python={vllm_python}",
        "sources.llm.concurrency=8",
    ]


def judge_rows(
    out: Path, data: Data, splits: dict, results: dict, tab: dict, ce_pos_all, vllm_python: Path
) -> dict:
    """The llm_judge rows: one real run at the default threshold 0.5 (its p(yes) of every window candidate
    recorded), then the threshold chosen on dev by replaying those p(yes) over `tab`. Adds both rows to
    `results`; returns the p(yes) separation of hidden positives vs other candidates."""
    log("run llm-judge-default: llm_judge (threshold 0.5, SmolLM2-135M on a managed CPU vLLM)")
    rows, manifest, secs = run_negforge(
        out,
        data.beir_dir,
        "llm-judge-default",
        [*judge_overrides(vllm_python), NO_MARGIN],
        [{"type": "llm_judge", "threshold": 0.5}],
    )
    results["llm-judge-default"] = {
        "setting": "llm_judge.threshold=0.5 (default), SmolLM2-135M",
        "seconds": secs,
        **{k: metrics(rows, data.hidden, q) for k, q in splits.items()},
        "verdicts": manifest["filters"]["verdicts"],
    }
    m = results["llm-judge-default"]["all"]
    log(f"  leak {pct(m['leak'])} ({m['leaked']}/{m['hidden']}), filled {pct(m['filled'])}, {secs:.0f} s")
    if tab is None:  # --judge-only: the judge run's own candidate lists
        tab, ce_pos_all = replay_table(rows)
    jp = judge_scores(rows)
    for q, (_, _, cands) in tab.items():
        for c in cands:
            c.judge = jp.get((q, c.doc_id), math.nan)
    info = judge_separation(jp, data.hidden)
    log(
        f"  p(yes): hidden positives {info['mean_pos']:.3f} (n={info['pos']}), other candidates "
        f"{info['mean_neg']:.3f} (n={info['neg']}), AUC {info['auc']:.3f}"
    )
    s_j, lk, fl = choose(tab, ce_pos_all, data.hidden, data.dev, [{"judge": t} for t in JUDGE_THRESHOLDS])
    log(f"tuned on dev llm_judge only: {describe(s_j)} -> dev leak {pct(lk)}, fill {pct(fl)}")
    tuned = {"setting": describe(s_j) + " [replayed from the judge run's p(yes)]", "seconds": 0.0}
    for k, q in splits.items():
        leak, fill, alive = replay(tab, ce_pos_all, data.hidden, q, s_j)
        ref = results["llm-judge-default"][k]
        tuned[k] = {**ref, "leaked": round(leak * ref["hidden"]), "leak": leak, "filled": fill,
                    "negs": math.nan, "survivors": alive}  # fmt: skip
    results["llm-judge-tuned"] = tuned
    return info


def judge_only(out: Path, data: Data, splits: dict, vllm_python: Path, t_start: float) -> int:
    """--judge-only: the no-filter row and the llm_judge rows, printed per split."""
    log("run no-filters")
    rows, _manifest, secs = run_negforge(out, data.beir_dir, "no-filters", [NO_MARGIN], [])
    results = {
        "no-filters": {
            "setting": "(nothing)",
            "seconds": secs,
            **{k: metrics(rows, data.hidden, q) for k, q in splits.items()},
        }
    }
    info = judge_rows(out, data, splits, results, None, None, vllm_python)
    labels = [("no filters", "no-filters"), ("llm_judge 0.5 (SmolLM2)", "llm-judge-default"),
              ("llm_judge tuned (replay)", "llm-judge-tuned")]  # fmt: skip
    print()
    for split in ("test", "dev", "all"):
        b = results["no-filters"][split]
        body = []
        for label, key in labels:
            m = results[key][split]
            cut = 1 - m["leak"] / b["leak"] if b["leak"] else float("nan")
            body.append([label, f"{m['leaked']}/{m['hidden']}", pct(m["leak"]), pct(cut), pct(m["filled"])])
        print(table(["row", "leaked", "leak", "leak cut vs none", "filled"], body,
                    f"[{split}] {b['queries']} queries, {b['hidden']} hidden positives"))  # fmt: skip
        print()
    print(table(["row", "setting (chosen on dev)", "run s"],
                [[lb, results[k]["setting"], f"{results[k]['seconds']:.0f}"] for lb, k in labels], "Settings"))  # fmt: skip
    print()
    print(separation_table(info))
    print(f"Total {time.perf_counter() - t_start:.0f} s")
    (out / "judge_results.json").write_text(json.dumps({"results": results, "llm_judge": info}, indent=2))
    return 0
