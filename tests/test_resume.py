"""Crash safety: an interrupted or killed search never stays RUNNING, and the same command resumes it.

Each search runs as the real command in its own process (signals are the thing under test).
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from flows.cli import CONF_DIR
from tests.chat_server import FreshLLM, trials_answers

# a signal is sent once round 2 (or 4) is printed and must land before the search ends, on a loaded machine
# too: at 50 trials about 10 rounds (3 s or more) are left then; at 12 a kill once landed a round late
# (interrupted and killed searches never run them, so the margin costs only the full searches' seconds)
ARGS = ["search", "trials=50", "champion.enabled=false"]
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@pytest.fixture(scope="module")
def prefect_home(tmp_path_factory):
    """One Prefect home for the module's commands: its database is created once, not per command."""
    return tmp_path_factory.mktemp("prefect")


def _env(home) -> dict:
    # a fresh process: in this one a test harness may have pointed Prefect at its own server
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(CONF_DIR.parent), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_HOME=str(home))
    return env


def _search(cwd, home, sig=None, after="round 2:", args=ARGS):
    """Run ``agenttts search`` in ``cwd``; with ``sig``, send it once ``after`` is printed.
    Returns (exit code, output). The output goes through a file, not a pipe: a killed command's
    Prefect server would hold a pipe open."""
    log = cwd / f"out{len(list(cwd.glob('out*.log')))}.log"
    with open(log, "w") as fh:
        p = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", *args],
            cwd=cwd,
            env=_env(home),
            stdout=fh,
            stderr=subprocess.STDOUT,
            # a shell ignores SIGINT in its background jobs, and children inherit that: Ctrl-C restored
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        if sig is not None:
            deadline = time.monotonic() + 120
            while after not in log.read_text() and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            p.send_signal(sig)
        rc = p.wait(timeout=120)
    return rc, log.read_text()


def _servers(home) -> list[int]:
    """Running Prefect API servers of ``home``."""
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if b"prefect.server.api.server:create_app" in (proc / "cmdline").read_bytes():
                if f"PREFECT_HOME={home}".encode() in (proc / "environ").read_bytes():
                    out.append(int(proc.name))
        except OSError:
            continue
    return out


