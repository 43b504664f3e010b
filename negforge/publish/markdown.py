"""Data text made inert in Markdown: report.md and the Prefect artifacts show it, never render it.

CommonMark passes raw HTML through, so a passage holding `<script>` or `<img onerror=...>` would run in any
viewer of report.md (the same text is a Prefect artifact), and `[x](javascript:...)` or `# heading` would
restyle it. `md` backslash-escapes every ASCII punctuation character (CommonMark §2.4: any ASCII punctuation
may be escaped, and an escaped `<` never opens a tag) and folds line breaks to spaces, so the text reads as
written; `code` wraps a value in a code span whose backtick fence is longer than any run inside it.
"""

from __future__ import annotations

import re
import string

_PUNCT = re.compile("([" + re.escape(string.punctuation) + "])")


def md(value: object) -> str:
    """`value` as literal Markdown inline text: ASCII punctuation backslash-escaped, whitespace runs one space."""
    return _PUNCT.sub(r"\\\1", " ".join(str(value).split()))


def code(value: object) -> str:
    """`value` as a Markdown code span (shown literally, never parsed); line breaks become spaces."""
    text = " ".join(str(value).split())
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text else ""
    return f"{fence}{pad}{text}{pad}{fence}"
