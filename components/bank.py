"""The sample bank: a persistent, append-only stream of samples per (model, prompt, decoding, world).

An allocation with S samples uses the first S samples of each stream, so S=10 and S=20 share 10
generations and a trial only generates what no earlier trial generated. The key hashes the model,
the rendered prompt (which contains the fused upstream output), the decoding parameters other than
n and, under the simulator, the world seed. Stored in SQLite so recorded runs can be replayed
without a GPU.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    key TEXT PRIMARY KEY, model TEXT, stage TEXT, item TEXT, prompt_tokens INTEGER);
CREATE TABLE IF NOT EXISTS samples (
    key TEXT, idx INTEGER, text TEXT, tokens INTEGER, PRIMARY KEY (key, idx));
"""


@dataclass
class Stream:
    """The samples of one key so far, in order."""

    model: str
    stage: str
    item: str
    prompt_tokens: int
    texts: list[str]
    tokens: list[int]


def stream_key(model: str, prompt: str, decoding: str, world: str = "") -> str:
    """The bank key: a hash of model, rendered prompt, decoding (other than n) and world.

    >>> stream_key("m", "p", "t=0.9") == stream_key("m", "p", "t=0.9")
    True
    """
    h = hashlib.blake2b(digest_size=16)
    for part in (model, decoding, world, prompt):
        h.update(part.encode())
        h.update(b"\x00")
    return h.hexdigest()


class SampleBank:
    """Streams of samples, in memory with an optional SQLite file behind them.

    Args:
        path: SQLite file; None keeps the bank in memory only (nothing reused across processes).
        enabled: when False nothing is kept beyond the current round and trials share no streams:
            each trial generates afresh (used to measure what the bank saves).
    """

    def __init__(self, path: str | Path | None = None, enabled: bool = True):
        self.enabled = enabled
        self.path = Path(path) if path else None
        self._streams: dict[str, Stream] = {}
        self._dirty: dict[str, int] = {}  # key -> first index not yet written
        self._db = None
        if self.path and enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False)
            self._db.executescript(_SCHEMA)
        self.hits = 0  # samples served from the bank
        self.generated = 0  # samples generated
        self.generated_tokens = 0

    def load(self, keys: list[str]) -> None:
        """Bring the streams of ``keys`` from disk into memory (one query per chunk)."""
        if self._db is None:
            return
        todo = [k for k in dict.fromkeys(keys) if k not in self._streams]
        for i in range(0, len(todo), 500):
            chunk = todo[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, model, stage, item, pt in self._db.execute(
                f"SELECT key, model, stage, item, prompt_tokens FROM streams WHERE key IN ({marks})", chunk
            ):
                self._streams[key] = Stream(model, stage, item, pt, [], [])
            for key, text, tokens in self._db.execute(
                f"SELECT key, text, tokens FROM samples WHERE key IN ({marks}) ORDER BY key, idx", chunk
            ):
                s = self._streams[key]
                s.texts.append(text)
                s.tokens.append(tokens)

    def reset(self) -> None:
        """Forget everything when the bank is disabled (called at the start of each round)."""
        if not self.enabled:
            self._streams.clear()

    def get(self, key: str) -> Stream | None:
        return self._streams.get(key)

    def count(self, key: str) -> int:
        s = self.get(key)
        return len(s.texts) if s else 0

    def append(self, key: str, model: str, stage: str, item: str, prompt_tokens: int, texts, tokens) -> Stream:
        """Append newly generated samples to the stream of ``key``."""
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = Stream(model, stage, item, prompt_tokens, [], [])
        if self._db is not None:
            self._dirty.setdefault(key, len(s.texts))
        s.texts.extend(texts)
        s.tokens.extend(tokens)
        self.generated += len(texts)
        self.generated_tokens += sum(tokens)
        return s

    def flush(self) -> None:
        """Write new samples to disk."""
        if self._db is None or not self._dirty:
            return
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO streams VALUES (?, ?, ?, ?, ?)",
                [(k, s.model, s.stage, s.item, s.prompt_tokens) for k in self._dirty for s in [self._streams[k]]],
            )
            self._db.executemany(
                "INSERT OR IGNORE INTO samples VALUES (?, ?, ?, ?)",
                [
                    (k, i, self._streams[k].texts[i], self._streams[k].tokens[i])
                    for k, start in self._dirty.items()
                    for i in range(start, len(self._streams[k].texts))
                ],
            )
        self._dirty.clear()

    def close(self) -> None:
        self.flush()
        if self._db is not None:
            self._db.close()
            self._db = None