def _runs(cwd) -> dict:
    client = MlflowClient(f"sqlite:///{cwd / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("agenttts-synthetic")
    runs = client.search_runs([exp.experiment_id], filter_string="tags.kind = 'search'")
    return {r.info.run_id: r for r in runs}


def _banked_tokens(cwd) -> int:
    """Tokens of every sample in the sample bank of a search run in ``cwd``."""
    with closing(sqlite3.connect(cwd / ".agenttts" / "bank.sqlite")) as db:
        return db.execute("SELECT COALESCE(SUM(tokens), 0) FROM samples").fetchone()[0]


def _tokens(out: str) -> int:
    return int(re.search(r"tokens generated: ([\d,]+)", out).group(1).replace(",", ""))


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_an_interrupted_search_is_closed_not_left_running(tmp_path, prefect_home, sig, code, word):
    rc, out = _search(tmp_path, prefect_home, sig)
    assert rc == code, out
    lines = out.splitlines()
    assert word in lines
    # what Prefect's temporary server may log while it is stopped after our last line is not ours
    assert "Traceback" not in "\n".join(lines[: lines.index(word)])
    assert "closed as interrupted; the same command resumes it" in out
    (run,) = _runs(tmp_path).values()
    assert run.info.status == "KILLED" and run.data.tags["status"] == "interrupted"
    assert run.data.tags["pid"].isdigit() and run.data.tags["host"]


@pytest.mark.slow
def test_a_killed_search_is_closed_and_resumed_by_the_same_command(tmp_path, prefect_home):
    ref_dir, dir_ = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir()
    dir_.mkdir()
    rc, ref = _search(ref_dir, prefect_home)  # uninterrupted, with a bank of its own
    assert rc == 0, ref

    # this process adopts the orphans of its children's children (as a subreaper such as systemd --user
    # or a container's init does), not pid 1: the case a check of "adopted by pid 1" missed
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        rc, _ = _search(dir_, prefect_home, signal.SIGKILL)  # no handler runs: the run is left RUNNING
        assert rc == -signal.SIGKILL
        (orphan,) = _servers(prefect_home)  # and Prefect's temporary server runs on without its command
        assert Path(f"/proc/{orphan}/stat").read_text().rsplit(")", 1)[1].split()[1] == str(os.getpid())
        (killed,) = _runs(dir_).values()
        assert killed.info.status == "RUNNING"
        # what the killed run generated before the kill, whichever round the kill landed in
        banked = _banked_tokens(dir_)
        assert banked > 0

        rc, out = _search(dir_, prefect_home)
        assert rc == 0, out
        assert f"note: stopped pid {orphan}, a temporary Prefect API server that a killed command left running" in out
        os.waitpid(orphan, 0)  # stopped by the command; reaped here, its adopter
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
    kid = killed.info.run_id
    assert f"search run {kid} was left running by a process that is gone; closed as killed" in out
    assert re.search(rf"resuming search {kid} \(killed after \d+ logged trials, same config\)", out)
    runs = _runs(dir_)
    new = next(r for r in runs.values() if r.info.run_id != kid)
    old = runs[kid]
    assert old.info.status == "KILLED" and old.data.tags["status"] == "killed"
    assert old.data.tags["resumed_by"] == new.info.run_id and new.data.tags["resumes"] == kid
    # the same search (a deterministic searcher), and what the killed run generated is not generated again:
    # exactly the rest is (an exact count, since how far the killed run got depends on when the kill lands)
    assert out.split("best allocation:")[1].splitlines()[0] == ref.split("best allocation:")[1].splitlines()[0]
    assert new.data.metrics["best_score"] == pytest.approx(float(re.search(r"train score \(em\): ([\d.]+)", ref)[1]))
    assert _tokens(out) == _tokens(ref) - banked

    rc, out = _search(dir_, prefect_home)  # the killed run is resumed once only
    assert rc == 0 and "resuming" not in out and "closed as killed" not in out


@pytest.mark.slow
def test_a_killed_llm_agent_search_resumes_with_the_replies_it_had(tmp_path, prefect_home):
    """The resumed search re-asks the prompts the killed one asked and gets the same replies from the
    bank, though the LLM would answer anew: so it proposes the trials the killed search ran, in order."""
    import json

    from components.bank import counts
    from flows.build import build
    from flows.cli import compose

    llm = FreshLLM()
    try:
        args = [*ARGS, "reasoner=openai", f"reasoner.base_url={llm.url}", "reasoner.model=tiny"]
        llm.answer_for = trials_answers(build(compose(args[1:]), with_data=False).space)
        rc, _ = _search(tmp_path, prefect_home, signal.SIGKILL, after="round 4:", args=args)
        assert rc == -signal.SIGKILL
        asked = llm.calls
        # the kill can land between an answer and its write: the bank holds what the search had
        had = counts(tmp_path / ".agenttts" / "bank.sqlite")["replies"]
        assert asked - 1 <= had <= asked
        (killed,) = _runs(tmp_path).values()
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
        children = client.search_runs([killed.info.experiment_id], f"tags.mlflow.parentRunId = '{killed.info.run_id}'")
        ran = [r.info.run_name.split(" ", 1)[1] for r in sorted(children, key=lambda r: int(r.data.params["trial"]))]
        assert len(ran) >= 8  # the probes and at least two of the LLM's rounds

        rc, out = _search(tmp_path, prefect_home, args=args)
        assert rc == 0, out
        assert "(the reasoner's replies too)" in out
        new = next(r for r in _runs(tmp_path).values() if r.info.run_id != killed.info.run_id)
        path = client.download_artifacts(new.info.run_id, "decision_trace.jsonl", str(tmp_path))
        trace = [json.loads(x) for x in open(path).read().splitlines()]
        assert [t["allocation"] for t in trace[: len(ran)]] == ran
        assert {t["source"] for t in trace[: len(ran)]} >= {"openai"}
        assert new.data.metrics["agent/replies_from_bank"] == had  # every reply the killed search had
        assert llm.calls == asked + new.data.metrics["agent/replies_answered"]
    finally:
        llm.close()
        for pid in _servers(prefect_home):  # the killed command's temporary Prefect server
            os.kill(pid, signal.SIGTERM)


def test_only_runs_of_gone_processes_on_this_machine_are_closed(tmp_path):
    from components.archive import Archive

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid now names no process
    archive = Archive(f"sqlite:///{tmp_path / 'mlflow.db'}", "exp")
    here = Archive.process_tags()
    ids = {}
    for name, tags in {
        "gone": {**here, "pid": str(dead.pid)},
        "alive": here,  # this process
        "elsewhere": {"host": here["host"] + "-other", "pid": str(dead.pid)},
        "untagged": {},  # written before runs had host/pid tags
    }.items():
        ids[name] = archive.start_search(name, {}, {"kind": "search", "status": "running", **tags})
    closed = [r.info.run_id for r in archive.close_orphans()]
    assert closed == [ids["gone"]]
    status = {n: archive.client.get_run(i).info.status for n, i in ids.items()}
    assert status == {"gone": "KILLED", "alive": "RUNNING", "elsewhere": "RUNNING", "untagged": "RUNNING"}
    assert archive.client.get_run(ids["gone"]).data.tags["status"] == "killed"


def test_a_stopped_search_is_resumed_once_and_not_after_a_finished_one(tmp_path):
    from components.archive import Archive
    from flows.runs import config_digest, unfinished_search

    archive = Archive(f"sqlite:///{tmp_path / 'mlflow.db'}", "exp")
    cfg = {"seed": 0, "trials": 12, "command_line": "agenttts search seed=0 trials=12"}
    same = {**cfg, "command_line": "agenttts search trials=12 seed=0", "cli_overrides": ["trials=12", "seed=0"]}
    digest = config_digest(cfg)
    assert config_digest(same) == digest and config_digest({**cfg, "seed": 1}) != digest

    def search(status, **tags):
        rid = archive.start_search(status, {}, {"kind": "search", "config_digest": digest, "status": status, **tags})
        time.sleep(0.01)  # distinct start times
        return rid

    assert unfinished_search(archive, digest) is None
    old = search("interrupted")
    run, trials = unfinished_search(archive, digest)
    assert run.info.run_id == old and trials == 0
    search("failed", resumed_by="x")  # resumed already: skipped, the older one is still open
    assert unfinished_search(archive, digest)[0].info.run_id == old
    search("finished")  # a finished search of the config came after: nothing to resume
    assert unfinished_search(archive, digest) is None


def test_a_ctrl_c_that_a_library_replaced_with_its_own_error_is_still_a_stop():
    from components.archive import interruption

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ValueError("Task run is not set") from None  # what Prefect raises mid-crash; context kept
    except ValueError as e:
        replaced = e
    assert isinstance(interruption(replaced), KeyboardInterrupt)
    assert interruption(ValueError("a real error")) is None
    assert isinstance(interruption(SystemExit(143)), SystemExit)


def test_a_ctrl_c_swallowed_by_python_is_raised_at_the_next_check(stop_handlers):
    """Python ignores what a ``__del__`` method raises, a KeyboardInterrupt too: the handlers remember
    the stop, and ``stops.check`` raises it."""
    from flows import stops

    stop_handlers.swallow_ctrl_c()
    assert stop_handlers.swallowed == [KeyboardInterrupt]  # it was swallowed ...
    with pytest.raises(KeyboardInterrupt):
        stops.check()  # ... and is raised here, once
    stops.check()


def test_a_ctrl_c_inside_a_deferred_block_is_raised_when_the_block_is_done(stop_handlers):
    """A Ctrl-C inside one of MLflow's SQLite transactions left the database locked (and MLflow logged
    tracebacks): the search holds it until the trial's record is written."""
    from flows import stops

    done = []
    with pytest.raises(KeyboardInterrupt):
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler has run by now, and raised nothing here
            done.append("written")
    assert done == ["written"]
    stops.check()  # raised once, not again


class _PrefectTerm(Exception):
    pass


def test_a_sigterm_to_another_handler_inside_a_deferred_block_is_raised_when_the_block_is_done(stop_handlers):
    """Inside a flow run Prefect's SIGTERM handler replaces ours; a SIGTERM in a trial's MLflow write
    left the database locked, and closing the run failed (CI rehearsal, 2026-12-02). The block holds
    it too and then hands it to that handler."""
    from flows import stops

    def prefect_like(signum, frame):
        raise _PrefectTerm(signum)

    signal.signal(signal.SIGTERM, prefect_like)
    done = []
    with pytest.raises(_PrefectTerm):
        with stops.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # held: nothing raised here
            done.append("written")
    assert done == ["written"]
    assert signal.getsignal(signal.SIGTERM) is prefect_like  # handed back
    stops.check()  # nothing pending for our own handler


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_search_whose_ctrl_c_was_swallowed_stops_after_that_round(tmp_path, monkeypatch, stop_handlers):
    """The CI failure of 2026-12-01: a Ctrl-C landed in a SQLAlchemy weakref callback, Python ignored
    it, and the search ran to its end. Now the search stops at the end of that round, closed as
    interrupted."""
    from flows.build import build
    from flows.config import compose
    from flows.search import run_search

    monkeypatch.chdir(tmp_path)
    lines = []

    def progress(line):
        lines.append(line)
        if line.startswith("round 1:"):
            stop_handlers.swallow_ctrl_c()

    with pytest.raises(KeyboardInterrupt):
        run_search(build(compose([*ARGS[1:], "data.train_size=20"])), progress)
    assert stop_handlers.swallowed == [KeyboardInterrupt]
    assert not any(x.startswith("round 2:") for x in lines)
    assert any("closed as interrupted" in x for x in lines)
    (run,) = _runs(tmp_path).values()
    assert run.info.status == "KILLED" and run.data.tags["status"] == "interrupted"


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_ctrl_c_swallowed_while_the_results_are_logged_is_not_lost(tmp_path, monkeypatch, stop_handlers):
    """After the last round nothing checked for a swallowed stop: the run was closed as finished and
    the champion decided as if no one had pressed Ctrl-C."""
    from components.archive import Archive
    from flows.build import build
    from flows.config import compose
    from flows.search import run_search

    monkeypatch.chdir(tmp_path)
    log_text = Archive.log_text

    def log_then_ctrl_c(self, text, path):
        log_text(self, text, path)
        if path == "best_allocation.yaml":
            stop_handlers.swallow_ctrl_c()

    monkeypatch.setattr(Archive, "log_text", log_then_ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        run_search(build(compose(["trials=8", "champion.enabled=true", "data.train_size=20"])), lambda line: None)
    assert stop_handlers.swallowed == [KeyboardInterrupt]
    (run,) = _runs(tmp_path).values()
    assert run.info.status == "KILLED" and run.data.tags["status"] == "interrupted"
    assert "champion.decision" not in run.data.tags  # stopped before the champion was challenged
