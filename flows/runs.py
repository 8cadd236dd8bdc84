"""Find earlier searches in the MLflow archive: ``run=last`` / ``run=<id>``, and their best allocation.

Used by commands that take a search as input (evaluate, report, run, warm start). Reads with
``MlflowClient`` only, like the Archive that wrote the runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import yaml
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from components.archive import Archive, missing_local_store
from components.errors import ConfigError


@dataclass
class ArchivedSearch:
    """A finished search read back from the archive."""

    run: Run
    experiment: str
    best_allocation: dict  # {stage: {model, samples}}, as logged in best_allocation.yaml
    best_score: float | None
    archive: Archive  # the archive it was read from (reuse it to read more of the run)

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def task(self) -> str:
        return self.run.data.tags.get("task", "")


def world_tags(cfg: dict, ctx) -> dict:
    """The search-run tags that say where a search of ``ctx`` runs: its backend and, on the simulator,
    its scenario and world seed (written by ``flows.search``, compared by a warm start); on a real
    backend whose models all come from one override, the bank world a replay must name (``bank_world``)."""
    from flows.build import backend_world

    tags = {"backend": cfg["backend"]["name"]}
    if ctx.scenario is not None:
        tags.update(scenario=ctx.scenario.name, scenario_version=ctx.scenario.version, world_seed=ctx.scenario.seed)
    elif world := backend_world(cfg["backend"]):
        tags["bank_world"] = world
    return tags


# keys that say how a search was launched, not what it searches: a rerun may differ in them
LAUNCH_KEYS = ("cli_overrides", "command_line", "sweep_id", "sweep_index")


def config_digest(cfg: dict) -> str:
    """What a search run is tagged with (``config_digest``) so a rerun of the same config finds it."""
    keep = {k: v for k, v in cfg.items() if k not in LAUNCH_KEYS}
    return hashlib.sha1(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]


def unfinished_search(archive: Archive, digest: str) -> tuple[Run, int] | None:
    """The newest search of ``archive``'s experiment with this config digest that did not finish
    (interrupted, killed or failed) and that no later search resumed, with its logged trial count."""
    runs = archive.client.search_runs(
        [archive.experiment_id],
        filter_string=f"tags.kind = 'search' and tags.config_digest = '{digest}'",
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    for run in runs:
        tags = run.data.tags
        if tags.get("status") in ("interrupted", "killed", "failed") and "resumed_by" not in tags:
            trials = archive.client.search_runs(
                [archive.experiment_id],
                filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'",
                max_results=5000,
            )
            return run, len(trials)
        if tags.get("status") == "finished":
            return None  # a finished search of this config came after: nothing to resume
    return None


def experiment_name(cfg: dict, task: str) -> str:
    return cfg["mlflow"].get("experiment") or f"agenttts-{task}"


def find_search(cfg: dict, ref: str, task: str) -> ArchivedSearch:
    """The search ``ref`` (``last`` = the newest finished search of ``task``, or a run id).

    Raises ConfigError with the reason when there is no such finished search, or when it belongs to
    another task.
    """
    exp = experiment_name(cfg, task)
    uri = cfg["mlflow"]["tracking_uri"]
    if missing_local_store(uri):
        what = f"no finished search of task {task!r}" if str(ref) == "last" else "no such MLflow run"
        raise ConfigError(
            f"run={ref}: {what}: there is no MLflow store at {uri} (no search has run here; "
            "run agenttts search first, or set mlflow.tracking_uri to your store)"
        )
    archive = Archive(uri, exp)
    client = archive.client
    ref = str(ref)
    if ref == "last":
        runs = client.search_runs(
            [archive.experiment_id],
            filter_string="tags.kind = 'search' and tags.status = 'finished'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            raise ConfigError(f"run=last: no finished search of task {task!r} in {archive.uri} (experiment {exp!r})")
        run = runs[0]
    else:
        try:
            run = client.get_run(ref)
        except MlflowException:
            raise ConfigError(f"run={ref}: no such MLflow run in {archive.uri}") from None
        if run.data.tags.get("kind") != "search":
            raise ConfigError(f"run={ref} is not a search run (kind={run.data.tags.get('kind')!r})")
        if run.data.tags.get("status") != "finished":
            raise ConfigError(f"run={ref} did not finish (status={run.data.tags.get('status')!r})")
    run_task = run.data.tags.get("task")
    if run_task != task:
        raise ConfigError(f"run={run.info.run_id} is a search of task {run_task!r}, not of task {task!r}")
    best = yaml.safe_load(archive.read_text(run.info.run_id, "best_allocation.yaml") or "") or {}
    return ArchivedSearch(run, exp, best.get("allocation") or {}, run.data.metrics.get("best_score"), archive)


__all__ = ["ArchivedSearch", "config_digest", "experiment_name", "find_search", "unfinished_search", "world_tags"]
