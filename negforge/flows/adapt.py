"""`adapt` flow: thin wiring over negforge.adapt (a corpus alone in, an adapted retriever out)."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from negforge.adapt.pipeline import adapt
from negforge.config import RunConfig, load_config
from negforge.flows.driver_task import driver_task

_adapt = driver_task(adapt, name="adapt")


@flow(name="adapt", validate_parameters=True)
def adapt_flow(config: dict[str, Any], overwrite: bool = False, train: bool = True) -> dict:
    """Write queries for the corpus, filter them, mine, train and evaluate as `config` (a RunConfig with
    data.format=corpus, as a dict) says; returns the adapt manifest (adapt.json)."""
    cfg = RunConfig.model_validate(config)
    res = _adapt(cfg, overwrite=overwrite, train=train)
    get_run_logger().info("adapt %s: %s", cfg.run_name, res.adapt_dir / "adapt.json")
    return res.manifest


@flow(name="adapt_from_file")
def adapt_from_file(
    config_path: str, overrides: list[str] | None = None, train: bool = True, overwrite: bool = False
) -> dict:
    """`adapt` on a YAML config in the worker's checkout (for deployments)."""
    cfg = load_config(config_path, overrides or [])
    return adapt_flow(cfg.model_dump(mode="json"), overwrite=overwrite, train=train)
