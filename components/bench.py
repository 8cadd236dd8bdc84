"""The search-efficiency benchmark: one searcher on one scenario and seed, and the statistics.

Every searcher gets the same initial design (the Insight-1 probes, unless switched off), the same
trial budget and the same simulated world; each search has its own fresh sample bank, so the tokens
it generates are its own. Trials-to-near is the first trial whose best-so-far is within one question
of the grid oracle (>= oracle - 1/N); trials-to-opt the first that reaches it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from components.agent.probes import insight1_probes
from components.pipeline import Environment, TrialResult, best_so_far, best_trial
from components.space import SearchSpace


@dataclass
class SearchRun:
    """The record of one benchmarked search."""

    scenario: str
    searcher: str
    seed: int
    history: list[TrialResult]
    n_questions: int
    oracle: float | None
    wall_s: float
    tokens_generated: int
    agent_tokens: int = 0
    test_score: float | None = None
    counts: dict = field(default_factory=dict)

    @property
    def curve(self) -> list[float]:
        return best_so_far(self.history)

    @property
    def best(self) -> TrialResult:
        return best_trial(self.history)

    def trials_to(self, target: float | None) -> int | None:
        """First trial (1-based) whose best-so-far reaches ``target``; None if never."""
        if target is None:
            return None
        for i, v in enumerate(self.curve, 1):
            if v >= target - 1e-9:
                return i
        return None

    @property
    def trials_to_near(self) -> int | None:
        return None if self.oracle is None else self.trials_to(self.oracle - 1.0 / self.n_questions)

    @property
    def trials_to_opt(self) -> int | None:
        return self.trials_to(self.oracle)

    def row(self) -> dict:
        """One line of bench.csv (empty cells where not reached or not known)."""
        b = self.best
        blank = lambda v: "" if v is None else v  # noqa: E731
        return {
            "scenario": self.scenario,
            "searcher": self.searcher,
            "seed": self.seed,
            "trials_to_near": blank(self.trials_to_near),
            "trials_to_opt": blank(self.trials_to_opt),
            "best_train": round(b.score, 6),
            "oracle_train": blank(None if self.oracle is None else round(self.oracle, 6)),
            "test_score": blank(None if self.test_score is None else round(self.test_score, 6)),
            "tokens_generated": self.tokens_generated,
            "flops_spent": sum(r.flops_spent for r in self.history),
            "agent_tokens": self.agent_tokens,
            "trials": len(self.history),
            "best_allocation": str(b.allocation),
            "wall_s": round(self.wall_s, 3),
        }


def run_search(
    space: SearchSpace, env: Environment, searcher, trials: int, batch: int, initial_design: bool = True
) -> list[TrialResult]:
    """Evaluate the shared initial design, then let ``searcher`` propose until ``trials`` are done."""
    history: list[TrialResult] = []
    if initial_design:
        probes = [a for a, _, _ in insight1_probes(space)][:trials]
        history += env.evaluate(probes)
        searcher.observe(list(history))
    while len(history) < trials:
        props = searcher.propose(space, history, min(batch, trials - len(history)))
        seen = {r.allocation for r in history}
        allocs = list(
            dict.fromkeys(p.allocation for p in props if p.allocation not in seen and space.is_feasible(p.allocation))
        )
        if not allocs:
            break  # the searcher has nothing new: its run ends short
        results = env.evaluate(allocs)
        searcher.observe(results)
        history += results
    return history


def timed(fn, *args, **kw):
    t = time.perf_counter()
    out = fn(*args, **kw)
    return out, time.perf_counter() - t


def paired_bootstrap(a: list[float], b: list[float], n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Median of the paired differences a - b and its 95% bootstrap interval (over seeds).

    >>> paired_bootstrap([10, 12, 11], [4, 5, 3])[0]
    7.0
    """
    d = np.asarray(a, float) - np.asarray(b, float)
    if len(d) == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    meds = np.median(d[rng.integers(0, len(d), size=(n, len(d)))], axis=1)
    return float(np.median(d)), float(np.percentile(meds, 2.5)), float(np.percentile(meds, 97.5))
