"""Foundation benchmark: wall time of a 50-trial random search, what the sample bank saves, the grid oracle.

    python scripts/bench_foundation.py [--repeats 3] [--skip-grid]

Each measurement runs the real `agenttts search` command in a subprocess from a fresh working
directory (so Prefect start-up, imports, MLflow and the simulator are all included) and reports
medians. Everything it measures runs on the simulator (backend=sim): the outputs are simulated.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

AGENTTTS = str(Path(sys.executable).with_name("agenttts"))


def run(args: list[str], cwd: Path) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run([AGENTTTS, "search", *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode:
        sys.exit(f"agenttts search {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return wall, p.stdout


def grab(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    return m.group(1) if m else "?"


def simulator_speed() -> tuple[str, str]:
    """Samples per second of the simulator alone (800 requests of 50 samples, median of 3)."""
    from components.backends.base import Request
    from components.datasets import synthetic_items
    from components.simulator import SimWorld

    items = synthetic_items(400, seed=3)
    times = []
    for _ in range(3):
        w = SimWorld("2wiki")
        reqs = [
            Request(
                m,
                "",
                n=50,
                stage="retrieval" if m.startswith("Qwen") else "qa",
                item=it,
                upstream="Selected references: [1] [2]",
            )
            for it in items
            for m in ("Qwen2.5-72B", "Llama-3.2-3B")
        ]
        t = time.perf_counter()
        w.generate(reqs)
        times.append(time.perf_counter() - t)
    return ("simulator: 40,000 samples (800 requests x 50), median of 3", f"{statistics.median(times):.2f} s")


def main() -> None:
    from _args import positive  # scripts/ is on sys.path when run as a file (tests import this module as scripts.*)

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=positive, default=3)
    ap.add_argument("--skip-grid", action="store_true")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="agenttts-bench-"))
    rows = [simulator_speed()]
    try:
        # 1. wall time of `searcher=random trials=50`, first on a fresh Prefect home, then warm
        cold, _ = run(["searcher=random", "trials=50", "bank.persist=false"], work)
        warm = [run(["searcher=random", "trials=50", "bank.persist=false"], work)[0] for _ in range(a.repeats)]
        rows.append(("random, 50 trials, fresh Prefect home (cold start)", f"{cold:.1f} s"))
        rows.append(
            (
                f"random, 50 trials, warm (median of {a.repeats})",
                f"{statistics.median(warm):.1f} s (runs: {', '.join(f'{w:.1f}' for w in warm)})",
            )
        )
        # 2. generated tokens with and without the bank, same seed
        _, with_bank = run(["searcher=random", "trials=50", "bank.persist=false", "seed=0"], work)
        _, without = run(["searcher=random", "trials=50", "bank.persist=false", "bank.enabled=false", "seed=0"], work)
        tw = int(grab(r"tokens generated: ([\d,]+)", with_bank).replace(",", ""))
        tn = int(grab(r"tokens generated: ([\d,]+)", without).replace(",", ""))
        same = grab(r"train score \(em\): ([\d.]+)", with_bank) == grab(r"train score \(em\): ([\d.]+)", without)
        rows.append(("tokens generated, 50-trial random search, with bank", f"{tw:,}"))
        rows.append(("tokens generated, same search, bank disabled", f"{tn:,}"))
        rows.append(("bank saving", f"{tn / tw:.2f}x fewer tokens (same best score: {same})"))
        # 3. the grid oracle on the public 2wiki scenario at the default budget
        if not a.skip_grid:
            wall, out = run(["searcher=grid", "bank.persist=false"], work)
            best, em = grab(r"best allocation: (.+)", out), grab(r"train score \(em\): ([\d.]+)", out)
            rows.append(
                (
                    "grid oracle (scenario 2wiki, synthetic items, 929 units)",
                    f"{best} -> EM {em}, {grab(r'trials: ([0-9]+)', out)} trials, {wall:.0f} s",
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("SIMULATED (backend=sim): every search below runs on the simulator\n")
    print("| measurement | value |\n|---|---|")
    for k, v in rows:
        print(f"| {k} | {v} |")


if __name__ == "__main__":
    from _args import run

    run(main)
