"""Exhaustive search: every feasible allocation. On the simulator it yields the oracle optimum."""

from __future__ import annotations

from components.pipeline import TrialResult
from components.searchers.base import Proposal
from components.space import SearchSpace


class GridSearcher:
    """Proposes every feasible allocation not evaluated yet, cheapest first, in one batch."""

    name = "grid"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        seen = {r.allocation for r in history}
        todo = [a for a in space.enumerate() if a not in seen]
        todo.sort(key=space.cost)
        return [Proposal(a, "grid: exhaustive enumeration") for a in todo[:k]]

    def observe(self, results: list[TrialResult]) -> None:
        pass
