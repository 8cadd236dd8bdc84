"""The unit of data every stage sees: one question with its gold answers and candidate facts."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """One question of a task.

    Args:
        id: stable identifier (dataset id or a derived one); used in sample-bank keys and seeds.
        question: the question text.
        answers: gold answer first, then aliases; any of them counts as correct.
        candidates: candidate facts (sentences or triples as text) for selection stages; empty if none.
        gold_ids: 1-based indices into ``candidates`` of the gold supporting facts.
        meta: anything else a task's prompt or parser needs (not part of equality).

    >>> Item("q1", "Who?", ("Ada",), ("Ada wrote it.", "Bob read it."), (1,)).gold_facts
    ('Ada wrote it.',)
    """

    id: str
    question: str
    answers: tuple[str, ...]
    candidates: tuple[str, ...] = ()
    gold_ids: tuple[int, ...] = ()
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def gold_facts(self) -> tuple[str, ...]:
        return tuple(self.candidates[i - 1] for i in self.gold_ids)
