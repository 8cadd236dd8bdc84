"""Warm start measured: what re-evaluating an earlier search's best trials costs, and what the prior buys.

    python scripts/bench_warm.py [--trials 50] [--k 4]

In a fresh working directory (its own mlruns/ and sample bank) it runs, with the real CLI in this
process (Prefect ephemeral), on the simulator (every number is SIMULATED):

1. ``cold0``: a cold AgentTTS search (seed 0), the earlier search, with its own bank file;
2. ``cold1``: a cold search with seed 1 and an empty bank (the comparison for 3 and 4);
3. ``warm``: seed 1 warm-started from 1 with the bank 1 left (same train questions);
4. ``warm_fresh``: the same with ``bank.persist=false`` (an empty in-memory bank: the re-evaluation
   generates everything afresh, as on a machine without the earlier bank).

It prints one markdown table: tokens the warm re-evaluation generated, the search's total tokens,
probes skipped, the first trial reaching the earlier search's best score, and the final best.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--k", type=int, default=4)
    args = ap.parse_args()
    os.chdir(tempfile.mkdtemp(prefix="bench-warm-"))
    from mlflow.tracking import MlflowClient

    from flows.cli import main as cli

    def search(*overrides: str) -> dict:
        if cli(["search", f"trials={args.trials}", "champion.enabled=false", *overrides]) != 0:
            sys.exit(f"search {overrides} failed")
        client = MlflowClient(f"sqlite:///{Path('mlruns/mlflow.db').resolve()}")
        exp = client.get_experiment_by_name("agenttts-synthetic")
        (run,) = client.search_runs(
            [exp.experiment_id], "tags.kind = 'search'", order_by=["start_time DESC"], max_results=1
        )
        curve = [m.value for m in client.get_metric_history(run.info.run_id, "best_so_far")]
        return {"id": run.info.run_id, "m": run.data.metrics, "curve": curve}

    rows = {"cold0": search("seed=0", "bank.path=.agenttts/bank0.sqlite")}
    target = rows["cold0"]["m"]["best_score"]
    shutil.copy(".agenttts/bank0.sqlite", ".agenttts/bank_warm.sqlite")  # the bank the earlier search left
    rows["cold1"] = search("seed=1", "bank.path=.agenttts/bank1.sqlite")  # its own, empty bank
    rows["warm"] = search(
        "seed=1", f"warm_start={rows['cold0']['id']}", f"warm_start_k={args.k}", "bank.path=.agenttts/bank_warm.sqlite"
    )
    rows["warm_fresh"] = search(
        "seed=1", f"warm_start={rows['cold0']['id']}", f"warm_start_k={args.k}", "bank.persist=false"
    )
    print("\nAll numbers are SIMULATED (backend=sim, task synthetic, scenario 2wiki).")
    print(f"Earlier search (cold0): best {target:.3f}, {rows['cold0']['m']['tokens_generated']:,.0f} tokens.\n")
    print(
        "| search | warm re-evaluation tokens | search tokens | probes skipped | first trial >= earlier best | final best |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        m = r["m"]
        hit = next((i + 1 for i, v in enumerate(r["curve"]) if v >= target - 1e-12), None)
        warm = f"{m['warm/tokens_generated']:,.0f} ({m['warm/trials']:.0f} trials)" if "warm/trials" in m else "-"
        print(
            f"| {name} | {warm} | {m['tokens_generated']:,.0f} | {m.get('agent/probes_skipped', 0):.0f} | "
            f"{hit if hit else '>' + str(len(r['curve']))} | {m['best_score']:.3f} |"
        )


if __name__ == "__main__":
    from _args import run

    run(main)
