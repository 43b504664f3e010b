"""Fine-tune a sentence-transformers bi-encoder on a negforge dataset, one curriculum stage after another.

The dataset is read as negforge wrote it (no column edits besides dropping `label` for losses that do not
use it), so what is measured downstream is the negatives, not a reshuffled copy of them. The checkpoint
carries `negforge_checkpoint.json`: its weights fingerprint and exactly what it was trained on.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from negforge.mining.fingerprint import resolve_model_path
from negforge.training.checkpoint import checkpoint_fingerprint, write_checkpoint_info
from negforge.training.prompts import for_training

Loss = Literal["mnrl", "cached_mnrl", "marginmse"]
IN_BATCH_LOSSES = ("mnrl", "cached_mnrl")


class TrainError(ValueError):
    """The dataset cannot be trained on as asked (missing config, no labels for MarginMSE, no rows)."""


class TrainConfig(BaseModel):
    """One fine-tuning job; `curriculum` (when given) replaces `config` with stages trained in order."""

    model_config = ConfigDict(extra="forbid")

    dataset: Path = Field(description="a negforge run folder (runs/<name>) or its dataset/ folder")
    config: str = Field("triplet", description="dataset config to train on: triplet or n-tuple")
    curriculum: list[str] = Field(
        default_factory=list,
        description="configs trained one after the other on the same model, e.g. easy → medium → hard",
    )
    model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="base model: local folder or hub id (the MiniLM resolves to the offline package)",
    )
    loss: Loss = Field("mnrl", description="mnrl | cached_mnrl (GradCache) | marginmse (needs `label`)")
    batch_size: int = Field(32, ge=1)
    mini_batch_size: int = Field(16, ge=1, description="cached_mnrl only: GradCache mini-batch size")
    epochs: float = Field(1.0, gt=0, description="epochs per stage (ignored when max_steps is set)")
    max_steps: int | None = Field(None, ge=1, description="optimizer steps per stage")
    learning_rate: float = Field(2e-5, gt=0)
    warmup_ratio: float = Field(0.1, ge=0, le=1)
    seed: int = 13
    max_seq_length: int | None = Field(256, ge=8)
    output_dir: Path = Field(Path("checkpoints/negforge"), description="where the checkpoint is saved")
    query_prompt: str | None = Field(
        None, description="prepended to queries (anchor); None: the run manifest's sources.dense.query_prompt"
    )
    corpus_prompt: str | None = Field(
        None, description="prepended to passages; None: the run manifest's sources.dense.corpus_prompt"
    )

    @model_validator(mode="after")
    def _in_batch_needs_pairs(self) -> TrainConfig:
        if self.loss in IN_BATCH_LOSSES and self.batch_size < 2:
            raise ValueError("in-batch negative losses need batch_size >= 2")
        return self

    @property
    def stages(self) -> list[str]:
        return list(self.curriculum) or [self.config]


@dataclass
class TrainResult:
    output_dir: Path
    fingerprint: str
    steps: int
    info: dict[str, Any] = field(default_factory=dict)


def resolve_dataset(path: str | Path) -> tuple[Path, dict | None]:
    """(dataset folder, manifest or None) from a run folder or a dataset folder."""
    p = Path(path).expanduser()
    dataset_dir = p / "dataset" if (p / "dataset").is_dir() else p
    if not (dataset_dir / "dataset_dict.json").is_file():
        raise TrainError(f"{p}: not a negforge run or dataset folder (no dataset_dict.json)")
    manifest_path = dataset_dir.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else None
    return dataset_dir.resolve(), manifest


def prepare_stage(dd: Any, name: str, loss: Loss) -> Any:
    """The stage's rows as the loss wants them: `label` dropped for MNRL, required and complete for MarginMSE."""
    if name not in dd:
        raise TrainError(f"dataset has no config {name!r}; it has {', '.join(sorted(dd))}")
    ds = dd[name]
    if "anchor" not in ds.column_names or "positive" not in ds.column_names:
        raise TrainError(f"config {name!r} is not a trainer config (columns: {', '.join(ds.column_names)})")
    if loss in IN_BATCH_LOSSES:
        if "label" in ds.column_names:
            ds = ds.remove_columns("label")
    else:
        if "label" not in ds.column_names:
            raise TrainError(
                f"config {name!r} has no `label` column: MarginMSE needs scores (build with output.scores=true)"
            )
        if not [c for c in ds.column_names if c.startswith("negative")]:
            raise TrainError(f"config {name!r} has no negative column: MarginMSE needs one")

        def complete(row: dict) -> bool:
            lab = row["label"]
            return lab is not None and not (isinstance(lab, list) and any(x is None for x in lab))

        ds = ds.filter(complete)
    if ds.num_rows == 0:
        raise TrainError(f"config {name!r} has no usable rows for {loss}")
    return ds


