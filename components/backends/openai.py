"""The ``openai`` backend: stages run on OpenAI-compatible servers (vLLM serve, Ollama, hosted APIs).

Each model of the catalog is reached at its own ``base_url`` (or one for all) under its served id.
A call sends its requests concurrently (``concurrency`` at a time). A request asks for its n samples
with ``n=`` where the server honours it; a server that answers fewer choices, or rejects ``n``, is
remembered and asked with repeated single-sample calls. Connection errors, timeouts, 408/409/429 and
5xx answers are retried with exponential backoff; a request that still fails comes back as a failed
Generation (its trials are recorded as failed with the reason, the search goes on).

Token counts come from the server's ``usage``: exact per request; with several choices per call the
completion total is split over them in proportion to their lengths (the total stays exact).
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from components.backends.base import Generation, Request
from components.errors import BackendError, ConfigError, check_int, check_number

_RETRY_STATUS = (408, 409, 429)


class CallError(RuntimeError):
    """A completion call that failed for good (``status``: the HTTP status, 0 for connection errors)."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status


def _short(text: object, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def split_tokens(total: int, texts: list[str]) -> list[int]:
    """Split a completion-token total over choices in proportion to their lengths (sum stays exact).

    >>> split_tokens(10, ["aaaa", "a"])
    [8, 2]
    >>> split_tokens(3, ["", ""])
    [2, 1]
    """
    weights = [len(t) + 1 for t in texts]
    shares = [total * w // sum(weights) for w in weights]
    for i in range(total - sum(shares)):
        shares[i % len(shares)] += 1
    return shares


@dataclass(frozen=True)
class Endpoint:
    """Where a model is served: the API root and the model id the server knows."""

    base_url: str
    served: str


class OpenAIBackend:
    """Samples from OpenAI-compatible servers.

    Args:
        endpoints: model name -> Endpoint.
        api_key_env: the environment variable holding the key (unset: ``EMPTY``); the key is never logged.
        concurrency: requests in flight at once.
        timeout_s: seconds per HTTP request.
        max_retries: retries of a request after a retryable error.
        backoff_s: first retry delay; doubles each retry (capped at 60 s).
        n_mode: ``auto`` (use ``n=`` until the server shows it does not honour it), ``native`` or ``repeat``.
        world: bank salt; set when every model is one served override.
    """

    name = "openai"
    simulated = False

    def __init__(
        self,
        endpoints: dict[str, Endpoint],
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 8,
        timeout_s: float = 120,
        max_retries: int = 4,
        backoff_s: float = 1.0,
        n_mode: str = "auto",
        world: str = "",
    ):
        if n_mode not in ("auto", "native", "repeat"):
            raise ConfigError(f"backend.n_mode must be auto, native or repeat, got '{n_mode}'")
        concurrency, max_retries = (
            check_int(concurrency, "backend.concurrency", 0),
            check_int(max_retries, "backend.max_retries", 0),
        )
        timeout_s, backoff_s = (
            check_number(timeout_s, "backend.timeout_s"),
            check_number(backoff_s, "backend.backoff_s"),
        )
        if concurrency < 1 or timeout_s <= 0 or max_retries < 0 or backoff_s < 0:
            raise ConfigError(
                "backend 'openai': need concurrency >= 1, timeout_s > 0, max_retries >= 0, backoff_s >= 0; "
                f"got {concurrency}, {timeout_s}, {max_retries}, {backoff_s}"
            )
        if not api_key_env or not str(api_key_env).isidentifier():
            raise ConfigError("backend.api_key_env must be the NAME of an environment variable holding the key")
        self.endpoints = dict(endpoints)
        self.api_key_env = api_key_env
        self.concurrency = int(concurrency)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.backoff_s = float(backoff_s)
        self.n_mode = n_mode
        self.world = world
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()
        self._n_ok: dict[str, bool] = {}  # base_url -> honours n= (learned)
        self.retries = 0  # retried HTTP calls, over the backend's life
        self.http_calls = 0

    # -- clients ------------------------------------------------------------------------------------
    def _key(self) -> str:
        return os.environ.get(self.api_key_env) or "EMPTY"

    def client(self, base_url: str):
        with self._lock:
            if base_url not in self._clients:
                from openai import OpenAI

                # retries are ours (backoff, counted); the client's own are off
                self._clients[base_url] = OpenAI(
                    base_url=base_url, api_key=self._key(), timeout=self.timeout_s, max_retries=0
                )
            return self._clients[base_url]

    def _scrub(self, text: object) -> str:
        key = self._key()
        text = str(text)
        return _short(text.replace(key, "***") if key != "EMPTY" and len(key) >= 4 else text)

    def check(self) -> None:
        """Every server answers and serves its models (one model listing per server, no retries)."""
        import openai

        by_url: dict[str, list[tuple[str, str]]] = {}
        for model, ep in self.endpoints.items():
            by_url.setdefault(ep.base_url, []).append((model, ep.served))
        for url, models in by_url.items():
            quick = self.client(url).with_options(timeout=min(self.timeout_s, 30.0))
            try:
                served = {m.id for m in quick.models.list()}
            except openai.APIStatusError as e:
                if e.status_code in (404, 405, 501):  # the server does not list models; requests will tell
                    continue
                raise BackendError(
                    f"backend 'openai': {url} answered HTTP {e.status_code} to a model listing: {self._scrub(e.message)}"
                ) from None
            except (openai.OpenAIError, ValueError) as e:
                cause = getattr(e, "__cause__", None) or e
                raise BackendError(
                    f"backend 'openai': cannot reach {url} (for models {[m for m, _ in models]}): {self._scrub(cause)}"
                ) from None
            missing = [f"{m} (as '{s}')" for m, s in models if served and s not in served]
            if missing:
                raise BackendError(f"backend 'openai': {url} does not serve {missing}; it serves {sorted(served)}")

    # -- one HTTP call, with retries ----------------------------------------------------------------
    def _call(self, r: Request, n: int):
        """One completion call for n choices; returns (texts, prompt tokens, completion tokens)."""
        import openai

        ep = self.endpoints[r.model]
        c = self.client(ep.base_url)
        d = r.decoding
        common = {"model": ep.served, "n": n, "temperature": d.temperature, "max_tokens": d.max_tokens}
        if d.stop:
            common["stop"] = list(d.stop)
        delay = self.backoff_s
        for attempt in range(self.max_retries + 1):
            try:
                with self._lock:
                    self.http_calls += 1
                if d.chat:
                    extra = {"chat_template": d.chat_template} if d.chat_template else None
                    resp = c.chat.completions.create(messages=d.messages(r.prompt), extra_body=extra, **common)
                    texts = [(ch.message.content or "") if ch.message else "" for ch in resp.choices]
                else:
                    resp = c.completions.create(prompt=r.prompt, **common)
                    texts = [ch.text or "" for ch in resp.choices]
                u = resp.usage
                return texts, int(getattr(u, "prompt_tokens", 0) or 0), int(getattr(u, "completion_tokens", 0) or 0)
            except openai.APIStatusError as e:
                status, retry = e.status_code, e.status_code in _RETRY_STATUS or e.status_code >= 500
                err = f"HTTP {e.status_code}: {self._scrub(e.message)}"
            except (openai.APIConnectionError, openai.APITimeoutError) as e:  # timeout is a connection error
                status, retry = 0, True
                err = f"{type(e).__name__}: {self._scrub(getattr(e, '__cause__', None) or e)}"
            if not retry or attempt == self.max_retries:
                tries = f" after {attempt + 1} attempts" if attempt else ""
                raise CallError(f"{ep.base_url} ({ep.served}){tries}: {err}", status)
            with self._lock:
                self.retries += 1
            time.sleep(min(delay, 60.0))
            delay *= 2

    def _one(self, r: Request) -> Generation:
        url = self.endpoints[r.model].base_url
        texts: list[str] = []
        tokens: list[int] = []
        prompt_tokens = 0
        try:
            native = self.n_mode == "native" or (self.n_mode == "auto" and self._n_ok.get(url, True))
            if r.n > 1 and native:
                try:
                    got, prompt_tokens, total = self._call(r, r.n)
                except CallError as e:
                    if self.n_mode == "native" or e.status != 400:
                        raise
                    got, total = [], 0  # maybe a server that rejects n=: a single-sample call below decides
                    first, prompt_tokens, one = self._call(r, 1)  # raises again when the request itself is bad
                    texts, tokens = first[:1], [one]
                    self._n_ok[url] = False
                if got:
                    texts, tokens = got[: r.n], split_tokens(total, got)[: r.n]
                if len(got) < r.n:
                    self._n_ok[url] = False
            while len(texts) < r.n:
                got, prompt_tokens, total = self._call(r, 1)
                texts.append(got[0] if got else "")
                tokens.append(total)
        except CallError as e:
            return Generation((), 0, (), error=str(e))
        except KeyError:
            return Generation((), 0, (), error=f"model '{r.model}' has no endpoint")
        return Generation(tuple(texts), prompt_tokens, tuple(tokens))

    def generate(self, requests: list[Request]) -> list[Generation]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))
