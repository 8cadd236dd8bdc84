"""Insight 1: the initial trials compare every candidate model of a stage at the same budget.

For each stage i (AgentTTS, Sec. 5 and its released code): the stage's probe budget is one sample of
its largest model, reduced when that leaves no room for the other stages at their cheapest; every
candidate model gets as many samples as that budget buys (small models get more, capped at 60);
the other stages run their largest model once if the rest of the budget allows, else their smallest.
"""

from __future__ import annotations

import functools
import math

from components.space import Allocation, SearchSpace

PROBE_CAP = 60  # AgentTTS caps probe samples at 60


def insight1_probes(space: SearchSpace, cap: int = PROBE_CAP) -> list[tuple[Allocation, str, str]]:
    """The initial trials as (allocation, probed stage, reason). Duplicates and infeasible ones dropped:
    an allocation that probes several stages (every stage's largest model once) is run once, listed
    under the first; :func:`stage_probes` keeps it under each."""
    out: dict[Allocation, tuple[str, str]] = {}
    for stage, probes in stage_probes(space, cap).items():
        for a, why in probes:
            out.setdefault(a, (stage, why))
    return [(a, st, why) for a, (st, why) in out.items()]


@functools.lru_cache(maxsize=32)
def stage_probes(space: SearchSpace, cap: int = PROBE_CAP) -> dict[str, tuple[tuple[Allocation, str], ...]]:
    """Per stage, its feasible probes as (allocation, reason): every candidate model at the same stage
    budget, the other stages fixed. Cached per space (spaces are not changed after construction): the
    rules reasoner reads it for every stage several times a round."""
    stages = space.stages
    budget = space.budget.value
    largest1 = {s.name: space.stage_cost(s.name, s.largest.name, 1) for s in stages}
    smallest1 = {s.name: space.stage_cost(s.name, s.smallest.name, 1) for s in stages}
    out: dict[str, list[tuple[Allocation, str]]] = {}
    for stage in stages:
        out[stage.name] = []
        others = [s for s in stages if s.name != stage.name]
        b_i = min(largest1[stage.name], budget - sum(smallest1[s.name] for s in others))
        rest = budget - b_i
        fixed = {}
        for s in others:
            use_large = rest >= sum(largest1[o.name] for o in others) - 1e-9
            fixed[s.name] = (s.largest.name if use_large else s.smallest.name, 1)
        for m in sorted(stage.models, key=lambda m: -m.params):
            n = min(space.max_samples(stage, m.name, b_i), cap)
            if n < stage.min_samples or n < 1:
                continue
            choice = tuple((s.name, m.name, n) if s.name == stage.name else (s.name, *fixed[s.name]) for s in stages)
            a = Allocation(choice)
            if space.is_feasible(a) and all(a != b for b, _ in out[stage.name]):
                budget_txt = f"{b_i:.0f}" if math.isfinite(b_i) else "?"
                why = (
                    f"Insight 1 probe of stage '{stage.name}': {m.name} with {n} samples at the stage budget "
                    f"{budget_txt} {space.budget.kind} (other stages fixed)"
                )
                # the sample range or the cap can stop a small model short of the stage budget: say so,
                # or the comparison reads as one at equal budget
                if space.stage_cost(stage.name, m.name, n + 1) <= b_i + 1e-9:
                    limit = (
                        f"the {cap}-sample cap"
                        if n == cap
                        else f"the stage's range [{stage.min_samples}, {stage.max_samples}]"
                    )
                    spent = space.stage_cost(stage.name, m.name, n)
                    why += f"; capped by {limit}, it spends {spent:.4g} of them"
                out[stage.name].append((a, why))
    return {st: tuple(p) for st, p in out.items()}
