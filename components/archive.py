"""The Archive in MLflow: one parent run per search, one child run per trial, artifacts per search.

Uses ``MlflowClient`` only (MLflow's fluent API keeps its active run in a thread-local, so nested
runs from Prefect worker threads silently become top-level runs). The backend is SQLite under
``mlruns/``; its schema is created once under a file lock, because two processes creating it at the
same time can corrupt it.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
import socket
import time
from pathlib import Path

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from components.pipeline import TrialResult

MAX_BATCH = 900  # MLflow's log_batch limit is 1000 entities


def sqlite_uri(path: str | Path) -> str:
    return f"sqlite:///{Path(path).resolve()}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a local SQLite tracking URI (relative to the working directory), else None."""
    return Path(uri[len("sqlite:///") :]) if uri.startswith("sqlite:///") else None


def missing_local_store(uri: str) -> bool:
    """Whether ``uri`` names a local SQLite store that does not exist yet: a lookup there must answer
    "nothing" without opening it, since opening creates an empty store where none was."""
    db = sqlite_path(uri)
    return db is not None and not db.exists()


@contextlib.contextmanager
def store_lock(uri: str, name: str):
    """Hold the file lock ``name`` next to a local SQLite store (processes on this machine take turns);
    other stores have no such file, and the block runs unlocked."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db = db.resolve()
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.parent / name, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _init_store(uri: str) -> MlflowClient:
    with store_lock(uri, ".init.lock"):
        client = MlflowClient(uri)
        if uri.startswith("sqlite:///"):
            client.search_experiments(max_results=1)  # creates the schema, under the lock
    return client


def open_client(tracking_uri: str) -> MlflowClient:
    """A client on ``tracking_uri`` (tracking and model registry), the store created if new."""
    if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
        tracking_uri = sqlite_uri(tracking_uri[len("sqlite:///") :])  # stable across working dirs
    return _init_store(tracking_uri)


def trial_metrics(r: TrialResult) -> dict[str, float]:
    """Every number MLflow gets for a trial (the main metric is ``score``)."""
    m = {"score": r.score, **r.metrics}
    m.update(
        {
            "cost/units": r.cost.units,
            "cost/flops_planned": r.flops_planned,
            "cost/flops_spent": r.flops_spent,
            "cost/fusion_flops_spent": r.fusion_flops_spent,
            "cost/fusion_units": r.cost.fusion_units,
            "wall_s": r.wall_s,
        }
    )
    if r.cost.usd is not None:
        m["cost/usd"] = r.cost.usd
    if r.status == "ok" and r.flops_planned > 0:  # > 1: the run spent more than the cost model planned
        m["cost/spent_over_planned"] = r.flops_spent / r.flops_planned
    return m


class Archive:
    """Logs a search to MLflow.

    Args:
        tracking_uri: e.g. ``sqlite:///mlruns/mlflow.db``.
        experiment: experiment name (one per task by default).
        artifact_root: where a new experiment stores artifacts (default: next to the database).
    """

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: str | None = None):
        if tracking_uri.startswith("sqlite:///") and not tracking_uri.startswith("sqlite:////"):
            tracking_uri = sqlite_uri(tracking_uri[len("sqlite:///") :])  # stable across working dirs
        self.uri = tracking_uri
        self.client = _init_store(tracking_uri)
        exp = self.client.get_experiment_by_name(experiment)
        if exp is None:
            if artifact_root is None and tracking_uri.startswith("sqlite:///"):
                artifact_root = str(Path(tracking_uri[len("sqlite:///") :]).parent / "artifacts")
            exp_id = self.client.create_experiment(
                experiment, artifact_location=Path(artifact_root).resolve().as_uri() if artifact_root else None
            )
        else:
            exp_id = exp.experiment_id
        self.experiment_id = exp_id
        self.experiment = experiment
        self.parent_id: str | None = None
        self.closed = False  # finish() or fail() has ended the parent run

    @staticmethod
    def process_tags() -> dict[str, str]:
        """Who holds a run open: a later search reads these to close it if that process is gone."""
        return {"host": socket.gethostname(), "pid": str(os.getpid())}

    def close_orphans(self) -> list:
        """Close this experiment's search runs still marked running whose process, on this machine, is gone
        (killed with SIGKILL, out of memory, the machine stopped): tag ``status=killed``, MLflow
        status KILLED. Runs of other machines, or without ``host``/``pid`` tags, are left as they are.
        Returns the runs closed."""
        host = socket.gethostname()
        runs = self.client.search_runs(
            [self.experiment_id], filter_string=f"tags.status = 'running' and tags.host = '{host}'", max_results=200
        )
        closed = []
        for run in runs:
            tags = run.data.tags
            if tags.get("kind") != "search" or not tags.get("pid", "").isdigit() or _alive(int(tags["pid"])):
                continue
            why = f"its process (pid {tags['pid']} on {host}) ended without closing the run: killed or crashed"
            self.client.set_tag(run.info.run_id, "status", "killed")
            self.client.set_tag(run.info.run_id, "error", why)
            self.client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run)
        return closed

    def start_search(self, run_name: str, params: dict, tags: dict) -> str:
        run = self.client.create_run(self.experiment_id, run_name=run_name, tags={k: str(v) for k, v in tags.items()})
        self.parent_id = run.info.run_id
        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), MAX_BATCH):
            self.client.log_batch(self.parent_id, params=items[i : i + MAX_BATCH])
        return self.parent_id

    def log_trial(self, r: TrialResult, index: int, tags: dict) -> str:
        """One child run for one trial: params ``<stage>.model``/``<stage>.samples``, all metrics."""
        now = int(time.time() * 1000)
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{index:03d} {r.allocation}",
            tags={
                "mlflow.parentRunId": self.parent_id,
                "status": r.status,
                **({"error": r.error[:5000]} if r.error else {}),
                **{k: str(v) for k, v in tags.items()},
            },
        )
        params = [Param("trial", str(index))]
        for st, m, s in r.allocation.choices:
            params += [Param(f"{st}.model", m), Param(f"{st}.samples", str(s))]
        metrics = [Metric(k, float(v), now, 0) for k, v in trial_metrics(r).items()]
        self.client.log_batch(run.info.run_id, metrics=metrics, params=params)
        self.client.set_terminated(run.info.run_id, "FINISHED" if r.status == "ok" else "FAILED")
        return run.info.run_id

    def log_progress(self, best_so_far: list[float]) -> None:
        """The best-so-far curve on the parent run, one step per trial (one batch call)."""
        now = int(time.time() * 1000)
        metrics = [Metric("best_so_far", v, now, i + 1) for i, v in enumerate(best_so_far)]
        for i in range(0, len(metrics), MAX_BATCH):
            self.client.log_batch(self.parent_id, metrics=metrics[i : i + MAX_BATCH])

    def log_text(self, text: str, path: str) -> None:
        self.client.log_text(self.parent_id, text, path)

    def log_bytes(self, data: bytes, path: str) -> None:
        """A binary artifact (e.g. a PNG), written through a temporary file."""
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / Path(path).name
            f.write_bytes(data)
            parent = str(Path(path).parent)
            self.client.log_artifact(self.parent_id, str(f), None if parent == "." else parent)

    def log_dict(self, data: dict, path: str) -> None:
        self.client.log_dict(self.parent_id, data, path)

    def log_trials_table(self, results: list[TrialResult], extra: list[dict] | None = None) -> None:
        """All trials as one CSV artifact (also written when there are too many for child runs)."""
        rows = []
        for i, r in enumerate(results):
            row = {"trial": i + 1, "allocation": str(r.allocation), "status": r.status}
            for st, m, s in r.allocation.choices:
                row[f"{st}.model"], row[f"{st}.samples"] = m, s
            row.update(trial_metrics(r))
            row.update((extra or [{}] * len(results))[i])
            rows.append(row)
        if not rows:
            return
        cols = list(dict.fromkeys(k for row in rows for k in row))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
        self.log_text(buf.getvalue(), "trials.csv")

    def read_text(self, run_id: str, path: str) -> str | None:
        """A text artifact of ``run_id`` (e.g. ``trials.csv``), or None when the run has none."""
        import tempfile

        with tempfile.TemporaryDirectory() as d:
            try:
                return Path(self.client.download_artifacts(run_id, path, d)).read_text()
            except Exception:  # noqa: BLE001 - an absent artifact is reported as absent
                return None

    def read_trials_table(self, run_id: str) -> list[dict] | None:
        """The rows of a search's ``trials.csv`` (as ``log_trials_table`` wrote them), or None."""
        text = self.read_text(run_id, "trials.csv")
        return None if text is None else list(csv.DictReader(io.StringIO(text)))

    def finish(self, metrics: dict[str, float], tags: dict, status: str = "FINISHED") -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(
            self.parent_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        self.client.set_terminated(self.parent_id, status)

    def fail(self, reason: str, status: str = "failed") -> None:
        """Mark the search ``failed`` (MLflow FAILED) or ``interrupted`` (KILLED): never left RUNNING as
        if valid. A run already closed is left as it is."""
        if self.parent_id is None or self.closed:
            return
        self.client.set_tag(self.parent_id, "status", status)
        self.client.set_tag(self.parent_id, "error", reason[:5000])
        self.client.set_terminated(self.parent_id, "FAILED" if status == "failed" else "KILLED")
        self.closed = True

    def abort(self, exc: BaseException, context: str = "") -> None:
        """Close the run after ``exc``: ``interrupted`` for what is not an error but a stop (Ctrl-C,
        SIGTERM, exit: a BaseException that is no Exception), ``failed`` for anything else."""
        if interruption(exc) is not None:
            self.fail(f"{context}interrupted ({type(exc).__name__})", status="interrupted")
        else:
            self.fail(f"{context}{type(exc).__name__}: {exc}")


def interruption(exc: BaseException) -> BaseException | None:
    """The stop from outside that ``exc`` is, or that it was raised while handling, else None.

    A stop is a BaseException that is no Exception: KeyboardInterrupt (Ctrl-C), SystemExit, Prefect's
    TerminationSignal (SIGTERM). The context chain matters because Prefect can replace a Ctrl-C with
    its own error when the signal lands while it creates a task run ("Task run is not set").
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        if not isinstance(exc, Exception):
            return exc
        seen.add(id(exc))
        exc = exc.__context__
    return None


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this machine (one of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_url_hint(tracking_uri: str) -> str:
    """The command that opens the MLflow UI on this store."""
    return f"mlflow ui --backend-store-uri {tracking_uri}"


__all__ = ["Archive", "interruption", "open_client", "run_url_hint", "sqlite_uri", "trial_metrics"]
