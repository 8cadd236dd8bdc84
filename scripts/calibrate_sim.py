"""Calibration tables of a simulated scenario, computed through the real fusion and scoring code.

    python scripts/calibrate_sim.py --scenario conf/scenario/2wiki.yaml --items 300 --seed 0

Prints (as Markdown): per ``select`` stage, retrieval F1 per model and sample count; per ``answer``
stage, EM per model and sample count under each upstream model at one sample; and the best
allocation over a coarse grid at a few budgets (the paper's normalized units). Everything here is
simulated (``components.simulator``); items come from the synthetic generator.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.backends.base import Request  # noqa: E402
from components.cost import units  # noqa: E402
from components.datasets import synthetic_items  # noqa: E402
from components.fusion import id_vote_merge, majority_vote  # noqa: E402
from components.metrics import exact_match, retrieval_prf  # noqa: E402
from components.parsers import parse_answer, parse_ids  # noqa: E402
from components.scenario import Scenario, ScenarioStage, load_scenario  # noqa: E402
from components.simulator import SimWorld  # noqa: E402

SELECT_S = (1, 5, 10, 30)
ANSWER_S = (1, 2, 5, 10, 20, 40, 60, 90)
GRID = {"select": (1, 2, 3, 5, 10), "answer": ANSWER_S}


class Runner:
    """Runs allocations of a scenario on items, with a small in-memory sample bank and fusion memo."""

    def __init__(self, scenario: Scenario, items):
        self.scenario = scenario
        self.world = SimWorld(scenario)
        self.items = items
        self._bank: dict[tuple, list[str]] = {}
        self._fused: dict[tuple, str] = {}

    def samples(self, stage: ScenarioStage, model: str, item, upstream: str | None, n: int) -> list[str]:
        """The first n samples of the stream (extending it like the sample bank would)."""
        key = (stage.name, model, item.id, upstream)
        have = self._bank.setdefault(key, [])
        if len(have) < n:
            req = Request(model, "", n=n - len(have), start=len(have), stage=stage.name, item=item, upstream=upstream)
            have.extend(self.world.generate([req])[0].texts)
        return have[:n]

    def fused(self, stage: ScenarioStage, model: str, s: int, item, upstream: str | None) -> str:
        """The stage output with S samples, fused by the stage's fusion method."""
        key = (stage.name, model, s, item.id, upstream)
        if key not in self._fused:
            texts = self.samples(stage, model, item, upstream, s)
            if stage.fusion == "id_vote":
                out = id_vote_merge(texts)
            elif s == 1:
                out = texts[0]
            elif stage.fusion == "vote":
                out = majority_vote(texts, parse_answer)
            else:  # llm: a fusion request to the same (simulated) model
                req = Request(model, "", n=1, stage=stage.name, item=item, upstream=upstream, candidates=tuple(texts))
                out = "Answer: " + parse_answer(self.world.generate([req])[0].texts[0])
            self._fused[key] = out
        return self._fused[key]

    def outputs(self, allocation, item) -> str | None:
        """Run the stages of ``allocation`` ((stage, model, S) in order) on one item."""
        upstream = None
        for stage_name, model, s in allocation:
            upstream = self.fused(self.scenario.stage(stage_name), model, s, item, upstream)
        return upstream

    def score(self, allocation) -> float:
        """Mean final score: retrieval F1 after a select stage, EM after an answer stage."""
        last = self.scenario.stage(allocation[-1][0])
        total = 0.0
        for item in self.items:
            out = self.outputs(allocation, item)
            if last.kind == "select":
                total += retrieval_prf(parse_ids(out), item.gold_ids)[2]
            else:
                total += exact_match(parse_answer(out), item.answers)
        return total / len(self.items)


def stage_units(stage: ScenarioStage, model: str, s: int) -> float:
    return units(stage.model(model).params, stage.prompt_tokens, stage.output_tokens, s)


def default_budget(scenario: Scenario) -> float:
    """The paper's default: one sample of the largest model on every stage."""
    return sum(stage_units(st, max(st.models, key=lambda m: m.params).name, 1) for st in scenario.stages)


def by_size(stage: ScenarioStage, descending: bool = False) -> list[str]:
    return [m.name for m in sorted(stage.models, key=lambda m: m.params, reverse=descending)]


