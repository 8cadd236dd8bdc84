"""Warm start: begin a search from an earlier search's best trials and guidelines.

The earlier search's ``trials.csv`` gives its trials; the top ``k`` by score are re-evaluated first on
the current data (cheap: their samples are in the sample bank), so every searcher sees them as
history. The AgentTTS agent also gets the earlier guidelines as prior experience and skips the
Insight-1 probes of stages the prior settles (its top trials agree on the stage's model).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from components.errors import ConfigError
from components.pipeline import TrialResult
from components.searchers.base import Proposal
from components.space import Allocation, SearchSpace


@dataclass
class WarmStart:
    """What a search takes over from an earlier one (``run_id``)."""

    run_id: str
    allocations: list[Allocation]  # re-evaluated first, best of the earlier search first
    prior_scores: list[float]  # their scores in the earlier search
    guidelines: list[str] = field(default_factory=list)  # the earlier agent's guidelines, oldest first
    notes: list[str] = field(default_factory=list)  # e.g. re-projected onto the current budget

    def settled(self, space: SearchSpace) -> dict[str, tuple[str, str]]:
        """Stage → (model, why) for stages where every re-evaluated trial uses the same model."""
        out = {}
        for stage in space.stages:
            models = {a[stage.name][0] for a in self.allocations}
            if len(models) == 1:
                (m,) = models
                out[stage.name] = (
                    m,
                    f"prior experience: the {len(self.allocations)} best trials of search {self.run_id} all use {m}",
                )
        return out

    def prior_text(self) -> str:
        """The prompt section given to the agent: the earlier search's latest guidelines and best trials."""
        lines = [f"Prior experience from an earlier search of this task (MLflow run {self.run_id}):"]
        lines += [f"- {a} scored {s:.4f} there" for a, s in zip(self.allocations, self.prior_scores)]
        lines.append("These trials are re-evaluated on the current data first (see the history).")
        if self.guidelines:
            lines += ["Its latest guidelines:", self.guidelines[-1].strip()]
        return "\n".join(lines)


def top_allocations(
    rows: list[dict], space: SearchSpace, k: int, ref: str
) -> tuple[list[Allocation], list[float], list[str]]:
    """The ``k`` best ok trials of ``rows`` (a trials.csv), checked against ``space``.

    Raises ConfigError when the earlier search's stages or models do not fit the current task.
    Allocations over the current budget are projected onto it (noted); duplicates after that dropped.
    """
    names = [s.name for s in space.stages]
    if not rows:
        raise ConfigError(f"warm_start={ref}: its trials.csv holds no trials")
    cols = set(rows[0])
    theirs = sorted(c[: -len(".model")] for c in cols if c.endswith(".model"))
    if sorted(names) != theirs:
        raise ConfigError(f"warm_start={ref}: that search has stages {theirs}, the current task has {sorted(names)}")
    missing = [c for c in ("trial", "score", *(f"{n}.samples" for n in names)) if c not in cols]
    if missing:
        raise ConfigError(f"warm_start={ref}: its trials.csv lacks the column(s) {missing}")
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    for n, r in enumerate(ok, 1):  # an edited or cut-off table: one message naming the row, not a traceback
        try:
            float(r["score"]), int(r["trial"]), float(r.get("cost/units") or 0)
            [int(r[f"{name}.samples"]) for name in names]
        except (TypeError, ValueError):
            raise ConfigError(f"warm_start={ref}: trials.csv row {n} is not a complete trial: {dict(r)}") from None
    ok.sort(key=lambda r: (-float(r["score"]), float(r.get("cost/units") or 0), int(r["trial"])))
    allocs: list[Allocation] = []
    scores, notes = [], []
    for r in ok:
        if len(allocs) >= k:
            break
        a = Allocation(tuple((n, r[f"{n}.model"], int(r[f"{n}.samples"])) for n in names))
        try:
            space.validate(a)
        except ConfigError as e:  # unknown model (UnknownNameError), samples out of range (AllocationError)
            raise ConfigError(f"warm_start={ref}: its trial {a} does not fit the current task: {e}") from None
        if not space.is_feasible(a):
            p = space.project(a)
            notes.append(f"{a} is over the current budget {space.budget}: re-projected to {p}")
            a = p
        if a not in allocs:
            allocs.append(a)
            scores.append(float(r["score"]))
    if not allocs:
        raise ConfigError(f"warm_start={ref}: that search has no successful trial")
    return allocs, scores, notes


class WarmStartSearcher:
    """Proposes the warm-start allocations first, then delegates to ``inner``.

    ``inner`` sees the re-evaluated trials in the history it is given (Optuna ingests them, random
    and grid skip them, the agent reasons over them); ``observe`` passes on only its own results.
    """

    def __init__(self, inner, warm: WarmStart):
        self.inner, self.warm = inner, warm
        self._todo = list(warm.allocations)
        self._warm = set(warm.allocations)
        if hasattr(inner, "set_prior"):
            inner.set_prior(warm)

    @property
    def name(self) -> str:
        return self.inner.name

    def __getattr__(self, attr):  # artifacts, counts, agent_seconds ... of the inner searcher
        if attr.startswith("__") or attr in ("inner", "warm"):  # not set yet (e.g. while unpickling)
            raise AttributeError(attr)
        return getattr(self.inner, attr)

    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        seen = {r.allocation for r in history}
        self._todo = [a for a in self._todo if a not in seen]
        if self._todo:
            out, self._todo = self._todo[:k], self._todo[k:]
            return [
                Proposal(
                    a,
                    f"warm start: one of the best trials of search {self.warm.run_id}, re-evaluated on the current data",
                    {"insight": "", "source": "warm_start", "repairs": []},
                )
                for a in out
            ]
        return self.inner.propose(space, history, k)

    def observe(self, results: list[TrialResult]) -> None:
        own = [r for r in results if r.allocation not in self._warm]
        if own:
            self.inner.observe(own)


__all__ = ["WarmStart", "WarmStartSearcher", "top_allocations"]
