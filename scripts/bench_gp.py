"""optuna_gp's speed settings measured: Optuna's GPSampler defaults vs ours, same searches otherwise.

    python scripts/bench_gp.py [--scenarios 2wiki 2wiki_500 taskbench chatdev] [--seeds 5] [--trials 50]

For every scenario and seed it runs the bench's search (``components.bench.run_search``: the shared
Insight-1 initial design, then ``batch_size`` proposals per round, one process) twice, interleaved
so machine load hits both alike:

- ``default``: Optuna's acquisition-optimizer defaults (2048 preliminary points, 10 local searches,
  128 QMC samples, Optuna's ``torch.device("cpu")`` guard), torch_threads as configured;
- ``fast``: conf/searcher/optuna_gp.yaml as shipped.

It prints per setting the median wall seconds per search and ask seconds, and per seed
trials-to-near and best train score against the grid oracle (bench-out/.oracle-cache, as
``agenttts bench`` writes it, else computed), then the paired ratio default/fast. Every number is
SIMULATED. ``--jsonl FILE`` keeps one line per search; ``--summarize FILE`` reprints a kept run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = {
    "default": [
        "searcher.n_local_search=null",
        "searcher.n_preliminary_samples=null",
        "searcher.n_qmc_samples=null",
        "searcher.bypass_device_context=false",
    ],
    "fast": [],
}


def oracle_for(scenario: str, seed: int, ctx, cache_dir: Path) -> float | None:
    """The grid oracle, from the bench's cache (same key as flows.bench) or computed and cached."""
    from components.bank import SampleBank
    from flows.bench import code_digest, job_overrides, oracle_key, task_for
    from flows.cli import compose

    base = compose([])
    task, data = task_for(compose([f"scenario={scenario}"])["scenario"], {})
    key = oracle_key(compose(job_overrides([], scenario, task, data, 0)), seed, [], code_digest(oracle_only=True))
    path = cache_dir / f"{key}.json"
    if path.exists():
        return json.loads(path.read_text())["oracle"]
    if ctx.space.size > int(base["bench"]["oracle_max_space"]):
        return None
    t = time.perf_counter()
    grid = ctx.environment(bank=SampleBank(None)).evaluate(ctx.space.enumerate())
    top = max(grid, key=lambda r: (r.score, -r.cost.units))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps({"oracle": top.score, "allocation": str(top.allocation), "seconds": time.perf_counter() - t})
    )
    return top.score


def one(scenario: str, seed: int, setting: str, trials: int, cache_dir: Path) -> dict:
    from components.bank import SampleBank
    from components.bench import SearchRun, run_search
    from flows.bench import task_for
    from flows.build import build, make_searcher
    from flows.cli import compose

    task, data = task_for(compose([f"scenario={scenario}"])["scenario"], {})
    ov = [f"task={task}", f"scenario={scenario}", f"scenario.seed={seed}", f"data.seed={seed}", *data]
    cfg = compose([*ov, "searcher=optuna_gp", f"seed={seed}", *SETTINGS[setting]])
    ctx = build(cfg)
    n = len(ctx.train)
    oracle = oracle_for(scenario, seed, ctx, cache_dir)
    searcher = make_searcher(cfg, n)
    env = ctx.environment(bank=SampleBank(None))
    t = time.perf_counter()
    history = run_search(ctx.space, env, searcher, trials, int(cfg["searcher"]["batch_size"]))
    wall = time.perf_counter() - t
    run = SearchRun(scenario, "optuna_gp", seed, history, n, oracle, wall, env.bank.generated_tokens)
    asks = searcher.ask_seconds
    return {
        "scenario": scenario,
        "seed": seed,
        "setting": setting,
        "wall_s": wall,
        "ask_s": sum(asks),
        "ask_median_s": statistics.median(asks) if asks else 0.0,
        "asked": searcher.counts["asked"],
        "infeasible_asked": searcher.counts["infeasible_asked"],
        "duplicate_asked": searcher.counts["duplicate_asked"],
        "trials": len(history),
        "trials_to_near": run.trials_to_near,
        "best_train": run.best.score,
        "oracle": oracle,
        "n_questions": n,
        "trial_budget": trials,
    }


