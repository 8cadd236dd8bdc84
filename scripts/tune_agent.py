"""Tune a searcher on the simulated scenarios against cached grid lookups, fast and exact. SIMULATED.

    python scripts/tune_agent.py [--scenarios a,b,...] [--seeds 10-29] [--searcher agenttts]
        [--reference optuna_tpe] [--jobs 2] [--cache DIR] [--trials 50] [--save FILE.json] [--plateau]
        [--live] [--phases] [hydra overrides ...]

Per (scenario, seed) the score of every allocation of the grid is computed once with the grid oracle
(``components.oracle.grid_scores``, tested equal to ``Environment.evaluate``) and cached on disk; the
searchers then run through the bench's own ``run_search`` against a lookup of those scores, in
workers started as the bench's are (``flows.bench.worker_pool``: GP's code paths pinned). The
numbers are exactly those of ``agenttts bench`` for the same seeds (world and data seed both SEED,
same initial design, batch size and trials-to-near rule), in seconds instead of minutes.

The bench reports seeds 0-9. Tune on seeds it never uses (e.g. ``--seeds 10-29``) and check the
bench only at the end, so a rule is kept because it helps, not because it fits those ten worlds.
The reference's results are cached too (keyed by its composed config, the code-path pins and the library
versions): delete ``*.json`` in the cache after changing the reference searcher's code.

``--phases`` splits the tuned searcher's trials to near into where they go: the trials before its
first one within three questions of the oracle (finding the plateau), then its trials on the plateau
(within three questions) until one is near, and its trials off the plateau in between (exploring
elsewhere). On the plateau a trial is near at about the plateau's share of near allocations, so only
the first and the last part are the searcher's to shorten.

``--moves`` (agenttts) splits the same trials by the move that proposed them (from its rationale:
probe, combine, coarse scan, sweep, halve, trade, ...): in the first 12 trials, how many went on the
plateau and how many were near; then, as ``--phases``, per move where the trials to near went.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import time
from pathlib import Path

import numpy as np

from components.bank import SampleBank
from components.bench import SearchRun, run_search
from components.errors import ConfigError, check_bool
from components.oracle import grid_scores
from components.pipeline import TrialResult
from components.searchers.optuna_search import blas_in_force, library_versions
from components.simulator import SIM_VERSION
from components.space import Allocation
from flows.bench import (
    _show_trials,
    _trials_or_cap,
    job_overrides,
    passthrough,
    public_scenarios,
    task_for,
    worker_pool,
)
from flows.build import build, make_searcher
from flows.cli import compose

# config keys the grid's scores do not depend on (the seeds are in the file name)
NOT_GRID = ("searcher", "reasoner", "seed", "trials", "choices", "config_sources")


def _digest(obj) -> str:
    return hashlib.sha1(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _seeds(text: str) -> list[int]:
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += range(int(lo), int(hi or lo) + 1)
    return out


def plan(a: argparse.Namespace) -> list[dict]:
    """One job per (scenario, seed) with the bench's overrides; scenarios whose data is missing skipped."""
    extra = passthrough(a.overrides)
    jobs = []
    for s in a.scenarios.split(",") if a.scenarios else public_scenarios():
        bench = compose([*a.overrides, f"scenario={s}"])
        try:
            task, data = task_for(bench["scenario"], bench["bench"].get("data_paths") or {})
        except ConfigError as e:
            print(f"{s}: skipped: {e}")
            continue
        cfg = compose([*extra, f"task={task}", f"scenario={s}", *data])
        key = _digest([{k: v for k, v in cfg.items() if k not in NOT_GRID}, SIM_VERSION])
        for seed in _seeds(a.seeds):
            jobs.append(
                {
                    "scenario": s,
                    "seed": seed,
                    "overrides": job_overrides(extra, s, task, data, seed),
                    "grid": str(Path(a.cache) / f"{s}-seed{seed}-{key}.npz"),
                    "max_space": int(bench["bench"].get("oracle_max_space", 200_000)),
                    "initial_design": bool(bench["bench"].get("initial_design", True)),
                    "trials": a.trials,
                    "live": a.live,
                    "moves": getattr(a, "moves", False),  # expected_first.py plans without it
                    "searchers": [a.searcher, a.reference],
                }
            )
    return jobs


