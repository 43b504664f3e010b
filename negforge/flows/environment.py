"""The Prefect environment negforge runs in: no telemetry, no network, a private database, a quiet console.

`negforge run` is often started on a machine without internet (or in CI, or twice at once in two terminals).
Left to its defaults, Prefect then prints errors that have nothing to do with the run:

- the ephemeral server's telemetry service posts to sens-o-matic.prefect.io and logs `Failed to send
  telemetry` (PREFECT_SERVER_ANALYTICS_ENABLED), and the SDK prints a telemetry notice and queues usage
  events on first import in a terminal (DO_NOT_TRACK);
- two runs without PREFECT_API_URL each start an ephemeral server on the same SQLite file
  (~/.prefect/prefect.db); the two servers migrate and write it at the same time and one of them logs a
  `database is locked` traceback;
- library loggers that set their own level to DEBUG (bm25s) print through Prefect's root console handler.

`configure_prefect` fixes all three before Prefect reads its settings. A value the user set explicitly (an
environment variable, the active Prefect profile, prefect.toml, pyproject.toml or .env: Prefect's own
sources) always wins. Without an API URL and without a database of the user's choosing, the ephemeral
server gets an in-memory SQLite database: private to the run, nothing to lock, nothing to clean up (run
history is not kept; point PREFECT_API_URL at a server, or set PREFECT_SERVER_DATABASE_CONNECTION_URL, to
keep it). Importing `negforge.flows` calls it, so every flow entry point gets it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

# (Prefect setting, environment variable, value)
SAFE_SETTINGS: tuple[tuple[str, str, str], ...] = (
    ("server.analytics_enabled", "PREFECT_SERVER_ANALYTICS_ENABLED", "false"),
    ("telemetry.enable_resource_metrics", "PREFECT_TELEMETRY_ENABLE_RESOURCE_METRICS", "false"),
    # the ephemeral server needs more than Prefect's 20 s on a busy small machine
    ("server.ephemeral.startup_timeout_seconds", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120"),
)
# a private database for an ephemeral server; block registration is memoized by database URL, and the
# in-memory URL is the same every run, so memoizing would skip registration in every fresh database
PRIVATE_DATABASE: tuple[tuple[str, str, str], ...] = (
    (
        "server.database.connection_url",
        "PREFECT_SERVER_DATABASE_CONNECTION_URL",
        "sqlite+aiosqlite:///:memory:",
    ),
    ("server.memoize_block_auto_registration", "PREFECT_SERVER_MEMOIZE_BLOCK_AUTO_REGISTRATION", "false"),
)
# any of these set by the user means: their database, leave it alone
_USER_DATABASE_FIELDS = {"connection_url", "driver", "host", "port", "user", "name", "password"}


def _is_set(settings: object, path: str) -> bool:
    """Whether a dotted Prefect setting was given by any source (env, profile, toml, .env)."""
    *parents, field = path.split(".")
    for part in parents:
        settings = getattr(settings, part)
    return field in settings.model_fields_set  # type: ignore[attr-defined]


def _apply(environ: MutableMapping[str, str], name: str, value: str) -> bool:
    if name in environ:
        return False
    environ[name] = value
    return True


def configure_prefect(logging_level: str | None = None) -> dict[str, str]:
    """Set negforge's safe Prefect settings in this process (and so its children), unless the user set them.

    Telemetry off (server analytics, SDK events, resource metrics), a longer ephemeral startup timeout, an
    in-memory database for an ephemeral server when no API URL and no database is configured, and
    `logging_level` for Prefect's loggers when given. Call it before the first flow runs; importing
    `negforge.flows` does. Safe to call again. Returns the environment variables it set.
    """
    changed: dict[str, str] = {}
    # Not a Prefect setting: read from the environment when Prefect is imported (first-run notice, events).
    if _apply(os.environ, "DO_NOT_TRACK", "1"):
        changed["DO_NOT_TRACK"] = "1"

    from prefect.settings import Settings

    current = Settings()  # Prefect's own sources, in its own precedence
    wanted = list(SAFE_SETTINGS)
    if logging_level:
        wanted.append(("logging.level", "PREFECT_LOGGING_LEVEL", logging_level))
    if current.api.url is None and not (current.server.database.model_fields_set & _USER_DATABASE_FIELDS):
        wanted.extend(PRIVATE_DATABASE)
    for path, name, value in wanted:
        if not _is_set(current, path) and _apply(os.environ, name, value):
            changed[name] = value

    if changed and "prefect.context" in sys.modules:
        # Prefect built its settings on import; rebuild them from the environment we just completed
        import prefect.context

        prefect.context.refresh_global_settings_context()
    logging_configured = "prefect.main" in sys.modules
    import prefect.main  # Prefect configures logging on this import

    if logging_configured and changed:
        from prefect.logging.configuration import setup_logging

        setup_logging(incremental=True)  # new levels on the handlers Prefect already made
    quiet_foreign_loggers()
    watch_ephemeral_server()
    return changed


class _WatchedSubprocess:
    """The `subprocess` module as Prefect's server module sees it, with Popen under parent_watch."""

    def __getattr__(self, name: str) -> Any:
        import subprocess

        return getattr(subprocess, name)

    @staticmethod
    def Popen(args: list[str], **kwargs: Any) -> Any:
        import subprocess

        watched = [sys.executable, "-m", "negforge.generators.parent_watch", str(os.getpid()), "--", *args]
        return subprocess.Popen(watched, **kwargs)