def summarize(rows: list[dict], trials: int) -> str:
    med = statistics.median
    out = [
        "| scenario | setting | median wall s | median ask s | median s/ask | asks (infeasible, duplicate) | trials_to_near per seed | best_train per seed | oracle per seed |"
    ]
    out.append("|" + "---|" * 9)
    near = lambda r: f">{trials}" if r["trials_to_near"] is None else str(r["trials_to_near"])  # noqa: E731
    best = lambda r: f"{r['best_train']:.3f}"  # noqa: E731
    orc = lambda r: "-" if r["oracle"] is None else f"{r['oracle']:.3f}"  # noqa: E731
    for sc in dict.fromkeys(r["scenario"] for r in rows):
        for st in SETTINGS:
            rs = sorted((r for r in rows if r["scenario"] == sc and r["setting"] == st), key=lambda r: r["seed"])
            if not rs:
                continue
            out.append(
                f"| {sc} | {st} | {med(r['wall_s'] for r in rs):.1f} | {med(r['ask_s'] for r in rs):.1f} "
                f"| {med(r['ask_median_s'] for r in rs):.3f} "
                f"| {sum(r['asked'] for r in rs)} ({sum(r['infeasible_asked'] for r in rs)}, {sum(r['duplicate_asked'] for r in rs)}) "
                f"| {' '.join(near(r) for r in rs)} | {' '.join(best(r) for r in rs)} | {' '.join(orc(r) for r in rs)} |"
            )
    pairs = {(r["scenario"], r["seed"]): {} for r in rows}
    for r in rows:
        pairs[(r["scenario"], r["seed"])][r["setting"]] = r
    both = [p for p in pairs.values() if set(SETTINGS) <= set(p)]
    if both:
        ratios = [p["default"]["wall_s"] / p["fast"]["wall_s"] for p in both]
        cap = trials + 1  # not reached counts as trials + 1
        tn = lambda r: cap if r["trials_to_near"] is None else r["trials_to_near"]  # noqa: E731
        d_near = [tn(p["fast"]) - tn(p["default"]) for p in both]
        d_best = [p["fast"]["best_train"] - p["default"]["best_train"] for p in both]
        out += [
            "",
            f"{len(both)} paired searches: wall default/fast median {med(ratios):.2f}x "
            f"(min {min(ratios):.2f}, max {max(ratios):.2f}); total wall default {sum(p['default']['wall_s'] for p in both):.0f} s, "
            f"fast {sum(p['fast']['wall_s'] for p in both):.0f} s",
            f"trials_to_near fast - default (not reached = {cap}): median {med(d_near):+.1f}, "
            f"fast earlier in {sum(d < 0 for d in d_near)}, same {sum(d == 0 for d in d_near)}, later {sum(d > 0 for d in d_near)}; "
            f"reached near: default {sum(p['default']['trials_to_near'] is not None for p in both)}/{len(both)}, "
            f"fast {sum(p['fast']['trials_to_near'] is not None for p in both)}/{len(both)}",
            f"best_train fast - default: median {med(d_best):+.4f}, mean {statistics.mean(d_best):+.4f}, "
            f"fast higher in {sum(d > 0 for d in d_best)}, same {sum(d == 0 for d in d_best)}, lower {sum(d < 0 for d in d_best)}",
        ]
    return "\n".join(out)


def main() -> None:
    from _args import positive  # scripts/ is on sys.path when run as a file (tests import this module as scripts.*)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenarios", nargs="+", default=["2wiki", "2wiki_500", "taskbench", "chatdev"])
    ap.add_argument("--seeds", type=positive, default=5, help="seeds 0..N-1")
    ap.add_argument("--trials", type=positive, default=50)
    ap.add_argument("--oracle-cache", default="bench-out/.oracle-cache")
    ap.add_argument("--jsonl", help="append one JSON line per search here")
    ap.add_argument("--summarize", help="only reprint the table of a kept --jsonl file")
    a = ap.parse_args()
    if a.summarize:
        if not Path(a.summarize).is_file():
            ap.error(f"--summarize: no file at {a.summarize}")
        rows = [json.loads(line) for line in Path(a.summarize).read_text().splitlines() if line.strip()]
        trials = rows[0].get("trial_budget", a.trials) if rows else a.trials  # the kept run's, not this call's default
        print(f"optuna_gp, {trials} trials, SIMULATED (reprinted from {a.summarize})")
        print(summarize(rows, trials))
        return
    rows = []
    for seed in range(a.seeds):  # seeds outermost: a run cut short still covers every scenario alike
        for sc in a.scenarios:
            for st in SETTINGS:
                r = one(sc, seed, st, a.trials, Path(a.oracle_cache))
                rows.append(r)
                print(
                    f"{sc} seed {seed} {st}: {r['wall_s']:.1f} s, {r['asked']} asks, "
                    f"near {r['trials_to_near']}, best {r['best_train']:.3f} (oracle {r['oracle']})",
                    flush=True,
                )
                if a.jsonl:
                    with open(a.jsonl, "a") as f:
                        f.write(json.dumps(r) + "\n")
    print()
    print(
        f"optuna_gp, {a.trials} trials, SIMULATED; default = Optuna's GPSampler settings, fast = conf/searcher/optuna_gp.yaml"
    )
    print(summarize(rows, a.trials))


if __name__ == "__main__":
    from _args import run

    run(main)
