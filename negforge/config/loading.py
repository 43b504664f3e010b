"""From YAML to a validated `RunConfig`: reading the file, `--set key=value` overrides, data paths
resolved against the config's folder, validation errors phrased per key, and `annotated_yaml`, the config
printed back with every default and what each key means."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from negforge.config.base import ConfigError
from negforge.config.run import RunConfig


def annotated_yaml(cfg: BaseModel) -> str:
    """The config as YAML with every default filled in, each key followed by `# description` (its Field's
    description, or the section's docstring first line)."""
    lines: list[str] = []

    def doc_of(model: type[BaseModel]) -> str:
        return (model.__doc__ or "").strip().splitlines()[0] if model.__doc__ else ""

    def emit(model: BaseModel, indent: int) -> None:
        fields = type(model).model_fields
        for name, info in fields.items():
            value = getattr(model, name)
            pad = "  " * indent
            desc = info.description or ""
            if isinstance(value, BaseModel):
                d = desc or doc_of(type(value))
                lines.append(f"{pad}{name}:" + (f"  # {d}" if d else ""))
                emit(value, indent + 1)
            elif isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
                lines.append(f"{pad}{name}:" + (f"  # {desc}" if desc else ""))
                for v in value:
                    dumped = json.dumps(v.model_dump(mode="json"))
                    d = doc_of(type(v))
                    lines.append(f"{pad}  - {dumped}" + (f"  # {d}" if d else ""))
            else:
                dumped = json.dumps(
                    value if not isinstance(value, BaseModel) else value.model_dump(mode="json")
                )
                if isinstance(value, (list, dict, tuple)) or value is None or isinstance(value, str):
                    dumped = json.dumps(_jsonable(value))
                lines.append(f"{pad}{name}: {dumped}" + (f"  # {desc}" if desc else ""))

    emit(cfg, 0)
    return "\n".join(lines) + "\n"


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    node = raw
    parts = dotted.split(".")
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"--set {dotted}: {p!r} is a value, not a section")
        node = nxt
    node[parts[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """`key.sub=value` strings, values read as YAML scalars (so 5 is an int, true a bool, [a,b] a list)."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. selection.num_negatives=3")
        key, _, value = item.partition("=")
        try:
            parsed = yaml.safe_load(value) if value.strip() else ""
        except yaml.YAMLError as e:
            why = getattr(e, "problem", None) or str(e).splitlines()[0]
            raise ConfigError(
                f"--set {key.strip()}: the value {value!r} is not a YAML scalar or list ({why}); quote a text "
                f"as {key.strip()}='\"...\"'"
            ) from None
        if key.strip() == "run_name" and isinstance(parsed, int | float) and not isinstance(parsed, bool):
            parsed = value.strip()  # `--set run_name=2024` is the folder name 2024, not a number
        out.append((key.strip(), parsed))
    return out


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid config"]
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "(top level)"
        if e["type"] == "extra_forbidden":
            lines.append(
                f"  - unknown key `{key}` (check spelling; `negforge run --help` lists the sections)"
            )
        elif e["type"] == "missing":
            lines.append(f"  - missing key `{key}`")
        else:
            lines.append(f"  - `{key}` = {e.get('input')!r}: {e['msg']}")
    return "\n".join(lines)


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, **raw_extra: Any
) -> RunConfig:
    """Read YAML, apply `--set` overrides, validate. Relative data paths resolve against the YAML's folder."""
    raw: dict[str, Any] = {}
    source = "config"
    if path is not None:
        p = Path(path)
        source = str(p)
        if not p.is_file():
            raise ConfigError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError(f"{p}: not valid YAML: {e}") from None
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of sections (data:, sources:, ...)")
        raw = loaded
        _resolve_data_paths(raw, p.parent)
    raw.update(raw_extra)
    for key, value in parse_overrides(overrides or []):
        _set_dotted(raw, key, value)
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(_format_errors(e, source)) from None


def _resolve_data_paths(raw: dict[str, Any], base: Path) -> None:
    adapt = raw.get("adapt")
    if isinstance(adapt, dict):
        for section, key in (("generate", "fewshot"), ("eval", "path")):
            sub = adapt.get(section)
            if not isinstance(sub, dict):
                continue
            v = sub.get(key)
            if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
                sub[key] = str((base / v).resolve())
    for f in raw.get("filters") or []:
        v = f.get("answers") if isinstance(f, dict) else None
        if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
            f["answers"] = str((base / v).resolve())
    data = raw.get("data")
    if not isinstance(data, dict):
        return
    for key in ("path", "qrels", "queries", "corpus"):
        v = data.get(key)
        if isinstance(v, str) and v and not Path(v).expanduser().is_absolute():
            candidate = (base / v).resolve()
            # hf names like "org/name" stay as they are unless such a local path exists
            if data.get("format") not in ("hf", "corpus") or candidate.exists():
                data[key] = str(candidate)
