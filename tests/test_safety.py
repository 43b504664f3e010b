"""Nothing outside the run is touched, no data text becomes markup, every user mistake is one line (rc 2),
children die with negforge, secrets go only where they are meant to."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from negforge.config import ConfigError, load_config
from negforge.ownership import ForeignFolder

ROOT = Path(__file__).resolve().parent.parent


# ---- 1. paths: a run stays inside output.dir and removes only what negforge wrote ------------------------


@pytest.mark.parametrize("name", ["..", ".", ".hidden", "a/b", "../x"])
def test_a_run_name_that_leaves_output_dir_is_refused(name):
    with pytest.raises(ConfigError, match="run_name"):
        load_config(None, ["data.path=x", f"run_name={name}"])


def test_a_numeric_run_name_is_a_folder_name():
    assert load_config(None, ["data.path=x", "run_name=2024"]).run_name == "2024"
    assert load_config(None, ["data.path=x", "run_name=007"]).run_name == "007"  # not the number 7


def test_a_foreign_dataset_or_shards_folder_survives_a_run(make_config, tmp_path):
    from negforge.pipeline import run

    for folder in ("dataset", "shards"):
        cfg = make_config(f"run_name=foreign-{folder}")
        mine = cfg.run_dir / folder / "my-notes.txt"
        mine.parent.mkdir(parents=True)
        mine.write_text("the user's own file")
        with pytest.raises(ForeignFolder, match=rf"{folder}: exists and was not written by negforge"):
            run(cfg, overwrite=True)
        assert mine.read_text() == "the user's own file"


def test_a_run_replaces_its_own_dataset_on_overwrite(make_config):
    from negforge.pipeline import run

    cfg = make_config("run_name=own", "selection.num_negatives=2")
    first = run(cfg)
    assert (first.dataset_dir / ".negforge-owned").is_file() and (
        first.run_dir / "shards" / ".negforge-owned"
    ).is_file()
    again = run(make_config("run_name=own", "selection.num_negatives=3"), overwrite=True)
    assert again.manifest["config"]["selection"]["num_negatives"] == 3


def test_publish_local_removes_only_files_it_wrote(tmp_path, make_config):
    from negforge.pipeline import run
    from negforge.publish.hub_layout import HUB_MARKER, write_hub_folder
    from negforge.publish.run_files import PublishError, read_run

    res = run(make_config("run_name=pub", "selection.num_negatives=2"))
    dest = tmp_path / "hub"
    (dest / "data").mkdir(parents=True)
    foreign = dest / "data" / "notes.txt"
    foreign.write_text("keep me")
    write_hub_folder(read_run(res.run_dir), dest)
    written = json.loads((dest / HUB_MARKER).read_text())["files"]
    assert "README.md" in written and any(f.startswith("data/") for f in written)
    stale = dest / "data" / "old-config" / "train-00000-of-00001.parquet"
    write_hub_folder(read_run(res.run_dir), dest)  # a rewrite: its own files replaced, the foreign one kept
    assert foreign.read_text() == "keep me" and not stale.exists()
    other = tmp_path / "repo"
    other.mkdir()
    (other / "README.md").write_text("my repository")
    with pytest.raises(PublishError, match=r"README\.md exists and negforge did not write it"):
        write_hub_folder(read_run(res.run_dir), other)
    assert (other / "README.md").read_text() == "my repository"


# ---- 2. markup: data text is shown, never rendered --------------------------------------------------------

HOSTILE = (
    '<script>alert(1)</script><img src=x onerror="alert(2)"> [click](javascript:alert(3)) # not a heading'
)


def test_html_in_a_passage_is_inert_in_report_md(tmp_path):
    from markdown_it import MarkdownIt

    from negforge.publish.report import write_report

    cand = {"doc_id": "d`1", "text": HOSTILE, "source": "bm25", "scores": {"bm25": 1.0}, "filter_scores": {}}
    rows = [{"query_id": "q<1>", "query": HOSTILE, "negatives": [cand], "positive_ids": ["p1"],
             "positives": [HOSTILE], "positive_scores": {},
             "dropped": [{**cand, "filter": "duplicate", "reason": "<b>x</b>"}]}]  # fmt: skip
    manifest = {"run_name": "r", "counts": {"short_reasons": {"q<1>": HOSTILE}},
                "data": {"layout": [HOSTILE]}, "filters": {}}  # fmt: skip
    path = write_report(tmp_path, manifest, rows)
    html = MarkdownIt("commonmark").render(path.read_text())
    for tag in ("<script", "<img", "<b>", 'href="javascript'):
        assert tag not in html, tag
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # shown as text
    assert "<h1>" in html and html.count("<h1>") == 1  # the data's "# not a heading" is no heading


def test_evaluate_markdown_artifact_escapes_model_names():
    from markdown_it import MarkdownIt

    from negforge.flows.train import _markdown

    r = {"model": "<img src=x onerror=alert(1)>", "fingerprint": "abc", "ndcg@10": 0.5, "mrr@10": 0.5,
         "recall@100": 0.5, "queries": 1, "corpus_docs": 1}  # fmt: skip
    html = MarkdownIt("commonmark").enable("table").render(_markdown([r], "<b>data</b>", "test"))
    assert "<img" not in html and "<b>" not in html


# ---- 3. errors: one line, rc 2, under both engines ---------------------------------------------------------


@pytest.mark.parametrize(
    "value, says",
    [
        ("selection.depth=[1", "--set selection.depth: the value '[1' is not a YAML scalar or list"),
        ("selection.depth=!!python/object:os.system x", "--set selection.depth: the value"),
        ("output.dir=[/red]x", "output.dir"),
    ],
)
def test_a_bad_set_value_is_one_line_naming_the_key(tmp_path, value, says):
    from negforge.cli import app

    cfg = tmp_path / "c.yaml"
    cfg.write_text("data: {format: beir, path: nowhere}\n")
    res = CliRunner().invoke(app, ["validate", str(cfg), "--set", value])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and says in res.output
    assert len([x for x in res.output.splitlines() if x.strip()]) <= 3


def test_rich_markup_in_a_path_is_printed_literally(tmp_path):
    from negforge.cli import app

    res = CliRunner().invoke(app, ["show", str(tmp_path / "[/red]oops[bold]")])
    assert res.exit_code == 2 and "[/red]oops[bold]" in res.output and "MarkupError" not in res.output


@pytest.mark.slow
def test_an_empty_corpus_under_prefect_is_one_line(tmp_path):
    data = tmp_path / "data"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("")
    (data / "queries.jsonl").write_text('{"_id": "q1", "text": "hi"}\n')
    (data / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"data: {{format: beir, path: {data}}}\noutput: {{dir: {tmp_path / 'out'}}}\n")
    out = subprocess.run(
        [sys.executable, "-m", "negforge.cli", "run", str(cfg), "--no-progress"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 2
    lines = [x for x in (out.stdout + out.stderr).splitlines() if x.strip()]
    assert lines == [f"error: {data / 'corpus.jsonl'}: no usable documents (see skips: {{}})"]


# ---- 4. processes: children end with negforge -------------------------------------------------------------


def test_parent_watch_ends_the_server_when_negforge_is_killed(tmp_path):
    """kill -9 of the process that started the server: parent_watch takes the server's group down."""
    pidfile = tmp_path / "server.pid"
    server_py = tmp_path / "server.py"
    server_py.write_text(
        f"import os, time\nopen({str(pidfile)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)\n"
    )
    starter = tmp_path / "negforge_like.py"
    starter.write_text(
        "import os, subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-m', 'negforge.generators.parent_watch', str(os.getpid()), '--',\n"
        f"                  sys.executable, {str(server_py)!r}], start_new_session=True)\n"
        "time.sleep(600)\n"
    )
    negforge = subprocess.Popen([sys.executable, str(starter)], cwd=ROOT)
    deadline = time.time() + 30
    while not pidfile.exists() or not pidfile.read_text():
        assert time.time() < deadline, "the server never started"
        time.sleep(0.2)
    server = int(pidfile.read_text())
    os.kill(negforge.pid, signal.SIGKILL)
    negforge.wait()
    deadline = time.time() + 30
    while _alive(server):
        assert time.time() < deadline, "the server outlived negforge"
        time.sleep(0.5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_a_killed_run_leaves_no_prefect_server(make_config, tmp_path):
    """kill -9 of a run under the Prefect engine: its temporary API server (uvicorn) ends with it."""
    cfg = make_config("run_name=killed")
    path = tmp_path / "c.yaml"
    import yaml

    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    run = subprocess.Popen(
        [sys.executable, "-m", "negforge.cli", "run", str(path), "--no-progress"], cwd=tmp_path
    )
    deadline, servers = time.time() + 120, []
    while not servers:
        assert run.poll() is None and time.time() < deadline, "no Prefect server was started"
        servers = [p for p in _children(run.pid) if "uvicorn" in _cmdline(p)]
        time.sleep(0.5)
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    deadline = time.time() + 30
    while any(_alive(p) for p in servers):
        assert time.time() < deadline, "the Prefect server outlived the run"
        time.sleep(0.5)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_serve_on_a_public_address_needs_a_key():
    from negforge.cli import app

    res = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "--api-key-env" in res.output
    res = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0", "--api-key-env", "NO_SUCH_VAR_NEGFORGE"])
    assert res.exit_code == 2 and "NO_SUCH_VAR_NEGFORGE" in res.output


@pytest.mark.slow
def test_sigterm_to_serve_leaves_no_vllm(tmp_path):
    log = tmp_path / "vllm.log"
    serve = subprocess.Popen(
        [sys.executable, "-m", "negforge.cli", "serve", "--log", str(log), "--python",
         str(ROOT / ".venv-vllm" / "bin" / "python")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    seen = ""
    deadline = time.time() + 600
    while "serving" not in seen:
        line = serve.stdout.readline()
        assert line or serve.poll() is None, seen[-2000:]
        seen += line
        assert time.time() < deadline, seen[-2000:]
    group = [p for p in _children(serve.pid)]
    assert group, "no vLLM process under serve"
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=60) == 0
    deadline = time.time() + 60
    while any(_alive(p) for p in group):
        assert time.time() < deadline, "vLLM outlived serve"
        time.sleep(0.5)


def _children(pid: int) -> list[int]:
    """Every descendant of `pid` (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


# ---- 5. secrets and limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN"]
)
def test_api_key_env_never_names_another_services_secret(name):
    with pytest.raises(ConfigError, match=f"{name} holds another service's secret"):
        load_config(None, ["data.path=x", f"sources.llm.api_key_env={name}"])
    assert load_config(None, ["data.path=x", "sources.llm.api_key_env=MY_VLLM_KEY"]).sources.llm.api_key_env


def test_a_huge_passage_is_cut_and_noted(tmp_path):
    from negforge.config import DataConfig
    from negforge.sources import load_input
    from tests.conftest import write_beir

    big = "word " * 1_000_000  # 5 MB
    docs = [{"_id": "d1", "title": "", "text": "short"}, {"_id": "d2", "title": "", "text": big}]
    root = write_beir(tmp_path / "b", docs, [{"_id": "q1", "text": "q"}], [("q1", "d1")])
    data = load_input(DataConfig(format="beir", path=str(root)))
    assert len(data.corpus.texts[1]) == 100_000 and data.corpus.texts[0] == "short"
    assert any("1 documents longer than data.max_passage_chars=100,000" in x and "d2 (4,999,999" in x
               for x in data.layout)  # fmt: skip
    whole = load_input(DataConfig(format="beir", path=str(root), max_passage_chars=None))
    assert len(whole.corpus.texts[1]) == len(big.strip())
