"""Grid oracle: seconds of the Environment path vs the fast grid evaluator (components/oracle.py).

    python scripts/bench_oracle.py --scenarios 2wiki chatdev --seeds 1
    python scripts/bench_oracle.py --fast-only --seeds 10  # every public scenario, 10 seeds, fast path only

Each (scenario, seed) is built as ``agenttts bench`` builds its job (the scenario's task, ``scenario.seed``
= ``data.seed`` = seed, the default train size and budget), and its full feasible grid is scored
twice in this one process: ``Environment.evaluate`` on a fresh in-memory bank (what the bench did), and
``grid_best`` (what it does now). It checks that the oracles (allocation, score, units) agree and that
every allocation's score and units agree. Everything is SIMULATED (components/simulator.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.bank import SampleBank  # noqa: E402
from components.oracle import grid_best, grid_scores  # noqa: E402
from flows.bench import public_scenarios, task_for  # noqa: E402
from flows.build import build  # noqa: E402
from flows.cli import compose  # noqa: E402

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"


def context(scenario: str, seed: int, data_paths: dict):
    sc = compose([f"scenario={scenario}"])["scenario"]
    task, data = task_for(sc, data_paths)
    return build(compose([f"task={task}", f"scenario={scenario}", f"scenario.seed={seed}", f"data.seed={seed}", *data]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenarios", nargs="+", default=None, help="default: every public scenario")
    ap.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 (default 1)")
    ap.add_argument("--fast-only", action="store_true", help="time the fast path only (no Environment run)")
    ap.add_argument("--gsm8k", default=str(GSM8K), help="GSM8K test file (the gsm8k scenario is skipped without it)")
    args = ap.parse_args(argv)
    data_paths = {"gsm8k": args.gsm8k} if Path(args.gsm8k).exists() else {}
    print("SIMULATED: every score below comes from components/simulator.py")
    print("| scenario | seed | allocations | environment s | fast s | ratio | oracle | equal |")
    print("|---|---|---|---|---|---|---|---|")
    tot_env = tot_fast = 0.0
    ok = True
    for name in args.scenarios or public_scenarios():
        if name == "gsm8k" and not data_paths:
            print(f"| {name} | - | - | - | - | - | skipped: no {args.gsm8k} | - |")
            continue
        for seed in range(args.seeds):
            ctx = context(name, seed, data_paths)
            grid = ctx.space.enumerate()
            t = time.perf_counter()
            best = grid_best(ctx.environment(bank=SampleBank(None)), grid)
            fast_s = time.perf_counter() - t
            tot_fast += fast_s
            env_s, equal = None, "-"
            if not args.fast_only:
                t = time.perf_counter()
                slow = ctx.environment(bank=SampleBank(None)).evaluate(grid)
                env_s = time.perf_counter() - t
                tot_env += env_s
                top = max(slow, key=lambda r: (r.score, -r.cost.units))
                same_best = best == (top.allocation, top.score, top.cost.units)
                every = grid_scores(ctx.environment(bank=SampleBank(None)), grid)
                same_all = every == [(r.allocation, r.score, r.cost.units) for r in slow]
                equal = "yes" if same_best and same_all else f"NO (oracle {same_best}, every {same_all})"
                ok &= same_best and same_all
            ratio = f"{env_s / fast_s:.1f}x" if env_s else "-"
            env_txt = f"{env_s:.1f}" if env_s else "-"
            print(
                f"| {name} | {seed} | {len(grid)} | {env_txt} | {fast_s:.2f} | {ratio} | "
                f"{best[1]:.2f} @ {best[2]:.0f} units: {best[0]} | {equal} |",
                flush=True,
            )
    env_total = f"{tot_env:.1f}" if not args.fast_only else "-"
    ratio = f"{tot_env / tot_fast:.1f}x" if not args.fast_only and tot_fast else "-"
    print(f"| total | | | {env_total} | {tot_fast:.1f} | {ratio} | | {'yes' if ok else 'NO'} |")
    return 0 if ok else 1


if __name__ == "__main__":
    from _args import run

    run(main)
