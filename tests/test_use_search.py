"""Using a search's result: evaluate on the held-out split, report, run on new inputs (issue 6, part A)."""

import json
import os

import pytest
from mlflow.tracking import MlflowClient

from components.bank import SampleBank
from components.datasets import synthetic_items, write_items
from components.space import Allocation
from flows.build import build
from flows.cli import compose, main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

DATA = ["data.train_size=20", "data.test_size=30"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One finished agenttts search (rules reasoner) in a fresh project folder."""
    d = tmp_path_factory.mktemp("ops")
    old = os.getcwd()
    os.chdir(d)
    try:
        assert main(["search", "trials=10", *DATA]) == 0
    finally:
        os.chdir(old)
    client = MlflowClient(f"sqlite:///{d / 'mlruns' / 'mlflow.db'}")
    (search,) = client.search_runs(
        [client.get_experiment_by_name("agenttts-synthetic").experiment_id], "tags.kind = 'search'"
    )
    return d, client, search


def evaluate_runs(client, search):
    return client.search_runs([search.info.experiment_id], "tags.kind = 'evaluate'")


def independent_score(overrides, alloc: str, split: str) -> float:
    """The allocation scored through the Environment directly (fresh in-memory bank), not the flow."""
    ctx = build(compose(overrides))
    items = ctx.test if split == "test" else ctx.train
    (r,) = ctx.environment(items=items, bank=SampleBank(None)).evaluate([Allocation.parse(alloc)])
    return r.score


def test_evaluate_best_on_the_test_split_is_logged_next_to_the_search(searched, monkeypatch, capsys):
    d, client, search = searched
    monkeypatch.chdir(d)
    before = len(evaluate_runs(client, search))
    assert main(["evaluate", "allocation=best", "split=test", *DATA]) == 0
    out = capsys.readouterr().out
    assert "SIMULATED" in out and "test score (em):" in out
    runs = evaluate_runs(client, search)
    assert len(runs) == before + 1
    ev = max(runs, key=lambda r: r.info.start_time)
    best = search.data.tags["best_allocation"]
    assert ev.info.status == "FINISHED" and ev.data.tags["status"] == "finished"
    assert ev.data.tags["search_run_id"] == search.info.run_id and ev.data.tags["split"] == "test"
    assert ev.data.tags["allocation"] == best and ev.data.tags["simulated"] == "true"
    assert "on test (30 q)" in ev.info.run_name and "(simulated)" in ev.info.run_name
    m = ev.data.metrics
    assert m["n_questions"] == 30 and m["cost/flops_spent"] > 0 and m["cost/units"] > 0 and "cost/usd" in m
    assert m["score"] == pytest.approx(independent_score(DATA, best, "test"))
    assert m["search_train_score"] == search.data.metrics["best_score"]
    assert client.get_run(search.info.run_id).data.metrics["test_score"] == m["score"]
    lines = open(client.download_artifacts(ev.info.run_id, "predictions.jsonl", str(d))).read().splitlines()
    rows = [json.loads(x) for x in lines]
    assert len(rows) == 30 and sum(r["em"] for r in rows) / 30 == pytest.approx(m["score"])
    assert sum(r["flops"] for r in rows) == pytest.approx(m["cost/flops_spent"])


def test_evaluate_of_a_changed_allocation_leaves_the_search_score_alone(searched, monkeypatch, capsys):
    # once: the search's test_score became the score of the allocation with its QA stage changed
    d, client, search = searched
    monkeypatch.chdir(d)
    before = client.get_run(search.info.run_id).data.metrics.get("test_score")
    assert main(["evaluate", "run=last", "allocation.qa=Llama-3.2-3B:1", "split=test", *DATA]) == 0
    assert "search train score" not in capsys.readouterr().out  # the search's best is another allocation
    ev = max(evaluate_runs(client, search), key=lambda r: r.info.start_time)
    assert ev.data.tags["search_run_id"] == search.info.run_id  # still linked: the other stages are its best's
    assert ev.data.tags["allocation"].endswith("qa=Llama-3.2-3B:1") and "search_train_score" not in ev.data.metrics
    after = client.get_run(search.info.run_id)
    assert after.data.metrics.get("test_score") == before
    assert after.data.tags.get("test_evaluation_run_id") != ev.info.run_id


def test_evaluate_explicit_allocation_on_the_train_split(searched, monkeypatch):
    d, client, search = searched
    monkeypatch.chdir(d)
    alloc = ["allocation.retrieval=Qwen2.5-72B:1", "allocation.qa=Llama-3.2-3B:5"]
    assert main(["evaluate", *alloc, "split=train", *DATA]) == 0
    ev = max(evaluate_runs(client, search), key=lambda r: r.info.start_time)
    assert ev.data.tags["split"] == "train" and "search_run_id" not in ev.data.tags
    assert ev.data.metrics["score"] == pytest.approx(
        independent_score(DATA, "retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:5", "train")
    )


@pytest.mark.parametrize("where", ["stage", "logging"])
def test_evaluate_whose_ctrl_c_was_swallowed_stops_and_logs_no_finished_run(
    searched, monkeypatch, capsys, stop_handlers, where
):
    """A Ctrl-C that Python swallowed (raised in a ``__del__`` or weakref callback) stops an
    evaluation after the stage it landed in, or before its run is closed: exit 130, no FINISHED run."""
    import flows.evaluate
    from components.archive import Archive

    d, client, search = searched
    monkeypatch.chdir(d)
    before = len(evaluate_runs(client, search))
    if where == "stage":
        generate = flows.evaluate.generate_samples

        def generate_then_ctrl_c(*args):
            generate(*args)
            stop_handlers.swallow_ctrl_c()

        monkeypatch.setattr(flows.evaluate, "generate_samples", generate_then_ctrl_c)
    else:
        log_text = Archive.log_text

        def log_then_ctrl_c(self, *args):
            log_text(self, *args)
            stop_handlers.swallow_ctrl_c()

        monkeypatch.setattr(Archive, "log_text", log_then_ctrl_c)
    assert main(["evaluate", "allocation=best", "split=test", *DATA]) == 130
    assert stop_handlers.swallowed and set(stop_handlers.swallowed) == {KeyboardInterrupt}
    assert "interrupted" in capsys.readouterr().err
    runs = evaluate_runs(client, search)
    assert all(r.info.status != "FINISHED" for r in runs[: len(runs) - before])  # newest first
    assert len(runs) == before + (where == "logging")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["allocation=best", "data.train_size=30", "data.test_size=30"], "overlaps the train split of search"),
        (["allocation=best", "split=valid", *DATA], "split must be one of ['test', 'train']"),
        (["allocation=bestt", *DATA], "unknown allocation 'bestt'"),
        (["allocation=champion", "run=last", *DATA], "allocation=champion takes no run="),
        (["run=0123456789", *DATA], "run=0123456789: no such MLflow run"),
        (["allocation.qa=Llama-3.2-3B:5", *DATA], "allocation gives no model for stage(s) ['retrieval']"),
        (["run=last", "allocation.qa=Nope-1B:5", *DATA], "unknown model 'Nope-1B'"),
    ],
    ids=[
        "larger train split",
        "unknown split",
        "unknown form",
        "champion and run",
        "no run",
        "partial",
        "bad override",
    ],
)
def test_evaluate_bad_input_is_refused_before_any_compute(searched, monkeypatch, capsys, argv, message):
    d, client, search = searched
    monkeypatch.chdir(d)
    before = len(client.search_runs([search.info.experiment_id]))
    assert main(["evaluate", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert len(client.search_runs([search.info.experiment_id])) == before  # no run left behind


def test_allocation_champion_evaluates_the_registered_champion(searched, monkeypatch):
    d, client, search = searched
    monkeypatch.chdir(d)
    # the fixture's search registered its best as the task's champion (champion.enabled is the default)
    assert main(["evaluate", "allocation=champion", *DATA]) == 0
    ev = max(evaluate_runs(client, search), key=lambda r: r.info.start_time)
    assert ev.data.tags["allocation"] == search.data.tags["best_allocation"]
    assert ev.data.tags["search_run_id"] == search.info.run_id
    assert ev.data.tags["allocation_source"] == f"champion of synthetic (search {search.info.run_id})"


def test_run_of_another_task_is_refused(searched, monkeypatch, capsys):
    d, _, search = searched
    monkeypatch.chdir(d)
    from tests.conftest import data_file

    argv = ["evaluate", f"run={search.info.run_id}", "task=gsm8k", f"data.path={data_file('gsm8k', 'test.jsonl')}"]
    assert main(argv) == 2
    assert "is a search of task 'synthetic', not of task 'gsm8k'" in capsys.readouterr().err


def test_run_writes_predictions_with_their_cost(searched, monkeypatch, capsys):
    d, _, search = searched
    monkeypatch.chdir(d)
    items = synthetic_items(7, seed=123)  # questions the search never saw
    write_items(items, d / "new.jsonl")
    assert main(["run", "allocation=best", "data.path=new.jsonl", "predictions=out.jsonl"]) == 0
    assert "predictions: out.jsonl (7 lines)" in capsys.readouterr().out
    rows = [json.loads(x) for x in (d / "out.jsonl").read_text().splitlines()]
    summary = json.loads((d / "out.summary.json").read_text())
    assert [r["id"] for r in rows] == [it.id for it in items]
    assert [r["question"] for r in rows] == [it.question for it in items]
    assert all(r["prediction"] and r["flops"] > 0 and r["units"] > 0 and r["simulated"] for r in rows)
    assert summary["allocation"] == search.data.tags["best_allocation"]
    assert summary["search_run_id"] == search.info.run_id and summary["simulated"] is True
    assert summary["n"] == 7 and summary["flops_total"] == pytest.approx(sum(r["flops"] for r in rows))
    assert summary["mean_em"] == pytest.approx(sum(r["em"] for r in rows) / 7)
    # an explicit override on top of the run's best
    argv = ["run", f"run={search.info.run_id}", "allocation.qa=Llama-3.2-3B:3", "data.path=new.jsonl"]
    assert main([*argv, "predictions=out2.jsonl"]) == 0
    s2 = json.loads((d / "out2.summary.json").read_text())
    assert s2["allocation"].endswith("qa=Llama-3.2-3B:3")
    assert s2["allocation"].split()[0] == search.data.tags["best_allocation"].split()[0]


def test_run_needs_inputs(searched, monkeypatch, capsys):
    d, _, _ = searched
    monkeypatch.chdir(d)
    assert main(["run", "allocation=best"]) == 2
    assert "agenttts run needs the inputs: data.path=FILE" in capsys.readouterr().err


def test_report_prints_the_search_summary(searched, monkeypatch, capsys):
    d, client, search = searched
    monkeypatch.chdir(d)
    assert main(["report", "run=last"]) == 0
    out = capsys.readouterr().out
    assert search.info.run_id in out and "SIMULATED" in out
    assert f"best allocation: {search.data.tags['best_allocation']}" in out
    assert f"train score: {search.data.metrics['best_score']:.4f}" in out
    assert "top 5 of 10 trials:" in out and "best so far" in out
    assert "decisions: 10 trials" in out and "probe" in out  # the agent's Insight-1 probes
    assert "guidelines (guidelines/round_" in out and "Insight" in out
    assert main(["report"]) == 2
    assert "give run=<id> or run=last" in capsys.readouterr().err


def test_no_champion_is_one_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # an empty archive: no champion registered for the task
    assert main(["evaluate", "allocation=champion", *DATA]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no champion for task 'synthetic'" in err
    assert not (tmp_path / "mlruns").exists()  # the lookup created no empty store
