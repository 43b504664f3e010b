"""Dataset card: Hub metadata plus the story of the run (sources, models, prompts, filters, numbers, plots).

Everything on the card is read from the run's manifest and its Parquet files, never typed by hand, so the
card cannot drift from the data it describes. Sections the manifest lacks are left out, not invented.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import jinja2
import pyarrow.parquet as pq
import yaml

from negforge.publish.run_files import RunFiles

TEMPLATE = "dataset_card.md.j2"
TASK_CATEGORIES = ["sentence-similarity", "text-retrieval"]
BASE_TAGS = ["sentence-transformers", "hard-negatives", "negforge"]


def default_license(manifest: dict) -> str:
    """Licence named by the run (manifest or config), else "other": the data's licence is the input's, which
    negforge cannot know."""
    cfg = manifest.get("config") or {}
    for value in (
        manifest.get("license"),
        cfg.get("license"),
        (cfg.get("output") or {}).get("license"),
        (cfg.get("data") or {}).get("license"),
    ):
        if isinstance(value, str) and value:
            return value
    return "other"


def _size_category(n: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return label
    return "100K<n<1M" if n < 1_000_000 else "n>1M"


def card_metadata(run: RunFiles, license: str | None = None) -> dict[str, Any]:
    """YAML front matter: the `configs` list maps each config to its Parquet files so the Hub viewer and
    `load_dataset(repo, config)` find them; `negforge` ties the card to its run and content digest."""
    configs = []
    for config, splits in run.parquet.items():
        entry: dict[str, Any] = {"config_name": config}
        if config == "triplet":
            entry["default"] = True
        entry["data_files"] = [
            {"split": split, "path": f"data/{config}/{split}-*.parquet"} for split in splits
        ]
        configs.append(entry)
    rows = row_counts(run)
    main_rows = rows.get("rich") or max(rows.values(), default=0)
    tags = list(BASE_TAGS)
    if run.manifest.get("generation"):
        tags.append("synthetic")
    return {
        "license": license or default_license(run.manifest),
        "task_categories": TASK_CATEGORIES,
        "tags": tags,
        "size_categories": [_size_category(main_rows)],
        "pretty_name": f"negforge hard negatives: {run.run_name}",
        "configs": configs,
        "negforge": {
            "run_name": run.run_name,
            "config_fingerprint": run.fingerprint,
            "version": run.manifest.get("negforge_version"),
            "content_digest": run.digest(),
        },
    }


def row_counts(run: RunFiles) -> dict[str, int]:
    """Rows per config, read from the Parquet footers (the files shipped, not the manifest's claim)."""
    return {
        config: sum(pq.ParquetFile(p).metadata.num_rows for p in splits.values())
        for config, splits in run.parquet.items()
    }


def _generation_from_rows(run: RunFiles) -> dict[str, Any]:
    """Prompt templates and perturbations actually used, read from the rich rows' generation metadata."""
    rich = (run.parquet.get("rich") or {}).get("train")
    if rich is None:
        return {}
    schema = pq.read_schema(rich)
    if "negatives" not in schema.names:
        return {}
    templates: Counter[str] = Counter()
    perturbations: Counter[str] = Counter()
    models: set[str] = set()
    for batch in pq.ParquetFile(rich).iter_batches(columns=["negatives"]):
        for negs in batch.column(0).to_pylist():
            for neg in negs or []:
                gen = neg.get("generation")
                if not gen:
                    continue
                name = gen.get("template") or "?"
                version = gen.get("template_version") or "?"
                sha = (gen.get("template_sha") or "")[:12]
                templates[f"{name} v{version}" + (f" ({sha})" if sha else "")] += 1
                if gen.get("perturbation"):
                    perturbations[gen["perturbation"]] += 1
                if gen.get("model"):
                    fp = gen.get("model_fingerprint")
                    models.add(gen["model"] + (f" ({fp})" if fp else ""))
    return {"templates": dict(templates), "perturbations": dict(perturbations), "models": sorted(models)}


def _flatten(d: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Nested manifest sections (filters, thresholds) as dotted key/value rows, whatever their shape."""
    if isinstance(d, dict):
        out: list[tuple[str, Any]] = []
        for k, v in d.items():
            out += _flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(d, list) and d and all(isinstance(x, dict) for x in d):
        out = []
        for i, v in enumerate(d):
            name = v.get("name") or v.get("filter") or str(i)
            out += _flatten({k: x for k, x in v.items() if k not in ("name", "filter")}, f"{prefix}.{name}")
        return out
    return [(prefix, d)]


def card_context(run: RunFiles, *, license: str | None = None, repo_id: str | None = None) -> dict[str, Any]:
    """Everything the template shows, with missing manifest sections as empty values."""
    m = run.manifest
    cfg = m.get("config") or {}
    sources_cfg = cfg.get("sources") or {}
    sources = {name: s for name, s in sources_cfg.items() if isinstance(s, dict) and s.get("enabled")}
    counts = m.get("counts") or {}
    generation = m.get("generation") or {}
    gen_rows = _generation_from_rows(run)
    models = []
    for name, info in (m.get("models") or {}).items():
        if isinstance(info, dict) and (info.get("name") or info.get("model")):
            models.append(
                {
                    "role": name,
                    "name": info.get("name") or info.get("model") or "",
                    "fingerprint": info.get("fingerprint") or info.get("model_fingerprint") or "",
                    "detail": info.get("backend") or "",
                }
            )
    if generation:
        models.append(
            {
                "role": "llm",
                "name": generation.get("served_model") or generation.get("model") or "",
                "fingerprint": generation.get("model_fingerprint") or "",
                "detail": "synthetic negatives",
            }
        )
    prompt_versions = generation.get("templates") or generation.get("prompt_templates") or {}
    data = m.get("data") or {}
    data_cfg = cfg.get("data") or {}
    return {
        "meta": card_metadata(run, license),
        "run": run,
        "repo_id": repo_id,
        "data": {
            "format": data.get("format") or data_cfg.get("format"),
            "name": Path(str(data_cfg.get("path") or "")).name or None,
            "split": data_cfg.get("split"),
            "queries": data.get("queries"),
            "positives": data.get("positives"),
            "corpus_docs": data.get("corpus_docs"),
        },
        "sources": sources,
        "selection": cfg.get("selection") or {},
        "score_by": m.get("score_by"),
        "models": models,
        "prompt_versions": prompt_versions,
        "generation_rows": gen_rows,
        "generation_counts": generation.get("counts") or {},
        "generation_rejected": generation.get("rejected") or {},
        "filters": _flatten(m.get("filters")) if m.get("filters") else [],
        "rows": row_counts(run),
        "candidates": counts.get("candidates") or {},
        "selected": counts.get("selected") or {},
        "funnel": counts.get("funnel") or {},
        "short_queries": counts.get("short_queries"),
        "ntuple_dropped": counts.get("ntuple_rows_dropped_short"),
        "score_summary": m.get("score_summary") or [],
        "notes": m.get("notes") or [],
        "versions": m.get("versions") or {},
        "seed": m.get("seed"),
        "created_at": m.get("created_at"),
        "plots": [f"images/{p.name}" for p in run.plots],
    }


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render_card(run: RunFiles, *, license: str | None = None, repo_id: str | None = None) -> str:
    """README.md for the Hub: YAML front matter, then the card body from the Jinja2 template."""
    ctx = card_context(run, license=license, repo_id=repo_id)
    front = yaml.safe_dump(ctx["meta"], sort_keys=False, allow_unicode=True)
    body = _env().get_template(TEMPLATE).render(**ctx)
    return f"---\n{front}---\n\n{body}"


def read_card_metadata(text: str) -> dict[str, Any]:
    """YAML front matter of a README.md ({} when it has none or it does not parse)."""
    if not text.startswith("---"):
        return {}
    parts = text.split("\n---", 1)
    try:
        meta = yaml.safe_load(parts[0][3:]) if len(parts) == 2 else None
    except yaml.YAMLError:
        return {}
    return meta if isinstance(meta, dict) else {}
