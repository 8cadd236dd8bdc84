"""The tuning scripts the README's figures come from still run (they are outside the package, so
nothing else imports them). One tiny scenario, one seed; SIMULATED."""

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
    lookup = _run("scripts/tune_agent.py", "--scenarios", "gsm8k", "--seeds", "0", "--cache", cache)
    live = _run("scripts/tune_agent.py", "--scenarios", "gsm8k", "--seeds", "0", "--cache", cache, "--live")
    row = lambda out: next(line for line in out.splitlines() if line.startswith("gsm8k"))  # noqa: E731
    assert "SIMULATED" in lookup and row(lookup) == row(live)  # the real Environment gives the lookup's numbers
    out = _run("scripts/expected_first.py", "--scenarios", "gsm8k", "--seeds", "0", "--replicas", "2", "--cache", cache)
    assert "SIMULATED" in out and any(line.startswith("gsm8k") for line in out.splitlines())