def _grid(job: dict) -> None:
    ctx = build(compose(job["overrides"]))
    if ctx.space.size > job["max_space"]:
        raise ConfigError(f"{job['scenario']}: {ctx.space.size} allocations > bench.oracle_max_space: no grid oracle")
    res = grid_scores(ctx.environment(bank=SampleBank(None)), ctx.space.enumerate())
    path = Path(job["grid"])
    tmp = path.with_suffix(".tmp.npz")  # renamed when complete: an interrupted run leaves no partial grid
    np.savez_compressed(tmp, keys=[a.key for a, _, _ in res], scores=[s for _, s, _ in res], n=len(ctx.train))
    tmp.replace(path)


class LookupEnv:
    """``Environment.evaluate`` read from the grid: the score and the planned cost, which is all the
    searchers read of a trial."""

    def __init__(self, space, scores: dict[str, float]):
        self.space, self.scores = space, scores

    def evaluate(self, allocations) -> list[TrialResult]:
        cost = self.space.cost_model.cost
        return [TrialResult(a, self.scores[a.key], {}, cost(a), 0, 0, 0, 0, 0) for a in allocations]


# the rules reasoner's rationales, by the phrase that names the move (the first match wins)
MOVES = (
    ("probe", "probe of stage"),
    ("combine", "combine the"),
    ("yield", "yields to"),
    ("coarse scan", "coarse scan"),
    ("fine ladder", "peaks near"),
    ("bisect", "lies between"),
    ("sweep", "sweep the plateau"),
    ("runner-up", "at the best trial's stage budget"),
    ("halve", "halve "),
    ("smaller model", "to the smaller"),
    ("unused budget", "unused budget"),
    ("trade", "trade along"),
    ("swap", "at the same stage budget"),
    ("crossover", "crossover"),
    ("neighbour", "mutation: a neighbour"),
    ("random", "random feasible"),
)


def move_of(rationale: str) -> str:
    """The move family a proposal's rationale names ("other" for an unknown text)."""
    return next((name for name, phrase in MOVES if phrase in rationale), "other")


class _Recorder:
    """A searcher whose proposals' rationales are kept, keyed by allocation (for ``--moves``)."""

    def __init__(self, searcher):
        self.searcher, self.why = searcher, {}

    def propose(self, space, history, k):
        props = self.searcher.propose(space, history, k)
        for p in props:
            self.why.setdefault(p.allocation, p.rationale)
        return props

    def observe(self, results):
        self.searcher.observe(results)


def _search(job: dict) -> dict:
    g = np.load(job["grid"])
    scores, n = dict(zip(g["keys"].tolist(), g["scores"].tolist())), int(g["n"])
    ctx = build(compose(job["overrides"]))
    out = {}
    for i, name in enumerate(job["searchers"]):
        cfg = compose([*job["overrides"], f"searcher={name}", f"seed={job['seed']}"])
        # only the reference is cached: the tuned searcher is the code being edited; GP's results also
        # depend on the code paths (blas_in_force: BLAS, numpy's SIMD) and library versions, so either changed is a new entry
        key = [cfg, job["trials"], job["initial_design"], blas_in_force(), library_versions()]
        memo = Path(job["grid"]).with_suffix(f".{name}-{_digest(key)}.json")
        if i and memo.exists():
            out[name] = json.loads(memo.read_text())
            continue
        searcher = make_searcher(cfg, n)
        if job.get("moves") and not i:
            searcher = _Recorder(searcher)
        batch = int(cfg["searcher"].get("batch_size") or 10)
        # --live: the tuned searcher runs on the real Environment (same scores, tested equal to the
        # grid), which also gives it the per-question scores the lookup does not have
        env = ctx.environment(bank=SampleBank(None)) if job.get("live") and not i else LookupEnv(ctx.space, scores)
        history = run_search(ctx.space, env, searcher, job["trials"], batch, job["initial_design"])
        run = SearchRun(job["scenario"], name, job["seed"], history, n, max(scores.values()), 0.0, 0)
        out[name] = {"trials_to_near": run.trials_to_near, "best_train": round(run.best.score, 6)}
        if i:
            memo.write_text(json.dumps(out[name]))
        else:
            scores_run = [r.score for r in history]
            out[name]["phases"] = phases(scores_run, run.oracle, n)
            if isinstance(searcher, _Recorder):  # the initial design's probes have no proposal
                labels = trial_phases(scores_run, run.oracle, n)
                out[name]["moves"] = [
                    [
                        move_of(searcher.why.get(r.allocation, "probe of stage")),
                        bool(_within(r.score, run.oracle, n, 3)),
                        bool(_within(r.score, run.oracle, n, 1)),
                        labels[t] if t < len(labels) else "after",
                    ]
                    for t, r in enumerate(history)
                ]
    return out