def watch_ephemeral_server() -> None:
    """Start Prefect's temporary API server (no PREFECT_API_URL set) under negforge's parent_watch, so it ends
    with the run even after a kill -9; otherwise it keeps listening, unauthenticated, on loopback."""
    try:
        import prefect.server.api.server as server
    except ImportError:  # pragma: no cover - prefect without its server extra
        return
    if not isinstance(server.subprocess, _WatchedSubprocess):
        server.subprocess = _WatchedSubprocess()  # type: ignore[assignment]  # the module's stand-in, by design


class RootLevelFilter(logging.Filter):
    """Lets a record through Prefect's root console handler only at the root logger's level or above.

    A library logger with its own level (bm25s sets DEBUG on import) otherwise prints every debug line
    through the handler Prefect puts on the root logger. Prefect's own loggers keep their levels.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """True for Prefect's records and records at or above the root level."""
        if record.name == "prefect" or record.name.startswith("prefect."):
            return True
        return record.levelno >= logging.getLogger().getEffectiveLevel()


def quiet_foreign_loggers() -> None:
    """Put a `RootLevelFilter` on the console handlers Prefect installed on the root logger (once)."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, PrefectConsoleHandler) and not any(
            isinstance(f, RootLevelFilter) for f in handler.filters
        ):
            handler.addFilter(RootLevelFilter())


class UserErrorFilter(logging.Filter):
    """Keeps a user's mistake (a bad input file, a config error) out of Prefect's console: the CLI prints it
    as one line naming the file or key, where Prefect would print it with two tracebacks and the engine's
    state messages. Records without such an error pass; the run's Prefect UI and API keep everything."""

    def __init__(self, errors: tuple[type[BaseException], ...]) -> None:
        super().__init__()
        self.errors = errors
        self.names = tuple(e.__name__ for e in errors)

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a record about one of `errors` (its exception, or a message naming it)."""
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and isinstance(exc, self.errors):
            return False
        if record.levelno >= logging.ERROR:
            msg = record.getMessage()
            if any(f"{n}(" in msg or f"{n}:" in msg for n in self.names):
                return False
        return True


def quiet_user_errors(errors: tuple[type[BaseException], ...]) -> None:
    """Put a `UserErrorFilter` on Prefect's console handlers (once): see the class."""
    from prefect.logging.handlers import PrefectConsoleHandler

    for logger in (logging.getLogger(), *(logging.getLogger(n) for n in logging.root.manager.loggerDict)):
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, PrefectConsoleHandler) and not any(
                isinstance(f, UserErrorFilter) for f in handler.filters
            ):
                handler.addFilter(UserErrorFilter(errors))