def table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def curves(runner: Runner, prefix: tuple, stage: ScenarioStage, s_values) -> dict[str, dict[int, float]]:
    """Score per model and S of ``stage`` after the fixed upstream allocation ``prefix``."""
    return {m: {s: runner.score(prefix + ((stage.name, m, s),)) for s in s_values} for m in by_size(stage)}


def best_allocations(runner: Runner, budgets) -> list[list]:
    scn = runner.scenario
    options = [
        [(st.name, m, s) for m in by_size(st) for s in GRID[st.kind] if st.min_samples <= s <= st.max_samples]
        for st in scn.stages
    ]
    cost = lambda alloc: sum(stage_units(scn.stage(n), m, s) for n, m, s in alloc)  # noqa: E731
    feasible = [a for a in itertools.product(*options) if cost(a) <= max(budgets)]
    scores = {a: runner.score(a) for a in feasible}
    rows = []
    for b in budgets:
        fits = [a for a in feasible if cost(a) <= b]
        if not fits:
            rows.append([f"{b:g}", "(nothing fits)", "", ""])
            continue
        best = max(fits, key=lambda a: (round(scores[a], 6), -cost(a)))  # ties: the cheaper one
        rows.append([f"{b:g}", " + ".join(f"{m}×{s}" for _, m, s in best), f"{cost(best):.0f}", scores[best]])
    return rows


def calibrate(scenario: Scenario, items, budgets=None) -> str:
    """All calibration tables of a scenario as Markdown."""
    runner = Runner(scenario, items)
    out = [f"Scenario `{scenario.name}` v{scenario.version} (simulated), {len(items)} synthetic items"]
    first = scenario.stages[0]
    if first.kind == "select":
        out.append(f"\n**{first.name}: retrieval F1 (id_vote) by samples**\n")
        cur = curves(runner, (), first, SELECT_S)
        out.append(table(["model"] + [f"S={s}" for s in SELECT_S], [[m] + list(v.values()) for m, v in cur.items()]))
    for k, stage in enumerate(scenario.stages):
        if stage.kind != "answer":
            continue
        prev = scenario.stages[k - 1] if k else None
        # stages before the previous one: their largest model, one sample (a 3-stage chain needs them)
        head = tuple((st.name, by_size(st, descending=True)[0], 1) for st in scenario.stages[: max(k - 1, 0)])
        uppers = [None] if prev is None else by_size(prev, descending=True)
        for up in uppers:
            prefix = () if up is None else head + ((prev.name, up, 1),)
            upper = " → ".join(f"{n} {m}×{s}" for n, m, s in prefix)
            what = "F1" if prev is not None and prev.kind == "select" else "EM"
            cond = "" if up is None else f" under {upper} ({what} {runner.score(prefix):.2f})"
            out.append(f"\n**{stage.name}: EM ({stage.fusion} fusion) by samples{cond}**\n")
            cur = curves(runner, prefix, stage, ANSWER_S)
            rows = [[m] + list(v.values()) for m, v in cur.items()]
            out.append(table(["model"] + [f"S={s}" for s in ANSWER_S], rows))
    if budgets is None:
        d = default_budget(scenario)
        two_digits = lambda x: float(f"{x:.2g}")  # noqa: E731  (929 -> 500, 929, 2000 as in the paper)
        budgets = [two_digits(d * 0.54), round(d), two_digits(d * 2.15)]
    grid = "; ".join(f"{st.name} S∈{list(GRID[st.kind])}" for st in scenario.stages)
    out.append(f"\n**Best allocation on a coarse grid ({grid}), budget in units**\n")
    out.append(table(["budget", "allocation", "units", "score"], best_allocations(runner, budgets)))
    return "\n".join(out)


def main(argv=None) -> int:
    from _args import positive  # scripts/ is on sys.path when run as a file (tests import this module as scripts.*)

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", default="conf/scenario/2wiki.yaml", help="scenario file or public name")
    ap.add_argument("--items", type=positive, default=300, help="number of synthetic items")
    ap.add_argument("--seed", type=int, default=0, help="synthetic item seed")
    ap.add_argument(
        "--budgets", default=None, help="comma-separated budgets in units (default: ~0.54/1/2.15 × default)"
    )
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    budgets = [float(b) for b in args.budgets.split(",")] if args.budgets else None
    print(calibrate(load_scenario(args.scenario), synthetic_items(args.items, args.seed), budgets))
    print(f"\n({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    from _args import run

    run(main)
