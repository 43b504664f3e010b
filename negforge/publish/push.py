"""Push a finished run to the Hugging Face Hub: one commit per config, then the card.

The card goes last and doubles as the completion marker: a push that dies midway leaves the old card (or
none), so the next push sees a different card and finishes the job; a push of a run whose card is already on
the remote, byte for byte, is a no-op. Identical Parquet files are not re-uploaded (the Hub compares hashes).
The token is passed to the client and nowhere else: never logged, never written.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from negforge.publish.card import render_card
from negforge.publish.run_files import PublishError, RunFiles, read_run

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class PushResult:
    """What a push did: skipped when the remote already holds this run's card."""

    repo_id: str
    revision: str
    skipped: bool
    commits: list[str] = field(default_factory=list)


def resolve_token(secret_block: str | None = None) -> str | None:
    """The Hub token: from a Prefect Secret block when one is named, else HF_TOKEN (None: the client's own
    login, if any). Prefect is imported only here, so publishing needs no Prefect server otherwise."""
    if secret_block:
        from prefect.blocks.system import Secret

        try:
            secret: Any = Secret.load(secret_block)  # sync outside an event loop: the block itself
        except (ValueError, RuntimeError) as e:
            raise PublishError(f"Prefect Secret block {secret_block!r} could not be loaded: {e}") from None
        value = secret.get()
        return str(value) if value else None
    return os.environ.get("HF_TOKEN") or None


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: rate limits, server errors, dropped connections."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        response = getattr(exc, "response", None)
        return response is not None and response.status_code in RETRY_STATUS
    return isinstance(exc, httpx2.TransportError | ConnectionError | TimeoutError)


def with_retries(fn: Callable[[], T], what: str, *, attempts: int = 5, base_delay: float = 2.0) -> T:
    """Call `fn`, retrying transient Hub errors with exponential backoff; other errors go straight up."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except Exception as e:
            if attempt == attempts or not is_transient(e):
                raise
            delay = base_delay * 2 ** (attempt - 1)
            log.warning(
                "%s failed (%s), retry %d/%d in %.1fs", what, type(e).__name__, attempt, attempts, delay
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


def remote_card(repo_id: str, revision: str, token: str | None, endpoint: str | None = None) -> str | None:
    """README.md on the remote at `revision`, or None when the repo, branch or file does not exist."""
    from huggingface_hub import constants, hf_hub_url
    from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status

    url = hf_hub_url(
        repo_id, "README.md", repo_type="dataset", revision=revision, endpoint=endpoint or constants.ENDPOINT
    )
    resp = get_session().get(url, headers=build_hf_headers(token=token), follow_redirects=True)
    if resp.status_code in (401, 404):
        return None
    hf_raise_for_status(resp)
    return resp.text


def _config_dataset(run: RunFiles, config: str):  # -> datasets.DatasetDict
    """The config's splits as in-memory datasets, read from the run's own Parquet files."""
    import pyarrow.parquet as pq
    from datasets import Dataset, DatasetDict
    from datasets.table import InMemoryTable

    return DatasetDict(
        {split: Dataset(InMemoryTable(pq.read_table(path))) for split, path in run.parquet[config].items()}
    )


def push_run(
    run_dir: Path | str,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token_secret: str | None = None,
    license: str | None = None,
    retry_delay: float = 2.0,
) -> PushResult:
    """Push every config of the run (`data/<config>/<split>-*.parquet`) and the card (README.md + plots).

    Commit messages carry the run id (`negforge run <run_name> <config_fingerprint>`).
    """
    from huggingface_hub import CommitOperationAdd, HfApi

    run = read_run(run_dir)
    token = resolve_token(token_secret)
    api = HfApi(token=token)
    branch = revision or "main"
    card = render_card(run, license=license, repo_id=repo_id)
    if (
        with_retries(lambda: remote_card(repo_id, branch, token), "read remote card", base_delay=retry_delay)
        == card
    ):
        log.info("%s@%s already holds %s: nothing to push", repo_id, branch, run.run_id)
        return PushResult(repo_id, branch, skipped=True)

    with_retries(
        lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
        "create repo",
        base_delay=retry_delay,
    )
    if revision and not revision.startswith("refs/pr/"):
        with_retries(
            lambda: api.create_branch(repo_id, branch=revision, repo_type="dataset", exist_ok=True),
            "create branch",
            base_delay=retry_delay,
        )
    result = PushResult(repo_id, branch, skipped=False)
    for config in run.parquet:
        message = f"{run.run_id}: config {config}"
        dd = _config_dataset(run, config)
        log.info("pushing config %s to %s@%s", config, repo_id, branch)
        with_retries(
            functools.partial(
                dd.push_to_hub,
                repo_id,
                config_name=config,
                data_dir=f"data/{config}",
                private=private,
                revision=revision,
                commit_message=message,
                token=token,
            ),
            f"push config {config}",
            base_delay=retry_delay,
        )
        result.commits.append(message)

    ops = [CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode("utf-8"))]
    ops += [CommitOperationAdd(path_in_repo=f"images/{p.name}", path_or_fileobj=str(p)) for p in run.plots]
    message = f"{run.run_id}: dataset card"
    with_retries(
        lambda: api.create_commit(
            repo_id, operations=ops, commit_message=message, repo_type="dataset", revision=revision
        ),
        "push card",
        base_delay=retry_delay,
    )
    result.commits.append(message)
    return result
