"""The champion: one registered MLflow model per task, ``<task>-allocation``, alias ``champion``.

A version's artifact is a folder with ``allocation.yaml`` logged on the search run that produced
it, so a serving system reads ``models:/<task>-allocation@champion`` with
``mlflow.artifacts.download_artifacts``. After a search, ``decide_champion`` scores the champion on
the same train questions and promotes the search's best allocation only if a paired per-question
test says it is better beyond noise; the decision and its evidence go on the search run.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from mlflow.exceptions import MlflowException

from components.archive import missing_local_store, open_client, store_lock
from components.champion import TESTS, paired_test
from components.errors import ConfigError, check_bool, check_int, check_number
from components.pipeline import TrialResult
from components.space import Allocation, SearchSpace

ALIAS = "champion"


def registered_name(task: str) -> str:
    return f"{task}-allocation"


@dataclass
class Champion:
    """The allocation behind ``models:/<task>-allocation@champion``."""

    name: str
    version: str
    run_id: str  # the search run that logged it
    allocation: dict  # {stage: {model, samples}}, as in the version's allocation.yaml
    document: dict  # the whole allocation.yaml (task, score, metric, budget, simulated, ...)

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{ALIAS}"


def champion_settings(cfg: dict) -> dict:
    """The ``champion.*`` keys, checked (ConfigError before any compute)."""
    c = dict(cfg.get("champion") or {})
    out = {
        "enabled": check_bool(c.get("enabled", True), "champion.enabled"),
        "test": str(c.get("test", "bootstrap")),
        "alpha": check_number(c.get("alpha", 0.05), "champion.alpha"),
        "min_delta": check_number(c.get("min_delta", 0.0), "champion.min_delta"),
        "resamples": check_int(c.get("resamples", 2000), "champion.resamples", 100),
        "infeasible": str(c.get("infeasible", "project")),
    }
    if out["test"] not in TESTS:
        raise ConfigError(f"champion.test must be one of {list(TESTS)}, got {out['test']!r}")
    if not 0 < out["alpha"] < 1:
        raise ConfigError(f"champion.alpha must be in (0, 1), got {out['alpha']}")
    if out["infeasible"] not in ("project", "reject"):
        raise ConfigError(f"champion.infeasible must be project or reject, got {out['infeasible']!r}")
    return out


def current_champion(cfg: dict, task: str) -> Champion | None:
    """The task's champion read back through ``models:/<task>-allocation@champion``; None if there is none."""
    import mlflow.artifacts

    uri = cfg["mlflow"]["tracking_uri"]
    if missing_local_store(uri):
        return None
    client = open_client(uri)
    name = registered_name(task)
    try:
        mv = client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:
        return None
    # download_artifacts("models:/...") resolves the alias with the *global* registry URI (MLflow 3.17
    # ignores its registry_uri argument there), so read the version's own download URI instead
    source = client.get_model_version_download_uri(name, mv.version)
    with tempfile.TemporaryDirectory() as d:
        path = mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=d, tracking_uri=client.tracking_uri)
        doc = yaml.safe_load((Path(path) / "allocation.yaml").read_text()) or {}
    return Champion(name, str(mv.version), mv.run_id or "", doc.get("allocation") or {}, doc)


def champion_allocation(cfg: dict, task: str) -> Champion:
    """The champion of ``task`` for ``agenttts run allocation=champion``; ConfigError if there is none."""
    champ = current_champion(cfg, task)
    if champ is None:
        raise ConfigError(
            f"no champion for task {task!r}: no version of registered model {registered_name(task)!r} has the alias "
            f"'{ALIAS}' in {cfg['mlflow']['tracking_uri']} (a search with champion.enabled=true registers one)"
        )
    return champ


def champion_lock(tracking_uri: str, task: str):
    """Hold the task's champion lock: one decision (read the champion, compare, move the alias) at a time.

    Without it, two searches of one task that finish together both compare against the same old
    champion and both promote; the alias then names a challenger never compared with the other. The
    lock is a file next to a local SQLite store, so it serialises processes on this machine; a remote
    tracking server has no such file and its decisions are not serialised.
    """
    return store_lock(tracking_uri, f".{registered_name(task)}.champion.lock")


def _on_budget(space: SearchSpace, champ: Champion, policy: str) -> tuple[Allocation | None, str]:
    """The champion's allocation under the current space, or None and why it is rejected."""
    try:
        a = space.validate(Allocation.parse(champ.allocation))
    except ConfigError as e:
        return None, f"champion v{champ.version} does not fit the current task ({e}): rejected"
    if space.is_feasible(a):
        return a, ""
    over = f"champion v{champ.version} ({a}) costs {space.cost(a):.6g}, over the current budget {space.budget}"
    if policy == "reject":
        return None, f"{over}: rejected (champion.infeasible=reject)"
    p = space.project(a)
    return p, f"{over}: re-projected to {p}"


