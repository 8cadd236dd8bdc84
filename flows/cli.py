"""The ``agenttts`` command: subcommands that take Hydra overrides.

    agenttts search [-m] [KEY=VALUE ...]   run a search (Prefect flow, MLflow archive)
    agenttts cost   allocation.STAGE=MODEL:S ...   price one allocation
    agenttts space  [KEY=VALUE ...]          size of the feasible space and its extremes
    agenttts config [KEY=VALUE ...]          print the composed config
    agenttts bench  [scenarios=[..]] [searchers=[..]] [seeds=N] [trials=N]   the search-efficiency benchmark
    agenttts bank   export|import FILE [KEY=VALUE ...]   copy the sample bank (bank.path) to / merge it from one file
    agenttts bank   import-samples FILE.jsonl task=... data.path=...   public per-sample data into the bank
    agenttts schedule cron="0 2 * * *" [KEY=VALUE ...]   serve the nightly re-optimization (Prefect deployment)

Configs are composed with Hydra's compose API (``@hydra.main`` cannot sit under subcommands), so
nothing changes directory and no ``outputs/`` folder appears. Bad input is reported as one line
(``AGENTTTS_TRACEBACK=1`` shows the trace) before Prefect is even imported.

Using a search's result (``run=<id>|last``; ``allocation=best`` is the best of that search):

    agenttts evaluate allocation=best|run=<id>|allocation.STAGE=MODEL:S [split=test]   score on held-out data
    agenttts report run=<id>|run=last        a search's summary in the terminal
    agenttts run allocation=best data.path=FILE [predictions=out.jsonl]   predictions with their cost
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
import uuid
from pathlib import Path

from flows import stops
from flows.config import CONF_DIR, compose, expand_sweeps  # noqa: F401  (CONF_DIR: re-exported for tests and scripts)

COMMANDS = ("search", "cost", "space", "config", "bench", "bank", "schedule")


def _prefect_env(cfg: dict, quiet_runs: bool = True) -> None:
    """Quiet, project-local Prefect (set before it is imported; the user's own settings win).

    ``quiet_runs``: a failing task or flow run is not logged with its traceback, since the command
    prints the error as one line itself (or re-raises what it does not know, with the traceback).
    """
    home = Path(cfg.get("prefect", {}).get("home") or ".prefect").resolve()
    if quiet_runs and not os.environ.get("AGENTTTS_TRACEBACK"):
        for logger in ("FLOW_RUNS", "TASK_RUNS"):
            os.environ.setdefault(f"PREFECT_LOGGING_LOGGERS_PREFECT_{logger}_LEVEL", "CRITICAL")
        # on Ctrl-C the command says what it closed; Prefect's "Crash detected!" and its event queue's
        # "Still processing items" at exit would only repeat it
        # (a filter, not a level: Prefect's logging setup resets the levels of its loggers' children)
        logging.getLogger("prefect.engine").addFilter(_critical_only)  # the same filter is added once
        logging.getLogger("EventsWorker").addFilter(_errors_only)
    os.environ.setdefault("PREFECT_HOME", str(home))
    if not os.environ.get("PREFECT_API_URL"):
        for pid in _orphan_prefect_servers(os.environ["PREFECT_HOME"]):
            print(f"note: stopped pid {pid}, a temporary Prefect API server that a killed command left running")
        # the temporary server Prefect starts inherits this: once its parent is another process, the
        # command that started it is gone, whoever adopted it (pid 1 or a subreaper)
        os.environ[OWNER] = str(os.getpid())
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # no "Creating initial MLflow database tables..."
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _critical_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.CRITICAL


def _errors_only(record: logging.LogRecord) -> bool:
    return record.levelno >= logging.ERROR


OWNER = "AGENTTTS_OWNER_PID"  # the pid of the command whose temporary Prefect server this is


def _orphan_prefect_servers(home: str) -> list[int]:
    """Stop the temporary Prefect API servers of ``home`` whose command was killed (SIGKILL, out of
    memory): Prefect stops its ephemeral server when the command exits, but a killed command cannot,
    and the orphan would run on, holding memory and the same database. A server is an orphan when the
    command that started it (``AGENTTTS_OWNER_PID`` in its environment) is gone, whoever adopted the
    server (pid 1 or a subreaper); a server without that variable, from an older version, only when
    pid 1 adopted it. Linux only (reads /proc); a server with its command alive,
    another home, or not Prefect's is never touched."""
    stopped = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if b"prefect.server.api.server:create_app" not in cmd:
                continue
            ppid = int(_stat(proc.name)[1])
            env = (proc / "environ").read_bytes().split(b"\0")
            if f"PREFECT_HOME={home}".encode() not in env:
                continue
            owner = next((int(e.split(b"=", 1)[1]) for e in env if e.startswith(f"{OWNER}=".encode())), None)
            if owner is None and ppid != 1:  # no owner recorded: only pid 1's adoption says it is gone
                continue
            if owner is not None and (ppid == owner or _alive(owner)):  # (a living owner's child started it)
                continue
            os.kill(int(proc.name), signal.SIGTERM)
            stopped.append(int(proc.name))
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not ours to read
            continue
    return stopped


def _stat(pid) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state, ppid, ...); the name may hold spaces."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (not gone, not a zombie waiting to be reaped)."""
    try:
        return _stat(pid)[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _fmt_flops(x: float) -> str:
    return f"{x:.3e}"


def cmd_cost(cfg: dict) -> int:
    from flows.build import build, parse_allocation

    ctx = build(cfg, with_data=False)
    a = parse_allocation(cfg, ctx.space)
    c = ctx.space.cost_model.cost(a)
    print(f"task {ctx.task.name}, budget {ctx.space.budget}, fuser call charged: {ctx.space.cost_model.count_fusion}")
    print(
        f"{'stage':<12} {'model':<16} {'S':>4} {'units':>9} {'FLOPs':>11} {'fuser units':>12} {'fuser FLOPs':>12} {'$':>10}"
    )
    for s in c.stages:
        usd = "-" if s.usd is None else f"{s.usd:.6f}"
        print(
            f"{s.stage:<12} {s.model:<16} {s.samples:>4} {s.units:>9.1f} {_fmt_flops(s.flops):>11} "
            f"{s.fusion_units:>12.1f} {_fmt_flops(s.fusion_flops):>12} {usd:>10}"
        )
    no_fuse = sum(s.units for s in c.stages)
    print(
        f"total: {no_fuse:.1f} units without the fuser calls, {no_fuse + c.fusion_units:.1f} units with them; "
        f"{_fmt_flops(sum(s.flops for s in c.stages))} FLOPs per question "
        f"({_fmt_flops(sum(s.flops for s in c.stages) + c.fusion_flops)} with fuser)"
    )
    if c.usd is not None:
        print(f"dollars per question: {c.usd:.6f}")
    used = c.measure(ctx.space.budget.kind)
    verdict = "feasible" if ctx.space.is_feasible(a) else "INFEASIBLE"
    print(f"{verdict}: {used:.6g} of {ctx.space.budget} (charged as configured)")
    return 0


def cmd_space(cfg: dict) -> int:
    from flows.build import build, default_budget_units

    ctx = build(cfg, with_data=False)
    sp = ctx.space
    default = default_budget_units(list(sp.stages), sp.cost_model)
    print(
        f"task {ctx.task.name}: stages "
        + ", ".join(
            f"{s.name} [{', '.join(m.name for m in s.models)}] S∈[{s.min_samples},{s.max_samples}]" for s in sp.stages
        )
    )
    if ctx.scenario is not None:
        print(
            f"models and sample ranges: scenario '{ctx.scenario.name}' (backend=sim simulates the scenario's "
            "models; a task's models: lists apply to real backends)"
        )
    print(f"budget: {sp.budget}   (default: {default:.0f} units = one sample of the largest model per stage)")
    print(f"feasible allocations: {sp.size}")
    cheap, dear = sp.cheapest(), sp.most_expensive_feasible()
    print(f"cheapest: {cheap}  ({sp.cost(cheap):.6g} {sp.budget.kind})")
    print(f"most expensive feasible: {dear}  ({sp.cost(dear):.6g} {sp.budget.kind})")
    return 0


def cmd_dry_run(cfg: dict, ctx) -> int:
    """``search dry_run=true``: the projected worst-case inference cost; nothing runs."""
    import math

    from components.spend import project, spend_limits

    s = cfg["searcher"]
    grid = s["name"] == "grid"
    trials = int(cfg["trials"])
    llm = s["name"] in ("llm_zs", "mlcopilot", "agenthpo") or (
        s["name"] == "agenttts" and cfg["reasoner"]["name"] != "rules"
    )
    reasoner_calls = 2 * math.ceil(trials / int(s.get("batch_size") or 10)) if llm else 0
    p = project(ctx.space, trials, len(ctx.train), grid, reasoner_calls)
    sim = " (SIMULATED backend: prices the models the scenario declares)" if ctx.simulated else ""
    print(
        f"dry run: nothing was run (no MLflow run, no Prefect, no sample generated). task={ctx.task.name} "
        f"searcher={s['name']} budget={ctx.space.budget} space={ctx.space.size} allocations, "
        f"{len(ctx.train)} train questions{sim}"
    )
    what = (
        "every feasible allocation once" if grid else f"{p.trials} trials, each the most expensive feasible allocation"
    )
    print(f"projected worst case: {what}, no sample reused from the bank, every LLM fuser call made:")
    print(f"  backend requests: {p.calls:,.0f} (per question, stage and trial, fuser calls included)")
    print(f"  tokens: {p.prompt_tokens:,.0f} prompt + {p.output_tokens:,.0f} generated")
    print(f"  FLOPs: {_fmt_flops(p.flops)}  (worst trial {_fmt_flops(p.per_trial_flops)})")
    if p.usd is None:
        unpriced = sorted({m.name for st in ctx.space.stages for m in st.models if m.price_per_mtok is None})
        print(f"  dollars: unknown (no price for {', '.join(unpriced)})")
    else:
        print(f"  dollars: ${p.usd:,.4f}")
    if reasoner_calls:
        print(f"  reasoner: up to {reasoner_calls} LLM calls ({cfg['reasoner']['name']}; not priced)")
    else:
        print("  reasoner: no LLM calls")
    max_flops, max_usd = spend_limits(cfg, ctx.space)
    for name, cap in (("max_flops", max_flops), ("max_usd", max_usd)):
        if cap is not None:
            print(f"  search.{name}={cap:g} stops the search after the round in which its own spending reaches it")
    if max_flops is not None:
        batch = int(s.get("batch_size") or 10)
        bound = min(p.flops, max_flops + batch * p.per_trial_flops)  # the last round may overshoot
        print(
            f"  with search.max_flops: at most {_fmt_flops(bound)} FLOPs (the limit plus one round of {batch} worst trials)"
        )
    return 0


def cmd_search(cfg: dict) -> int:
    from flows.build import build, check_replay

    t0 = time.perf_counter()
    _no_allocation(cfg)
    ctx = build(cfg)  # validates everything before Prefect is imported
    check_replay(ctx)
    _check_operations(cfg, ctx)
    sim = _simulated_note(ctx)
    if cfg.get("dry_run"):
        return cmd_dry_run(cfg, ctx)
    want_test = int(cfg["data"].get("test_size") or 0)
    short = (
        f" ({len(ctx.test)} of data.test_size={want_test} left for the test split)" if len(ctx.test) < want_test else ""
    )
    print(
        f"search: task={ctx.task.name} searcher={cfg['searcher']['name']} budget={ctx.space.budget} "
        f"space={ctx.space.size} allocations, {len(ctx.train)} train questions{short}{sim}",
        flush=True,
    )
    _prefect_env(cfg)
    from flows.search import search_flow

    out = search_flow(cfg)
    b = out.best
    print(f"best allocation: {b.allocation}")
    print(
        f"train score ({ctx.task.metric}): {b.score:.4f}   " + "  ".join(f"{k}={v:.3f}" for k, v in b.metrics.items())
    )
    print(
        f"budget: {b.cost.units:.1f} units of {ctx.space.budget}; FLOPs planned {_fmt_flops(b.flops_planned)}, "
        f"spent {_fmt_flops(b.flops_spent)} over {len(ctx.train)} questions (fuser {_fmt_flops(b.fusion_flops_spent)})"
    )
    if out.stop in ("max_flops", "max_usd"):
        print(f"stopped early (stop={out.stop}): {out.stop_reason}; the best so far is kept")
    failed = sum(r.status != "ok" for r in out.history)
    print(
        f"trials: {len(out.history)}"
        + (f" ({failed} failed, see their runs' error tag)" if failed else "")
        + f", tokens generated: {out.generated_tokens:,}, wall {time.perf_counter() - t0:.1f} s"
    )
    print(f"MLflow: experiment '{out.experiment}', run {out.run_id}")
    print(f"  open with: mlflow ui --backend-store-uri {out.tracking_uri}")
    return 0


def _simulated_note(ctx) -> str:
    if not ctx.simulated:
        return ""
    how = "" if ctx.cfg["backend"]["name"] == "sim" else ", replayed from the bank"
    return f" (SIMULATED: outputs come from a simulated scenario{how}, not from models)"


def _check_operations(cfg: dict, ctx, progress=print) -> None:
    """Champion settings and the warm start, checked before Prefect starts (``warm_start=last`` pinned to its id)."""
    from flows.champion import champion_settings
    from flows.warm import resolve_warm_start

    champion_settings(cfg)
    warm = resolve_warm_start(cfg, ctx, progress)
    if warm is not None:
        cfg["warm_start"] = warm.run_id  # the flow reads the same search (the search flow prints the details)


def cmd_schedule(cfg: dict) -> int:
    """Validate the nightly search, then serve it on its cron schedule with Prefect (blocks until stopped)."""
    from flows.build import build
    from flows.nightly import nightly_overrides

    sched = cfg.get("schedule") or {}
    cron = sched.get("cron")
    if not cron:
        raise_config('give the schedule as cron="MIN HOUR DOM MON DOW", e.g. agenttts schedule cron="0 2 * * *"')
    tz = sched.get("timezone") or "UTC"
    from prefect.client.schemas.schedules import CronSchedule, is_valid_timezone

    if not isinstance(tz, str) or not is_valid_timezone(tz):
        raise_config(f"schedule.timezone={tz!r} is not an IANA time zone name (e.g. UTC, Europe/Paris)")
    try:  # first: a bad cron leaves nothing behind (no mlruns/, no Prefect state)
        CronSchedule(cron=str(cron), timezone=tz)
    except ValueError as e:  # pydantic's ValidationError: keep its message, not its help link
        why = e.errors()[0]["msg"] if hasattr(e, "errors") else str(e)
        raise_config(f'cron={cron!r} is not a valid cron expression ({why}); e.g. cron="0 2 * * *" (02:00 daily)')
    overrides = [o for o in cfg.get("cli_overrides", []) if not o.lstrip("+").startswith("schedule.")]
    nightly = compose(nightly_overrides(overrides))
    ctx = build(nightly)  # the nightly search's config, validated now (writes nothing)
    _check_operations(nightly, ctx, lambda m: None)  # champion settings; a given warm_start run must exist and fit
    _prefect_env(cfg, quiet_runs=False)  # the served runs' own logs are the schedule's output
    api = _prefect_server()  # also before anything is written
    name = sched.get("name") or f"nightly-{ctx.task.name}"
    from flows.nightly import serve_nightly

    print(
        f"schedule: deployment 'nightly/{name}' cron '{cron}' ({tz}) on {api}; search overrides: {overrides}",
        flush=True,
    )
    serve_nightly(name, str(cron), overrides, tz)
    return 0


def _prefect_server() -> str:
    """The Prefect server the schedule is served on. Prefect's ephemeral API cannot schedule (its
    runner only warns, then waits forever without a run), so a server must be running."""
    import httpx
    from prefect.settings import get_current_settings

    url = os.environ.get("PREFECT_API_URL") or get_current_settings().api.url  # the env wins, as in Prefect
    start = "start one with `prefect server start`, then set PREFECT_API_URL=http://127.0.0.1:4200/api"
    if not url:
        raise_config(f"agenttts schedule needs a running Prefect server (the ephemeral API cannot schedule): {start}")
    try:
        httpx.get(f"{str(url).rstrip('/')}/health", timeout=10).raise_for_status()
    except httpx.HTTPError as e:
        raise_config(f"no Prefect server answers at PREFECT_API_URL={url} ({type(e).__name__}): {start}")
    return str(url)


def _no_allocation(cfg: dict) -> None:
    """``allocation.STAGE=...`` is read by cost / evaluate / run; a search would silently ignore it."""
    if cfg.get("allocation"):
        raise_config(
            "a search chooses the allocation: allocation.* is read by `agenttts cost`, `evaluate` and `run`; "
            "to keep a stage on one model, list only that model in its stage's models: (the task's for real "
            "backends, the scenario's for backend=sim)"
        )


def _check_jobs(jobs: list[list[str]]) -> None:
    """Every job of a ``-m`` sweep is composed and validated before the first one runs: a bad value in
    the last job must not cost the others' compute. (Data files, searcher start-up and real backends
    are checked again when each job starts.)"""
    from components.errors import ConfigError, user_error
    from flows.build import build

    for n, overrides in enumerate(jobs):
        try:
            build(compose(overrides), with_data=False)
        except Exception as exc:
            if not user_error(exc):
                raise
            # one error line that names the job
            raise ConfigError(f"job {n + 1}/{len(jobs)} ({' '.join(overrides)}): {exc}; no job was run") from exc


def raise_config(msg: str):
    from components.errors import ConfigError

    raise ConfigError(msg)


def cmd_bench(cfg: dict) -> int:
    from flows.build import build

    build({**cfg, "searcher": {"name": "random"}}, with_data=False)  # the shared keys are valid
    _prefect_env(cfg)
    from flows.bench import run_bench

    out = run_bench(cfg, progress=lambda m: print(m, flush=True))
    print((out / "summary.md").read_text())
    return 0


def cmd_bank(cfg: dict, action: str, file: str) -> int:
    """``bank export FILE``: the bank at bank.path as one file; ``bank import FILE``: merge one into it."""
    from components.bank import export_bank, import_bank

    bank = Path(cfg["bank"]["path"])
    if action == "import-samples":
        return cmd_import_samples(cfg, file)
    if action == "export":
        n = export_bank(bank, file)
        replies = f" ({n['replies']:,} of them reasoner replies)" if n["replies"] else ""
        print(f"exported {n['streams']:,} streams, {n['samples']:,} samples{replies} from {bank} to {file}")
    else:
        n = import_bank(file, bank)
        print(
            f"imported into {bank}: {n['streams_added']:,} new streams, {n['samples_added']:,} new samples"
            + (f" ({n['replies_added']:,} of them reasoner replies)" if n["replies_added"] else "")
            + (f"; {n['conflicts']:,} samples already held with other text were kept" if n["conflicts"] else "")
        )
    return 0


def cmd_import_samples(cfg: dict, file: str) -> int:
    """Public per-sample JSONL (components/sample_import.py) into the bank, for ``backend=replay``."""
    from components.backends.replay import ReplayBackend
    from components.datasets import load_items, synthetic_items
    from components.pipeline import Environment
    from components.sample_import import import_samples, plan_samples, samples_file
    from flows.build import build, load_data, make_bank

    samples_file(file)  # before the bank is opened: a missing file leaves no .agenttts/ behind
    ctx = build(cfg, with_data=False)
    d, fmt = cfg["data"], cfg["task"]["data"]["format"]
    if fmt == "synthetic" and not d.get("path"):
        items = synthetic_items(int(d["train_size"]) + int(d["test_size"]), seed=int(d.get("seed", 0)))
    else:
        load_data(cfg)  # the file exists and parses (one clear message otherwise)
        items = load_items(fmt, Path(d["path"]).expanduser())
    world = str(cfg["backend"].get("world") or "")
    plan = plan_samples(file, ctx.task, ctx.space, items)  # every record checked before the bank is opened
    bank = make_bank(cfg)
    try:
        env = Environment(ctx.task, ctx.space, ReplayBackend(world), bank, items)
        r = import_samples(file, env, ctx.task.metric, plan)
    finally:
        bank.close()
    print(
        f"imported {r.records:,} records into {cfg['bank']['path']}: {r.samples_added:,} new samples "
        f"({r.samples_already_banked:,} already banked, {r.estimated_token_counts:,} token counts estimated)"
    )
    if r.labels_checked:
        print(
            f"labels: {r.labels_checked - r.labels_disagreeing:,} of {r.labels_checked:,} agree with the task's metric"
        )
    return 0


USE_COMMANDS = [
    ("evaluate", "score an allocation on the held-out test split (logged to MLflow)"),
    ("report", "print a search's summary"),
    ("run", "run the pipeline with an allocation on new inputs; write predictions and cost"),
]
COMMANDS += tuple(name for name, _ in USE_COMMANDS)


def _quiet_mlflow() -> None:
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # reading artifacts back is not a download


def cmd_evaluate(cfg: dict) -> int:
    _quiet_mlflow()
    from flows.prepare import prepare_evaluate

    plan = prepare_evaluate(cfg)  # allocation, search and split checked before Prefect is imported
    sim = _simulated_note(plan.ctx)
    print(
        f"evaluate: task={plan.ctx.task.name} allocation {plan.allocation} ({plan.source}) "
        f"on split={plan.split}, {len(plan.items)} questions{sim}",
        flush=True,
    )
    _prefect_env(cfg)
    from flows.evaluate import evaluate_flow

    out = evaluate_flow(cfg)
    r, metric = out.result, plan.ctx.task.metric
    print(f"{plan.split} score ({metric}): {r.score:.4f}   " + "  ".join(f"{k}={v:.3f}" for k, v in r.metrics.items()))
    if plan.search_best and plan.search.best_score is not None:
        print(f"search train score: {plan.search.best_score:.4f} (search {plan.search.run_id})")
    usd = "" if r.cost.usd is None else f", ${r.cost.usd:.6f} per question planned"
    print(
        f"cost: {r.cost.units:.1f} units per question planned{usd}; FLOPs planned {_fmt_flops(r.flops_planned)}, "
        f"spent {_fmt_flops(r.flops_spent)} over {len(plan.items)} questions; tokens generated {out.generated_tokens:,}"
    )
    if not plan.ctx.space.is_feasible(plan.allocation):
        print(f"note: this allocation exceeds the configured budget {plan.ctx.space.budget}")
    print(f"MLflow: experiment '{out.experiment}', run {out.run_id} (kind=evaluate)")
    return 0


def cmd_run(cfg: dict) -> int:
    _quiet_mlflow()
    from flows.prepare import prepare_run

    plan = prepare_run(cfg)
    sim = _simulated_note(plan.ctx)
    print(f"run: allocation {plan.allocation} ({plan.source}) on {len(plan.items)} inputs{sim}", flush=True)
    _prefect_env(cfg)
    from flows.evaluate import run_flow

    out = run_flow(cfg)
    r, n = out.result, len(out.rows)
    side = Path(cfg["predictions"]).with_name(Path(cfg["predictions"]).stem + ".summary.json")
    print(f"predictions: {cfg['predictions']} ({n} lines), summary: {side}")
    print(
        f"cost: {_fmt_flops(r.flops_spent)} FLOPs in all, {_fmt_flops(r.flops_spent / n)} per input; "
        f"{r.cost.units:.1f} units per input planned; tokens generated {out.generated_tokens:,}"
    )
    print(f"mean {plan.ctx.task.metric} against the inputs' gold answers: {r.score:.4f}")
    return 0


def cmd_report(cfg: dict) -> int:
    _quiet_mlflow()
    from flows.report import report_text

    print(report_text(cfg))
    return 0


def _finish_sweep(cfgs: list[dict], jobs: list[list[str]]) -> None:
    _quiet_mlflow()
    from flows.sweep import finish_sweep

    keys = [o.lstrip("+").split("=", 1)[0] for o in jobs[0]]
    swept = [k for i, k in enumerate(keys) if len({j[i] for j in jobs}) > 1]
    out = finish_sweep(cfgs, cfgs[0]["sweep_id"], swept, cfgs[0].get("sweep_out") or "sweep-out")
    if out is None:
        print("sweep: searches of different tasks or MLflow experiments; no combined frontier")
        return
    print(f"sweep {cfgs[0]['sweep_id']}: combined Pareto frontier in {out}/frontier.png (table: {out}/sweep.csv)")
    import csv

    with open(out / "sweep.csv") as fh:
        for row in csv.DictReader(fh):
            print(
                f"  {row['label']:<24} best {float(row['best_score']):.3f} {row['best_allocation']}  "
                f"tokens generated {float(row['tokens_generated']):,.0f}  on the combined front: {row['on_combined_front']}"
            )


def _stopped(stop: KeyboardInterrupt) -> int:
    """Say how the command was stopped; its exit code (128 + the signal)."""
    term = isinstance(stop, stops.Terminated)
    print("terminated" if term else "interrupted", file=sys.stderr)
    return 143 if term else 130


def main(argv: list[str] | None = None) -> int:
    """The ``agenttts`` entry point; returns the exit status."""
    try:
        return _main(argv)
    except BrokenPipeError:
        # `agenttts space | head -1`: the reader has gone; stop quietly like other shell tools, and
        # point stdout at /dev/null so the interpreter's final flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="agenttts", description="Compute-optimal test-time scaling for multi-stage LLM pipelines."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, text in [
        ("search", "run a search"),
        ("cost", "price an allocation"),
        ("space", "describe the search space"),
        ("config", "print the composed config"),
        ("bench", "benchmark searchers on simulated scenarios"),
        ("schedule", 'serve the nightly re-optimization: cron="0 2 * * *" plus search overrides'),
    ]:
        p = sub.add_parser(name, help=text)
        p.add_argument(
            "-m", "--multirun", action="store_true", help="expand comma-separated overrides into several jobs"
        )
        p.add_argument("overrides", nargs="*", default=[], help="Hydra overrides, e.g. task=2wiki budget.units=900")
    b = sub.add_parser("bank", help="export the sample bank to one file, or import (merge) one")
    b.add_argument("action", choices=["export", "import", "import-samples"])
    b.add_argument("file", help="the bank file to write (export) or read (import)")
    b.add_argument("overrides", nargs="*", default=[], help="Hydra overrides, e.g. bank.path=.agenttts/bank.sqlite")
    for name, text in USE_COMMANDS:
        p = sub.add_parser(name, help=text)
        p.add_argument("overrides", nargs="*", default=[], help="Hydra overrides, e.g. run=last split=test")
        p.set_defaults(multirun=False)

    words = sys.argv[1:] if argv is None else argv
    if words and not words[0].startswith("-") and words[0] not in sub.choices:
        # one line instead of argparse's wrapped usage of every command
        import difflib

        close = difflib.get_close_matches(words[0], sub.choices, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        print(f"error: unknown command '{words[0]}' ({hint}commands: {', '.join(sub.choices)})", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no tqdm bars for small artifact reads
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # warm start / champion read MLflow before Prefect
    for name in ("alembic", "mlflow.store.db.utils"):  # "Creating initial MLflow database tables..." (mlflow imported)
        logging.getLogger(name).setLevel(logging.WARNING)
    if args.command == "bank":
        try:
            pre = ["backend=replay"] if args.action == "import-samples" else []  # stages from the task + catalog
            return cmd_bank(compose(pre + args.overrides), args.action, args.file)
        except Exception as exc:
            from components.errors import AgentTTSError

            if os.environ.get("AGENTTTS_TRACEBACK") or not isinstance(exc, AgentTTSError):
                raise
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.command == "schedule":  # cron= is the schedule's, stored as schedule.cron
        args.overrides = [f"schedule.{o}" if o.startswith("cron=") else o for o in args.overrides]
    jobs = expand_sweeps(args.overrides) if args.multirun else [args.overrides]
    run = {
        "search": cmd_search,
        "cost": cmd_cost,
        "space": cmd_space,
        "config": None,
        "bench": cmd_bench,
        "schedule": cmd_schedule,
        "evaluate": cmd_evaluate,
        "report": cmd_report,
        "run": cmd_run,
    }[args.command]
    if args.command in ("search", "evaluate"):  # the commands that hold an MLflow run open
        stops.install()
    try:
        if run is not None and len(jobs) > 1:
            _check_jobs(jobs)
        sweep_id = uuid.uuid4().hex[:12] if args.command == "search" and len(jobs) > 1 else None
        cfgs = []  # the sweep's jobs: one combined frontier at the end
        for n, overrides in enumerate(jobs):
            if len(jobs) > 1:
                print(f"[job {n + 1}/{len(jobs)}] {' '.join(overrides)}", flush=True)
            cfg = compose(overrides)
            cfg["cli_overrides"] = list(overrides)
            cfg["command_line"] = " ".join(["agenttts", args.command, *overrides])
            if sweep_id and not cfg.get("dry_run"):
                cfg.update(sweep_id=sweep_id, sweep_index=n)
                cfgs.append(cfg)
            if run is None:
                import yaml

                print(yaml.safe_dump(cfg, sort_keys=False))
            else:
                run(cfg)
        if cfgs:
            _finish_sweep(cfgs, jobs)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the command said what it kept; no traceback
        if os.environ.get("AGENTTTS_TRACEBACK"):
            raise
        return _stopped(exc)
    except Exception as exc:
        if os.environ.get("AGENTTTS_TRACEBACK"):
            raise
        from components.archive import interruption
        from components.errors import user_error

        stop = interruption(exc)
        if isinstance(stop, KeyboardInterrupt):  # a Ctrl-C that a library turned into its own error
            return _stopped(stop)
        if not user_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
