"""A local OpenAI-compatible HTTP server for tests: subclasses decide each answer in ``answer``;
``FreshLLM`` answers anew on every call, as a sampling LLM does."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np


def completion(content: str, model: str, prompt_tokens: int, completion_tokens: int) -> dict:
    """The body of a chat completion with one choice."""
    return {
        "id": "c1",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def model_list(ids: list[str]) -> dict:
    return {"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": "me"} for m in ids]}


NOT_FOUND = (404, {"error": {"message": "Not Found"}})


class _QuietServer(ThreadingHTTPServer):
    """Client-side timeouts (tested on purpose) close connections mid-reply: not worth a traceback."""

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ChatServer:
    """Serves on 127.0.0.1 (``url`` ends in /v1) until ``close``; ``answer`` returns (status, body)."""

    def answer(self, method: str, path: str, headers: dict, payload: dict) -> tuple[int, dict]:
        raise NotImplementedError  # each test server decides its answers

    def __init__(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _reply(self, method: str, payload: dict):
                code, body = server.answer(method, self.path, {k.lower(): v for k, v in self.headers.items()}, payload)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                self._reply("GET", {})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                self._reply("POST", json.loads(self.rfile.read(n) or b"{}"))

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class FreshLLM(ChatServer):
    """Every chat answer is new: ``answer_for(prompt, call)`` (default ``reply <call>``); ``fail`` next
    answers are HTTP 500."""

    def __init__(self, answer_for=None):
        self.calls = 0
        self.fail = 0
        self.answer_for = answer_for or (lambda prompt, call: f"reply {call}")
        super().__init__()

    def answer(self, method, path, headers, payload):
        if method == "GET":
            return (200, model_list(["tiny"])) if path.endswith("/models") else NOT_FOUND
        if self.fail:
            self.fail -= 1
            return 500, {"error": {"message": "scripted failure", "type": "server_error"}}
        self.calls += 1
        user = next((m["content"] for m in payload.get("messages", []) if m["role"] == "user"), "")
        return 200, completion(self.answer_for(user, self.calls), "tiny", 11, 7)


def trials_answers(space):
    """An LLM that answers each trials prompt with 4 random feasible allocations (new ones every call)."""

    def answer_for(prompt: str, call: int) -> str:
        if '"candidates"' not in prompt:
            return f"Guideline {call}: spend more samples where the score still grows."
        pool = list(dict.fromkeys(space.sample(np.random.default_rng(call), 40)))
        return json.dumps({"candidates": [a.to_dict() for a in pool[:4]]})

    return answer_for
