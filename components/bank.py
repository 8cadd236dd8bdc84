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
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from components.errors import AgentTTSError


class BankFileError(AgentTTSError):
    """A bank file to export, import or read is missing or is not a sample bank."""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS streams (
    key TEXT PRIMARY KEY, model TEXT, stage TEXT, item TEXT, prompt_tokens INTEGER, world TEXT, role TEXT);
CREATE TABLE IF NOT EXISTS samples (
    key TEXT, idx INTEGER, text TEXT, tokens INTEGER, PRIMARY KEY (key, idx));
"""
# columns added after the first release; older bank files get them on open (NULL = unknown)
_LATER_COLUMNS = {"world": "TEXT", "role": "TEXT"}


@dataclass
class Stream:
    """The samples of one key so far, in order."""

    model: str
    stage: str
    item: str
    prompt_tokens: int
    texts: list[str]
    tokens: list[int]
    world: str = ""
    role: str = "sample"  # "sample" (a stage's samples), "fuse" (an LLM fuser call) or "reply" (a reasoner's)


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
            self._db = connect(self.path)
        self.hits = 0  # samples served from the bank
        self.generated = 0  # samples generated
        self.generated_tokens = 0

    @property
    def persistent(self) -> bool:
        """Whether what is appended outlives this process (a file behind an enabled bank)."""
        return self._db is not None

    def load(self, keys: list[str]) -> None:
        """Bring the streams of ``keys`` from disk into memory (one query per chunk)."""
        if self._db is None:
            return
        todo = [k for k in dict.fromkeys(keys) if k not in self._streams]
        for i in range(0, len(todo), 500):
            chunk = todo[i : i + 500]
            marks = ",".join("?" * len(chunk))
            for key, model, stage, item, pt, world, role in self._db.execute(
                f"SELECT key, model, stage, item, prompt_tokens, world, role FROM streams WHERE key IN ({marks})",
                chunk,
            ):
                self._streams[key] = Stream(model, stage, item, pt, [], [], world or "", role or "sample")
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

    def append(
        self,
        key: str,
        model: str,
        stage: str,
        item: str,
        prompt_tokens: int,
        texts,
        tokens,
        world: str = "",
        role: str = "sample",
        counted: bool = True,
    ) -> Stream:
        """Append newly generated samples to the stream of ``key``.

        ``counted=False`` leaves them out of ``generated`` and ``generated_tokens``, which count the
        pipeline's inference (a reasoner's replies are counted by the agent).
        """
        s = self._streams.get(key)
        if s is None:
            s = self._streams[key] = Stream(model, stage, item, prompt_tokens, [], [], world, role)
        if self._db is not None:
            self._dirty.setdefault(key, len(s.texts))
        s.texts.extend(texts)
        s.tokens.extend(tokens)
        if counted:
            self.generated += len(texts)
            self.generated_tokens += sum(tokens)
        return s

    def flush(self) -> None:
        """Write new samples to disk."""
        if self._db is None or not self._dirty:
            return
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO streams VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (k, s.model, s.stage, s.item, s.prompt_tokens, s.world, s.role)
                    for k in self._dirty
                    for s in [self._streams[k]]
                ],
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

    def measured_lengths(self, world: str, stages: dict[str, list[str]]) -> dict[tuple[str, str], tuple[float, float]]:
        """Mean (prompt tokens, output tokens per sample) per (stage, model) of this world's sampling streams.

        Only pairs of ``stages`` (stage -> model names) with recorded samples appear; fuser calls are left out.
        """
        if self._db is None:
            return {}
        out = {}
        for stage, model, np_, nd in self._db.execute(
            "SELECT s.stage, s.model, AVG(s.prompt_tokens), "
            "(SELECT AVG(x.tokens) FROM samples x JOIN streams y ON x.key = y.key "
            " WHERE y.world = s.world AND y.stage = s.stage AND y.model = s.model AND y.role = 'sample') "
            "FROM streams s WHERE s.world = ? AND s.role = 'sample' GROUP BY s.stage, s.model",
            (world,),
        ):
            if model in stages.get(stage, ()) and nd is not None:
                out[(stage, model)] = (float(np_), float(nd))
        return out


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (creating or upgrading) a bank file."""
    db = sqlite3.connect(path, check_same_thread=False)
    db.executescript(_SCHEMA)
    have = {row[1] for row in db.execute("PRAGMA table_info(streams)")}
    for col, kind in _LATER_COLUMNS.items():
        if col not in have:
            db.execute(f"ALTER TABLE streams ADD COLUMN {col} {kind}")
    db.commit()
    return db


