"""Search efficiency of the AgentTTS agent (reasoner=rules) against random search, on the simulator.

    python scripts/bench_agent.py [--seeds 10] [--trials 50] [--scenarios 2wiki hotpotqa gsm8k] [--jobs 2]

For each of its scenarios (2wiki, hotpotqa, gsm8k: the ones issue 3 set targets on; ``agenttts
bench`` covers every public scenario) and seed s (the simulated world seed and the data seed are both s, so each
seed is a different objective), the grid oracle is computed by scoring every feasible allocation
with components/oracle.py (exactly the Environment's scores); then each searcher runs `trials`
trials through the same Environment and sample bank. Reported per scenario: median trials until the best-so-far is within one question of
the oracle (>= oracle - 1/N, N train questions), and until it reaches the oracle; "-" = not within
the trials (counted as trials+1 in medians, so medians are conservative for the loser).
All numbers are SIMULATED (backend=sim).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SCENARIO_TASK = {
    "2wiki": ["task=synthetic", "scenario=2wiki"],
    "hotpotqa": ["task=synthetic", "scenario=hotpotqa"],
    "gsm8k": ["task=gsm8k", f"data.path={SHARED / 'gsm8k' / 'test.jsonl'}"],
}


def run_one(job: tuple[str, int, int, list[str]]) -> list[dict]:
    scenario, seed, trials, searchers = job
    from components.bank import SampleBank
    from components.oracle import grid_best
    from flows.build import build, make_searcher
    from flows.cli import compose

    overrides = [*SCENARIO_TASK[scenario], f"scenario.seed={seed}", f"data.seed={seed}"]
    ctx = build(compose(overrides))
    n = len(ctx.train)
    env = ctx.environment(bank=SampleBank(None))  # one bank shared by every searcher
    t = time.perf_counter()
    _, oracle, _ = grid_best(env, ctx.space.enumerate())  # exactly the Environment's scores (tests/test_oracle.py)
    grid_s = time.perf_counter() - t
    rows = []
    for name in searchers:
        cfg = compose([*overrides, f"searcher={name}", f"seed={seed}"])
        searcher = make_searcher(cfg, n)
        batch = int(cfg["searcher"].get("batch_size") or 10)
        history, t = [], time.perf_counter()
        while len(history) < trials:
            props = searcher.propose(ctx.space, history, min(batch, trials - len(history)))
            seen = {r.allocation for r in history}
            allocs = list(
                dict.fromkeys(
                    p.allocation for p in props if p.allocation not in seen and ctx.space.is_feasible(p.allocation)
                )
            )
            if not allocs:
                break
            results = env.evaluate(allocs)
            searcher.observe(results)
            history += results
        best, near, opt = float("-inf"), None, None
        for i, r in enumerate(history, 1):
            best = max(best, r.score)
            if near is None and best >= oracle - 1.0 / n - 1e-9:
                near = i
            if opt is None and best >= oracle - 1e-9:
                opt = i
        rows.append(
            {
                "scenario": scenario,
                "seed": seed,
                "searcher": name,
                "near": near,
                "opt": opt,
                "best": best,
                "oracle": oracle,
                "n": n,
                "space": ctx.space.size,
                "grid_s": grid_s,
                "search_s": time.perf_counter() - t,
            }
        )
    return rows


def main() -> None:
    from _args import positive  # scripts/ is on sys.path when run as a file (tests import this module as scripts.*)

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=positive, default=10)
    ap.add_argument("--trials", type=positive, default=50)
    ap.add_argument("--scenarios", nargs="+", default=list(SCENARIO_TASK), choices=list(SCENARIO_TASK))
    ap.add_argument("--searchers", nargs="+", default=["agenttts", "random"])
    ap.add_argument("--jobs", type=int, default=2)
    a = ap.parse_args()
    scenarios = [s for s in a.scenarios if s != "gsm8k" or (SHARED / "gsm8k" / "test.jsonl").exists()]
    jobs = [(s, seed, a.trials, a.searchers) for s in scenarios for seed in range(a.seeds)]
    t = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as pool:
        rows = [r for chunk in pool.map(run_one, jobs) for r in chunk]
    cap = a.trials + 1

    def med(xs):
        return statistics.median(cap if x is None else x for x in xs)

    print(
        f"SIMULATED: {a.seeds} seeds x {len(scenarios)} scenarios, {a.trials} trials, {time.perf_counter() - t:.0f} s\n"
    )
    print(
        "| scenario | space | N | searcher | median trials to within 1 question | reached (of seeds) | median trials to oracle | final best = oracle |"
    )
    print("|---|---|---|---|---|---|---|---|")
    summary = {}
    for s in scenarios:
        for name in a.searchers:
            rs = [r for r in rows if r["scenario"] == s and r["searcher"] == name]
            near, opt = med(r["near"] for r in rs), med(r["opt"] for r in rs)
            summary[(s, name)] = near
            fmt = lambda v: f"{v:g}" if v <= a.trials else f">{a.trials}"  # noqa: E731
            print(
                f"| {s} | {rs[0]['space']} | {rs[0]['n']} | {name} | {fmt(near)} | {sum(r['near'] is not None for r in rs)}/{len(rs)} "
                f"| {fmt(opt)} | {sum(r['best'] >= r['oracle'] - 1e-9 for r in rs)}/{len(rs)} |"
            )
    if "agenttts" in a.searchers and "random" in a.searchers:
        print()
        for s in scenarios:
            ag, rnd = summary[(s, "agenttts")], summary[(s, "random")]
            print(
                f"- {s}: agent {ag:g} vs random {'>' if rnd > a.trials else ''}{min(rnd, a.trials):g} trials -> "
                f"{'at least ' if rnd > a.trials else ''}{min(rnd, a.trials) / ag:.1f}x sooner"
            )
    grid_s = statistics.median(r["grid_s"] for r in rows)
    print(f"\n(grid oracle: median {grid_s:.1f} s per scenario and seed)")
    per_seed = sorted(
        (r["scenario"], r["seed"], r["searcher"], r["near"], r["opt"], round(r["best"], 3), round(r["oracle"], 3))
        for r in rows
    )
    print("\nper run (scenario, seed, searcher, trials_to_near, trials_to_opt, best, oracle):", file=sys.stderr)
    for row in per_seed:
        print("  ", row, file=sys.stderr)


if __name__ == "__main__":
    from _args import run

    run(main)
