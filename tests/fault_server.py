"""FaultyOpenAIServerDouble: a test double of an OpenAI-compatible chat endpoint on loopback, for fault
injection only (timeouts, 500s, 429s, malformed and truncated JSON, JSON wrapped in a Markdown fence and
prose, dropped connections). Real generation
is tested against a real vLLM server; this double exists because a real server cannot be made to fail on cue.

Its "ok" answers are schema-valid and pass negforge's checks: each passage is the <passage> text of the
prompt with its words reversed (same length, not a copy). An edit request (a <sentence> in the prompt) gets
{"reasoning", "sentence"} instead: in "ok" mode the sentence's words reversed (a rewrite, not an edit), in
"negate_edit" the sentence negated (" not" after the first is/are/was, else "It is not true that ..."),
in "copy_edit" the sentence unchanged. A span-mode request ("Part to change: <span>X</span>") gets
{"replacement"}: "not X" in "negate_edit", X in "copy_edit", else X's words reversed. A query-writing request (a <document> in the prompt) gets
{"query": words 2-7 of the document}; "copy_query" the whole document, "empty_query" an empty query.
A request for n choices gets n ("copy_edit+negate_edit": one mode per choice, the last repeated); the
fault modes answer one choice.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_SENTENCE = re.compile(r"<sentence>(.*?)</sentence>", re.S)
_DOCUMENT = re.compile(r"<document>(.*?)</document>", re.S)


def negate(sentence: str) -> str:
    """The sentence with " not" after its first " is "/" are "/" was ", else prefixed "It is not true that"."""
    m = re.search(r" (is|are|was) ", sentence)
    if m:
        return sentence[: m.end() - 1] + " not" + sentence[m.end() - 1 :]
    return "It is not true that " + sentence[:1].lower() + sentence[1:]


_TARGET = re.compile(r"Part to change: <span>(.*?)</span>", re.S)


def _span_content(target: str, mode: str) -> str:
    """A span-mode reply: "not" before the target (negate_edit), the target itself (copy_edit), else its
    words reversed."""
    new = {"negate_edit": f"not {target}", "copy_edit": target}.get(mode, " ".join(reversed(target.split())))
    return json.dumps({"replacement": new})


def _edit_content(sentence: str, mode: str) -> str:
    if mode == "negate_edit":
        new = negate(sentence)
    elif mode == "copy_edit":
        new = sentence
    else:
        new = " ".join(reversed(sentence.split()))
    return json.dumps({"reasoning": f"{mode} of the sentence", "sentence": new})


def _query_content(document: str, mode: str) -> str:
    """A query-writing reply: words 2-7 of the document (a keyword query, not a copy); `copy_query` the
    whole document; `empty_query` an empty query."""
    words = document.split()
    q = {"copy_query": document, "empty_query": ""}.get(mode, " ".join(words[1:7]))
    return json.dumps({"query": q})


def _ok_body(payload: dict, mode: str = "ok") -> dict:
    user = payload["messages"][-1]["content"]
    edit = _SENTENCE.search(user)
    doc = _DOCUMENT.search(user)
    if doc:
        return _wrap(payload, user, _query_content(doc.group(1), mode))
    passages = re.findall(r"<passage[^>]*>(.*?)</passage>", user, flags=re.S)
    source = passages[-1] if passages else "alpha beta gamma delta"
    order = re.search(r"order of perturbations: ([a-z_, ]+)", user)
    names = [n.strip() for n in order.group(1).split(",")] if order else ["negation"]
    words = source.split()
    items = [
        {
            "perturbation": n,
            "reasoning": f"it changes {n}",
            "passage": " ".join(reversed(words[i:] + words[:i])),
        }
        for i, n in enumerate(names)
    ]
    target = _TARGET.search(user)
    if target:
        content = _span_content(target.group(1), mode)
    else:
        content = _edit_content(edit.group(1), mode) if edit else json.dumps({"negatives": items})
    return _wrap(payload, user, content)


def _wrap(payload: dict, user: str, content: str) -> dict:
    """A chat completion around `content`; token logprobs (-0.25 per whitespace piece) when asked for."""
    body = {
        "id": "cmpl-double",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": payload.get("model", "double"),
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": len(user.split()),
            "completion_tokens": len(content.split()),
            "total_tokens": 0,
        },
    }
    if payload.get("logprobs"):
        pieces = re.findall(r"\S+\s*", content)
        body["choices"][0]["logprobs"] = {
            "content": [
                {"token": t, "logprob": -0.25, "bytes": list(t.encode()), "top_logprobs": []} for t in pieces
            ]
        }
    return body


_OK_MODES = ("ok", "negate_edit", "copy_edit", "copy_query", "empty_query")


def _sampled_body(payload: dict, mode: str) -> dict:
    """A completion with the request's n choices (default 1): "copy_edit+negate_edit" answers choice 0 as
    copy_edit, choice 1 as negate_edit and later ones as the last mode; a single mode answers every choice."""
    modes = mode.split("+")
    n = int(payload.get("n") or 1)
    body = _ok_body(payload, modes[0])
    for i in range(1, n):
        choice = _ok_body(payload, modes[min(i, len(modes) - 1)])["choices"][0]
        body["choices"].append({**choice, "index": i})
    return body


# LLM judge replies: (content, the answer token's top alternatives as (token, probability)).
_JUDGE = {
    "yes": ('{"answer": "yes"}', [("yes", 0.7), ("no", 0.2), ("Yes", 0.05), ("maybe", 0.05)]),
    "no": ('{"answer": "no"}', [("no", 0.9), ("yes", 0.06), ("No", 0.02), ("maybe", 0.02)]),
}


def judge_body(payload: dict, mode: str) -> dict:
    """An llm_judge reply: `judge_yes`/`judge_no` answer {"answer": ...} with OpenAI-format logprobs when the
    request asks for them (at the answer token, p(yes) over the top 5 alternatives is 0.75 / 0.95 ≈ 0.789
    resp. 0.06 / 0.98 ≈ 0.061; "maybe" counts for neither);
    `judge_yes_nolp`/`judge_no_nolp` answer the same without logprobs (a server that ignores the field)."""
    content, alts = _JUDGE[mode.split("_")[1]]
    body = _ok_body(payload)
    choice = body["choices"][0]
    choice["message"]["content"] = content
    choice.pop("logprobs", None)  # only the judge's own logprobs below
    body["usage"]["completion_tokens"] = 6
    if payload.get("logprobs") and not mode.endswith("_nolp"):
        k = int(payload.get("top_logprobs") or 1)
        answer = json.loads(content)["answer"]

        def entry(tok: str, lp: float, top: list[tuple[str, float]]) -> dict:
            return {
                "token": tok, "logprob": lp, "bytes": list(tok.encode()),
                "top_logprobs": [{"token": t, "logprob": x, "bytes": list(t.encode())} for t, x in top[:k]],
            }  # fmt: skip

        toks = ['{"', "answer", '":', ' "', answer, '"}']
        top_answer = [(t, math.log(p)) for t, p in alts]
        choice["logprobs"] = {
            "content": [
                entry(t, top_answer[0][1], top_answer) if t == answer else entry(t, 0.0, [(t, 0.0)])
                for t in toks
            ]
        }
    return body


class FaultyOpenAIServerDouble:
    """Answers /v1/chat/completions by a script of modes: each request takes the next mode, then `default`."""

    def __init__(self, script: list[str] | None = None, default: str = "ok", delay: float = 0.0):
        self.script = deque(script or [])
        self.default = default
        self.delay = delay
        self.requests: list[dict] = []
        self.modes: list[str] = []
        self.lock = threading.Lock()
        self.active = 0  # requests being answered now
        self.max_active = 0  # the most answered at once: how busy the client kept the server
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                self._send(200, b"{}" if self.path == "/health" else b"")

            def do_POST(self) -> None:
                with double.lock:
                    double.active += 1
                    double.max_active = max(double.max_active, double.active)
                try:
                    self._post()
                finally:
                    with double.lock:
                        double.active -= 1

            def _post(self) -> None:
                n = int(self.headers.get("Content-Length", 0))
                payload = json.loads(self.rfile.read(n) or b"{}")
                with double.lock:
                    mode = double.script.popleft() if double.script else double.default
                    double.requests.append(payload)
                    double.modes.append(mode)
                if double.delay:
                    time.sleep(double.delay)
                if all(m in _OK_MODES for m in mode.split("+")):
                    self._send(200, json.dumps(_sampled_body(payload, mode)).encode())
                elif mode in ("500", "503"):
                    self._send(int(mode), b'{"error": {"message": "boom"}}')
                elif mode == "429":
                    self._send(429, b'{"error": {"message": "slow down"}}', {"retry-after-ms": "10"})
                elif mode == "timeout":
                    time.sleep(3)
                    self._send(200, json.dumps(_ok_body(payload)).encode())
                elif mode == "malformed":
                    self._send(200, b"<html>not json</html>")
                elif mode == "truncated":
                    body = json.dumps(_ok_body(payload)).encode()
                    self._send(200, body[: len(body) // 2])
                elif mode == "bad_content":
                    body = _ok_body(payload)
                    body["choices"][0]["message"]["content"] = '{"negatives": [{"passage": "unterminated'
                    self._send(200, json.dumps(body).encode())
                elif mode == "fenced":  # a server that ignores response_format: JSON in a fence, with prose
                    body = _ok_body(payload)
                    content = body["choices"][0]["message"]["content"]
                    body["choices"][0]["message"]["content"] = (
                        f"Sure! Here are the hard negatives:\n\n```json\n{content}\n```\n\n"
                        "Each one breaks exactly one requirement of the query."
                    )
                    self._send(200, json.dumps(body).encode())
                elif mode == "refusal":
                    body = _ok_body(payload)
                    items = json.loads(body["choices"][0]["message"]["content"])
                    sorry = (
                        "I'm sorry, but as an AI language model I cannot write that passage for you today."
                    )
                    for it in items.get("negatives", []):
                        it["passage"] = sorry
                    if "sentence" in items:
                        items["sentence"] = sorry
                    body["choices"][0]["message"]["content"] = json.dumps(items)
                    self._send(200, json.dumps(body).encode())
                elif mode == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                elif mode.startswith("judge_"):
                    self._send(200, json.dumps(judge_body(payload, mode)).encode())
                else:
                    raise AssertionError(f"unknown mode {mode}")

            def _send(self, code: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

        ThreadingHTTPServer.request_queue_size = 128  # the run-wide queue opens many connections at once
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FaultyOpenAIServerDouble:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
