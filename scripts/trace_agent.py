"""Print an agent search trial by trial against the grid oracle, to see why it is slow on a scenario.

    python scripts/trace_agent.py SCENARIO SEED [--trials 50] [--searcher agenttts] [hydra overrides ...]

e.g. ``python scripts/trace_agent.py hotpotqa 4``, or a scenario of a search path:
``python scripts/trace_agent.py heldout_8 0 hydra.searchpath=[file:///tmp/heldout]``. For each trial: its score, the best so far
(``NEAR`` once within one question of the oracle), the allocation, the insight it follows and
the rationale. The world and data seeds are both SEED, as in ``agenttts bench``. SIMULATED.
"""

from __future__ import annotations

import argparse

from components.bank import SampleBank
from flows.bench import job_overrides, passthrough, task_for
from flows.build import build, make_searcher
from flows.cli import compose


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario")
    ap.add_argument("seed", type=int)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--searcher", default="agenttts")
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_intermixed_args()  # hydra overrides may come before or after the options
    base = compose([*a.overrides, f"scenario={a.scenario}"])  # a hydra.searchpath may hold the scenario
    task, data = task_for(base["scenario"], base["bench"].get("data_paths") or {})  # as agenttts bench picks it
    overrides = job_overrides(passthrough(a.overrides), a.scenario, task, data, a.seed)
    ctx = build(compose([*overrides, *a.overrides]))
    n = len(ctx.train)
    env = ctx.environment(bank=SampleBank(None))
    grid = sorted(env.evaluate(ctx.space.enumerate()), key=lambda r: (-r.score, r.cost.units))
    oracle = grid[0].score
    print(f"SIMULATED {a.scenario} seed {a.seed}: {ctx.space.size} allocations, oracle {oracle:.3f}")
    for r in grid[:5]:
        print(f"   {r.score:.3f} {r.allocation}")
    cfg = compose([*overrides, *a.overrides, f"searcher={a.searcher}", f"seed={a.seed}"])
    searcher = make_searcher(cfg, n)
    batch = int(cfg["searcher"].get("batch_size") or 10)
    history: list = []
    while len(history) < a.trials:
        props = searcher.propose(ctx.space, history, min(batch, a.trials - len(history)))
        seen = {r.allocation for r in history}
        why = {p.allocation: p for p in props}
        allocs = [x for x in dict.fromkeys(p.allocation for p in props) if x not in seen and ctx.space.is_feasible(x)]
        if not allocs:
            break
        results = env.evaluate(allocs)
        searcher.observe(results)
        for r in results:
            history.append(r)
            best = max(h.score for h in history)
            near = " NEAR" if best >= oracle - 1.0 / n - 1e-9 else "     "
            p = why[r.allocation]
            insight = (getattr(p, "trace", None) or {}).get("insight", "")
            print(
                f"{len(history):3d} {r.score:.3f} best {best:.3f}{near} {str(r.allocation):50s} [{insight}] {p.rationale}"
            )


if __name__ == "__main__":
    from _args import run

    run(main)
