"""The Backend protocol: generate n samples for each request of a batch, with token counts."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Protocol

from components.items import Item


@dataclass(frozen=True)
class Decoding:
    """Decoding parameters other than n, and how the prompt is sent (all part of the sample-bank key).

    ``chat``: the prompt is one user turn through the model's chat template (``chat_template``, a Jinja
    string, replaces the model's own; ``system`` adds a system turn); ``chat=False`` sends it as raw text.

    >>> Decoding().key()
    't=0.9;max=512;stop='
    >>> Decoding(chat=False).key()
    't=0.9;max=512;stop=;raw'
    >>> Decoding(stop=("a|b",)).key() != Decoding(stop=("a", "b")).key()
    True
    """

    temperature: float = 0.9
    max_tokens: int = 512
    stop: tuple[str, ...] = ()
    chat: bool = True
    system: str = ""
    chat_template: str = ""

    def key(self) -> str:
        # The plain form (6-digit temperature, stops joined by "|") is what every earlier bank was
        # keyed with, so it stays wherever it is unambiguous; a temperature it would round, or stop
        # strings it could not split back (empty, or holding "|" or ";"), switch to an exact form.
        t = f"{self.temperature:g}"
        if float(t) != self.temperature:
            t = repr(float(self.temperature))
        if any(not s or "|" in s or ";" in s for s in self.stop):
            stop = json.dumps(list(self.stop))
        else:
            stop = "|".join(self.stop)
        k = f"t={t};max={self.max_tokens};stop={stop}"
        # only non-default formatting is appended, so keys of earlier banks stay valid
        if not self.chat:
            k += ";raw"
        for tag, text in (("sys", self.system), ("tpl", self.chat_template)):
            if text:
                k += f";{tag}={hashlib.blake2b(text.encode(), digest_size=8).hexdigest()}"
        return k

    def messages(self, prompt: str) -> list[dict]:
        """The chat turns of ``prompt``."""
        turns = [{"role": "system", "content": self.system}] if self.system else []
        return turns + [{"role": "user", "content": prompt}]


@dataclass(frozen=True)
class Request:
    """Samples ``start .. start+n-1`` of the stream of ``model`` on ``prompt``.

    The structured context (stage, item, fused upstream output, fusion candidates) is already
    rendered into ``prompt``; real backends ignore it, the simulator reads it instead of the text.

    Args:
        model: model name from the stage's candidates.
        prompt: the fully rendered prompt.
        n: how many samples to generate.
        start: index of the first requested sample in the stream (samples before it are banked).
        decoding: decoding parameters.
        stage: stage name.
        item: the question.
        upstream: the fused output of the previous stage, or None for the first stage.
        candidates: for a fusion call, the samples to fuse; empty for a sampling call.
    """

    model: str
    prompt: str
    n: int
    start: int = 0
    decoding: Decoding = field(default_factory=Decoding)
    stage: str = ""
    item: Item | None = None
    upstream: str | None = None
    candidates: tuple[str, ...] = ()

    @property
    def is_fusion(self) -> bool:
        return bool(self.candidates)


@dataclass(frozen=True)
class Generation:
    """What a backend returns for one request: ``n`` texts and their token counts.

    ``error`` set (and no texts): the request failed after the backend's retries; the trials that
    need it are recorded as failed with this reason and the search goes on.
    """

    texts: tuple[str, ...]
    prompt_tokens: int
    output_tokens: tuple[int, ...]
    error: str = ""


class Backend(Protocol):
    """Generates samples. Implementations: sim (embedded default), vllm, openai, replay."""

    name: str
    simulated: bool

    def generate(self, requests: list[Request]) -> list[Generation]:
        """Return one Generation per request, in order."""
        ...
