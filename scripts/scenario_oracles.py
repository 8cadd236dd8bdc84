"""Space size, grid oracle and grid time of every public scenario, through the real Environment.

    python scripts/scenario_oracles.py                    # every public scenario, Markdown table
    python scripts/scenario_oracles.py --only taskbench --top 10

Each scenario is composed with its task (``agenttts`` config, ``backend=sim``), at its default budget
(``budget_units`` of the scenario, else the paper's default), and scored on the train split that
``agenttts search`` uses: the first ``data.train_size`` of the shuffled synthetic items (``data.seed``,
``data.test_size`` as configured; gsm8k: GSM8K test questions from ../shared/data). The oracle is the
best allocation of the FULL feasible grid, evaluated in one round by
``ctx.environment(bank=SampleBank(None)).evaluate(ctx.space.enumerate())`` (in-memory bank, nothing
persisted); ties go to the cheaper allocation. Everything is simulated (``components.simulator``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.bank import SampleBank  # noqa: E402
from flows.build import build  # noqa: E402
from flows.cli import compose  # noqa: E402

#: The GSM8K test file beside the project (see ../shared/data/README.md); gsm8k needs real questions
#: (its answers are numbers, which synthetic items do not have) and is skipped without it.
GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "gsm8k" / "test.jsonl"

#: (scenario, task, extra overrides) of every public scenario; all but gsm8k run on synthetic items.
PUBLIC = (
    ("2wiki", "synthetic", ()),
    ("2wiki_500", "synthetic", ()),
    ("2wiki_900", "synthetic", ()),
    ("2wiki_2000", "synthetic", ()),
    ("hotpotqa", "synthetic", ()),
    ("cwq", "cwq", ()),
    ("webqsp", "webqsp", ()),
    ("taskbench", "taskbench", ()),
    ("chatdev", "chatdev", ()),
    ("gsm8k", "gsm8k", (f"data.path={GSM8K}",)),
)


def shape(ctx) -> str:
    return " → ".join(
        f"{s.name} ({'/'.join(m.name.split('-')[-1] for m in s.models)}, S {s.min_samples}–{s.max_samples})"
        for s in ctx.space.stages
    )


def oracle(scenario: str, task: str, items: int = 50, seed: int = 0, top: int = 1, overrides=()) -> dict:
    """Build the context, size the space and evaluate its full grid; the best ``top`` results."""
    cfg = compose(
        [
            f"task={task}",
            f"scenario={scenario}",
            "backend=sim",
            f"data.train_size={items}",
            f"data.seed={seed}",
            *overrides,
        ]
    )
    ctx = build(cfg)
    grid = ctx.space.enumerate()
    t0 = time.perf_counter()
    results = ctx.environment(bank=SampleBank(None)).evaluate(grid)
    wall = time.perf_counter() - t0
    results.sort(key=lambda r: (-round(r.score, 9), r.cost.units))
    return {"scenario": scenario, "task": task, "ctx": ctx, "size": len(grid), "wall": wall, "best": results[:top]}


def fmt_alloc(a) -> str:
    return " + ".join(f"{st} {m}×{s}" for st, m, s in a.choices)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", help="scenario name (repeatable); default: every public one")
    ap.add_argument("--items", type=int, default=50, help="synthetic train items (data.train_size)")
    ap.add_argument("--seed", type=int, default=0, help="data.seed")
    ap.add_argument("--top", type=int, default=1, help="also list the best K allocations per scenario")
    ap.add_argument("overrides", nargs="*", help="extra config overrides, e.g. budget.units=900")
    args = ap.parse_args(argv)
    if args.top < 1:
        ap.error("--top must be at least 1")
    unknown = set(args.only or ()) - {p[0] for p in PUBLIC}
    if unknown:
        ap.error(f"unknown scenario(s) {sorted(unknown)}; public: {[p[0] for p in PUBLIC]}")
    pairs = [p for p in PUBLIC if not args.only or p[0] in args.only]
    print("SIMULATED (backend=sim): grid oracles of the public scenarios\n")
    print("| scenario | task | shape | budget (units) | space | oracle allocation | units | score | grid s |")
    print("|---|---|---|---|---|---|---|---|---|")
    extra = []
    for sc, task, own in pairs:
        if sc == "gsm8k" and not GSM8K.exists():
            print(f"| `{sc}` | {task} | (skipped: {GSM8K} not found) | | | | | | |")
            continue
        out = oracle(sc, task, args.items, args.seed, args.top, (*own, *args.overrides))
        ctx, best = out["ctx"], out["best"]
        print(
            f"| `{sc}` | {task} | {shape(ctx)} | {ctx.space.budget.value:g} | {out['size']:,} | "
            f"{fmt_alloc(best[0].allocation)} | {best[0].cost.units:.0f} | {best[0].score:.2f} | "
            f"{out['wall']:.0f} |",
            flush=True,
        )
        if args.top > 1:
            extra.append((sc, best))
    for sc, best in extra:
        print(f"\n{sc}: best {len(best)}")
        for r in best:
            print(f"  {r.score:.3f}  {r.cost.units:7.1f}  {r.allocation}")
    return 0


if __name__ == "__main__":
    from _args import run

    run(main)
