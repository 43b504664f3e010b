"""Plain-text tables and percentages for benchmarks/filter_leak_replay.py's reports."""

from __future__ import annotations


def table(headers: list[str], rows: list[list], title: str = "") -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    line = "+" + "+".join("-" * (x + 2) for x in w) + "+"

    def fmt(r: list[str]) -> str:
        just = (c.ljust(x) if i == 0 else c.rjust(x) for i, (c, x) in enumerate(zip(r, w, strict=True)))
        return "| " + " | ".join(just) + " |"

    out = [title] if title else []
    out += [line, fmt(cells[0]), line, *(fmt(r) for r in cells[1:]), line]
    return "\n".join(out)


def pct(x: float) -> str:
    return "n/a" if x != x else f"{100 * x:.1f}%"
