"""What every negforge command shares: the Typer `app` they register on, the stdout and stderr consoles,
the CONFIG argument and `--set` option types, the `--engine` choice, loading a config with its errors
printed for the person who wrote it, and the exception types reported as user errors (exit code 2)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from negforge.config import ConfigError, RunConfig, load_config

app = typer.Typer(
    help=(
        "negforge makes hard-negative training data for dense retrievers: it mines BM25 and dense negatives "
        "for (query, positive) pairs, selects them with positive-aware margins, and writes Hugging Face "
        "datasets that sentence-transformers trains on as they are.\n\n"
        "Start with: negforge run configs/demo.yaml"
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
out = Console()

ConfigArg = Annotated[
    Path, typer.Argument(help="Run config (YAML). See configs/ for examples.", show_default=False)
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        "-s",
        help="Override a config value, dotted key=value (YAML value), repeatable. "
        "E.g. --set selection.num_negatives=3 --set sources.bm25.enabled=false",
    ),
]


class Engine(StrEnum):
    prefect = "prefect"
    local = "local"


def _user_errors() -> tuple[type[BaseException], ...]:
    from negforge.mining.fingerprint import ModelNotFound
    from negforge.ownership import ForeignFolder
    from negforge.run_store.shards import RunFolderConflict
    from negforge.sources.readers import InputError

    return (ConfigError, InputError, ModelNotFound, RunFolderConflict, ForeignFolder)


def esc(value: object) -> str:
    """A user-supplied value (a path, a run name, a model id) made safe inside Rich markup: printed literally."""
    return escape(str(value))


def print_error(message: object, prefix: str = "error:") -> None:
    """One error for the person at the terminal, on stderr: a red prefix, then `message` literally (a `[/red]`
    in a path or a --set value is text, never markup)."""
    err.print(Text.assemble((prefix + " ", "red"), str(message)), highlight=False, soft_wrap=True)


def fail(message: object) -> typer.Exit:
    """`print_error(message)` and the exit of a user mistake (code 2): `raise fail(e) from None`."""
    print_error(message)
    return typer.Exit(2)


def _load(config: Path, overrides: list[str] | None, run_name: str | None) -> RunConfig:
    extra = {"run_name": run_name} if run_name else {}  # a name as typed: `--run-name 2024` is a text
    try:
        return load_config(config, overrides or [], **extra)
    except ConfigError as e:
        raise fail(e) from None


def _train_errors() -> tuple[type[BaseException], ...]:
    from negforge.training.train import TrainError

    return (*_user_errors(), TrainError)
