"""Random search: feasible allocations drawn uniformly, never repeating an evaluated one."""

from __future__ import annotations

import numpy as np

from components.pipeline import TrialResult
from components.searchers.base import Proposal
from components.space import SearchSpace


class RandomSearcher:
    """Uniform over the feasible space (rejection sampling), without history or priors.

    >>> from components.space import Budget, Model, SearchSpace, Stage
    >>> sp = SearchSpace([Stage("qa", (Model("m", 3e9),), 256, 64)], Budget("units", 10))
    >>> len(RandomSearcher(seed=0).propose(sp, [], 3))
    3
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.rng = np.random.default_rng(seed)

    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        seen = {r.allocation for r in history}
        out: dict = {}
        for _ in range(100):  # small spaces may be nearly exhausted
            for a in space.sample(self.rng, k):
                if a not in seen and a not in out and len(out) < k:
                    out[a] = Proposal(a, "uniform random feasible allocation")
            if len(out) >= k or len(seen) + len(out) >= space.size:
                break
        return list(out.values())

    def observe(self, results: list[TrialResult]) -> None:
        pass
