"""Budget sweep: what sharing the sample bank across the sweep's searches saves.

    python scripts/bench_sweep.py [--budgets 500,900,2000] [--extra trials=50 ...]

Runs the real ``agenttts search -m budget.units=...`` (one search per budget, then the combined Pareto
frontier) in a fresh working directory per mode and prints the tokens each search generated:

- shared: one fresh persistent bank for the whole sweep (the default ``bank.persist=true``), so later
  budgets reuse the samples earlier ones generated;
- own: ``bank.persist=false``, each search starts from an empty in-memory bank (reuse within a search only);
- none: ``bank.enabled=false``, every trial generates everything afresh.

Everything runs on the simulator (backend=sim): the outputs and scores are simulated.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {"shared": [], "own": ["bank.persist=false"], "none": ["bank.enabled=false"]}


def sweep(budgets: str, extra: list[str], mode: str) -> tuple[list[tuple[str, int, float]], float]:
    with tempfile.TemporaryDirectory(prefix=f"sweep-{mode}-") as d:
        cmd = [sys.executable, "-m", "flows.cli", "search", "-m", f"budget.units={budgets}", *extra, *MODES[mode]]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        t = time.perf_counter()
        p = subprocess.run(cmd, cwd=d, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t
        if p.returncode:
            sys.exit(f"{' '.join(cmd)} failed:\n{p.stdout}\n{p.stderr}")
    jobs = re.findall(r"\[job \d+/\d+\] (budget\.units=\S+)", p.stdout)
    tokens = [int(x.replace(",", "")) for x in re.findall(r"tokens generated: ([\d,]+)", p.stdout)]
    scores = [float(x) for x in re.findall(r"train score \(\w+\): ([\d.]+)", p.stdout)]
    return list(zip(jobs, tokens, scores)), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budgets", default="500,900,2000")
    ap.add_argument("--extra", nargs="*", default=[], help="more overrides, e.g. trials=50 searcher=random")
    ap.add_argument("--modes", default="shared,own,none")
    args = ap.parse_args()
    bad = [m for m in args.modes.split(",") if m not in MODES]
    if bad:  # before the first sweep, not after it
        ap.error(f"unknown mode(s) {bad}; modes: {','.join(MODES)}")
    results = {m: sweep(args.budgets, args.extra, m) for m in args.modes.split(",")}
    print(f"`agenttts search -m budget.units={args.budgets} {' '.join(args.extra)}` (SIMULATED, backend=sim)\n")
    print("| bank | " + " | ".join(j for j, _, _ in next(iter(results.values()))[0]) + " | total tokens | wall s |")
    print("|---" * (len(next(iter(results.values()))[0]) + 3) + "|")
    for mode, (rows, wall) in results.items():
        cells = " | ".join(f"{t:,} (best {s:.2f})" for _, t, s in rows)
        print(f"| {mode} | {cells} | {sum(t for _, t, _ in rows):,} | {wall:.0f} |")
    if "shared" in results and "own" in results:
        shared = sum(t for _, t, _ in results["shared"][0])
        own = sum(t for _, t, _ in results["own"][0])
        print(f"\nshared bank across the sweep: {own / shared:.2f}x fewer generated tokens than one bank per search")
    if "shared" in results and "none" in results:
        none = sum(t for _, t, _ in results["none"][0])
        print(f"shared bank vs no bank at all: {none / shared:.2f}x fewer")


if __name__ == "__main__":
    from _args import run

    run(main)
