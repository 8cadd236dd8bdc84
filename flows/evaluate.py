"""Use a found allocation: ``evaluate`` (score it on the held-out split, logged to MLflow next to the
search: the paper's protocol) and ``run`` (predictions with their cost for new inputs, as JSONL).

Both are Prefect flows running the same per-stage tasks as a search round.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from prefect import flow
from prefect.utilities.annotations import quote

from components.archive import Archive, trial_metrics
from components.cost import flops_to_units
from components.parsers import PARSERS
from components.pipeline import TrialResult
from flows import stops
from flows.prepare import Plan, prepare_evaluate, prepare_run
from flows.runs import experiment_name
from tasks.round import fuse, generate_samples, score


@dataclass
class Applied:
    """An allocation run over a list of items: the aggregate result and one row per item."""

    plan: Plan
    result: TrialResult
    rows: list[dict]
    generated_tokens: int
    wall_s: float
    run_id: str | None = None
    tracking_uri: str | None = None
    experiment: str | None = None


def apply_allocation(plan: Plan) -> Applied:
    """Run ``plan.allocation`` over ``plan.items`` (one batched call per stage) and score it."""
    t0 = time.perf_counter()
    ctx, a = plan.ctx, plan.allocation
    env = ctx.environment(items=plan.items)
    rnd = env.start([a])
    for i, stage in enumerate(ctx.task.stages):
        generate_samples(quote(env), quote(rnd), i, stage.name)
        fuse(quote(env), quote(rnd), i, stage.name)
        stops.check()  # a Ctrl-C that Python swallowed during the stage stops here, before the next one
    (r,) = score(quote(env), quote(rnd))
    parse = PARSERS[ctx.task.stages[-1].parser]
    n_stages = len(ctx.task.stages)
    count_fusion = ctx.space.cost_model.count_fusion
    rows = []
    for it, out, sc, (sf, ff) in zip(plan.items, r.outputs, r.item_scores, env.item_flops(rnd, a)):
        units = flops_to_units(sf, n_stages, ff if count_fusion else 0.0)
        row = {"id": it.id, "question": it.question, "prediction": parse(out), "output": out}
        row.update({ctx.task.metric: sc, "gold": it.answers[0] if it.answers else None})
        row.update(flops=sf + ff, flops_sampling=sf, flops_fuser=ff, units=units, units_planned=r.cost.units)
        row.update(usd_planned=r.cost.usd, simulated=ctx.simulated)
        rows.append(row)
    env.bank.close()
    return Applied(plan, r, rows, rnd.generated_tokens, time.perf_counter() - t0)


def _jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(row) + "\n" for row in rows)


def log_evaluation(applied: Applied) -> str:
    """One MLflow run (tag kind=evaluate) in the search's experiment, linked to the search."""
    plan, r = applied.plan, applied.result
    cfg, ctx = plan.ctx.cfg, plan.ctx
    exp = experiment_name(cfg, ctx.task.name)
    archive = Archive(cfg["mlflow"]["tracking_uri"], exp)
    sim = "simulated" if ctx.simulated else "real"
    of = f" of search {plan.search.run_id[:8]}" if plan.search else ""
    name = f"evaluate {plan.allocation} on {plan.split} ({len(plan.items)} q){of} ({sim})"
    tags = {
        "kind": "evaluate",
        "task": ctx.task.name,
        "split": plan.split,
        "allocation": str(plan.allocation),
        "allocation_source": plan.source,
        "backend": cfg["backend"]["name"],
        "simulated": str(ctx.simulated).lower(),
        "status": "running",
    }
    if plan.search:
        tags["search_run_id"] = plan.search.run_id
    if ctx.scenario is not None:
        tags.update(scenario=ctx.scenario.name, world_seed=ctx.scenario.seed)
    params = {f"{st}.{k}": v for st, m, s in plan.allocation.choices for k, v in (("model", m), ("samples", s))}
    params.update({"split": plan.split, "n_questions": len(plan.items), "budget": str(ctx.space.budget)})
    params.update({f"data.{k}": cfg["data"].get(k) for k in ("path", "seed", "train_size", "test_size")})
    run_id = archive.start_search(name, params, tags)
    try:
        archive.log_dict(cfg, "config.yaml")
        doc = {"allocation": plan.allocation.to_dict(), "source": plan.source, "split": plan.split}
        archive.log_text(yaml.safe_dump({**doc, "simulated": ctx.simulated}, sort_keys=False), "allocation.yaml")
        archive.log_text(_jsonl(applied.rows), "predictions.jsonl")
        metrics = trial_metrics(r)
        metrics.update(n_questions=len(plan.items), tokens_generated=applied.generated_tokens)
        metrics["feasible"] = float(ctx.space.is_feasible(plan.allocation))
        if plan.search_best and plan.search.best_score is not None:
            metrics["search_train_score"] = plan.search.best_score
        stops.check()  # swallowed while logging: the run is closed as interrupted, not finished
        archive.finish(metrics, {"status": "finished"})
        if plan.search_best and plan.split == "test":
            # next to the search: its run shows the held-out score and where it came from
            archive.client.log_metric(plan.search.run_id, "test_score", r.score)
            archive.client.set_tag(plan.search.run_id, "test_evaluation_run_id", run_id)
    except BaseException as exc:  # Ctrl-C and SIGTERM too: never left RUNNING
        archive.abort(exc)
        raise
    applied.run_id, applied.tracking_uri, applied.experiment = run_id, archive.uri, exp
    return run_id


@flow(name="evaluate", validate_parameters=False)
def evaluate_flow(cfg: dict) -> Applied:
    """Score an allocation on the held-out test split (or ``split=train``) and log it to MLflow."""
    applied = apply_allocation(prepare_evaluate(cfg))
    log_evaluation(applied)
    return applied


def write_predictions(applied: Applied, path: str | Path) -> Path:
    """``path``: one JSON line per input; ``<path stem>.summary.json`` beside it: totals and provenance."""
    path = Path(path)
    path.write_text(_jsonl(applied.rows))
    plan, r = applied.plan, applied.result
    ctx = plan.ctx
    n = len(applied.rows)
    summary = {
        "task": ctx.task.name,
        "allocation": str(plan.allocation),
        "allocation_source": plan.source,
        "search_run_id": plan.search.run_id if plan.search else None,
        "inputs": str(ctx.cfg["data"]["path"]),
        "n": n,
        f"mean_{ctx.task.metric}": r.score,
        "metrics": r.metrics,
        "flops_total": r.flops_spent,
        "flops_per_question": r.flops_spent / n,
        "units_per_question_planned": r.cost.units,
        "usd_per_question_planned": r.cost.usd,
        "tokens_generated": applied.generated_tokens,
        "wall_s": applied.wall_s,
        "simulated": ctx.simulated,
    }
    side = path.with_name(path.stem + ".summary.json")
    side.write_text(json.dumps(summary, indent=2) + "\n")
    return side


@flow(name="run", validate_parameters=False)
def run_flow(cfg: dict) -> Applied:
    """Run the pipeline with a chosen allocation on new inputs and write the predictions with their cost."""
    applied = apply_allocation(prepare_run(cfg))
    write_predictions(applied, cfg["predictions"])
    return applied


__all__ = ["Applied", "apply_allocation", "evaluate_flow", "log_evaluation", "run_flow", "write_predictions"]
