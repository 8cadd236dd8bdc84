"""The Searcher protocol: propose allocations given the archive's history, observe results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from components.pipeline import TrialResult
from components.space import Allocation, SearchSpace


@dataclass(frozen=True)
class Proposal:
    """An allocation to evaluate, why the searcher proposed it, and its decision-trace record."""

    allocation: Allocation
    rationale: str = ""
    trace: dict = field(default_factory=dict, compare=False)


class Searcher(Protocol):
    """Proposes batches of allocations.

    The search loop (``flows/search.py``) asks for ``k`` proposals per round, drops infeasible ones
    and duplicates of evaluated trials (counting them), evaluates the rest and calls ``observe``.
    ``history`` holds every evaluated trial so far, in order.
    """

    name: str

    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]: ...

    def observe(self, results: list[TrialResult]) -> None: ...