def make_loss(model: Any, cfg: TrainConfig) -> Any:
    from sentence_transformers.sentence_transformer import losses

    if cfg.loss == "mnrl":
        return losses.MultipleNegativesRankingLoss(model)
    if cfg.loss == "cached_mnrl":
        return losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=cfg.mini_batch_size)
    return losses.MarginMSELoss(model)


def _training_args(
    cfg: TrainConfig, work_dir: str, progress: bool, prompts: dict[str, str] | None = None
) -> Any:
    import torch
    import transformers
    from sentence_transformers import SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers

    # transformers 5 takes the warmup ratio as a float `warmup_steps`; 4.x has `warmup_ratio`
    warmup: dict[str, Any] = (
        {"warmup_steps": float(cfg.warmup_ratio)}
        if int(transformers.__version__.split(".")[0]) >= 5
        else {"warmup_ratio": cfg.warmup_ratio}
    )
    return SentenceTransformerTrainingArguments(
        output_dir=work_dir,
        per_device_train_batch_size=cfg.batch_size,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        learning_rate=cfg.learning_rate,
        **warmup,
        seed=cfg.seed,
        data_seed=cfg.seed,
        # in-batch negatives: a duplicate text in a batch would be a false negative for its twin
        batch_sampler=BatchSamplers.NO_DUPLICATES
        if cfg.loss in IN_BATCH_LOSSES
        else BatchSamplers.BATCH_SAMPLER,
        save_strategy="no",
        report_to="none",
        logging_steps=10,
        disable_tqdm=not progress,
        dataloader_pin_memory=torch.cuda.is_available(),
        prompts=prompts or None,
    )


def _versions() -> dict[str, str]:
    import sentence_transformers
    import torch
    import transformers

    return {
        "sentence_transformers": sentence_transformers.__version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
    }


def train(cfg: TrainConfig, *, progress: bool = False) -> TrainResult:
    """Train every stage in order on one model, save it to `cfg.output_dir` with its record; returns the result."""
    from datasets import load_from_disk
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
    from transformers import PrinterCallback, set_seed

    from negforge.mining.encoders import pick_device

    t0 = time.perf_counter()
    dataset_dir, manifest = resolve_dataset(cfg.dataset)
    dd = load_from_disk(str(dataset_dir))
    stage_data = [(name, prepare_stage(dd, name, cfg.loss)) for name in cfg.stages]  # fail before loading

    prompts = for_training(cfg.query_prompt, cfg.corpus_prompt, manifest)
    base_path = resolve_model_path(cfg.model)
    set_seed(cfg.seed)
    model = SentenceTransformer(str(base_path), device=pick_device(), local_files_only=True)
    if cfg.max_seq_length:
        model.max_seq_length = cfg.max_seq_length
    loss = make_loss(model, cfg)

    stages: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="negforge-train-") as work:
        for name, ds in stage_data:
            args = _training_args(cfg, work, progress, prompts.column_prompts(ds.column_names))
            trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=ds, loss=loss)
            if not progress:  # without tqdm, transformers prints every log dict instead
                trainer.remove_callback(PrinterCallback)
            out = trainer.train()
            stages.append(
                {"config": name, "rows": ds.num_rows, "steps": int(out.global_step),
                 "training_loss": float(out.training_loss)}
            )  # fmt: skip

    out_dir = Path(cfg.output_dir).expanduser()
    out_dir.mkdir(parents=True, exist_ok=True)
    if prompts.query or prompts.corpus:  # saved with the model: encode_query/encode_document apply them
        model.prompts = {**model.prompts, "query": prompts.query, "document": prompts.corpus}
    model.save(str(out_dir))
    fingerprint = checkpoint_fingerprint(out_dir)
    steps = sum(s["steps"] for s in stages)
    info = {
        "negforge_checkpoint": 1,
        "fingerprint": fingerprint,
        "base_model": cfg.model,
        "base_fingerprint": checkpoint_fingerprint(base_path),
        "dataset": str(dataset_dir),
        "run_name": (manifest or {}).get("run_name"),
        "config_fingerprint": (manifest or {}).get("config_fingerprint"),
        "loss": cfg.loss,
        "prompts": prompts.as_dict(),
        "stages": stages,
        "steps": steps,
        "seed": cfg.seed,
        "train_config": cfg.model_dump(mode="json"),
        "versions": _versions(),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    write_checkpoint_info(out_dir, info)
    return TrainResult(out_dir.resolve(), fingerprint, steps, info)