def trial_phases(scores: list[float], oracle: float, n: int) -> list[str]:
    """Each trial up to the first near one (or the last trial): "before" the first trial within three
    questions of the oracle, then "on" (within three), "near" (the first within one) or "off"."""
    near = [_within(v, oracle, n, 1) for v in scores]
    end = near.index(True) if any(near) else len(scores) - 1
    close = [_within(v, oracle, n, 3) for v in scores[: end + 1]]
    first = close.index(True) if any(close) else len(close)
    return ["before" if t < first else "near" if near[t] else "on" if c else "off" for t, c in enumerate(close)]


def phases(scores: list[float], oracle: float, n: int) -> dict:
    """Where a run's trials to near went (see ``--phases``): the first trial within three questions of
    the oracle (None: never), then up to the first near trial (or the last trial) the trials within
    three questions, the near ones among them (0 or 1) and the trials not within three after the first."""
    labels = trial_phases(scores, oracle, n)
    reached = [t for t, x in enumerate(labels) if x != "before"]
    return {
        "first_close": reached[0] + 1 if reached else None,
        "close": labels.count("on") + labels.count("near"),
        "near": labels.count("near"),
        "off_after": labels.count("off"),
    }


def _within(score, oracle: float, n: int, questions: int):
    """Whether ``score`` (a float or an array) is within ``questions`` questions of the oracle."""
    return score >= oracle - questions / n - 1e-9


def report_phases(jobs: list[dict], results: list[dict], a: argparse.Namespace) -> None:
    print(
        f"{a.searcher}'s trials to near by phase (sums over seeds, up to each run's first near trial); "
        "plateau = within three questions of the oracle"
    )
    print(
        f"{'scenario':12s} {'first on plateau':>16s} {'on plateau':>10s} {'near':>5s} {'rate':>5s} "
        f"{'grid share':>10s} {'off plateau after':>17s}"
    )
    for s in dict.fromkeys(j["scenario"] for j in jobs):
        pairs = [(j, r[a.searcher]["phases"]) for j, r in zip(jobs, results, strict=True) if j["scenario"] == s]
        ph = [p for _, p in pairs]
        firsts = [p["first_close"] or a.trials + 1 for p in ph]
        close, near = sum(p["close"] for p in ph), sum(p["near"] for p in ph)
        share = statistics.median(near / top3 for near, top3 in map(_grid_top, (j for j, _ in pairs)))
        print(
            f"{s:12s} {'median ' + _show_trials(statistics.median(firsts), a.trials):>16s} {close:10d} {near:5d} "
            f"{near / max(1, close):5.2f} {share:10.2f} {sum(p['off_after'] for p in ph):17d}"
        )


