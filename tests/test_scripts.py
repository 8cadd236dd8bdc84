"""The tuning scripts the README's figures come from still run (they are outside the package, so
nothing else imports them). One tiny scenario, one seed; SIMULATED."""

import runpy
import subprocess
import sys

import pytest

from flows.cli import CONF_DIR
from tests.conftest import data_file

ROOT = CONF_DIR.parent


def _run(*args: str) -> str:
    p = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    return p.stdout


@pytest.mark.slow
def test_tune_agent_and_expected_first_run_on_one_seed(tmp_path):
    data_file("gsm8k", "test.jsonl")  # the gsm8k scenario's task reads it (bench.data_paths)
    cache = str(tmp_path / "grid-cache")
    lookup = _run(
        "scripts/tune_agent.py", "--scenarios", "gsm8k", "--seeds", "0", "--cache", cache, "--phases", "--moves"
    )
    live = _run("scripts/tune_agent.py", "--scenarios", "gsm8k", "--seeds", "0", "--cache", cache, "--live")
    row = lambda out: next(line for line in out.splitlines() if line.startswith("gsm8k"))  # noqa: E731
    assert "SIMULATED" in lookup and row(lookup) == row(live)  # the real Environment gives the lookup's numbers
    phase_row = [line.split() for line in lookup.splitlines() if line.startswith("gsm8k")][-1]
    assert phase_row[:6] == ["gsm8k", "median", "1", "1", "1", "1.00"]  # the first probe is near on gsm8k seed 0
    # --moves: every trial is named by its move (a changed rationale text would show as "other")
    moves = lookup.split("first 12 trials by move")[1].split("trials to near by move")[0].splitlines()[1:]
    assert sum(int(line.split()[-4]) for line in moves if line.strip()) == 12
    assert any(line.split()[0] == "probe" for line in moves if line.strip()) and "  other " not in lookup
    out = _run("scripts/expected_first.py", "--scenarios", "gsm8k", "--seeds", "0", "--replicas", "2", "--cache", cache)
    assert "SIMULATED" in out and any(line.startswith("gsm8k") for line in out.splitlines())


def test_tune_agent_phases_split_a_run_at_its_first_near_trial():
    phases = runpy.run_path(str(ROOT / "scripts" / "tune_agent.py"))["phases"]
    n, oracle = 50, 0.80  # one question = 0.02; the plateau is >= 0.74, near >= 0.78
    run = [0.50, 0.76, 0.60, 0.74, 0.70, 0.78, 0.80]
    # first on the plateau at trial 2; trials 2, 4 and 6 on it until the first near (6); 3 and 5 off it
    assert phases(run, oracle, n) == {"first_close": 2, "close": 3, "near": 1, "off_after": 2}
    never = [0.50, 0.60, 0.76, 0.70]
    assert phases(never, oracle, n) == {"first_close": 3, "close": 1, "near": 0, "off_after": 1}
    assert phases([0.5, 0.6], oracle, n) == {"first_close": None, "close": 0, "near": 0, "off_after": 0}


def test_tune_agent_counts_near_neighbours_of_allocations_two_questions_below_the_oracle(tmp_path):
    import numpy as np

    near_of = runpy.run_path(str(ROOT / "scripts" / "tune_agent.py"))["_neighbours_near"]
    n = 50  # one question = 0.02; the oracle 0.80, near >= 0.78, two below = 0.76
    scores = {1: 0.70, 2: 0.76, 3: 0.78, 4: 0.70, 5: 0.76, 6: 0.80, 7: 0.60}
    keys = [f"r=A:1 qa=B:{c}" for c in scores] + ["r=A:2 qa=B:2", "r=C:1 qa=B:2"]
    values = [*scores.values(), 0.80, 0.50]
    grid = tmp_path / "g.npz"
    np.savez(grid, keys=keys, scores=values, n=n)
    # at -2: qa=B:2 (neighbours qa 1, 3; r=A:2 is near, r=C:1 is another model, not a count neighbour)
    # and qa=B:5 (neighbours qa 4, 6); +-1: qa 3, r=A:2 and qa 6 near of 5; +-3: qa 5, 2, 8 (absent)
    assert near_of({"grid": str(grid)}) == [(3, 5), (0, 2)]


@pytest.mark.slow
def test_heldout_scenarios_are_valid_reproducible_and_small_enough(tmp_path):
    from components.scenario import load_scenario
    from flows.build import build
    from flows.config import compose

    outs = [
        _run("scripts/heldout_scenarios.py", "--out", str(tmp_path / d), "--n", "2", "--max-space", "5000")
        for d in ("a", "b")
    ]
    files = sorted((tmp_path / "a" / "scenario").glob("*.yaml"))
    assert [f.name for f in files] == ["heldout_0.yaml", "heldout_1.yaml"]
    for f in files:
        assert f.read_text() == (tmp_path / "b" / "scenario" / f.name).read_text()  # same --seed, same worlds
        sc = load_scenario(f)
        assert "HELD-OUT, SIMULATED" in sc.description
        task = "synthetic"  # both templates (2wiki, hotpotqa) are retrieval -> qa
        cfg = compose([f"hydra.searchpath=[file://{tmp_path / 'a'}]", f"scenario={sc.name}", f"task={task}"])
        assert 0 < build(cfg, with_data=False).space.size <= 5000
    assert "scenarios=[heldout_0,heldout_1]" in outs[0]
    other = _run("scripts/heldout_scenarios.py", "--out", str(tmp_path / "c"), "--n", "1", "--seed", "1")
    assert (tmp_path / "c" / "scenario" / "heldout_0.yaml").read_text() != files[0].read_text()
    assert "heldout_0: from 2wiki" in other
