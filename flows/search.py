"""The ``search`` flow: rounds of propose → (generate_samples → fuse per stage) → score, archived in MLflow."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

import yaml
from prefect import flow
from prefect.utilities.annotations import quote

from components import plots, spend
from components.archive import Archive, interruption, run_url_hint
from components.errors import BackendError, SearchError
from components.pipeline import TrialResult, best_so_far, best_trial
from components.plots import best_so_far_png, score_vs_cost_png
from components.reasoners.banked import bank_replies
from components.warm import WarmStartSearcher
from flows import stops
from flows.build import LENGTHS_ARTIFACT, Context, build, lengths_table, make_searcher
from flows.champion import champion_settings, decide_champion
from flows.runs import config_digest, unfinished_search, world_tags
from flows.warm import resolve_warm_start
from tasks.round import fuse, generate_samples, propose, score


@dataclass
class SearchOutcome:
    """What a search returns (and the CLI prints)."""

    best: TrialResult | None
    history: list[TrialResult]
    run_id: str
    experiment: str
    tracking_uri: str
    generated_tokens: int
    rejected: dict = field(default_factory=dict)
    wall_s: float = 0.0
    warm_start: str | None = None  # the run it warm-started from
    champion: dict | None = None  # the champion decision and its evidence (flows.champion)

    @property
    def best_so_far(self) -> list[float]:
        return best_so_far(self.history)

    # why the search ended (set by run_search): trials | max_flops | max_usd | exhausted, and in words
    stop = "trials"
    stop_reason = ""


def run_search(ctx: Context, progress=print) -> SearchOutcome:
    """Run a whole search in the current flow; every round is a DAG of Prefect tasks."""
    cfg, space = ctx.cfg, ctx.space
    started = time.perf_counter()
    searcher = make_searcher(cfg, len(ctx.train), check=False)  # build() already checked it
    warm = resolve_warm_start(cfg, ctx, progress)  # bad input stops here, before any run exists
    if warm is not None:
        searcher = WarmStartSearcher(searcher, warm)
        progress(
            f"warm start from search {warm.run_id}: its {len(warm.allocations)} best trials are re-evaluated first"
            + (f", {len(warm.guidelines)} guideline(s) as prior experience" if warm.guidelines else "")
            + "".join(f"; note: {n}" for n in warm.notes)
        )
    grid = searcher.name == "grid"
    target = space.size if grid else int(cfg["trials"])
    batch = int(cfg["searcher"].get("batch_size") or 10)
    experiment = cfg["mlflow"].get("experiment") or f"agenttts-{ctx.task.name}"
    archive = Archive(cfg["mlflow"]["tracking_uri"], experiment)
    sim = "simulated" if ctx.simulated else "real"
    run_name = (
        f"search {searcher.name} {ctx.task.name} {space.budget} {target} trials seed={cfg.get('seed', 0)} ({sim})"
    )
    tags = {
        "searcher": searcher.name,
        "task": ctx.task.name,
        "simulated": str(ctx.simulated).lower(),
        "status": "running",
        "kind": "search",
        "config_digest": config_digest(cfg),
        **Archive.process_tags(),
        **world_tags(cfg, ctx),
        **({"sweep_id": cfg["sweep_id"], "sweep_index": cfg.get("sweep_index", 0)} if cfg.get("sweep_id") else {}),
    }
    if warm is not None:
        tags["warm_start"] = warm.run_id
        run_name += f" warm from {warm.run_id[:8]}"
    params = {
        "task": ctx.task.name,
        "searcher": searcher.name,
        "budget.kind": space.budget.kind,
        "budget.value": space.budget.value,
        "trials": target,
        "seed": cfg.get("seed", 0),
        "data.train_size": len(ctx.train),
        "space.size": space.size,
    }
    for run in archive.close_orphans():
        progress(f"note: search run {run.info.run_id} was left running by a process that is gone; closed as killed")
    earlier = unfinished_search(archive, tags["config_digest"])
    kept = cfg["bank"].get("enabled", True) and cfg["bank"].get("persist", True)  # samples outlive the process
    warm_tokens = None
    child_runs = target <= int(cfg["mlflow"].get("max_child_runs", 500))
    env = ctx.environment()
    replies = bank_replies(searcher, env.bank) if cfg["bank"].get("replies", True) else None
    history: list[TrialResult] = []
    rationales: list[str] = []
    trace: list[dict] = []
    rejected = {"duplicate": 0, "infeasible": 0}
    seen = set()
    max_flops, max_usd = spend.spend_limits(cfg, space)
    spent = {"flops": 0.0, "usd": 0.0, "tokens": 0}
    unpriced = False
    stop, stop_reason = "trials", ""
    archive.start_search(run_name, params, tags)
    try:  # from here a failure or a stop closes the run
        archive.log_dict(cfg, "config.yaml")
        if not ctx.simulated:  # measured lengths move as the bank grows: cost.lengths_from=<this run> replays them
            archive.log_text(json.dumps(lengths_table(space.cost_model), indent=1) + "\n", LENGTHS_ARTIFACT)
        if earlier is not None:
            run, done = earlier
            archive.client.set_tag(archive.parent_id, "resumes", run.info.run_id)
            archive.client.set_tag(run.info.run_id, "resumed_by", archive.parent_id)
            replay = (
                "the trials it ran replay from the sample bank as they are proposed again"
                + (" (the reasoner's replies too)" if replies else "")
                if kept
                else "the bank does not persist here, so they run again"
            )
            # the same config logged no trial runs when they were over mlflow.max_child_runs: no count to give
            done = f" after {done} logged trials" if child_runs else ""
            progress(f"resuming search {run.info.run_id} ({run.data.tags.get('status')}{done}, same config): {replay}")
        if warm is not None:
            archive.log_dict(
                {"run_id": warm.run_id, "allocations": [str(a) for a in warm.allocations], "prior_scores": warm.prior_scores,
                 "notes": warm.notes, "guidelines": len(warm.guidelines)},
                "warm_start.json",
            )  # fmt: skip
        rnd_no = 0
        while len(history) < target and stop == "trials":
            rnd_no += 1
            k = min(batch, target - len(history))
            proposals = propose(quote(searcher), quote(space), quote(history), k)
            chosen: dict = {}  # allocation -> proposal, in proposal order
            for p in proposals:
                a = p.allocation
                if a in seen or a in chosen:
                    rejected["duplicate"] += 1
                elif not space.is_feasible(a):
                    rejected["infeasible"] += 1
                elif len(chosen) < k:
                    chosen[a] = p
            allocs, why = list(chosen), [p.rationale for p in chosen.values()]
            for path, text in getattr(searcher, "artifacts", []):
                archive.log_text(text, path)
            if hasattr(searcher, "artifacts"):
                searcher.artifacts.clear()
            if not allocs:
                progress(f"round {rnd_no}: the searcher proposed nothing new; stopping at {len(history)} trials")
                stop, stop_reason = "exhausted", f"the searcher proposed nothing new after {len(history)} trials"
                break
            rnd = env.start(allocs)
            for i, stage in enumerate(ctx.task.stages):
                generate_samples(quote(env), quote(rnd), i, stage.name)
                fuse(quote(env), quote(rnd), i, stage.name)
            results = score(quote(env), quote(rnd))
            for r, w in zip(results, why):
                prev = max((h.score for h in history), default=float("-inf"))
                seen.add(r.allocation)
                history.append(r)
                rationales.append(w)
                t = chosen[r.allocation].trace
                trace.append(
                    {
                        "trial": len(history),
                        "round": rnd_no,
                        "allocation": str(r.allocation),
                        "rationale": w,
                        "insight": t.get("insight", ""),
                        "source": t.get("source", searcher.name),
                        "repairs": t.get("repairs", []),
                        "score": r.score,
                        "units": r.cost.units,
                        "improved_best": r.score > prev,
                    }
                )
                if child_runs:
                    tags = {
                        "searcher": searcher.name,
                        "round": rnd_no,
                        "rationale": w[:4000],
                        "simulated": str(ctx.simulated).lower(),
                    }
                    if t:
                        tags.update(
                            insight=t.get("insight", ""),
                            source=t.get("source", ""),
                            repairs="; ".join(t.get("repairs", []))[:4000],
                        )
                    with stops.deferred():  # a Ctrl-C or SIGTERM mid-transaction leaves the database locked
                        archive.log_trial(r, len(history), tags)
            searcher.observe(results)
            if warm is not None and warm_tokens is None and set(warm.allocations) <= seen:
                warm_tokens = env.bank.generated_tokens  # what re-evaluating the warm trials generated
            best = best_trial(history)
            for r in results:
                if r.status != "ok":
                    progress(f"round {rnd_no}: trial {r.allocation} FAILED: {r.error}")
            spent["flops"] += rnd.generated_flops
            spent["usd"] += rnd.generated_usd
            spent["tokens"] += rnd.generated_tokens
            unpriced = unpriced or rnd.unpriced
            if max_flops is not None and spent["flops"] >= max_flops:
                stop = "max_flops"
                stop_reason = f"spent {spent['flops']:.4g} FLOPs >= search.max_flops={max_flops:.4g}"
            elif max_usd is not None and spent["usd"] >= max_usd:
                stop = "max_usd"
                stop_reason = f"spent ${spent['usd']:.4g} >= search.max_usd={max_usd:.4g}"
            if best is None:
                progress(f"round {rnd_no}: {len(history)}/{target} trials, none succeeded yet")
            else:
                gap = f", spent/planned FLOPs {best.flops_spent / best.flops_planned:.2f}" if not ctx.simulated else ""
                progress(
                    f"round {rnd_no}: {len(history)}/{target} trials, best score {best.score:.3f} "
                    f"({best.allocation}, {best.cost.units:.0f} units{gap})"
                )
            if stop != "trials":
                progress(f"stopping after {len(history)} trials (round {rnd_no}): {stop_reason}; best so far kept")
            stops.check()  # a Ctrl-C that Python swallowed during the round stops the search here
        if not history:  # e.g. an LLM baseline's reasoner answered nothing usable, twice, in round 1
            raise SearchError(
                f"{searcher.name} proposed no trial; search run {archive.parent_id} is closed as failed "
                "(an LLM searcher's prompts and answers are among its artifacts)"
            )
        if best_trial(history) is None:
            raise BackendError(f"every trial failed; the first: {history[0].error}")
    except BaseException as exc:  # Ctrl-C and SIGTERM too: the run is closed, never left RUNNING
        archive.abort(exc)
        halt = interruption(exc)
        if halt is not None:
            progress(
                f"interrupted after {len(history)} trials: search run {archive.parent_id} closed as interrupted; "
                "the same command resumes it" + (" (what it generated is in the sample bank)" if kept else "")
            )
            if halt is not exc:
                raise halt from None  # the Ctrl-C itself, not the error Prefect raised while handling it
        raise
    try:  # the archive's artifacts, the champion: a failure or Ctrl-C here closes the run too
        best = best_trial(history)
        search_tokens = env.bank.generated_tokens  # before the champion's evaluation
        outcome = SearchOutcome(
            best, history, archive.parent_id, experiment, archive.uri, search_tokens, rejected,
            warm_start=warm.run_id if warm else None,
        )  # fmt: skip
        outcome.wall_s = time.perf_counter() - started
        archive.log_progress(outcome.best_so_far)
        outcome.stop, outcome.stop_reason = stop, stop_reason
        for k, v in (("stop", stop), ("stop_reason", stop_reason)):
            if v:
                archive.client.set_tag(archive.parent_id, k, v)  # why the search ended (stop=max_flops: by its limit)
        archive.log_trials_table(history, [{"rationale": w} for w in rationales])
        archive.log_text("\n".join(json.dumps(t) for t in trace) + "\n", "decision_trace.jsonl")
        label = f"{searcher.name} on {ctx.task.name}" + (" (simulated)" if ctx.simulated else "")
        archive.log_bytes(best_so_far_png(history, label), "plots/best_so_far.png")
        units = space.budget.value if space.budget.kind == "units" else None
        archive.log_bytes(score_vs_cost_png(history, label, units), "plots/score_vs_cost.png")
        archive.log_bytes(plots.score_vs_flops_png(history, label), "plots/score_vs_flops.png")
        for path, text in getattr(searcher, "artifacts", []):
            archive.log_text(text, path)
        summary = {
            "best_score": best.score,
            "best_units": best.cost.units,
            "best_flops_planned": best.flops_planned,
            "best_flops_spent": best.flops_spent,
            "trials": len(history),
            "tokens_generated": search_tokens,
            "samples_generated": env.bank.generated,
            "rejected_duplicate": rejected["duplicate"],
            "rejected_infeasible": rejected["infeasible"],
            "wall_s": outcome.wall_s,
            "trials_failed": sum(r.status != "ok" for r in history),
            "spend/flops": spent["flops"],
            "spend/tokens": spent["tokens"],
        }
        if not unpriced:
            summary["spend/usd"] = spent["usd"]
        for k, v in best.metrics.items():
            summary[f"best/{k}"] = v
        for k, v in getattr(searcher, "counts", {}).items():
            summary[f"agent/{k}"] = v  # repairs, fallbacks, reasoner failures
        if warm_tokens is not None:
            summary["warm/trials"] = len(warm.allocations)
            summary["warm/tokens_generated"] = warm_tokens
        if hasattr(searcher, "agent_seconds"):
            summary["agent/seconds"] = searcher.agent_seconds
            summary["agent/tokens"] = searcher.agent_tokens
        if replies is not None:  # agent/tokens counts only the answered ones
            summary["agent/replies_from_bank"] = replies.replayed
            summary["agent/replies_answered"] = replies.answered
            if replies.replayed:
                progress(
                    f"reasoner: {replies.replayed} replies from the sample bank (asked before with this seed), "
                    f"{replies.answered} answered by {replies.inner.name}"
                )
        archive.log_text(
            yaml.safe_dump(
                {
                    "allocation": best.allocation.to_dict(),
                    "score": best.score,
                    "metrics": best.metrics,
                    "units": best.cost.units,
                    "simulated": ctx.simulated,
                },
                sort_keys=False,
            ),
            "best_allocation.yaml",
        )
        stops.check()  # a stop swallowed while the artifacts were logged: closed as interrupted, no champion
        challenge = champion_settings(cfg)["enabled"]
        if challenge and cfg.get("sweep_id"):
            # a sweep explores (budgets, seeds, models) and is judged on its frontier; each job promoting in
            # turn would leave the champion to whichever job ran last (at its budget)
            archive.client.set_tag(archive.parent_id, "champion.decision", "skipped")
            archive.client.set_tag(
                archive.parent_id, "champion.reason", "a job of a -m sweep does not challenge the champion"
            )
            progress("champion: not challenged (a job of a -m sweep)")
        elif challenge:  # last, so a promoted version's run has all its artifacts
            try:
                outcome.champion = decide_champion(ctx, env, history, archive, progress)
            except BaseException as exc:
                archive.abort(exc, "champion: ")
                raise
        stops.check()  # one swallowed during the champion's decision: its decision stands, the stop too
        archive.finish(summary, {"status": "finished", "best_allocation": str(best.allocation)})
    except BaseException as exc:
        archive.abort(exc)
        raise
    env.bank.close()
    return outcome


@flow(name="search", validate_parameters=False)
def search_flow(cfg: dict, verbose: bool = True) -> SearchOutcome:
    """Search for the best allocation of the configured task (config as composed by Hydra)."""
    return run_search(build(cfg), (lambda m: print("  " + m, flush=True)) if verbose else (lambda m: None))


__all__ = ["SearchOutcome", "best_trial", "run_search", "search_flow", "run_url_hint"]
