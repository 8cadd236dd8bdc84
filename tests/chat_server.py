"""A local OpenAI-compatible HTTP server for tests: subclasses decide each answer in ``answer``."""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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
