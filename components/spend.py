"""Spend control of a search: the projected worst-case inference cost (``dry_run``) and the limits
``search.max_flops`` / ``search.max_usd`` on what the search itself generates.

Worst case = nothing is reused from the sample bank, every LLM fuser call is made, and each trial is the
most expensive feasible allocation (the grid: every feasible allocation, exactly). Vectorised over the
space's per-stage option tables, so it costs milliseconds even for 10^6 allocations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from components.errors import ConfigError
from components.space import SearchSpace

QUANTITIES = ("calls", "prompt_tokens", "output_tokens", "flops", "usd")


@dataclass(frozen=True)
class Projection:
    """Projected worst-case inference of one search (backend calls are per question and stage)."""

    trials: int
    questions: int
    grid: bool
    calls: float
    prompt_tokens: float
    output_tokens: float
    flops: float
    usd: float | None  # None: a model has no price
    per_trial_flops: float  # worst trial over all questions
    reasoner_calls: int  # LLM reasoner calls (not priced); 0 for LLM-free searchers


def _stage_table(space: SearchSpace, i: int) -> dict[str, np.ndarray]:
    """Per option of stage i (in ``space._options`` order): the quantities generated per question."""
    stage, cm = space.stages[i], space.cost_model
    cols = {q: [] for q in QUANTITIES}
    for model, n, _ in space._options[i]:
        c = cm.stage_cost(stage.name, model, n)
        np_, nd = cm.token_lengths(stage.name, model)
        fused = stage.fusion == "llm" and n > 1
        cols["calls"].append(1 + fused)
        cols["prompt_tokens"].append((np_ if cm.prefix_sharing else n * np_) + (np_ + n * nd if fused else 0))
        cols["output_tokens"].append(n * nd + (nd if fused else 0))
        cols["flops"].append(c.flops + c.fusion_flops)
        cols["usd"].append(math.nan if c.usd is None else c.usd + c.fusion_usd)
    return {q: np.array(v, dtype=float) for q, v in cols.items()}


def project(space: SearchSpace, trials: int, questions: int, grid: bool = False, reasoner_calls: int = 0) -> Projection:
    """Worst-case inference of a search of ``trials`` trials on ``questions`` questions (grid: all)."""
    idx = space._feasible_index()
    per_alloc = {q: 0.0 for q in QUANTITIES}
    for i in range(len(space.stages)):
        table = _stage_table(space, i)
        for q in QUANTITIES:
            per_alloc[q] = per_alloc[q] + table[q][idx[:, i]]
    if grid:
        total = {q: float(np.sum(v)) * questions for q, v in per_alloc.items()}
        trials = len(idx)
    else:
        trials = min(trials, len(idx))  # a search never repeats an allocation
        total = {q: float(np.max(v)) * trials * questions for q, v in per_alloc.items()}
    usd = None if math.isnan(total["usd"]) else total["usd"]
    worst = float(np.max(per_alloc["flops"])) * questions
    return Projection(
        trials,
        questions,
        grid,
        total["calls"],
        total["prompt_tokens"],
        total["output_tokens"],
        total["flops"],
        usd,
        worst,
        reasoner_calls,
    )


def spend_limits(cfg: dict, space: SearchSpace) -> tuple[float | None, float | None]:
    """``(search.max_flops, search.max_usd)``, validated: positive numbers; dollars need every price."""
    s = cfg.get("search") or {}
    out = []
    for key in ("max_flops", "max_usd"):
        v = s.get(key)
        if v is None:
            out.append(None)
            continue
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"search.{key} must be a number, got {v!r}") from None
        if not v > 0:
            raise ConfigError(f"search.{key} must be positive, got {v}")
        out.append(v)
    if out[1] is not None:
        missing = [f"{st.name}/{m.name}" for st in space.stages for m in st.models if m.price_per_mtok is None]
        if missing:
            raise ConfigError(f"search.max_usd needs a price for every model; missing: {missing}")
    return out[0], out[1]


__all__ = ["Projection", "project", "spend_limits"]
