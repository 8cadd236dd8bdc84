"""Write simulated scenarios that no searcher was tuned on, for ``agenttts bench``. SIMULATED.

    python scripts/heldout_scenarios.py --out DIR [--n 10] [--seed 0] [--max-space 60000]

The public scenarios (``conf/scenario``) are the ones the agent's rules were tuned on. This script
draws new worlds from them: per scenario, a public one's shape (stages, kinds, fusion, and so its
task) with every model's behaviour jittered (skill or recall on the logit scale, spread,
concentration of wrong answers, fuser decay, false positives), a third model of intermediate size
added to some stages, the token lengths and the budget redrawn, and a fresh world seed. Sample
ranges are narrowed until the grid oracle's space holds at most ``--max-space`` allocations.
Every file is validated by the scenario loader and the space is built before it is written.

It prints the bench command that runs them through the search path, e.g.

    agenttts bench hydra.searchpath=[file:///tmp/heldout] scenarios=[heldout_0,...] \\
        searchers=[agenttts,random,optuna_tpe] bench.out=bench-out/heldout

The same ``--seed`` writes the same files.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _args import positive, run  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TEMPLATES = ("2wiki", "hotpotqa", "cwq", "webqsp", "taskbench", "chatdev")


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def _jitter(model: dict, rng: np.random.Generator) -> dict:
    """The same model size with its behaviour redrawn around the template's."""
    m = {k: float(v) if k == "params" else v for k, v in model.items()}  # YAML 1.1 reads 7.0e9 as a string
    for key in ("skill", "recall"):
        if key in m:
            m[key] = round(min(0.995, max(0.02, _sigmoid(_logit(m[key]) + rng.normal(0, 0.4)))), 3)
    for key, sd in (("spread", 0.2), ("heterogeneity", 0.2), ("upstream_weight", 0.2), ("false_positives", 0.3)):
        if key in m:
            m[key] = round(min(5.0, m[key] * math.exp(rng.normal(0, sd))), 3)
    for key in ("wrong_concentration", "fp_consistency"):
        if key in m:
            m[key] = round(min(0.95, max(0.0, m[key] + rng.normal(0, 0.15))), 3)
    if "fusion_decay" in m:
        m["fusion_decay"] = round(min(1.0, m["fusion_decay"] * math.exp(rng.normal(0, 0.5))), 5)
    return m


def _middle(small: dict, large: dict) -> dict:
    """A model between two: geometric mean size, averaged behaviour."""
    m = dict(large)
    m["params"] = float(f"{math.sqrt(small['params'] * large['params']):.3g}")
    m["name"] = f"Mid-{m['params'] / 1e9:.3g}B"
    m.pop("price_per_mtok", None)
    for k, v in small.items():
        if k in m and isinstance(v, float) and k != "params":
            m[k] = round((v + large[k]) / 2, 5)
    return m


def draw(template: dict, name: str, rng: np.random.Generator) -> dict:
    """One new scenario from ``template`` (a public scenario's mapping)."""
    sc = copy.deepcopy(template)
    sc.update(name=name, version=1, seed=int(rng.integers(1_000, 1_000_000)))
    sc["description"] = f"HELD-OUT, SIMULATED: drawn by scripts/heldout_scenarios.py from '{template['name']}'"
    for st in sc["stages"]:
        models = sorted((_jitter(m, rng) for m in st["models"]), key=lambda m: m["params"])
        if len(models) == 2 and rng.random() < 0.5:
            models.insert(1, _middle(*models))
        st["models"] = models
        st["prompt_tokens"] = max(16, int(st["prompt_tokens"] * math.exp(rng.normal(0, 0.3))))
        st["output_tokens"] = max(8, int(st["output_tokens"] * math.exp(rng.normal(0, 0.3))))
    return sc


def _size(folder: Path, sc: dict) -> tuple[int, float]:
    """The feasible space's size and the default budget (units) of scenario ``sc`` saved in ``folder``."""
    from flows.bench import task_for
    from flows.build import build, default_budget_units
    from flows.config import compose

    (folder / "scenario" / f"{sc['name']}.yaml").write_text(yaml.safe_dump(sc, sort_keys=False))
    task, _ = task_for(sc, {})
    ctx = build(compose([f"hydra.searchpath=[file://{folder}]", f"scenario={sc['name']}", f"task={task}"]), False)
    return ctx.space.size, default_budget_units(list(ctx.space.stages), ctx.space.cost_model)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for the search path (scenario/*.yaml)")
    ap.add_argument("--n", type=positive, default=10, help="how many scenarios")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--max-space", type=positive, default=60_000, help="most feasible allocations per scenario")
    args = ap.parse_args(argv)
    from components.scenario import load_scenario

    folder = args.out.resolve()
    (folder / "scenario").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)
    names = []
    for i in range(args.n):
        base = TEMPLATES[i % len(TEMPLATES)]
        template = yaml.safe_load((ROOT / "conf" / "scenario" / f"{base}.yaml").read_text())
        sc = draw(template, f"heldout_{i}", rng)
        sc.pop("budget_units", None)
        size, default = _size(folder, sc)
        # the budget: between 0.6x and 1.6x the paper's default (one sample of the largest model per stage)
        sc["budget_units"] = round(default * math.exp(rng.uniform(math.log(0.6), math.log(1.6))), 1)
        size, _ = _size(folder, sc)
        while size > args.max_space:
            st = max(sc["stages"], key=lambda s: s.get("samples", [1, 100])[1])
            lo, hi = st.get("samples", [1, 100])
            st["samples"] = [lo, max(lo, int(hi * 0.8))]
            size, _ = _size(folder, sc)
        load_scenario(folder / "scenario" / f"{sc['name']}.yaml")
        shape = " -> ".join(f"{s['name']}[{'/'.join(m['name'] for m in s['models'])}]" for s in sc["stages"])
        print(f"{sc['name']}: from {base}, {sc['budget_units']} units, {size} allocations: {shape}")
        names.append(sc["name"])
    print(
        f"\nagenttts bench hydra.searchpath=[file://{folder}] scenarios=[{','.join(names)}] "
        "searchers=[agenttts,random,optuna_tpe] bench.out=bench-out/heldout"
    )
    return 0


if __name__ == "__main__":
    run(main)
