"""``agenttts report run=<id>|run=last``: the summary the MLflow views of a search give, as terminal text.

Reads the search run's tags, metrics and artifacts (trials.csv, decision_trace.jsonl, guidelines/) back
through the Archive's client; no Prefect.
"""

from __future__ import annotations

import json
from collections import Counter

from components.errors import ConfigError
from components.searchers.agenttts import guideline_rounds
from flows.runs import ArchivedSearch, find_search

TOP = 5
GUIDELINE_LINES = 12
SPARK = "▁▂▃▄▅▆▇█"


def sparkline(ys: list[float]) -> str:
    """Text curve of ``ys`` (e.g. best-so-far), scaled to its own range.

    >>> sparkline([0.1, 0.5, 0.9])
    '▁▄█'
    """
    if not ys:
        return ""
    lo, hi = min(ys), max(ys)
    span = (hi - lo) or 1.0
    return "".join(SPARK[round((y - lo) / span * (len(SPARK) - 1))] for y in ys)


def report_text(cfg: dict) -> str:
    """The summary of search ``run`` (``last`` by default) of the configured task."""
    ref = cfg.get("run")
    if ref in (None, ""):
        raise ConfigError("which search? give run=<id> or run=last")
    s: ArchivedSearch = find_search(cfg, str(ref), cfg["task"]["name"])
    archive = s.archive
    run, rid = s.run, s.run_id
    tags, m = run.data.tags, run.data.metrics
    lines = []
    sim = tags.get("simulated") == "true"
    lines.append(f"search {rid}  {run.info.run_name}")
    lines.append(
        f"experiment '{s.experiment}', task={tags.get('task')} searcher={tags.get('searcher')} "
        f"scenario={tags.get('scenario', '-')} status={tags.get('status')} stop={tags.get('stop', 'trials')}"
        + ("   SIMULATED (backend=sim): every score below is simulated" if sim else "")
    )
    if tags.get("stop_reason"):
        lines.append(f"stopped early: {tags['stop_reason']}")
    if tags.get("bank_world"):  # every model from one override: its samples are banked under that world
        lines.append(
            f"bank world: {tags['bank_world']} (replay with backend=replay backend.world={tags['bank_world']})"
        )
    lines.append("")
    score = m.get("best_score")
    lines.append(f"best allocation: {tags.get('best_allocation', '-')}")
    extra = "  ".join(f"{k[5:]}={v:.3f}" for k, v in sorted(m.items()) if k.startswith("best/"))
    lines.append(f"train score: {score:.4f}   {extra}" if score is not None else "train score: -")
    if "test_score" in m:
        lines.append(f"test score: {m['test_score']:.4f}   (evaluate run {tags.get('test_evaluation_run_id', '-')})")
    if "best_units" in m:
        lines.append(
            f"cost of the best: {m['best_units']:.1f} units per question; FLOPs planned {m.get('best_flops_planned', 0):.3e}, "
            f"spent {m.get('best_flops_spent', 0):.3e} on the train split"
        )
    spend = [f"{k}={v:,.4g}" for k, v in sorted(m.items()) if k.startswith("spend/")]
    lines.append(
        f"search: {int(m.get('trials', 0))} trials, {int(m.get('tokens_generated', 0)):,} tokens generated, "
        f"{m.get('wall_s', 0):.1f} s in the search flow (the command's start-up not counted)"
        + (f"; {' '.join(spend)}" if spend else "")
    )
    curve = [x.value for x in sorted(archive.client.get_metric_history(rid, "best_so_far"), key=lambda x: x.step)]
    if curve:
        marks = sorted({1, *range(5, len(curve) + 1, 5), len(curve)})
        lines.append("")
        lines.append(f"best so far  {sparkline(curve)}")
        lines.append("  " + "  ".join(f"#{i}:{curve[i - 1]:.3f}" for i in marks))
    rows = archive.read_trials_table(rid)
    trace = archive.read_text(rid, "decision_trace.jsonl")
    guide_paths = guideline_rounds([a.path for a in archive.client.list_artifacts(rid, "guidelines")])
    guide = archive.read_text(rid, guide_paths[-1]) if guide_paths else None
    if rows:
        rows.sort(key=lambda r: (-float(r["score"]), float(r["cost/units"]), int(r["trial"])))
        lines.append("")
        lines.append(f"top {min(TOP, len(rows))} of {len(rows)} trials:")
        lines.append(f"  {'trial':>5} {'score':>7} {'units':>8} {'FLOPs spent':>12}  allocation")
        for r in rows[:TOP]:
            lines.append(
                f"  {r['trial']:>5} {float(r['score']):>7.3f} {float(r['cost/units']):>8.1f} "
                f"{float(r['cost/flops_spent']):>12.3e}  {r['allocation']}"
            )
    if trace:
        steps = [json.loads(x) for x in trace.splitlines() if x.strip()]
        src = Counter(t.get("source") or "-" for t in steps)
        ins = Counter(str(t.get("insight") or "-") for t in steps)
        lines.append("")
        lines.append(
            f"decisions: {len(steps)} trials; improved the best {sum(bool(t.get('improved_best')) for t in steps)}; "
            f"repaired {sum(bool(t.get('repairs')) for t in steps)}"
        )
        lines.append("  by source: " + ", ".join(f"{k} {v}" for k, v in src.most_common()))
        lines.append("  by insight: " + ", ".join(f"{k} {v}" for k, v in sorted(ins.items())))
    agent = [f"{k[6:]}={v:g}" for k, v in sorted(m.items()) if k.startswith("agent/")]
    if agent:
        lines.append("  agent: " + " ".join(agent))
    if guide:
        body = [x for x in guide.splitlines() if x.strip()]
        lines.append("")
        lines.append(f"guidelines ({guide_paths[-1]}, {len(guide_paths)} rounds; first {GUIDELINE_LINES} lines):")
        lines += ["  " + x for x in body[:GUIDELINE_LINES]]
        if len(body) > GUIDELINE_LINES:
            lines.append(f"  ... ({len(body) - GUIDELINE_LINES} more lines)")
    lines.append("")
    lines.append(f"MLflow: mlflow ui --backend-store-uri {archive.uri}   (run {rid})")
    return "\n".join(lines)


__all__ = ["report_text", "sparkline"]
