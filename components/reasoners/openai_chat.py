"""The ``openai`` reasoner: any OpenAI-compatible chat endpoint (OpenAI, a vLLM server, llama.cpp, ...).

The API key is read from an environment variable (``api_key_env``) when the client is made and is
kept nowhere else in this object: it never appears in ``repr``, in error messages or in the config
(which only names the variable). Servers that need no key (a local vLLM) get the placeholder
``EMPTY``.

Every failure of the endpoint (unreachable, refused, timed out, rate limited after the client's
retries, an HTTP error, a malformed response) is raised as ``ReasonerError``: at start-up from
``check()``, which stops the search before any trial, and per round from ``complete()``, where the
agent falls back to the rules reasoner and counts it.
"""

from __future__ import annotations

import os

from components.errors import ConfigError, check_int, check_number
from components.reasoners.base import AgentView, ReasonerError, Reply

# status codes of a models listing that only mean "this server does not list models"
_NO_LISTING = (404, 405, 501)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class OpenAIReasoner:
    """Chat completions from an OpenAI-compatible endpoint.

    Args:
        base_url: the API root, e.g. ``http://127.0.0.1:8000/v1`` (a vLLM server) or
            ``https://api.openai.com/v1``.
        model: the model id the server serves. None: the server's only model (``check()`` asks).
        api_key_env: name of the environment variable holding the key (unset: ``EMPTY``).
        timeout_s: seconds per HTTP request before it counts as timed out.
        max_tokens: most completion tokens per answer (sent as ``max_completion_tokens``).
        temperature: sampling temperature.
        max_retries: the client's retries of connection errors, 408/409/429 and 5xx answers.

    >>> r = OpenAIReasoner("http://127.0.0.1:8000/v1", "m")
    >>> r.name, r.is_llm
    ('openai', True)
    >>> r
    OpenAIReasoner(base_url='http://127.0.0.1:8000/v1', model='m', api_key_env='OPENAI_API_KEY', timeout_s=60.0, max_tokens=2048, temperature=1.0, max_retries=2)
    """

    name = "openai"
    is_llm = True

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 60,
        max_tokens: int = 2048,
        temperature: float = 1.0,
        max_retries: int = 2,
    ):
        if not base_url:
            raise ConfigError("reasoner 'openai' needs base_url, e.g. http://127.0.0.1:8000/v1")
        if not api_key_env or not str(api_key_env).isidentifier():
            # a key pasted here by mistake must not end up in messages: do not echo the value
            raise ConfigError(
                "reasoner.api_key_env must be the NAME of an environment variable holding the key (e.g. OPENAI_API_KEY), not the key itself"
            )
        timeout_s, temperature = (
            check_number(timeout_s, "reasoner.timeout_s"),
            check_number(temperature, "reasoner.temperature"),
        )
        max_tokens, max_retries = (
            check_int(max_tokens, "reasoner.max_tokens", 0),
            check_int(max_retries, "reasoner.max_retries", 0),
        )
        if timeout_s <= 0 or max_tokens < 1 or max_retries < 0 or temperature < 0:
            raise ConfigError(
                f"reasoner 'openai': need timeout_s > 0, max_tokens >= 1, max_retries >= 0, temperature >= 0; "
                f"got {timeout_s}, {max_tokens}, {max_retries}, {temperature}"
            )
        self.base_url = str(base_url).rstrip("/")
        self.model = str(model) if model else None
        self.api_key_env = str(api_key_env)
        self.timeout_s = float(timeout_s)
        self.max_tokens = int(max_tokens)
        self.temperature = float(temperature)
        self.max_retries = int(max_retries)
        self._client = None

    def __repr__(self) -> str:
        return (
            f"OpenAIReasoner(base_url={self.base_url!r}, model={self.model!r}, api_key_env={self.api_key_env!r}, "
            f"timeout_s={self.timeout_s}, max_tokens={self.max_tokens}, temperature={self.temperature}, max_retries={self.max_retries})"
        )

    # -- client and error mapping ------------------------------------------------------------------
    def _key(self) -> str:
        return os.environ.get(self.api_key_env) or "EMPTY"

    def _scrub(self, text: str) -> str:
        """Remove the key from a server's message (some echo it back, partly masked or not)."""
        key = self._key()
        if key != "EMPTY" and len(key) >= 4:
            text = text.replace(key, "***")
        return _short(text)

    def client(self):
        if self._client is None:
            try:
                from openai import OpenAI
            except ImportError as e:  # pragma: no cover - openai is a dependency of this reasoner
                raise ReasonerError("reasoner 'openai' needs the openai package: pip install openai") from e
            self._client = OpenAI(
                base_url=self.base_url, api_key=self._key(), timeout=self.timeout_s, max_retries=self.max_retries
            )
        return self._client

    def _error(self, e: Exception, what: str) -> ReasonerError:
        """One clear ReasonerError for an openai exception; never carries the key."""
        import openai

        where = f"reasoner 'openai' at {self.base_url}"
        if isinstance(e, openai.APITimeoutError):
            msg = f"{where}: {what} timed out after {self.timeout_s:g} s (and {self.max_retries} retries)"
        elif isinstance(e, openai.APIConnectionError):
            msg = f"{where}: cannot connect ({_short(getattr(e, '__cause__', None) or e)}); is the server running and base_url right?"
        elif isinstance(e, (openai.AuthenticationError, openai.PermissionDeniedError)):
            msg = f"{where}: {what} refused (HTTP {e.status_code}); check the API key in ${self.api_key_env}"
        elif isinstance(e, openai.RateLimitError):
            msg = f"{where}: {what} rate limited (HTTP 429) after {self.max_retries} retries: {self._scrub(e.message)}"
        elif isinstance(e, openai.NotFoundError):
            msg = f"{where}: {what} not found (HTTP 404; is model {self.model!r} served and base_url right?): {self._scrub(e.message)}"
        elif isinstance(e, openai.APIStatusError):
            msg = f"{where}: {what} failed with HTTP {e.status_code}: {self._scrub(e.message)}"
        else:
            msg = f"{where}: {what} failed ({type(e).__name__}: {self._scrub(str(e))})"
        return ReasonerError(msg)

    # -- the Reasoner protocol ---------------------------------------------------------------------
    def check(self) -> None:
        """List the served models (one cheap request, no retries): the server answers and serves ``model``.

        Servers that do not list models get a one-token chat completion instead.
        """
        import openai

        quick = self.client().with_options(max_retries=0, timeout=min(self.timeout_s, 30.0))
        try:
            served = [m.id for m in quick.models.list()]
        except openai.APIStatusError as e:
            if e.status_code not in _NO_LISTING or not self.model:
                raise self._error(e, "listing models") from None
            served = None
        except (openai.OpenAIError, ValueError) as e:
            raise self._error(e, "listing models") from None
        if served is not None:
            if self.model is None:
                if len(served) != 1:
                    raise ConfigError(f"reasoner 'openai': set reasoner.model; {self.base_url} serves {served}")
                self.model = served[0]
            elif served and self.model not in served:
                raise ReasonerError(
                    f"reasoner 'openai' at {self.base_url}: model {self.model!r} is not served; served: {served}"
                )
            return
        try:
            quick.chat.completions.create(
                model=self.model, messages=[{"role": "user", "content": "ping"}], max_completion_tokens=1
            )
        except (openai.OpenAIError, ValueError) as e:
            raise self._error(e, "a test chat completion") from None

    def complete(self, system: str, prompt: str, view: AgentView) -> Reply:
        import openai

        if self.model is None:
            self.check()
        messages = [{"role": "system", "content": system}, {"role": "user", "content": prompt}]
        try:
            resp = self.client().chat.completions.create(
                model=self.model,
                messages=messages,
                max_completion_tokens=self.max_tokens,
                temperature=self.temperature,
            )
        except (openai.OpenAIError, ValueError) as e:
            raise self._error(e, "chat completion") from None
        choices = getattr(resp, "choices", None) or []
        text = (choices[0].message.content if choices and choices[0].message else None) or ""
        usage = getattr(resp, "usage", None)
        return Reply(
            text, int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0)
        )
