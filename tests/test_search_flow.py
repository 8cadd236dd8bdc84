"""The search flow end to end: Prefect rounds, MLflow archive, the grid oracle."""

import csv
import io

import pytest
from mlflow.tracking import MlflowClient

from components.bank import SampleBank
from flows.build import build
from flows.cli import compose, main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]


def runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exps = client.search_experiments()
    found = [r for e in exps for r in client.search_runs([e.experiment_id], max_results=1000)]
    return client, found


def test_random_search_is_archived_in_mlflow(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "searcher=random", "trials=12", "searcher.batch_size=5", "data.train_size=20"]) == 0
    out = capsys.readouterr().out
    assert (
        "SIMULATED" in out
        and "best allocation: retrieval=" in out
        and "mlflow ui --backend-store-uri sqlite:///" in out
    )
    client, found = runs(tmp_path)
    parents = [r for r in found if r.data.tags.get("kind") == "search"]
    children = [r for r in found if r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and len(children) == 12
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["searcher"] == "random" and parent.data.tags["simulated"] == "true"
    assert parent.data.tags["status"] == "finished" and parent.data.tags["scenario"] == "2wiki"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert {c.data.tags["round"] for c in children} == {"1", "2", "3"}  # 5 + 5 + 2
    c = children[0]
    assert {"retrieval.model", "retrieval.samples", "qa.model", "qa.samples"} <= set(c.data.params)
    assert {"score", "em", "f1", "retrieval/f1", "cost/units", "cost/flops_planned", "cost/flops_spent"} <= set(
        c.data.metrics
    )
    assert parent.data.metrics["best_score"] == max(c.data.metrics["score"] for c in children)
    allocations = {
        (
            c.data.params["retrieval.model"],
            c.data.params["retrieval.samples"],
            c.data.params["qa.model"],
            c.data.params["qa.samples"],
        )
        for c in children
    }
    assert len(allocations) == 12  # distinct trials
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"trials.csv", "best_allocation.yaml", "config.yaml"} <= arts
    table = list(
        csv.DictReader(
            io.StringIO(open(client.download_artifacts(parent.info.run_id, "trials.csv", str(tmp_path))).read())
        )
    )
    assert len(table) == 12 and "rationale" in table[0]
    curve = client.get_metric_history(parent.info.run_id, "best_so_far")
    assert [m.step for m in curve] == list(range(1, 13))
    assert all(a.value <= b.value for a, b in zip(curve, curve[1:]))

    # read back as later commands do (run=last / run=<id>)
    from components.errors import ConfigError
    from flows.runs import find_search

    cfg = compose(["searcher=random"])
    last = find_search(cfg, "last", "synthetic")
    assert last.run_id == parent.info.run_id and last.best_score == parent.data.metrics["best_score"]
    assert set(last.best_allocation) == {"retrieval", "qa"} and last.best_allocation["qa"]["samples"] >= 1
    assert find_search(cfg, parent.info.run_id, "synthetic").run_id == parent.info.run_id
    with pytest.raises(ConfigError, match="task 'synthetic', not of task 'gsm8k'"):
        find_search(cfg, parent.info.run_id, "gsm8k")
    with pytest.raises(ConfigError, match="no such MLflow run"):
        find_search(cfg, "0" * 32, "synthetic")
    with pytest.raises(ConfigError, match="is not a search run"):
        find_search(cfg, children[0].info.run_id, "synthetic")


def test_grid_returns_the_exact_optimum(tmp_path, tiny_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    overrides = [f"hydra.searchpath=[file://{tiny_dir}]", "scenario=tiny", "data.train_size=20", "budget.units=900"]
    assert main(["search", "searcher=grid", *overrides]) == 0
    out = capsys.readouterr().out
    # brute force through the Environment, independently of the flow
    ctx = build(compose(overrides))
    results = ctx.environment(bank=SampleBank(None)).evaluate(ctx.space.enumerate())
    best = max(r.score for r in results)
    assert f"train score (em): {best:.4f}" in out
    _, found = runs(tmp_path)
    parent = next(r for r in found if r.data.tags.get("kind") == "search")
    assert parent.data.metrics["best_score"] == best
    assert parent.data.metrics["trials"] == ctx.space.size


def test_a_failing_search_is_marked_failed(tmp_path, monkeypatch):
    import components.pipeline

    monkeypatch.chdir(tmp_path)

    def boom(self, rnd):
        raise RuntimeError("scoring exploded")

    monkeypatch.setattr(components.pipeline.Environment, "score", boom)
    with pytest.raises(RuntimeError):
        main(["search", "trials=3", "data.train_size=5"])
    _, found = runs(tmp_path)
    parent = next(r for r in found if r.data.tags.get("kind") == "search")
    assert parent.info.status == "FAILED" and parent.data.tags["status"] == "failed"
    assert "scoring exploded" in parent.data.tags["error"]


def test_agent_search_archives_guidelines_and_decision_trace(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "trials=14", "data.train_size=20"]) == 0  # agenttts + rules is the default
    client, found = runs(tmp_path)
    parent = next(r for r in found if r.data.tags.get("kind") == "search")
    assert parent.data.tags["searcher"] == "agenttts"
    children = sorted(
        (r for r in found if r.data.tags.get("mlflow.parentRunId")), key=lambda r: int(r.data.params["trial"])
    )
    assert len(children) == 14
    assert children[0].data.tags["insight"] == "1" and children[0].data.tags["source"] == "probe"
    assert {c.data.tags["insight"] for c in children[6:]} - {"1"}  # later trials follow Insights 2/3
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"guidelines", "decision_trace.jsonl", "trials.csv", "best_allocation.yaml", "plots"} <= arts
    pngs = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert pngs == {"plots/best_so_far.png", "plots/score_vs_cost.png", "plots/score_vs_flops.png"}
    png = open(client.download_artifacts(parent.info.run_id, "plots/score_vs_cost.png", str(tmp_path)), "rb").read()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    rounds = [a.path for a in client.list_artifacts(parent.info.run_id, "guidelines")]
    assert rounds and rounds[0] == "guidelines/round_01.md"
    text = open(client.download_artifacts(parent.info.run_id, "guidelines/round_01.md", str(tmp_path))).read()
    assert "Insight 1" in text and "Insight 2" in text and "Insight 3" in text
    lines = (
        open(client.download_artifacts(parent.info.run_id, "decision_trace.jsonl", str(tmp_path))).read().splitlines()
    )
    import json

    trace = [json.loads(x) for x in lines]
    assert len(trace) == 14 and {
        "trial",
        "allocation",
        "insight",
        "source",
        "repairs",
        "score",
        "improved_best",
    } <= set(trace[0])
