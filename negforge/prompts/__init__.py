"""Prompt templates as versioned files: a system block (fixed, first, so vLLM's prefix cache hits) and a
per-item user block. A template's sha covers both files and the menus it reads (perturbations and attributes;
edit mode: perturbations and their one-sentence edit instructions), so any edit changes the generation cache
key.

Two families: the full SyNeg templates (`from_positive`, `rewrite`: whole passages, several perturbations and
an attribute menu per request) and the compact edit template (`edit`: one sentence, one perturbation, a
system block small enough for a 135M model).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2
import yaml

HERE = Path(__file__).resolve().parent
#: the folder of the shipped templates (every stage that reads a template or digests them names it from here)
PROMPTS_DIR = HERE
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE)), undefined=jinja2.StrictUndefined, keep_trailing_newline=False
)
MODES = {
    "from_positive": "syneg_from_positive",
    "rewrite": "syneg_rewrite",
    "edit": "syneg_edit",
    "span": "syneg_span",
}
# The menus each template reads (part of its sha); the passage templates read both default menus.
_MENUS = {name: ("perturbations.yaml", "perturbations_edit.yaml") for name in ("syneg_edit", "syneg_span")}
_DEFAULT_MENUS = ("perturbations.yaml", "attributes.yaml")


@cache
def perturbations() -> dict[str, dict]:
    return yaml.safe_load((HERE / "perturbations.yaml").read_text(encoding="utf-8"))


@cache
def attributes() -> dict[str, list[str]]:
    return yaml.safe_load((HERE / "attributes.yaml").read_text(encoding="utf-8"))


@cache
def edit_perturbations() -> dict[str, dict[str, str]]:
    """Edit mode's instructions per perturbation name: `edit` (how to change one sentence) and a worked
    example (`query`, `before` -> `after`, `why`)."""
    return yaml.safe_load((HERE / "perturbations_edit.yaml").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    version: str
    sha: str

    def render(
        self,
        *,
        perturbation_names: list[str],
        attrs: dict[str, str],
        query: str,
        positive: str,
        base: str | None,
    ) -> list[dict[str, str]]:
        """Chat messages: the fixed instruction block first, the per-item data last."""
        system = _env.get_template(f"{self.name}.j2").render(perturbations=perturbations()).strip()
        user = _env.get_template(f"{self.name}.user.j2").render(
            perturbations=perturbation_names,
            attributes=attrs,
            query=_as_data(query),
            positive=_as_data(positive),
            base=_as_data(base or ""),
        )
        return [{"role": "system", "content": system}, {"role": "user", "content": user.strip()}]

    def render_edit(
        self,
        *,
        perturbation: str,
        query: str,
        sentence: str,
        target: str | None = None,
        feedback: str | None = None,
    ) -> list[dict[str, str]]:
        """Edit mode's chat messages: the fixed system block first; then the perturbation's worked example
        as a user turn and its answer (small models copy the shape of an example far better than they follow
        a description); then the real user turn, its per-item data last. The template gets `perturbation`,
        `kind` (contradicting / not_answering), `edit` (its perturbations_edit.yaml entry), `query`,
        `sentence`, `target` (the span to change, see generators/edit_targets; the example shows its own
        when a target is sent) and `feedback` (why the previous answer was refused, on a re-ask); the
        compact one shows no query (SmolLM2 copied it into the edit)."""
        system = _env.get_template(f"{self.name}.j2").render().strip()
        ex = edit_perturbations()[perturbation]
        kind = perturbations()[perturbation]["kind"]
        tpl = _env.get_template(f"{self.name}.user.j2")

        def user(q: str, s: str, t: str | None, f: str | None) -> dict[str, str]:
            text = tpl.render(
                perturbation=perturbation, kind=kind, edit=ex, query=_as_data(q), sentence=_as_data(s),
                target=_as_data(t) if t else None, feedback=f,
            )  # fmt: skip
            return {"role": "user", "content": text.strip()}

        answer = json.dumps({"sentence": ex["after"], "reasoning": ex["why"]})
        return [
            {"role": "system", "content": system},
            user(ex["query"], ex["before"], ex.get("target") if target else None, None),
            {"role": "assistant", "content": answer},
            user(query, sentence, target, feedback),
        ]

    def render_span(
        self, *, perturbation: str, sentence: str, target: str, feedback: str | None = None
    ) -> list[dict[str, str]]:
        """Span mode's chat messages (edit mode on a targeted contradicting kind): the fixed system block, the
        perturbation's worked example (its `before`, `target` and `replacement`) as a user turn and its
        answer, then the real sentence and target (and, on a re-ask, `feedback`). The model writes only the
        replacement of the target; negforge splices it (generators/edit_mode)."""
        system = _env.get_template(f"{self.name}.j2").render().strip()
        ex = edit_perturbations()[perturbation]
        tpl = _env.get_template(f"{self.name}.user.j2")

        def user(s: str, t: str, f: str | None) -> dict[str, str]:
            text = tpl.render(
                perturbation=perturbation, edit=ex, sentence=_as_data(s), target=_as_data(t), feedback=f
            )
            return {"role": "user", "content": text.strip()}

        return [
            {"role": "system", "content": system},
            user(ex["before"], ex["target"], None),
            {"role": "assistant", "content": json.dumps({"replacement": ex["replacement"]})},
            user(sentence, target, feedback),
        ]

    def system_block(self) -> str:
        """The fixed instruction block as sent (for prompt budgets)."""
        return _env.get_template(f"{self.name}.j2").render(perturbations=perturbations()).strip()


def _as_data(text: str) -> str:
    """Corpus text is data: strip anything that would close or open our delimiters."""
    return re.sub(r"</?\s*(query|passage|sentence|span)[^>]*>", " ", text, flags=re.IGNORECASE)


@cache
def load_template(mode: str) -> PromptTemplate:
    if mode not in MODES:
        raise ValueError(f"unknown generation mode {mode!r}; use one of {', '.join(MODES)}")
    name = MODES[mode]
    version, sha = template_identity(name, _MENUS.get(name, _DEFAULT_MENUS))
    return PromptTemplate(name=name, version=version, sha=sha)


def template_identity(name: str, menus: tuple[str, ...] = ()) -> tuple[str, str]:
    """(version, sha) of the template `name` in this folder: the version from its system file's first line
    (`version: N`), the sha (12 hex) over its system and user files and the `menus` files it reads."""
    files = [HERE / f"{name}.j2", HERE / f"{name}.user.j2", *(HERE / m for m in menus)]
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    m = re.search(r"version:\s*(\S+)", files[0].read_text(encoding="utf-8").splitlines()[0])
    return (m.group(1) if m else "0"), h.hexdigest()[:12]
