"""Does any written negative still state its positive's answer? A check over a finished run's rich dataset.

    python benchmarks/answer_sentence_check.py runs/demo
    python benchmarks/answer_sentence_check.py /tmp/qual/runs/quality-scifact-test-rules --json out.json

For every rule or LLM negative of the positive (a contradiction), kept or dropped, it checks that
(1) the answer sentence it edited (`generation.span`, chosen per query from the positive's body) is not in the
passage word for word, (2) no sentence of the passage is that sentence after the normalisation negforge's identity
rule uses, and (3) its base is one of the query's positives. Prints the counts per source and verdict and up to --examples failures; exits 1 when a *kept* verified
negative fails (a false negative by construction).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path


def sentences(text: str) -> list[str]:
    from negforge.generators.spans import split_sentences

    return [text[a:b] for a, b in split_sentences(text)]


def check_row(row: dict) -> list[dict]:
    """One finding per written contradiction of the row: where it stands (kept/dropped), and its problem."""
    from negforge.text_identity import norm_text

    out = []
    positives = set(row["positive_ids"])
    for where, items in (("kept", row["negatives"]), ("dropped", row["dropped"])):
        for n in items:
            g = n.get("generation") or {}
            if n["source"] not in ("rules", "llm") or g.get("perturbation_kind") != "contradicting":
                continue
            span, text = g.get("span") or "", n.get("text") or ""
            problem = None
            if span and span in text:
                problem = "answer_sentence_unchanged"
            elif span and norm_text(span) in {norm_text(s) for s in sentences(text)}:
                problem = "answer_sentence_unchanged_normalised"
            if g.get("base_doc_id") not in positives:
                problem = "base_is_not_a_positive"
            out.append(
                {
                    "query_id": row["query_id"], "source": n["source"], "where": where,
                    "verified": g.get("verified"), "reason": n.get("reason"), "problem": problem,
                    "span": span, "replacement": g.get("replacement"), "perturbation": g.get("perturbation"),
                }
            )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder (its dataset/ holds the rich config)")
    ap.add_argument("--examples", type=int, default=5)
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    from datasets import load_from_disk

    dataset = a.run / "dataset" if (a.run / "dataset").is_dir() else a.run
    rows = load_from_disk(str(dataset))["rich"].to_list()
    found = [f for r in rows for f in check_row(r)]
    tally = Counter((f["source"], f["where"], f["problem"] or "ok") for f in found)
    print(f"{a.run}: {len(rows)} queries, {len(found)} written contradictions (rules, llm), kept and dropped")
    for (source, where, verdict), n in sorted(tally.items()):
        print(f"  {source:6} {where:8} {verdict:40} {n:5}")
    bad = [f for f in found if f["where"] == "kept" and f["verified"] and f["problem"]]
    print(f"kept verified negatives that keep the answer sentence unchanged: {len(bad)}")
    for f in bad[: a.examples]:
        print(f"  {f['query_id']} {f['source']} {f['perturbation']}: {f['span'][:120]!r}")
    kept = [f for f in found if f["where"] == "kept"]
    for f in kept[: a.examples]:
        print(
            f"  example kept {f['source']} {f['perturbation']}: {f['span'][:90]!r} -> {(f['replacement'] or '')[:90]!r}"
        )
    if a.json:
        a.json.write_text(
            json.dumps({"tally": {"/".join(k): v for k, v in tally.items()}, "bad": bad}, indent=1)
        )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
