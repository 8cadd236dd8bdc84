"""The agenttts command: composition, sweeps, space and config output."""

from flows.cli import compose, expand_sweeps, main


def test_sweep_expansion():
    jobs = expand_sweeps(["budget.units=500,929", "seed=0,1", "task=2wiki"])
    assert len(jobs) == 4
    assert ["budget.units=500", "seed=1", "task=2wiki"] in jobs
    (job,) = expand_sweeps(["allocation.qa=Llama-3.2-3B:5"])
    assert compose(job)["allocation"] == {"qa": "Llama-3.2-3B:5"}


def test_multirun_runs_one_job_per_value(capsys):
    assert main(["space", "-m", "task=2wiki", "budget.units=500,2000"]) == 0
    out = capsys.readouterr().out
    assert "[job 1/2]" in out and "[job 2/2]" in out
    assert "feasible allocations: 15147" in out and "budget: 2000 units" in out


def test_space_reports_default_budget_and_extremes(capsys):
    assert main(["space", "task=2wiki"]) == 0
    out = capsys.readouterr().out
    assert "default: 929 units" in out and "cheapest: retrieval=Qwen2.5-7B:1 qa=Llama-3.2-3B:1" in out


def test_config_prints_the_composed_config(capsys):
    assert main(["config", "task=gsm8k", "trials=7"]) == 0
    out = capsys.readouterr().out
    assert "trials: 7" in out and "name: gsm8k" in out


def test_run_and_warm_start_ids_stay_text():
    # Hydra would read an all-digit or 1e5-like MLflow run id as a number
    assert compose(["warm_start=1e5", "run=123"])["warm_start"] == "1e5"
    assert compose(["run=123"])["run"] == "123"
    assert compose(["warm_start=null"])["warm_start"] is None  # null keeps its meaning