def report_moves(jobs: list[dict], results: list[dict], a: argparse.Namespace) -> None:
    """``--moves``: the tuned searcher's trials by the move that proposed them, over every job."""
    early: dict[str, list[int]] = {}
    split: dict[str, dict[str, int]] = {}
    for r in (r[a.searcher] for r in results):
        for t, (move, close, near, phase) in enumerate(r["moves"]):
            if t < 12:
                row = early.setdefault(move, [0, 0, 0])
                row[0], row[1], row[2] = row[0] + 1, row[1] + close, row[2] + near
            counts = split.setdefault(move, dict.fromkeys(("before", "on", "near", "off"), 0))
            if phase in counts:
                counts[phase] += 1
    print(f"{a.searcher}'s first 12 trials by move (sums over runs): trials, on the plateau, near, near rate")
    for move, (t, c, nr) in sorted(early.items(), key=lambda x: -x[1][0]):
        print(f"  {move:14s} {t:6d} {c:6d} {nr:5d} {nr / t:5.2f}")
    print("trials to near by move: before the plateau, on it, near, off it after reaching it")
    for move, c in sorted(split.items(), key=lambda x: -sum(x[1].values())):
        if sum(c.values()):
            print(f"  {move:14s} {c['before']:6d} {c['on']:6d} {c['near']:5d} {c['off']:6d}")


def _grid_top(job: dict) -> tuple[int, int]:
    """How many of a grid's allocations are within one question of its oracle, and within three."""
    g = np.load(job["grid"])
    v, n = g["scores"], int(g["n"])
    return int(_within(v, v.max(), n, 1).sum()), int(_within(v, v.max(), n, 3).sum())


def report(jobs: list[dict], results: list[dict], a: argparse.Namespace) -> None:
    num = lambda r: _trials_or_cap(r["trials_to_near"], a.trials)  # noqa: E731
    show = lambda v: _show_trials(v, a.trials)  # noqa: E731
    print(
        f"SIMULATED: {a.searcher} vs {a.reference}, seeds {a.seeds}, {a.trials} "
        f"trials; trials to near = first trial within one question of the grid oracle, >{a.trials} not reached"
    )
    print(
        f"{'scenario':12s} {'median':>6s} {'ref':>6s} {'<=12':>5s} {'>=ref':>6s} {'mean':>5s} | trials to near per seed"
    )
    tot = {"s": [], "r": [], "ge": 0, "ok": 0, "n": 0}
    for s in dict.fromkeys(j["scenario"] for j in jobs):
        rs = [r for j, r in zip(jobs, results, strict=True) if j["scenario"] == s]
        t = [num(r[a.searcher]) for r in rs]
        ref = [num(r[a.reference]) for r in rs]
        ge = sum(r[a.searcher]["best_train"] >= r[a.reference]["best_train"] - 1e-9 for r in rs)
        m = statistics.median(t)
        print(
            f"{s:12s} {show(m):>6s} {show(statistics.median(ref)):>6s} {sum(x <= 12 for x in t):2d}/{len(t):<2d} "
            f"{ge:3d}/{len(t):<2d} {statistics.mean(t):5.1f} | {' '.join(show(x) for x in t)}"
        )
        tot["s"] += t
        tot["r"] += ref
        tot["ge"] += ge
        tot["ok"] += m <= 12
        tot["n"] += 1
    print(
        f"total: {tot['ok']}/{tot['n']} scenarios with median <= 12; median {show(statistics.median(tot['s']))} "
        f"(ref {show(statistics.median(tot['r']))}), {sum(x <= 12 for x in tot['s'])}/{len(tot['s'])} runs within 12, "
        f">= ref's best in {tot['ge']}/{len(tot['s'])}, mean {statistics.mean(tot['s']):.1f}"
    )


def _neighbours_near(job: dict, steps=(1, 3)) -> list[tuple[int, int]]:
    """Per step: of the count neighbours (one stage's samples +-step) of the grid's allocations exactly
    two questions below the oracle, how many are near, and how many there are."""
    g = np.load(job["grid"])
    v, n = g["scores"], int(g["n"])
    table = {Allocation.parse(str(k)): x for k, x in zip(g["keys"], v)}
    near, two = v.max() - 1 / n - 1e-9, v.max() - 2 / n
    out = [[0, 0] for _ in steps]
    for a, x in table.items():
        if abs(x - two) > 1e-9:
            continue
        for stage, _, count in a.choices:
            for j, step in enumerate(steps):
                for c in (count - step, count + step):
                    y = table.get(a.replace(stage, samples=c)) if c >= 1 else None
                    if y is not None:
                        out[j][0] += y >= near
                        out[j][1] += 1
    return [tuple(o) for o in out]


