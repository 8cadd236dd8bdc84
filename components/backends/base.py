"""The Backend protocol: generate n samples for each request of a batch, with token counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from components.items import Item


@dataclass(frozen=True)
class Decoding:
    """Decoding parameters other than n (they are part of the sample-bank key)."""

    temperature: float = 0.9
    max_tokens: int = 512
    stop: tuple[str, ...] = ()

    def key(self) -> str:
        return f"t={self.temperature:g};max={self.max_tokens};stop={'|'.join(self.stop)}"


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
    """What a backend returns for one request: ``n`` texts and their token counts."""

    texts: tuple[str, ...]
    prompt_tokens: int
    output_tokens: tuple[int, ...]


class Backend(Protocol):
    """Generates samples. Implementations: sim (embedded default), later vllm, openai, replay."""

    name: str
    simulated: bool

    def generate(self, requests: list[Request]) -> list[Generation]:
        """Return one Generation per request, in order."""
        ...