def _register(client, name: str, archive, doc: dict, folder: str, tags: dict) -> str:
    """Log ``folder/allocation.yaml`` on the search run, make it a version of ``name``, give it the alias."""
    archive.log_text(yaml.safe_dump(doc, sort_keys=False), f"{folder}/allocation.yaml")
    try:
        client.create_registered_model(
            name, description="Per-stage model and sample count (allocation.yaml) found by agenttts searches."
        )
    except MlflowException as e:
        if e.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{client.get_run(archive.parent_id).info.artifact_uri}/{folder}"
    mv = client.create_model_version(name, source, run_id=archive.parent_id, tags={k: str(v) for k, v in tags.items()})
    client.set_registered_model_alias(name, ALIAS, mv.version)
    return str(mv.version)


def _doc(ctx, r: TrialResult, search_run: str) -> dict:
    return {
        "task": ctx.task.name,
        "allocation": r.allocation.to_dict(),
        "score": r.score,
        "metric": ctx.task.metric,
        "metrics": r.metrics,
        "budget": str(ctx.space.budget),
        "units": r.cost.units,
        "train_questions": len(r.item_scores),
        "simulated": ctx.simulated,
        "search_run": search_run,
    }


def decide_champion(ctx, env, history: list[TrialResult], archive, progress=print) -> dict:
    """Compare the search's best trial with the champion on the same train questions; promote if better.

    Records on the search run: tags ``champion.decision`` (promoted | kept), ``champion.reason``,
    ``champion.version`` (the version holding the alias afterwards), metrics ``champion/*`` and the
    artifact ``champion/decision.json`` (the test, its numbers and the per-question scores). Runs under
    the task's ``champion_lock``.
    """
    with champion_lock(ctx.cfg["mlflow"]["tracking_uri"], ctx.task.name):
        return _decide(ctx, env, history, archive, progress)


def _decide(ctx, env, history: list[TrialResult], archive, progress) -> dict:
    from components.pipeline import best_trial

    s = champion_settings(ctx.cfg)
    task = ctx.task.name
    name = registered_name(task)
    client = archive.client
    best = best_trial(history)
    champ = current_champion(ctx.cfg, task)
    tokens_before = env.bank.generated_tokens
    ev: dict = {
        "registered_model": name,
        "search_run": archive.parent_id,
        "challenger": {"allocation": str(best.allocation), "score": best.score},
        "simulated": ctx.simulated,
    }
    metrics = {"champion/challenger_score": best.score}
    projected = None
    if champ is None:
        promote, reason = True, "no champion yet"
    else:
        ev["champion"] = {"version": champ.version, "run_id": champ.run_id, "allocation": champ.allocation}
        alloc, note = _on_budget(ctx.space, champ, s["infeasible"])
        if alloc is None:
            promote, reason = True, note
        else:
            known = {r.allocation: r for r in history if r.status == "ok"}  # a failed one is measured again
            res = known.get(alloc) or env.evaluate([alloc])[0]  # the same train questions, through the bank
            if note:
                projected = res
            ev["champion"].update(evaluated=str(alloc), score=res.score, note=note)
            metrics["champion/champion_score"] = res.score
            if alloc == best.allocation:
                promote, reason = False, "the search's best allocation is the champion's"
            else:
                t = paired_test(
                    best.item_scores, res.item_scores, s["test"], s["alpha"], s["min_delta"], s["resamples"],
                    int(ctx.cfg.get("seed", 0)),
                )  # fmt: skip
                ev["test"] = t.to_dict()
                ev["per_question"] = {"challenger": list(best.item_scores), "champion": list(res.item_scores)}
                metrics.update({"champion/p_value": t.p_value, "champion/mean_diff": t.mean_diff})
                promote = t.better
                verdict = "better" if promote else "not better"
                reason = (
                    f"challenger {verdict} beyond noise: {s['test']} p={t.p_value:.4f} (alpha {s['alpha']}), "
                    f"mean per-question gain {t.mean_diff:+.4f} (min_delta {s['min_delta']}), "
                    f"{t.wins} wins / {t.losses} losses / {t.ties} ties over {t.n} questions"
                )
            if note:
                reason = f"{note}; {reason}"
    version = champ.version if champ else ""
    tags = {"task": task, "search_run": archive.parent_id, "simulated": str(ctx.simulated).lower()}
    if promote:
        version = _register(client, name, archive, _doc(ctx, best, archive.parent_id), "allocation", tags)
    elif projected is not None:  # keep the champion, but as its feasible projection under this budget
        version = _register(client, name, archive, _doc(ctx, projected, archive.parent_id), "champion/projected", tags)
    decision = "promoted" if promote else "kept"
    ev.update(decision=decision, reason=reason, version=version, previous_version=champ.version if champ else None)
    metrics["champion/tokens_generated"] = env.bank.generated_tokens - tokens_before
    archive.log_text(json.dumps(ev, indent=1) + "\n", "champion/decision.json")
    from mlflow.entities import Metric, RunTag

    client.log_batch(
        archive.parent_id,
        metrics=[Metric(k, float(v), int(time.time() * 1000), 0) for k, v in metrics.items()],
        tags=[
            RunTag("champion.decision", decision),
            RunTag("champion.reason", reason[:5000]),
            RunTag("champion.version", version),
        ],
    )
    progress(f"champion: {decision} ({reason}); models:/{name}@{ALIAS} is version {version}")
    return ev


__all__ = [
    "ALIAS",
    "Champion",
    "champion_allocation",
    "champion_lock",
    "champion_settings",
    "current_champion",
    "decide_champion",
    "registered_name",
]