def plateau(jobs: list[dict]) -> None:
    """How much of each grid's top is "near": the median count of allocations within one question of
    the oracle, within three, and the share of the second that is the first. On a plateau the score
    moves by a question or two from one allocation to the next, so reaching near once the plateau is
    found is a matter of covering it. Pooled over the seeds: that share, and how often a count
    neighbour (one stage's samples +-1, +-3) of an allocation two questions below the oracle is near;
    below the share, a step next to a good-but-not-near trial does worse than a random allocation of
    the plateau."""
    print("medians over the seeds' grids, then pooled over them: the share, and the near rate next to -2")
    print("scenario     near  within 3  share | pooled share  +-1   +-3")
    for s in dict.fromkeys(j["scenario"] for j in jobs):
        rows, nb, pooled = [], [[0, 0], [0, 0]], [0, 0]
        for j in (j for j in jobs if j["scenario"] == s):
            near, top3 = _grid_top(j)
            rows.append((near, top3, near / top3))
            pooled[0] += near
            pooled[1] += top3
            for acc, (hit, tot) in zip(nb, _neighbours_near(j), strict=True):
                acc[0] += hit
                acc[1] += tot
        med = [statistics.median(r[i] for r in rows) for i in range(3)]
        rate = [f"{h / t:.2f}" if t else "-" for h, t in nb]
        print(
            f"{s:12s} {med[0]:5.0f} {med[1]:9.0f} {med[2]:6.2f} | {pooled[0] / pooled[1]:12.2f} {rate[0]:>4s} {rate[1]:>5s}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenarios", help="comma-separated; default: every public scenario, as agenttts bench")
    ap.add_argument("--seeds", default="10-29", help="e.g. 10-29 or 0-9,15 (default 10-29)")
    ap.add_argument("--searcher", default="agenttts")
    ap.add_argument("--reference", default="optuna_tpe")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cache", default="bench-out/.grid-cache")
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--save", help="write the per-(scenario, seed) results here as JSON")
    ap.add_argument(
        "--live",
        action="store_true",
        help="run the tuned searcher on the real Environment, not the grid lookup (slower; trials carry "
        "per-question scores)",
    )
    ap.add_argument("--plateau", action="store_true", help="also print how much of each grid's top is near")
    ap.add_argument("--phases", action="store_true", help="also print where the tuned searcher's trials to near went")
    ap.add_argument("--moves", action="store_true", help="also split the tuned searcher's trials by move (agenttts)")
    ap.add_argument("overrides", nargs="*", help="hydra overrides applied to every job, as in agenttts bench")
    a = ap.parse_args()
    try:
        if not _seeds(a.seeds):
            raise ValueError
    except ValueError:
        ap.error(f"--seeds {a.seeds!r} gives no seed: use e.g. 10-29 or 0-9,15")
    jobs = plan(a)
    if not jobs:
        raise SystemExit("no scenario to run")
    Path(a.cache).mkdir(parents=True, exist_ok=True)
    keep_blas_env = not check_bool(compose(a.overrides)["bench"].get("blas_pins", True), "bench.blas_pins")
    with worker_pool(a.jobs, keep_blas_env) as pool:  # as the bench: GP's code paths pinned
        missing = [j for j in jobs if not Path(j["grid"]).exists()]
        t = time.perf_counter()
        list(pool.map(_grid, missing))
        grid_s, t = time.perf_counter() - t, time.perf_counter()
        results = list(pool.map(_search, jobs))
    print(f"grids: {len(missing)} computed in {grid_s:.0f} s, {len(jobs) - len(missing)} cached ({a.cache})")
    print(f"searches: {len(jobs)} (scenario, seed) jobs in {time.perf_counter() - t:.0f} s on {a.jobs} processes")
    report(jobs, results, a)
    if a.plateau:
        plateau(jobs)
    if a.phases:
        report_phases(jobs, results, a)
    if a.moves:
        report_moves(jobs, results, a)
    if a.save:
        rows = [{"scenario": j["scenario"], "seed": j["seed"], **r} for j, r in zip(jobs, results, strict=True)]
        Path(a.save).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    from _args import run

    run(main)
