"""The search space: stages, their candidate models and sample ranges, allocations, the budget.

An :class:`Allocation` maps each stage to ``(model, samples)``. The :class:`SearchSpace` knows which
allocations fit the budget, enumerates or samples them, projects an infeasible one onto the budget
with the fewest changes, and lists neighbours.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from components.cost import BUDGET_KINDS, CostModel
from components.errors import AllocationError, ConfigError, InfeasibleBudgetError, UnknownNameError

UNKNOWN_MODEL = "unknown model '{model}' for stage '{stage}'; available: {available}"
UNKNOWN_STAGE = "unknown stage '{stage}'; the task's stages are: {available}"


@dataclass(frozen=True)
class Model:
    """A candidate model: its name, parameter count and optional price ($ per 1M tokens)."""

    name: str
    params: float
    price_per_mtok: float | None = None


@dataclass(frozen=True)
class Stage:
    """One pipeline stage: candidate models, declared average token lengths, fusion, sample range."""

    name: str
    models: tuple[Model, ...]
    prompt_tokens: int
    output_tokens: int
    fusion: str = "vote"
    min_samples: int = 1
    max_samples: int = 100

    def model(self, name: str) -> Model:
        for m in self.models:
            if m.name == name:
                return m
        raise UnknownNameError(
            UNKNOWN_MODEL.format(model=name, stage=self.name, available=[m.name for m in self.models])
        )

    @property
    def largest(self) -> Model:
        return max(self.models, key=lambda m: m.params)

    @property
    def smallest(self) -> Model:
        return min(self.models, key=lambda m: m.params)


@dataclass(frozen=True, order=True)
class Allocation:
    """Per stage, in pipeline order: ``(stage, model, samples)``. Immutable and hashable.

    >>> a = Allocation((("retrieval", "Qwen2.5-72B", 1), ("qa", "Llama-3.2-3B", 50)))
    >>> str(a)
    'retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:50'
    >>> a["qa"], Allocation.parse(str(a)) == a
    (('Llama-3.2-3B', 50), True)
    """

    choices: tuple[tuple[str, str, int], ...]

    def __getitem__(self, stage: str) -> tuple[str, int]:
        for st, m, s in self.choices:
            if st == stage:
                return m, s
        raise KeyError(stage)

    def __str__(self) -> str:
        return self.key

    @property
    def key(self) -> str:
        """Canonical text, also the Hydra override syntax minus the ``allocation.`` prefix."""
        return " ".join(f"{st}={m}:{s}" for st, m, s in self.choices)

    def prefix(self, n: int) -> Allocation:
        """The first n stages (equal prefixes give equal upstream outputs)."""
        return Allocation(self.choices[:n])

    def replace(self, stage: str, model: str | None = None, samples: int | None = None) -> Allocation:
        return Allocation(
            tuple((st, model or m, samples or s) if st == stage else (st, m, s) for st, m, s in self.choices)
        )

    def to_dict(self) -> dict:
        return {st: {"model": m, "samples": s} for st, m, s in self.choices}

    @classmethod
    def parse(cls, spec: str | Mapping) -> Allocation:
        """From ``"stage=MODEL:S stage=MODEL:S"`` or ``{stage: "MODEL:S" | {model, samples}}``."""
        if isinstance(spec, str):
            parts = [p for p in re.split(r"[\s,]+", spec.strip()) if p]
            pairs = []
            for p in parts:
                if "=" not in p:
                    raise AllocationError(f"cannot parse allocation part '{p}'; expected STAGE=MODEL:SAMPLES")
                pairs.append(p.split("=", 1))
            spec = dict(pairs)
        choices = []
        for stage, v in spec.items():
            if isinstance(v, Mapping):
                model, samples = v.get("model"), v.get("samples")
            else:
                text = str(v)
                if ":" not in text:
                    raise AllocationError(
                        f"cannot parse allocation '{stage}={text}'; expected MODEL:SAMPLES, e.g. {stage}=Llama-3.2-3B:10"
                    )
                model, samples = text.rsplit(":", 1)
            try:
                samples = int(samples)
            except (TypeError, ValueError):
                raise AllocationError(f"samples for stage '{stage}' must be an integer, got '{samples}'") from None
            choices.append((str(stage), str(model), samples))
        return cls(tuple(choices))


@dataclass(frozen=True)
class Budget:
    """A total budget per question in one of ``units`` (the paper's), ``flops`` or ``usd``."""

    kind: str
    value: float

    def __post_init__(self):
        if self.kind not in BUDGET_KINDS:
            raise ConfigError(f"budget kind must be one of {BUDGET_KINDS}, got '{self.kind}'")

    def __str__(self) -> str:
        return f"{self.value:.6g} {self.kind}"


class SearchSpace:
    """Feasible allocations of ``stages`` under ``budget`` priced by ``cost_model``.

    Args:
        stages: the pipeline's stages in order.
        budget: the total budget per question.
        cost_model: prices allocations (``CostModel(stages)`` if omitted).
    """

    def __init__(self, stages: Iterable[Stage], budget: Budget, cost_model: CostModel | None = None):
        self.stages = tuple(stages)
        self.budget = budget
        self.cost_model = cost_model or CostModel(self.stages)
        if budget.kind == "usd" and any(m.price_per_mtok is None for s in self.stages for m in s.models):
            missing = [f"{s.name}/{m.name}" for s in self.stages for m in s.models if m.price_per_mtok is None]
            raise ConfigError(f"budget in usd needs a price for every model; missing: {missing}")

    # -- pricing -------------------------------------------------------------------------------
    def cost(self, a: Allocation) -> float:
        """The allocation's cost per question in the budget's kind."""
        return self.cost_model.cost(a).measure(self.budget.kind)

    def is_feasible(self, a: Allocation) -> bool:
        return self.cost(a) <= self.budget.value + 1e-9

    def validate(self, a: Allocation) -> Allocation:
        """Check stage names, models and sample ranges; raise one clear error naming what is wrong."""
        names = [s.name for s in self.stages]
        given = [st for st, _, _ in a.choices]
        for st in given:
            if st not in names:
                raise AllocationError(UNKNOWN_STAGE.format(stage=st, available=names))
        missing = [n for n in names if n not in given]
        if missing:
            raise AllocationError(f"allocation gives no model for stage(s) {missing}; give one per stage: {names}")
        out = []
        for stage in self.stages:
            model, samples = a[stage.name]
            stage.model(model)
            if not stage.min_samples <= samples <= stage.max_samples:
                raise AllocationError(
                    f"samples for stage '{stage.name}' must be in [{stage.min_samples}, {stage.max_samples}], got {samples}"
                )
            out.append((stage.name, model, samples))
        return Allocation(tuple(out))

    # -- per-stage option tables (vectorised enumeration) --------------------------------------
    def stage_cost(self, stage: str, model: str, samples: int) -> float:
        """One stage's cost per question in the budget's kind (the fuser call if charged)."""
        c = self.cost_model.stage_cost(stage, model, samples)
        kind = self.budget.kind
        v = {"units": c.units, "flops": c.flops, "usd": c.usd}[kind]
        if self.cost_model.count_fusion:
            v += {"units": c.fusion_units, "flops": c.fusion_flops, "usd": c.fusion_usd}[kind]
        return v

    def max_samples(self, stage: Stage, model: str, allowance: float) -> int:
        """Most samples of ``model`` on ``stage`` costing at most ``allowance`` (0 if not even the minimum)."""
        lo, hi, best = stage.min_samples, stage.max_samples, 0
        while lo <= hi:  # cost grows with samples
            mid = (lo + hi) // 2
            if self.stage_cost(stage.name, model, mid) <= allowance + 1e-9:
                best, lo = mid, mid + 1
            else:
                hi = mid - 1
        return best

    @cached_property
    def _options(self) -> list[list[tuple[str, int, float]]]:
        """Per stage: every (model, samples, cost in budget kind) option."""
        return [
            [
                (m.name, n, self.stage_cost(s.name, m.name, n))
                for m in s.models
                for n in range(s.min_samples, s.max_samples + 1)
            ]
            for s in self.stages
        ]

    def _alloc(self, idx: Iterable[int]) -> Allocation:
        return Allocation(tuple((s.name, *self._options[i][j][:2]) for i, (s, j) in enumerate(zip(self.stages, idx))))

    def _feasible_index(self) -> np.ndarray:
        """All feasible option-index tuples, shape (n_feasible, n_stages), by pruned enumeration."""
        costs = [np.array([o[2] for o in opts]) for opts in self._options]
        rows = np.zeros((1, 0), dtype=np.int32)
        spent = np.zeros(1)
        limit = self.budget.value + 1e-9
        # cheapest possible completion of the remaining stages, to prune early
        rest = [sum(c.min() for c in costs[i + 1 :]) for i in range(len(costs))]
        for i, c in enumerate(costs):
            total = spent[:, None] + c[None, :]
            keep = total + rest[i] <= limit
            r, j = np.nonzero(keep)
            rows = np.hstack([rows[r], j[:, None].astype(np.int32)])
            spent = total[r, j]
        return rows

    @cached_property
    def size(self) -> int:
        """Number of feasible allocations."""
        return int(len(self._feasible_index()))

    def enumerate(self) -> list[Allocation]:
        """Every feasible allocation (the grid)."""
        return [self._alloc(r) for r in self._feasible_index()]

    def cheapest(self) -> Allocation:
        return self._alloc([int(np.argmin([o[2] for o in opts])) for opts in self._options])

    def most_expensive_feasible(self) -> Allocation:
        idx = self._feasible_index()
        costs = sum(np.array([o[2] for o in opts])[idx[:, i]] for i, opts in enumerate(self._options))
        return self._alloc(idx[int(np.argmax(costs))])

    def check_budget(self) -> None:
        """Raise if the budget admits no allocation at all."""
        cheap = self.cheapest()
        if not self.is_feasible(cheap):
            raise InfeasibleBudgetError(
                f"budget {self.budget} is below the cheapest allocation "
                f"({self.cost(cheap):.6g} {self.budget.kind}: {cheap})"
            )

    def sample(self, rng: np.random.Generator, k: int = 1) -> list[Allocation]:
        """k feasible allocations drawn uniformly (rejection sampling over the option box)."""
        costs = [np.array([o[2] for o in opts]) for opts in self._options]
        out: list[Allocation] = []
        while len(out) < k:
            idx = np.stack([rng.integers(0, len(c), size=4096) for c in costs], axis=1)
            total = sum(c[idx[:, i]] for i, c in enumerate(costs))
            for r in idx[total <= self.budget.value + 1e-9][: k - len(out)]:
                out.append(self._alloc(r))
            if self.size == 0:
                raise InfeasibleBudgetError(f"budget {self.budget} admits no allocation")
        return out

    # -- local moves -----------------------------------------------------------------------------
    def neighbours(self, a: Allocation) -> list[Allocation]:
        """Feasible allocations one move away: samples ±1, ×2, ÷2, or another model at equal stage cost."""
        out = []
        for stage in self.stages:
            model, s = a[stage.name]
            for n in {s - 1, s + 1, s * 2, max(1, s // 2)}:
                if stage.min_samples <= n <= stage.max_samples and n != s:
                    out.append(a.replace(stage.name, samples=n))
            budget = self.cost_model.stage_cost(stage.name, model, s).flops
            for m in stage.models:
                if m.name != model:
                    out.append(a.replace(stage.name, model=m.name, samples=self.samples_for(stage, m, budget)))
        return list(dict.fromkeys(b for b in out if self.is_feasible(b)))

    def samples_for(self, stage: Stage, model: Model, flops: float) -> int:
        """Most samples of ``model`` within ``flops`` on ``stage`` (at least min, at most max)."""
        np_, nd = self.cost_model.token_lengths(stage.name, model.name)
        if self.cost_model.prefix_sharing:  # flops = 2·params·(Np + S·Nd)
            n = math.floor((flops / (2 * model.params) - np_) / nd + 1e-9)
        else:  # every sample encodes its own prompt: flops = 2·params·S·(Np + Nd)
            n = math.floor(flops / (2 * model.params * (np_ + nd)) + 1e-9)
        return int(min(stage.max_samples, max(stage.min_samples, n)))

    def project(self, a: Allocation) -> Allocation:
        """The feasible allocation with the fewest changed stages; ties: closest in log-samples.

        A changed model counts 10 and a changed sample count ``|log(S'/S)|``, so a projection first
        trims samples, then switches models. Vectorised over the per-stage option tables.
        """
        if self.is_feasible(a):
            return a
        n = len(self.stages)
        base = [self.stage_cost(st, m, s) for st, m, s in a.choices]
        cost = [np.array([o[2] for o in opts]) for opts in self._options]
        dist = [
            np.array([(0.0 if m == m0 else 10.0) + abs(math.log(s / s0)) for m, s, _ in opts])
            for opts, (_, m0, s0) in zip(self._options, a.choices)
        ]
        limit = self.budget.value + 1e-9
        for k in range(1, n + 1):
            best, best_d = None, math.inf
            for subset in itertools.combinations(range(n), k):
                room = limit - sum(base[i] for i in range(n) if i not in subset)
                first, rest = subset[0], subset[1:]
                # the first changed stage is looped over when the joint table would be large
                chunks = [None] if np.prod([len(cost[i]) for i in subset]) <= 4_000_000 else range(len(cost[first]))
                for j in chunks:
                    c = cost[first] if j is None else cost[first][j : j + 1]
                    d = dist[first] if j is None else dist[first][j : j + 1]
                    for i in rest:
                        c = c[..., None] + cost[i]
                        d = d[..., None] + dist[i]
                    d = np.where(c <= room, d, np.inf)
                    flat = int(np.argmin(d))
                    if d.flat[flat] < best_d:
                        pos = np.unravel_index(flat, d.shape)
                        pick = dict(zip(subset, [int(pos[0]) + (j or 0), *map(int, pos[1:])]))
                        best_d = float(d.flat[flat])
                        best = Allocation(
                            tuple(
                                (st.name, *self._options[i][pick[i]][:2]) if i in pick else a.choices[i]
                                for i, st in enumerate(self.stages)
                            )
                        )
            if best is not None:
                return best
        raise InfeasibleBudgetError(f"no allocation fits the budget {self.budget}")
