"""Which allocation a command uses: explicit ``allocation.STAGE=MODEL:S`` overrides, the best of an earlier
search (``allocation=best``, ``run=<id>``, ``run=last``), or the task's champion (``allocation=champion``).

Shared by ``agenttts evaluate`` and ``agenttts run``. Reads MLflow through ``flows.runs`` only.
"""

from __future__ import annotations

from components.errors import ConfigError
from components.space import Allocation, SearchSpace
from flows.runs import ArchivedSearch, find_search

HOW = (
    "give allocation.STAGE=MODEL:S for every stage, allocation=best (best of run=last or run=<id>), "
    "run=<id> / run=last, or allocation=champion"
)


def resolve_champion(cfg: dict, task: str) -> tuple[dict, str | None]:
    """The champion allocation of ``task`` (``models:/<task>-allocation@champion``) as
    ``({stage: {model, samples}}, search run id or None)``; ConfigError when the task has none."""
    from flows.champion import champion_allocation  # imports MLflow: only when a champion is asked for

    champ = champion_allocation(cfg, task)
    return champ.allocation, champ.run_id or None


def resolve_allocation(cfg: dict, space: SearchSpace, task: str) -> tuple[Allocation, ArchivedSearch | None, str]:
    """The allocation to use, the search it comes from (if any) and where it came from (for logs).

    Explicit stage overrides given together with ``run=`` replace those stages of the run's best.
    Raises ConfigError (before anything runs) for an unknown form, a missing search, a search of
    another task, or an allocation that does not fit the task's stages and models.
    """
    spec = cfg.get("allocation")
    ref = cfg.get("run")
    ref = None if ref in (None, "") else str(ref)
    search: ArchivedSearch | None = None
    if isinstance(spec, str):
        if spec == "best":
            search = find_search(cfg, ref or "last", task)
            alloc, source = Allocation.parse(search.best_allocation), f"best of search {search.run_id}"
        elif spec == "champion":
            if ref:
                raise ConfigError("allocation=champion takes no run=; give one of them")
            chosen, run_id = resolve_champion(cfg, task)
            alloc, source = Allocation.parse(chosen), f"champion of {task}" + (f" (search {run_id})" if run_id else "")
            if run_id:
                try:
                    search = find_search(cfg, run_id, task)  # links the evaluation; its train split is checked
                except ConfigError:
                    search = None  # the champion stands on its own when its search is gone or unfinished
        else:
            raise ConfigError(f"unknown allocation {spec!r}; {HOW}")
    elif spec:
        if ref:
            search = find_search(cfg, ref, task)
            best = dict(search.best_allocation)
            best.update(spec)
            alloc, source = Allocation.parse(best), f"best of search {search.run_id} with {sorted(spec)} overridden"
        else:
            alloc, source = Allocation.parse(spec), "given"
    elif ref:
        search = find_search(cfg, ref, task)
        alloc, source = Allocation.parse(search.best_allocation), f"best of search {search.run_id}"
    else:
        raise ConfigError(f"no allocation given; {HOW}")
    return space.validate(alloc), search, source


__all__ = ["resolve_allocation", "resolve_champion"]
