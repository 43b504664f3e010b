"""FakeHubServerDouble: an in-process stand-in for the Hugging Face Hub HTTP API, for push tests.

It is installed as huggingface_hub's HTTP client (`set_client_factory` with an httpx2 MockTransport), so no
socket is opened and nothing can reach the real Hub. It implements only the endpoints that
`Dataset.push_to_hub`, `HfApi.create_commit` and `HfFileSystem` call during a push (found by logging them):
Parquet files go the LFS way (batch + one PUT, as the Hub asks for binaries; Xet must be off), text files
inline in the commit.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field
from urllib.parse import unquote

import httpx2
from huggingface_hub.utils import sha


@dataclass
class FakeCommit:
    oid: str
    message: str
    files: dict[str, bytes]


@dataclass
class FakeRepo:
    private: bool
    branches: dict[str, list[FakeCommit]] = field(default_factory=dict)

    def head(self, rev: str) -> FakeCommit | None:
        if rev in self.branches:
            return self.branches[rev][-1]
        for commits in self.branches.values():  # a commit sha
            for c in commits:
                if c.oid == rev:
                    return c
        return None


class FakeHubServerDouble:
    """A test double of the Hub: repos, branches, commits and file contents kept in memory."""

    def __init__(self) -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self.auth_headers: list[str] = []
        self.unknown: list[tuple[str, str]] = []
        self.validated_cards: list[dict] = []
        self.lfs: dict[str, bytes] = {}  # sha256 -> content
        self.fail_commits: int = 0  # answer the next N commits with 503
        self.fail_commit_status: int = 503

    # ---- helpers for tests -------------------------------------------------------------------------
    def files(self, repo_id: str, branch: str = "main") -> dict[str, bytes]:
        head = self.repos[repo_id].head(branch)
        return dict(head.files) if head else {}

    def commits(self, repo_id: str, branch: str = "main") -> list[FakeCommit]:
        return list(self.repos[repo_id].branches.get(branch, []))

    def client(self) -> httpx2.Client:
        return httpx2.Client(transport=httpx2.MockTransport(self.handle), follow_redirects=True)

    # ---- HTTP --------------------------------------------------------------------------------------
    def handle(self, request: httpx2.Request) -> httpx2.Response:
        path = unquote(request.url.path)
        self.requests.append((request.method, path))
        if "authorization" in request.headers:
            self.auth_headers.append(request.headers["authorization"])
        for method, pattern, fn in self._routes():
            m = re.fullmatch(pattern, path)
            if m and request.method == method:
                return fn(request, *m.groups())
        self.unknown.append((request.method, path))
        return self._error(404, "EntryNotFound", f"fake hub: no route for {request.method} {path}")

    def _routes(self):
        repo = r"([^/]+/[^/]+)"
        return [
            ("POST", r"/api/repos/create", self._create_repo),
            ("POST", r"/api/validate-yaml", self._validate_yaml),
            ("GET", rf"/api/datasets/{repo}/revision/(.+)", self._repo_info),
            ("GET", rf"/api/datasets/{repo}", lambda r, rid: self._repo_info(r, rid, "main")),
            ("POST", rf"/api/datasets/{repo}/branch/(.+)", self._create_branch),
            ("POST", rf"/api/datasets/{repo}/preupload/(.+)", self._preupload),
            ("POST", rf"/api/datasets/{repo}/commit/(.+)", self._commit),
            ("GET", rf"/api/datasets/{repo}/tree/([^/]+)(?:/(.*))?", self._tree),
            ("POST", rf"/api/datasets/{repo}/paths-info/(.+)", self._paths_info),
            ("POST", rf"/datasets/{repo}\.git/info/lfs/objects/batch", self._lfs_batch),
            ("PUT", r"/fake-lfs/([0-9a-f]{64})", self._lfs_put),
            ("GET", rf"/datasets/{repo}/resolve/([^/]+)/(.+)", self._resolve),
            ("HEAD", rf"/datasets/{repo}/resolve/([^/]+)/(.+)", self._resolve),
        ]

    @staticmethod
    def _json(data, status: int = 200, headers: dict | None = None) -> httpx2.Response:
        return httpx2.Response(status, json=data, headers=headers)

    @staticmethod
    def _error(status: int, code: str, message: str) -> httpx2.Response:
        return httpx2.Response(status, json={"error": message}, headers={"X-Error-Code": code})

    def _repo(self, repo_id: str) -> FakeRepo | None:
        return self.repos.get(repo_id)

    def _create_repo(self, request: httpx2.Request) -> httpx2.Response:
        body = json.loads(request.content)
        repo_id = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
        url = f"{_base(request)}/datasets/{repo_id}"
        if repo_id in self.repos:  # the Hub answers 409 with the repo's url
            return self._json({"error": "You already created this repo", "url": url}, 409)
        self.repos[repo_id] = FakeRepo(private=bool(body.get("private")))
        self.repos[repo_id].branches["main"] = [FakeCommit(_oid("init", repo_id), "initial commit", {})]
        return self._json({"url": url, "name": repo_id})

    def _validate_yaml(self, request: httpx2.Request) -> httpx2.Response:
        """The Hub checks card metadata on every commit that touches README.md; this double checks it parses."""
        import yaml

        content = json.loads(request.content)["content"]
        try:
            meta = yaml.safe_load(content.split("---")[1]) if content.startswith("---") else {}
        except (yaml.YAMLError, IndexError) as e:
            return self._json({"errors": [{"message": str(e)}], "warnings": []}, status=400)
        if not isinstance(meta, dict):
            return self._json({"errors": [{"message": "metadata is not a mapping"}], "warnings": []}, 400)
        self.validated_cards.append(meta)
        return self._json({"errors": [], "warnings": []})

    def _repo_info(self, request: httpx2.Request, repo_id: str, rev: str) -> httpx2.Response:
        repo = self._repo(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        head = repo.head(rev)
        if head is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        siblings = [{"rfilename": p} for p in sorted(head.files)]
        return self._json({"id": repo_id, "sha": head.oid, "private": repo.private, "siblings": siblings})

    def _create_branch(self, request: httpx2.Request, repo_id: str, branch: str) -> httpx2.Response:
        repo = self._repo(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        if branch in repo.branches:
            return self._error(409, "RefExists", "Reference already exists")
        repo.branches[branch] = [repo.branches["main"][-1]]
        return self._json({})

    def _preupload(self, request: httpx2.Request, repo_id: str, rev: str) -> httpx2.Response:
        repo = self._repo(repo_id)
        head = repo.head(rev) if repo else None
        existing = head.files if head else {}
        files = []
        for f in json.loads(request.content)["files"]:
            lfs = not f["path"].endswith((".md", ".json", ".txt", ".yaml"))
            old = existing.get(f["path"])
            oid = None if old is None else hashlib.sha256(old).hexdigest() if lfs else sha.git_hash(old)
            mode = "lfs" if lfs else "regular"
            files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return self._json({"files": files})

    def _lfs_batch(self, request: httpx2.Request, repo_id: str) -> httpx2.Response:
        objects = []
        for obj in json.loads(request.content)["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.lfs:
                entry["actions"] = {"upload": {"href": f"{_base(request)}/fake-lfs/{obj['oid']}"}}
            objects.append(entry)
        return self._json({"transfer": "basic", "objects": objects})

    def _lfs_put(self, request: httpx2.Request, oid: str) -> httpx2.Response:
        content = request.read()
        if hashlib.sha256(content).hexdigest() != oid:
            return self._error(400, "BadRequest", "sha256 mismatch")
        self.lfs[oid] = content
        return httpx2.Response(200)

    def _commit(self, request: httpx2.Request, repo_id: str, rev: str) -> httpx2.Response:
        if self.fail_commits:
            self.fail_commits -= 1
            return self._error(self.fail_commit_status, "ServiceUnavailable", "fake outage")
        repo = self._repo(repo_id)
        if repo is None or rev not in repo.branches:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        head = repo.branches[rev][-1]
        lines = [json.loads(x) for x in request.content.splitlines() if x.strip()]
        header = next(x["value"] for x in lines if x["key"] == "header")
        parent = header.get("parentCommit")
        if parent and parent != head.oid:
            return self._error(412, "PreconditionFailed", "parent commit is not the head")
        files = dict(head.files)
        for item in lines:
            v = item["value"]
            if item["key"] == "file":
                files[v["path"]] = base64.b64decode(v["content"])
            elif item["key"] == "lfsFile":
                if v["oid"] not in self.lfs:
                    return self._error(422, "LfsMissing", f"LFS object {v['oid']} was never uploaded")
                files[v["path"]] = self.lfs[v["oid"]]
            elif item["key"] == "deletedFile":
                files.pop(v["path"], None)
            elif item["key"] == "deletedFolder":
                files = {p: c for p, c in files.items() if not p.startswith(v["path"].rstrip("/") + "/")}
            elif item["key"] != "header":
                return self._error(400, "BadRequest", f"fake hub: unsupported operation {item['key']}")
        commit = FakeCommit(_oid(head.oid, header["summary"], *sorted(files)), header["summary"], files)
        repo.branches[rev].append(commit)
        return self._json(
            {
                "commitUrl": f"{_base(request)}/datasets/{repo_id}/commit/{commit.oid}",
                "commitOid": commit.oid,
                "pullRequestUrl": None,
            }
        )

    def _entries(self, files: dict[str, bytes], prefix: str, recursive: bool) -> list[dict]:
        prefix = prefix.strip("/")
        out: dict[str, dict] = {}
        for p, content in sorted(files.items()):
            if prefix and not p.startswith(prefix + "/"):
                continue
            rest = p[len(prefix) + 1 :] if prefix else p
            parts = rest.split("/")
            if len(parts) > 1 and not recursive:
                d = f"{prefix}/{parts[0]}" if prefix else parts[0]
                out[d] = {"type": "directory", "path": d, "oid": _oid(d)}
                continue
            if recursive:  # parent folders too, as the Hub lists them
                for i in range(1, len(parts)):
                    d = "/".join(([prefix] if prefix else []) + parts[:i])
                    out[d] = {"type": "directory", "path": d, "oid": _oid(d)}
            out[p] = {"type": "file", "path": p, "size": len(content), "oid": sha.git_hash(content)}
        return list(out.values())

    def _tree(self, request: httpx2.Request, repo_id: str, rev: str, sub: str | None) -> httpx2.Response:
        repo = self._repo(repo_id)
        head = repo.head(rev) if repo else None
        if head is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        sub = sub or ""
        if sub and not any(p.startswith(sub.rstrip("/") + "/") for p in head.files):
            return self._error(404, "EntryNotFound", f"{sub} does not exist")
        recursive = request.url.params.get("recursive") in ("true", "True", "1")
        return self._json(self._entries(head.files, sub, recursive))

    def _paths_info(self, request: httpx2.Request, repo_id: str, rev: str) -> httpx2.Response:
        repo = self._repo(repo_id)
        head = repo.head(rev) if repo else None
        if head is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        content = request.content.decode()
        try:
            paths = json.loads(content)["paths"]
        except ValueError:
            from urllib.parse import parse_qs

            paths = parse_qs(content).get("paths", [])
        out = []
        for p in paths:
            if p in head.files:
                c = head.files[p]
                out.append({"type": "file", "path": p, "size": len(c), "oid": sha.git_hash(c)})
            elif any(f.startswith(p.rstrip("/") + "/") for f in head.files):
                out.append({"type": "directory", "path": p, "oid": _oid(p)})
        return self._json(out)

    def _resolve(self, request: httpx2.Request, repo_id: str, rev: str, path: str) -> httpx2.Response:
        repo = self._repo(repo_id)
        if repo is None:
            return self._error(404, "RepoNotFound", "Repository not found")
        head = repo.head(rev)
        if head is None:
            return self._error(404, "RevisionNotFound", "Invalid rev id")
        if path not in head.files:
            return self._error(404, "EntryNotFound", f"{path} does not exist")
        content = head.files[path]
        headers = {
            "X-Repo-Commit": head.oid,
            "ETag": f'"{sha.git_hash(content)}"',
            "Content-Length": str(len(content)),
        }
        body = b"" if request.method == "HEAD" else content
        return httpx2.Response(200, content=body, headers=headers)


def _base(request: httpx2.Request) -> str:
    """URLs the client accepts as the Hub's own: the host it sent the request to."""
    return f"{request.url.scheme}://{request.url.netloc.decode()}"


def _oid(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()
