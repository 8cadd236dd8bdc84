"""Resolve ``warm_start=<run id>|last|champion`` to a WarmStart, before any run is created.

``last`` and a run id go through ``flows.runs.find_search`` (same task, finished search).
``champion`` takes the search that produced ``models:/<task>-allocation@champion``, else the last
finished search, else starts cold (so a nightly schedule can begin on an empty archive).
"""

from __future__ import annotations

from components.errors import ConfigError
from components.searchers.agenttts import guideline_rounds
from components.warm import WarmStart, top_allocations
from flows.build import int_option
from flows.runs import find_search, world_tags


def _champion_run(cfg: dict, task: str) -> str | None:
    from flows.champion import current_champion

    champ = current_champion(cfg, task)
    return champ.run_id if champ else None


def resolve_warm_start(cfg: dict, ctx, progress=print) -> WarmStart | None:
    """The configured warm start for the search context ``ctx`` (None: cold start).

    Raises ConfigError (one line, before any compute) for a run of another task, an unfinished or
    missing run, or a search whose stages or models do not fit the current task.
    """
    ref = cfg.get("warm_start")
    if ref in (None, "", False):
        return None
    ref, task = str(ref), ctx.task.name
    if ref == "champion":
        run_id = _champion_run(cfg, task)
        if run_id is None:
            try:
                run_id = find_search(cfg, "last", task).run_id
            except ConfigError:
                progress(f"warm_start=champion: no champion and no finished search of task {task!r}: cold start")
                return None
        ref = run_id
    try:
        found = find_search(cfg, ref, task)
    except ConfigError as e:
        raise ConfigError(f"warm_start={ref}: {e}") from None
    archive = found.archive
    k = int_option(cfg, "warm_start_k", 1, 4)
    rows = archive.read_trials_table(found.run_id)
    if rows is None:
        raise ConfigError(f"warm_start={ref}: search {found.run_id} has no trials.csv artifact")
    names = guideline_rounds([a.path for a in archive.client.list_artifacts(found.run_id, "guidelines")])
    guidelines = [archive.read_text(found.run_id, p) or "" for p in names]
    allocs, scores, notes = top_allocations(rows, ctx.space, k, found.run_id)
    theirs, ours = _world(found.run.data.tags), _world(world_tags(cfg, ctx))
    if theirs != ours:  # allowed (the trials are re-evaluated here), but its scores and guidelines are of another world
        notes.append(f"that search ran on {theirs}, this one on {ours}: its scores and guidelines describe the former")
    return WarmStart(found.run_id, allocs, scores, guidelines, notes)


def _world(tags: dict) -> str:
    """Backend, and for the simulator its scenario and world seed, from search-run tags."""
    out = f"backend {tags.get('backend', '?')}"
    if tags.get("scenario"):
        out += f" (scenario {tags['scenario']} v{tags.get('scenario_version', '?')}, world seed {tags.get('world_seed', '?')})"
    return out


__all__ = ["resolve_warm_start"]