def _check_bank_file(path: Path) -> None:
    """One BankFileError unless ``path`` is an SQLite file holding a bank's tables. Opens it read-only:
    ``sqlite3.connect`` on an empty or foreign file would turn it into a database."""
    with open(path, "rb") as fh:
        is_sqlite = fh.read(16) == b"SQLite format 3\x00"
    tables: set = set()
    if is_sqlite:
        try:
            with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
                tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError:
            pass
    if not {"streams", "samples"} <= tables:
        raise BankFileError(f"{path} is not a sample bank file (no streams and samples tables); nothing was changed")


def export_bank(src: str | Path, dest: str | Path) -> dict[str, int]:
    """Copy the bank at ``src`` into the single file ``dest`` (a consistent snapshot; ``dest`` must not
    exist, its folder must)."""
    src, dest = Path(src), Path(dest)
    if not src.exists():
        raise BankFileError(f"no sample bank at {src} (bank.path)")
    if dest.exists():
        raise BankFileError(f"{dest} exists; export writes a new file")
    if not dest.parent.is_dir():
        raise BankFileError(f"no folder {dest.parent} to write {dest.name} into")
    with connect(src) as a:
        b = sqlite3.connect(dest)
        a.backup(b)
        b.close()
    return counts(dest)


def import_bank(src: str | Path, dest: str | Path) -> dict[str, int]:
    """Merge the bank file ``src`` into the bank at ``dest``: new streams and new samples are added.

    Streams are append-only, so a sample index ``dest`` already holds is kept as it is (counted as
    ``conflicts`` when the text differs: both machines generated that index independently).
    """
    src, dest = Path(src), Path(dest)
    if not src.is_file():
        raise BankFileError(f"no bank file at {src}")
    _check_bank_file(src)
    try:
        connect(src).close()  # upgrades an older bank's columns (the file was checked to be a bank)
    except sqlite3.DatabaseError as e:
        raise BankFileError(f"{src} is not a sample bank file ({e})") from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    db = connect(dest)
    try:
        with db:
            db.execute("ATTACH DATABASE ? AS src", (str(src),))
            before = counts_of(db)
            conflicts = db.execute(
                "SELECT COUNT(*) FROM src.samples s JOIN samples d ON s.key = d.key AND s.idx = d.idx "
                "WHERE s.text != d.text"
            ).fetchone()[0]
            db.execute(
                "INSERT OR IGNORE INTO streams SELECT key, model, stage, item, prompt_tokens, world, role FROM src.streams"
            )
            db.execute("INSERT OR IGNORE INTO samples SELECT key, idx, text, tokens FROM src.samples")
            after = counts_of(db)
        db.execute("DETACH DATABASE src")
    finally:
        db.close()
    return {
        "streams_added": after["streams"] - before["streams"],
        "samples_added": after["samples"] - before["samples"],
        "replies_added": after["replies"] - before["replies"],
        "conflicts": conflicts,
    }


def counts_of(db: sqlite3.Connection) -> dict[str, int]:
    out = {t: db.execute(f"SELECT COUNT(*) FROM main.{t}").fetchone()[0] for t in ("streams", "samples")}
    out["replies"] = db.execute(  # a reasoner's replies (components/reasoners/banked.py), among the samples
        "SELECT COUNT(*) FROM main.samples s JOIN main.streams t ON s.key = t.key WHERE t.role = 'reply'"
    ).fetchone()[0]
    return out


def counts(path: str | Path) -> dict[str, int]:
    """Number of streams and samples in a bank file, and how many of the samples are reasoner replies."""
    db = connect(path)
    try:
        return counts_of(db)
    finally:
        db.close()
