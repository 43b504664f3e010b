"""Prompt templates as versioned files: a system block (fixed, first, so vLLM's prefix cache hits) and a
per-item user block. A template's sha covers both files and the perturbation and attribute menus, so any edit
changes the generation cache key."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2
import yaml

HERE = Path(__file__).resolve().parent
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(HERE)), undefined=jinja2.StrictUndefined, keep_trailing_newline=False
)
MODES = {"from_positive": "syneg_from_positive", "rewrite": "syneg_rewrite"}


@cache
def perturbations() -> dict[str, dict]:
    return yaml.safe_load((HERE / "perturbations.yaml").read_text(encoding="utf-8"))


@cache
def attributes() -> dict[str, list[str]]:
    return yaml.safe_load((HERE / "attributes.yaml").read_text(encoding="utf-8"))


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


def _as_data(text: str) -> str:
    """Corpus text is data: strip anything that would close or open our delimiters."""
    return re.sub(r"</?\s*(query|passage)[^>]*>", " ", text, flags=re.IGNORECASE)


@cache
def load_template(mode: str) -> PromptTemplate:
    if mode not in MODES:
        raise ValueError(f"unknown generation mode {mode!r}; use one of {', '.join(MODES)}")
    name = MODES[mode]
    files = [
        HERE / f"{name}.j2",
        HERE / f"{name}.user.j2",
        HERE / "perturbations.yaml",
        HERE / "attributes.yaml",
    ]
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
    head = files[0].read_text(encoding="utf-8").splitlines()[0]
    m = re.search(r"version:\s*(\S+)", head)
    return PromptTemplate(name=name, version=m.group(1) if m else "0", sha=h.hexdigest()[:12])
