"""ANCE refresh as flows: one refresh, the train → refresh loop, and a poller that refreshes when a new
checkpoint appears (deployed on an interval schedule in prefect.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from negforge.config import RunConfig, load_config
from negforge.flows.build import build_negatives
from negforge.flows.train import train_flow
from negforge.training.refresh import annotate, newest_checkpoint, refresh_config


@flow(name="refresh_negatives", validate_parameters=True)
def refresh_negatives(
    config: dict[str, Any], checkpoint: str, chunk: str | None = None, run_name: str | None = None
) -> dict:
    """Re-mine and re-filter negatives with `checkpoint`; writes a new run folder (dataset revision)."""
    base = RunConfig.model_validate(config)
    new = refresh_config(base, checkpoint, chunk=chunk, run_name=run_name)
    manifest = build_negatives(new.model_dump(mode="json"))
    manifest["refresh"] = annotate(Path(new.run_dir) / "manifest.json", base, checkpoint, chunk)
    return manifest


@flow(name="ance_loop", validate_parameters=True)
def ance_loop_flow(
    config: dict[str, Any], train_config: dict[str, Any], rounds: int, out_dir: str
) -> list[dict]:
    """train → refresh → train … for `rounds` rounds, each round continuing from the previous checkpoint."""
    cfg = RunConfig.model_validate(config)
    manifest = build_negatives(cfg.model_dump(mode="json"))
    model = train_config.get("model", "sentence-transformers/all-MiniLM-L6-v2")
    rounds_done = []
    for r in range(1, rounds + 1):
        tc = {**train_config, "dataset": str(Path(manifest["outputs"]["dataset"]).parent), "model": model,
              "output_dir": str(Path(out_dir) / f"round-{r}")}  # fmt: skip
        ckpt = train_flow(tc)
        manifest = refresh_negatives(
            cfg.model_dump(mode="json"), ckpt["output_dir"], run_name=f"{cfg.run_name}-round{r}"
        )
        model = ckpt["output_dir"]
        rounds_done.append({"round": r, "checkpoint": model, "fingerprint": ckpt["fingerprint"],
                            "run_dir": str(Path(manifest["outputs"]["dataset"]).parent)})  # fmt: skip
    return rounds_done


@flow(name="refresh_on_new_checkpoint", validate_parameters=True)
def refresh_on_new_checkpoint(
    config_path: str, checkpoints_dir: str, chunk: str | None = None, overrides: list[str] | None = None
) -> dict:
    """Poll target: refresh with the newest checkpoint under `checkpoints_dir` unless that was done already."""
    log = get_run_logger()
    cfg = load_config(config_path, overrides or [])
    ckpt = newest_checkpoint(checkpoints_dir)
    if ckpt is None:
        log.info("no negforge checkpoint under %s yet", checkpoints_dir)
        return {"refreshed": False, "reason": "no checkpoint"}
    target = refresh_config(cfg, ckpt, chunk=chunk)
    if (target.run_dir / "manifest.json").exists():
        log.info("%s already refreshed into %s", ckpt, target.run_dir)
        return {"refreshed": False, "reason": "up to date", "run_dir": str(target.run_dir)}
    manifest = refresh_negatives(cfg.model_dump(mode="json"), str(ckpt), chunk=chunk)
    return {"refreshed": True, "run_dir": str(target.run_dir), "checkpoint": str(ckpt),
            "rows": manifest["counts"]["rows"]}  # fmt: skip
