"""Nightly re-optimization: a Prefect deployment, served on a cron schedule, of a flow that runs the search.

``agenttts schedule cron="0 2 * * *" [overrides]`` validates the config, then serves the ``nightly``
flow with Prefect's own machinery (``flow.serve``: a deployment with a cron schedule, polled by a
runner). Each run composes the config afresh from the stored overrides (so edited model catalogs,
prices, scenarios and data files are picked up), warm-starts from the champion (``warm_start=champion``
unless the overrides say otherwise) and runs the ``search`` flow as a subflow, which decides on the
champion as every search does. Runs execute in the directory where ``agenttts schedule`` was started
(relative paths such as ``mlruns/`` and the sample bank resolve there).
"""

from __future__ import annotations

from prefect import flow

NIGHTLY_DEFAULTS = ("warm_start=champion", "champion.enabled=true")


def nightly_overrides(overrides: list[str]) -> list[str]:
    """The search overrides of a nightly run: the user's, plus warm start from the champion and promotion.

    >>> nightly_overrides(["trials=20", "warm_start=last"])
    ['champion.enabled=true', 'trials=20', 'warm_start=last']
    """
    given = {o.split("=", 1)[0].lstrip("+~") for o in overrides}
    return [d for d in NIGHTLY_DEFAULTS if d.split("=", 1)[0] not in given] + list(overrides)


@flow(name="nightly", validate_parameters=False)
def nightly_flow(overrides: list[str]) -> dict:
    """Re-optimize: compose the config from ``overrides``, search (warm-started), decide on the champion."""
    from flows.build import build
    from flows.cli import compose
    from flows.search import search_flow

    ov = nightly_overrides(list(overrides))
    cfg = compose(ov)
    cfg["cli_overrides"] = ov
    cfg["command_line"] = " ".join(["agenttts", "search", *ov]) + "  # nightly"
    build(cfg)  # validated before the search flow starts
    out = search_flow(cfg)
    champ = out.champion or {}
    return {
        "run_id": out.run_id,
        "warm_start": out.warm_start,
        "best": str(out.best.allocation) if out.best else None,
        "decision": champ.get("decision"),
        "version": champ.get("version"),
    }


def serve_nightly(name: str, cron: str, overrides: list[str], timezone: str = "UTC") -> None:
    """Register the deployment ``nightly/<name>`` with its cron schedule (in ``timezone``) and serve it
    (blocks until stopped)."""
    from prefect.schedules import Cron

    nightly_flow.serve(
        name=name,
        schedule=Cron(cron, timezone=timezone),
        parameters={"overrides": list(overrides)},
        description="agenttts nightly re-optimization: warm-started search, champion promoted if better",
        tags=["agenttts", "nightly"],
    )


__all__ = ["nightly_flow", "nightly_overrides", "serve_nightly"]
