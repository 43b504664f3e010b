"""ANCE-style refresh: re-mine negatives with the newest checkpoint, and the train → refresh loop.

A refresh is the same run config with the dense model swapped for the checkpoint: the embedding cache is keyed
by the weights fingerprint, so the corpus is re-encoded only when the weights changed, the index is rebuilt
from those embeddings, the filters run again, and the result is a new run folder (a new dataset revision)
named after the checkpoint's fingerprint.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from negforge.config import RunConfig
from negforge.mining.fingerprint import model_fingerprint
from negforge.pipeline import RunResult, run
from negforge.training.checkpoint import read_checkpoint_info


def refresh_config(
    cfg: RunConfig, checkpoint: str | Path, *, chunk: str | None = None, run_name: str | None = None
) -> RunConfig:
    """The base config re-pointed at `checkpoint` (and optionally a k/n slice of the queries)."""
    ckpt = Path(checkpoint).expanduser().resolve()
    fp = model_fingerprint(ckpt)
    data = cfg.data.model_copy(update={"chunk": chunk}) if chunk else cfg.data
    sources = cfg.sources.model_copy(
        update={"dense": cfg.sources.dense.model_copy(update={"model": str(ckpt)})}
    )
    name = run_name or f"{cfg.run_name}-ance-{fp[:8]}" + (
        f"-chunk{chunk.replace('/', 'of')}" if chunk else ""
    )
    return RunConfig.model_validate(
        {**cfg.model_dump(mode="json"), "run_name": name, "data": data.model_dump(mode="json"),
         "sources": sources.model_dump(mode="json")}
    )  # fmt: skip


def annotate(manifest_path: str | Path, base: RunConfig, checkpoint: str | Path, chunk: str | None) -> dict:
    """Record in the manifest which checkpoint mined this revision and what it was trained on."""
    ckpt = Path(checkpoint).expanduser().resolve()
    info = {
        "base_run": base.run_name,
        "checkpoint": str(ckpt),
        "checkpoint_fingerprint": model_fingerprint(ckpt),
        "checkpoint_record": read_checkpoint_info(ckpt),
        "chunk": chunk,
    }
    path = Path(manifest_path)
    manifest = json.loads(path.read_text())
    manifest["refresh"] = info
    path.write_text(json.dumps(manifest, indent=2, default=str))
    return info


def refresh(
    cfg: RunConfig,
    checkpoint: str | Path,
    *,
    chunk: str | None = None,
    run_name: str | None = None,
    overwrite: bool = False,
) -> RunResult:
    """Re-mine (and re-filter) negatives with `checkpoint`; returns the new revision's run."""
    new = refresh_config(cfg, checkpoint, chunk=chunk, run_name=run_name)
    result = run(new, overwrite=overwrite)
    result.manifest["refresh"] = annotate(result.manifest_path, cfg, checkpoint, chunk)
    return result


@dataclass
class LoopRound:
    round: int
    checkpoint: Path
    fingerprint: str
    run_dir: Path


def ance_loop(cfg: RunConfig, train_cfg, rounds: int, *, out_dir: str | Path) -> list[LoopRound]:
    """train → refresh → train … for `rounds` rounds; each round continues from the previous checkpoint.

    `train_cfg` is a `negforge.training.TrainConfig` whose `dataset` and `output_dir` are set per round.
    """
    from negforge.training.train import train

    out = Path(out_dir)
    data_run = run(cfg)
    model = train_cfg.model
    done: list[LoopRound] = []
    for r in range(1, rounds + 1):
        tc = train_cfg.model_copy(
            update={"dataset": data_run.run_dir, "model": model, "output_dir": out / f"round-{r}"}
        )
        trained = train(tc)
        data_run = refresh(cfg, trained.output_dir, run_name=f"{cfg.run_name}-round{r}")
        model = str(trained.output_dir)
        done.append(LoopRound(r, trained.output_dir, trained.fingerprint, data_run.run_dir))
    return done


def newest_checkpoint(folder: str | Path) -> Path | None:
    """The most recently written negforge checkpoint under `folder` (a folder with negforge_checkpoint.json)."""
    found = [p.parent for p in Path(folder).expanduser().glob("**/negforge_checkpoint.json")]
    return max(found, key=lambda p: (p / "negforge_checkpoint.json").stat().st_mtime, default=None)
