"""Publishing as a Prefect task and flow: a local Hub folder and/or a push, token never in parameters."""

from __future__ import annotations

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact

from negforge.publish.publisher import publish


@task(name="publish", retries=2, retry_delay_seconds=10, persist_result=False)
def publish_run(
    run_dir: str,
    local_dir: str | None = None,
    repo_id: str | None = None,
    private: bool = False,
    revision: str | None = None,
    token_secret: str | None = None,
) -> dict:
    """Publish a finished run; the token comes from HF_TOKEN or the named Prefect Secret block."""
    out = publish(
        run_dir,
        local=local_dir,
        repo_id=repo_id,
        private=private,
        revision=revision,
        token_secret=token_secret,
    )
    lines = [f"Published run `{out.run_id}`"]
    if out.local:
        lines.append(f"- local Hub folder: `{out.local}`")
    if out.push is not None:
        lines.append(f"- pushed to `{repo_id}`: {out.push}")
    create_markdown_artifact("\n".join(lines), description="negforge publish")
    return {
        "run_id": out.run_id,
        "local": str(out.local) if out.local else None,
        "pushed": out.push is not None,
    }


@flow(name="publish_negatives")
def publish_negatives(
    run_dir: str,
    local_dir: str | None = None,
    repo_id: str | None = None,
    private: bool = False,
    revision: str | None = None,
    token_secret: str | None = None,
) -> dict:
    """Publish an existing run folder (for a deployment that publishes on its own schedule)."""
    return publish_run(run_dir, local_dir, repo_id, private, revision, token_secret)
