"""An LLM reasoner's replies kept in the sample bank, so the same search replays its agent.

Replies are streams of the bank, like samples: the n-th time a search asks the same prompt (same
system text, reasoner settings and search seed) it gets the bank's n-th reply to it when the bank
has one, and the reasoner answers otherwise. A new reply is written to disk as soon as it arrives.
So a resumed search (or the same command run again) re-asks the same prompts, gets the same
replies without calling the LLM, and proposes the same trials, up to the first prompt that
differs; from there on the reasoner answers as usual. The search seed is in the key, so searches
with other seeds draw their own replies. Failed answers (``ReasonerError``) are not kept.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from components.bank import SampleBank, connect, stream_key
from components.reasoners.base import AgentView, Reasoner, Reply

ROLE = "reply"  # the bank's role of reasoner streams (pipeline samples are "sample" and "fuse")


def reasoner_identity(reasoner: Reasoner) -> str:
    """What makes two reasoners' replies to one prompt the same distribution: name, model and sampling.

    >>> from components.reasoners.openai_chat import OpenAIReasoner
    >>> reasoner_identity(OpenAIReasoner("http://h:8000/v1", "m", temperature=0.5, max_tokens=64))
    'openai|m|temperature=0.5|max_tokens=64'
    >>> reasoner_identity(OpenAIReasoner("http://h:8000/v1"))  # the server's only model
    'openai|http://h:8000/v1|temperature=1.0|max_tokens=2048'
    """
    model = getattr(reasoner, "model", None) or getattr(reasoner, "base_url", "")
    return (
        f"{reasoner.name}|{model}|temperature={getattr(reasoner, 'temperature', '')}"
        f"|max_tokens={getattr(reasoner, 'max_tokens', '')}"
    )


class BankedReasoner:
    """``inner`` with its replies read from and written to ``bank`` (see the module docstring).

    Args:
        inner: the LLM reasoner that answers what the bank does not hold.
        bank: a sample bank; its replies must outlive the process to replay a resumed search.

    ``replayed`` and ``answered`` count the replies taken from the bank and from ``inner``.
    """

    def __init__(self, inner: Reasoner, bank: SampleBank):
        self.inner, self.bank = inner, bank
        self.name, self.is_llm = inner.name, inner.is_llm
        self.identity = reasoner_identity(inner)
        self._asked: Counter = Counter()  # key -> times asked in this search
        self.replayed = 0
        self.answered = 0

    def __repr__(self) -> str:
        return f"BankedReasoner({self.inner!r})"

    def check(self) -> None:
        self.inner.check()

    def complete(self, system: str, prompt: str, view: AgentView) -> Reply:
        world = f"seed={view.seed}"
        key = stream_key(self.identity, f"{system}\x00{prompt}", "", world)
        n = self._asked[key]  # a failed answer takes no index, so stream index n is the n-th reply
        self.bank.load([key])
        stream = self.bank.get(key)
        if stream is not None and len(stream.texts) > n:
            self._asked[key] += 1
            self.replayed += 1
            return Reply(stream.texts[n])  # no tokens: nothing was generated for it
        reply = self.inner.complete(system, prompt, view)
        self._asked[key] += 1
        self.bank.append(
            key, self.identity, "", view.kind, reply.prompt_tokens, [reply.text], [reply.completion_tokens],
            world, ROLE, counted=False,
        )  # fmt: skip
        self.bank.flush()  # at once: a search killed after this answer replays it
        self.answered += 1
        return reply


def bank_replies(searcher, bank: SampleBank) -> BankedReasoner | None:
    """Route the LLM reasoner of ``searcher`` (or of the searcher it wraps) through ``bank``.

    Returns the banked reasoner, or None when there is nothing to bank: no LLM reasoner, or a bank
    that keeps nothing on disk (replies that die with the process replay nothing).
    """
    inner = getattr(searcher, "inner", searcher)  # a warm start wraps the searcher
    reasoner = getattr(inner, "reasoner", None)
    if reasoner is None or not getattr(reasoner, "is_llm", False) or not bank.persistent:
        return None
    if not isinstance(reasoner, BankedReasoner):
        inner.reasoner = BankedReasoner(reasoner, bank)
    return inner.reasoner


def has_replies(path: str | Path, reasoner: Reasoner) -> bool:
    """Whether the bank file at ``path`` holds replies of this reasoner (its model and sampling)."""
    if not Path(path).exists():
        return False
    db = connect(path)
    try:
        q = "SELECT 1 FROM streams WHERE role = ? AND model = ? LIMIT 1"
        return db.execute(q, (ROLE, reasoner_identity(reasoner))).fetchone() is not None
    finally:
        db.close()
