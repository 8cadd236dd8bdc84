"""Nightly re-optimization on a REAL Prefect server: `agenttts schedule` serves the deployment, the test
triggers it twice (cold, then warm from the champion) and reads the outcome back from MLflow."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DEPLOYMENT = "nightly/nightly-synthetic"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = check()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"{what} not reached within {timeout} s\n{tail}")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    """Child processes of ``pid`` other than multiprocessing's resource tracker (it stays for the runner's life)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmd = (stat.parent / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ppid = int(text.rsplit(")", 1)[1].split()[1])
        if ppid == pid and "resource_tracker" not in cmd:
            out.append(int(stat.parent.name))
    return out


@pytest.fixture
def prefect_server(tmp_path):
    """`prefect server start` on loopback with its own PREFECT_HOME and SQLite database under tmp_path."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_LOGGING_LEVEL": "CRITICAL",
    }
    env.pop("PREFECT_API_URL", None)
    log = tmp_path / "server.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        _wait("the Prefect server's /api/health", lambda: _healthy(url), 180, proc, log)
        yield url, env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_schedule_serves_a_nightly_deployment_that_warm_starts_and_decides(tmp_path, prefect_server):
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url, env = prefect_server
    work = tmp_path / "work"
    work.mkdir()
    env = {**env, "PREFECT_API_URL": url, "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PYTHONPATH": str(ROOT)}
    log = tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "flows.cli", "schedule", "cron=0 2 * * *", "trials=5", "data.train_size=12"]
    cmd.append("schedule.timezone=Europe/Paris")  # 02:00 in Paris, not Prefect's default UTC
    with open(log, "w") as fh:
        serve = subprocess.Popen(cmd, cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):

            def deployment():
                with get_client(sync_client=True) as client:
                    try:
                        d = client.read_deployment_by_name(DEPLOYMENT)
                    except Exception:
                        return None
                return d if not d.paused else None

            dep = _wait("the served deployment", deployment, 120, serve, log)
            assert [(s.schedule.cron, s.schedule.timezone) for s in dep.schedules] == [("0 2 * * *", "Europe/Paris")]
            assert dep.parameters == {"overrides": ["trials=5", "data.train_size=12"]}
            states = []
            for _ in range(2):  # night 1: cold start, promoted; night 2: warm start from the champion
                fr = run_deployment(DEPLOYMENT, timeout=240, poll_interval=1)
                states.append(fr.state)
                # the flow-run process exits a moment after the API says Completed: wait, or SIGTERM cancels it
                _wait("the flow-run process to exit", lambda: not _children(serve.pid), 60)
        assert all(s.is_completed() for s in states), (states, log.read_text()[-3000:])
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)

    client = MlflowClient(f"sqlite:///{work / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("agenttts-synthetic")
    runs = sorted(
        client.search_runs([exp.experiment_id], filter_string="tags.kind = 'search'"), key=lambda r: r.info.start_time
    )
    assert len(runs) == 2 and all(r.data.tags["status"] == "finished" for r in runs)
    first, second = runs
    assert "warm_start" not in first.data.tags and first.data.tags["champion.decision"] == "promoted"
    assert second.data.tags["warm_start"] == first.info.run_id  # warm-started from the champion's search
    assert second.data.metrics["warm/trials"] >= 1
    assert second.data.tags["champion.decision"] in ("promoted", "kept") and second.data.tags["champion.reason"]
    arts = {a.path for a in client.list_artifacts(second.info.run_id, "champion")}
    assert "champion/decision.json" in arts
    mv = client.get_model_version_by_alias("synthetic-allocation", "champion")
    assert mv.run_id in (first.info.run_id, second.info.run_id)
