"""A search sweep (``agenttts search -m budget.units=500,900,2000``): after the searches, one combined
Pareto frontier (accuracy vs FLOPs per question over every trial of every search), written to disk and
logged as a separate MLflow run (tag kind=sweep) that lists its searches (each tagged ``sweep_id``).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from components.archive import Archive
from components.plots import pareto_points, sweep_frontier_png
from flows.runs import experiment_name


@dataclass
class SweepSearch:
    """One search of the sweep, read back from MLflow."""

    run_id: str
    label: str  # what differs between the searches, e.g. budget.units=500
    flops_per_q: list[float]
    scores: list[float]
    allocations: list[str]
    metrics: dict
    best_allocation: str


def _read(archive: Archive, run, label: str) -> SweepSearch:
    # failed trials (score 0, no FLOPs spent) are no points of a frontier
    rows = [r for r in archive.read_trials_table(run.info.run_id) or [] if r.get("status", "ok") == "ok"]
    n = float(run.data.params.get("data.train_size", 1))
    return SweepSearch(
        run.info.run_id,
        label,
        [float(r["cost/flops_spent"]) / n for r in rows],
        [float(r["score"]) for r in rows],
        [r["allocation"] for r in rows],
        dict(run.data.metrics),
        run.data.tags.get("best_allocation", ""),
    )


def finish_sweep(cfgs: list[dict], sweep_id: str, swept: list[str], out_dir: str | Path) -> Path | None:
    """Combine the searches tagged ``sweep_id``: frontier plot and table on disk and in MLflow.

    ``swept`` are the overridden keys that vary between jobs (their values label the searches).
    Returns the output folder, or None when the searches are of different tasks or were logged to
    different MLflow experiments (no common front).
    """
    tasks = {c["task"]["name"] for c in cfgs}
    # the searches are read back from one experiment: a sweep over the store or experiment has none
    stores = {(c["mlflow"]["tracking_uri"], experiment_name(c, c["task"]["name"])) for c in cfgs}
    if len(tasks) != 1 or len(stores) != 1:
        return None
    cfg = cfgs[0]
    task = tasks.pop()
    archive = Archive(cfg["mlflow"]["tracking_uri"], experiment_name(cfg, task))
    runs = archive.client.search_runs(
        [archive.experiment_id],
        filter_string=f"tags.sweep_id = '{sweep_id}' and tags.kind = 'search'",
        order_by=["attributes.start_time ASC"],
    )
    labels = {}
    for c in cfgs:
        ov = dict(o.lstrip("+").split("=", 1) for o in c.get("cli_overrides", []) if "=" in o)
        labels[c["sweep_index"]] = " ".join(f"{k}={ov.get(k)}" for k in swept) or f"job {c['sweep_index'] + 1}"
    searches = [_read(archive, r, labels.get(int(r.data.tags.get("sweep_index", -1)), r.info.run_id)) for r in runs]
    if not searches:
        return None
    sim = any(r.data.tags.get("simulated") == "true" for r in runs)
    title = f"{task}: {len(searches)} searches" + (" (simulated)" if sim else "")
    png = sweep_frontier_png([(s.label, s.flops_per_q, s.scores) for s in searches], title)
    fx, fy = pareto_points([x for s in searches for x in s.flops_per_q], [y for s in searches for y in s.scores])
    front = set(zip(fx, fy))
    table = io.StringIO()
    w = csv.writer(table)
    w.writerow(
        [
            "search_run_id",
            "label",
            "best_allocation",
            "best_score",
            "trials",
            "tokens_generated",
            "wall_s",
            "on_combined_front",
        ]
    )
    for s in searches:
        on = sum((x, y) in front for x, y in zip(s.flops_per_q, s.scores))
        m = s.metrics
        w.writerow(
            [
                s.run_id,
                s.label,
                s.best_allocation,
                m.get("best_score"),
                m.get("trials"),
                m.get("tokens_generated"),
                m.get("wall_s"),
                on,
            ]
        )
    frontier = io.StringIO()
    fw = csv.writer(frontier)
    fw.writerow(["flops_per_question", "score", "allocation", "search_run_id", "label"])
    for s in searches:
        for x, y, a in zip(s.flops_per_q, s.scores, s.allocations):
            if (x, y) in front:
                fw.writerow([x, y, a, s.run_id, s.label])
    out = Path(out_dir) / sweep_id
    out.mkdir(parents=True, exist_ok=True)
    (out / "frontier.png").write_bytes(png)
    (out / "sweep.csv").write_text(table.getvalue())
    (out / "frontier.csv").write_text(frontier.getvalue())
    tags = {"kind": "sweep", "sweep_id": sweep_id, "task": task, "simulated": str(sim).lower(), "status": "running"}
    name = f"sweep {task} over {' '.join(swept) or 'jobs'}: {len(searches)} searches" + (" (simulated)" if sim else "")
    archive.start_search(name, {"swept": " ".join(swept), "searches": " ".join(s.run_id for s in searches)}, tags)
    archive.log_bytes(png, "plots/sweep_frontier.png")
    archive.log_text(table.getvalue(), "sweep.csv")
    archive.log_text(frontier.getvalue(), "frontier.csv")
    total = sum(s.metrics.get("tokens_generated", 0) for s in searches)
    archive.finish(
        {"searches": len(searches), "tokens_generated": total, "front_size": len(front)}, {"status": "finished"}
    )
    return out


__all__ = ["SweepSearch", "finish_sweep"]
