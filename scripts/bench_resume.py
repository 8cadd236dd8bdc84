"""What resuming a killed search costs: the same command, rerun, against the search never killed. SIMULATED.

    python scripts/bench_resume.py [--kill-after-round 8] [--signal KILL|INT|TERM] [search overrides ...]

Runs ``agenttts search`` three times as separate processes, each in a fresh folder except where
said (default config: the README's quick start, ``backend=sim``):

1. uninterrupted, with a bank of its own: the reference;
2. in a second folder, stopped with the signal once round N is printed (KILL: nothing can run,
   the MLflow run is left running; INT/TERM: the command closes it as interrupted);
3. the same command again in that folder: it closes a run left running, tags itself
   ``resumes=<run>``, and the trials the stopped search ran come from the sample bank.

Prints the tokens each generated, the wall time, and whether (3) found the same best as (1).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cwd: Path, args: list[str], env: dict, stop: tuple[str, int] | None = None) -> tuple[int, str, float]:
    log = cwd / f"out{len(list(cwd.glob('out*.log')))}.log"
    t = time.perf_counter()
    with open(log, "w") as fh:  # a file, not a pipe: a killed command's Prefect server would hold a pipe open
        p = subprocess.Popen([sys.executable, "-m", "flows.cli", "search", *args], cwd=cwd, env=env, stdout=fh,
                             stderr=subprocess.STDOUT,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
        if stop is not None:
            while stop[0] not in log.read_text() and p.poll() is None:
                time.sleep(0.1)
            p.send_signal(stop[1])
        rc = p.wait()
    return rc, log.read_text(), time.perf_counter() - t


def _num(pattern: str, text: str) -> str:
    m = re.search(pattern, text)
    return m.group(1) if m else "?"


def main() -> None:
    from _args import positive

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kill-after-round", type=positive, default=8)
    ap.add_argument("--signal", choices=["KILL", "INT", "TERM"], default="KILL")
    ap.add_argument("overrides", nargs="*", help="search overrides (default: the quick start's config)")
    a = ap.parse_args()
    args = ["champion.enabled=false", *a.overrides]
    with tempfile.TemporaryDirectory() as d:
        ref_dir, dir_ = Path(d) / "reference", Path(d) / "resumed"
        ref_dir.mkdir()
        dir_.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(Path(d) / "prefect"))
        _run(ref_dir, ["trials=1", "bank.enabled=false"], env)  # Prefect's database, created once, not timed
        rc, ref, ref_s = _run(ref_dir, args, env)
        if rc:
            raise SystemExit(f"the reference search failed:\n{ref}")
        sig = getattr(signal, f"SIG{a.signal}")
        _, first, first_s = _run(dir_, args, env, (f"round {a.kill_after_round}:", sig))
        rc, again, again_s = _run(dir_, args, env)
        if rc:
            raise SystemExit(f"the rerun failed:\n{again}")
    best = lambda out: _num(r"best allocation: (.+)", out)  # noqa: E731
    tokens = lambda out: _num(r"tokens generated: (\d[\d,]*\d)", out)  # noqa: E731
    done = _num(rf"round {a.kill_after_round}: (\d+)/", first)
    print(f"SIMULATED: agenttts search {' '.join(args)}")
    print(f"uninterrupted:      tokens generated {tokens(ref):>10s}, wall {ref_s:5.1f} s, best {best(ref)}")
    print(f"SIG{a.signal} after round {a.kill_after_round} ({done} trials): wall {first_s:5.1f} s")
    print(f"same command again: tokens generated {tokens(again):>10s}, wall {again_s:5.1f} s, best {best(again)}")
    resumed = _num(r"(resuming search \S+ \([^)]*\))", again)
    print(f"same best: {best(ref) == best(again)}; {resumed}")


if __name__ == "__main__":
    from _args import run

    run(main)
