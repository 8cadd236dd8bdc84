"""Bad input: one clear message, exit code 2, nothing evaluated, no MLflow run left behind."""

import pytest

from flows.cli import main

ALLOC = ["allocation.retrieval=Qwen2.5-72B:1", "allocation.qa=Llama-3.2-3B:1"]


def bad_scenario(tmp_path, text):
    d = tmp_path / "extra" / "scenario"
    d.mkdir(parents=True)
    (d / "broken.yaml").write_text(text)
    return [f"hydra.searchpath=[file://{tmp_path / 'extra'}]", "scenario=broken"]


CASES = {
    "unknown task": (["search", "task=nope"], "unknown task 'nope'; available: 2wiki, chatdev,"),
    "unknown searcher": (["search", "searcher=randm"], "unknown searcher 'randm' (did you mean 'random'?)"),
    # argparse printed the usage of every command over three lines first
    "misspelt command": (["serach", "trials=3"], "unknown command 'serach' (did you mean 'search'?"),
    "unknown backend": (["search", "backend=nope"], "unknown backend 'nope'; available: "),
    "unknown scenario": (["search", "scenario=nope"], "unknown scenario 'nope'; available: 2wiki,"),
    "unknown key": (["search", "nosuchkey=1"], "unknown setting 'nosuchkey'"),
    # Hydra suggested "To append to your config use +trails=3"
    "misspelt key": (["search", "trails=3"], "unknown setting 'trails'; did you mean 'trials'?"),
    "override does not parse": (["search", "trials=[1,"], "cannot parse the override"),
    # once an AttributeError traceback from make_budget
    "section given a value": (["search", "budget=500"], "'budget' is a section, not a value (got budget=500)"),
    # Hydra only warned, then called the scenario there unknown
    "searchpath missing": (
        ["search", "hydra.searchpath=[file:///nonexistent/dir]"],
        "/nonexistent/dir is not a folder",
    ),
    # a search ignored it silently
    "allocation given to a search": (["search", "allocation.qa=Llama-3.2-3B:10"], "a search chooses the allocation"),
    "unknown model": (
        ["cost", "allocation.retrieval=Qwen-9B:1", "allocation.qa=Llama-3.2-3B:1"],
        "unknown model 'Qwen-9B' for stage 'retrieval'",
    ),
    "budget below cheapest": (["search", "budget.units=10"], "budget 10 units is below the cheapest allocation"),
    "two budget kinds": (["search", "budget.units=10", "budget.flops=1e15"], "give the budget in one kind only"),
    "allocation does not parse": (
        ["cost", "allocation.retrieval=Qwen2.5-72B", "allocation.qa=Llama-3.2-3B:1"],
        "expected MODEL:SAMPLES",
    ),
    "stage not in task": (["cost", *ALLOC, "allocation.rerank=Qwen2.5-7B:1"], "unknown stage 'rerank'"),
    "samples below one": (
        ["cost", "allocation.retrieval=Qwen2.5-72B:1", "allocation.qa=Llama-3.2-3B:0"],
        "must be in [1, 100], got 0",
    ),
    "no allocation": (["cost"], "no allocation given"),
    "trials below one": (["search", "trials=0"], "trials must be an integer >= 1, got 0"),
    "trials not a number": (["search", "trials=abc"], "trials must be an integer >= 1, got 'abc'"),
    # once a silent fallback to 10 proposals per round
    "batch of zero": (["search", "searcher.batch_size=0"], "searcher.batch_size must be an integer >= 1, got 0"),
    "seed not a number": (["search", "seed=abc"], "seed must be an integer >= 0, got 'abc'"),
    "train size not a number": (["search", "data.train_size=abc"], "data.train_size must be an integer >= 1"),
    # bool("no") is True: a mistyped switch once silently meant on
    "number not a number": (["search", "champion.alpha=abc"], "champion.alpha must be a number, got 'abc'"),
    # once checked after the bank was opened, leaving .agenttts/ behind
    "missing samples file": (["bank", "import-samples", "/nonexistent.jsonl"], "no samples file at /nonexistent.jsonl"),
    "bench workers below one": (["bench", "bench.jobs=0"], "bench.jobs must be an integer >= 1, got 0"),
    "switch not a boolean": (["search", "searcher.probes=no"], "searcher.probes must be true or false, got 'no'"),
    # each of these once ended in a traceback (or a hang) after the search had started
    "trials null": (["search", "trials=null"], "trials must be an integer >= 1, got None"),
    "reasoner number not a number": (
        ["search", "reasoner=openai", "reasoner.temperature=hot", "reasoner.base_url=http://127.0.0.1:9/v1"],
        "reasoner.temperature must be a number, got 'hot'",
    ),
    "backend number not a number": (
        ["search", "backend=openai", "backend.timeout_s=x", "backend.base_url=http://127.0.0.1:9/v1"],
        "backend.timeout_s must be a number, got 'x'",
    ),
    "mlflow store of no scheme": (
        ["search", "mlflow.tracking_uri=bogus://x"],
        "MLflow has no store for scheme 'bogus'",
    ),
    "mlflow experiment not a name": (["search", "mlflow.experiment=[a,b]"], "mlflow.experiment must be a name"),
    "prefect home is a file": (
        ["search", "prefect.home=/etc/passwd"],
        "prefect.home=/etc/passwd is a file; give a folder",
    ),
    "bank path is a folder": (["search", "bank.path=/tmp"], "bank.path=/tmp is a folder; give a file"),
    "predictions is a folder": (
        ["run", *ALLOC, "data.path=/etc/passwd", "predictions=/tmp"],
        "predictions=/tmp is a folder; give a file",
    ),
    "gp switch not a boolean": (
        ["search", "searcher=optuna_gp", "searcher.bypass_device_context=maybe"],
        "searcher.bypass_device_context must be true or false, got 'maybe'",
    ),
    # once taken as on: any non-empty value ran the dry run
    "dry run not a boolean": (["search", "dry_run=maybe"], "dry_run must be true or false, got 'maybe'"),
    "missing data path": (["search", "task=2wiki"], "give data.path=FILE"),
    "data path is a folder": (["search", "task=gsm8k", "data.path=/tmp"], "data.path /tmp is a folder; give one file"),
    "missing dataset file": (["search", "task=2wiki", "data.path=/nonexistent/tts.json"], "/nonexistent/tts.json"),
}


@pytest.mark.parametrize("argv, message", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_clear_message(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err
    assert "Traceback" not in err
    assert not (tmp_path / "mlruns").exists()  # nothing was logged, nothing evaluated
    assert not (tmp_path / ".agenttts").exists()


def test_malformed_dataset_names_file_and_record(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "broken.json"
    f.write_text('[{"question": "q", "answers": ["a"], "ctxs_candidate": ["x"], "ctxs_gt": ["x"]}, {"question": "q2"}]')
    assert main(["search", "task=2wiki", f"data.path={f}", "data.train_size=1"]) == 2
    err = capsys.readouterr().err
    assert "broken.json" in err and "record 1" in err
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda t: t.replace("    output_tokens: 128\n", "", 1), "stages[0].output_tokens"),
        (lambda t: t.replace("skill: 0.6", "skill: 1.7"), "stages[1].models[0].skill"),
        (lambda t: t.replace("kind: select", "kind: rerank"), "stages[0].kind"),
    ],
    ids=["missing field", "out of range", "bad choice"],
)
def test_broken_scenario_file(mutation, message, tmp_path, monkeypatch, capsys):
    from tests.conftest import TINY_SCENARIO

    monkeypatch.chdir(tmp_path)
    argv = ["search", *bad_scenario(tmp_path, mutation(TINY_SCENARIO))]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "scenario/broken.yaml" in err
    assert not (tmp_path / "mlruns").exists()


def test_scenario_file_that_is_not_yaml(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", *bad_scenario(tmp_path, "name: broken\nstages: [\n")]) == 2
    err = capsys.readouterr().err
    assert "scenario/broken.yaml, line 3: not valid YAML" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mlruns").exists()


def test_a_task_of_your_own_needs_no_scenario_on_a_real_backend(tmp_path, monkeypatch, capsys):
    from flows.cli import CONF_DIR, compose

    monkeypatch.chdir(tmp_path)
    (tmp_path / "extra" / "task").mkdir(parents=True)
    text = (CONF_DIR / "task" / "synthetic.yaml").read_text().replace("name: synthetic", "name: mine", 1)
    (tmp_path / "extra" / "task" / "mine.yaml").write_text(text)
    path = f"hydra.searchpath=[file://{tmp_path / 'extra'}]"
    cfg = compose([path, "task=mine", "backend=openai"])  # `scenario: ${task}` finds no scenario/mine.yaml
    assert "scenario" not in cfg and cfg["task"]["name"] == "mine"
    assert main(["space", path, "task=mine"]) == 2  # the simulator does need one
    assert "backend=sim needs a scenario" in capsys.readouterr().err
    assert main(["space", path, "task=mine", "scenario=synthetic"]) == 0
    assert "models and sample ranges: scenario '2wiki'" in capsys.readouterr().out  # synthetic = 2wiki
    # the simulator uses the scenario's models, but a misspelt one in the task still stops here
    (tmp_path / "extra" / "task" / "mine.yaml").write_text(text.replace("Qwen2.5-72B]", "Qwen2.5-72b]"))
    assert main(["space", path, "task=mine", "scenario=synthetic"]) == 2
    assert "model 'Qwen2.5-72b' of stage 'retrieval' is not in the model catalog" in capsys.readouterr().err


def test_a_closed_pipe_ends_quietly(tmp_path):
    import os
    import subprocess
    import sys

    r, w = os.pipe()
    os.close(r)  # `agenttts config | head -1` after head has exited
    p = subprocess.run([sys.executable, "-m", "flows.cli", "config"], stdout=w, stderr=subprocess.PIPE, text=True)
    os.close(w)
    assert p.returncode == 141 and "Traceback" not in p.stderr


def test_schedule_without_a_prefect_server_stops_first(tmp_path):
    import os
    import subprocess
    import sys

    from flows.cli import CONF_DIR

    # a fresh process: in this one a test harness may have pointed Prefect at its own server
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PYTHONPATH"] = str(CONF_DIR.parent)
    cmd = [sys.executable, "-m", "flows.cli", "schedule", "cron=0 2 * * *", "trials=3"]
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "needs a running Prefect server" in p.stderr  # the ephemeral API cannot schedule
    env["PREFECT_API_URL"] = "http://127.0.0.1:9/api"
    p = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "no Prefect server answers at PREFECT_API_URL=http://127.0.0.1:9/api" in p.stderr
    # a bad search override is named first: fixing the server would only reveal it next
    p = subprocess.run([*cmd[:-1], "trials=abc"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "trials must be an integer >= 1, got 'abc'" in p.stderr
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / ".prefect").exists()


def test_scenario_that_does_not_fit_the_task(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "task=2wiki", "scenario=gsm8k", "data.path=x"]) == 2
    assert "pick a scenario with the task's stages" in capsys.readouterr().err


def test_unexpected_errors_are_not_hidden(monkeypatch):
    import flows.cli

    monkeypatch.setattr(flows.cli, "cmd_space", lambda cfg: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        main(["space"])


def test_prompt_file_missing_a_placeholder(tmp_path, monkeypatch, capsys):
    import shutil

    from flows.build import PROMPTS_DIR

    monkeypatch.chdir(tmp_path)
    d = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, d)
    (d / "trials.txt").write_text((d / "trials.txt").read_text().replace("$history", "(history)"))
    assert main(["search", f"searcher.prompts_dir={d}"]) == 2
    err = capsys.readouterr().err
    assert "trials.txt" in err and "$history" in err
    assert not (tmp_path / "mlruns").exists()


def test_reasoner_endpoint_down_stops_before_any_trial(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["search", "reasoner=openai", "reasoner.base_url=http://127.0.0.1:9/v1", "reasoner.model=x"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "http://127.0.0.1:9/v1" in err
    assert not (tmp_path / "mlruns").exists()


def test_a_sweep_with_one_bad_job_runs_none(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "-m", "trials=2,abc"]) == 2  # job 1 alone is valid, and once ran to the end
    err = capsys.readouterr().err
    assert err == "error: job 2/2 (trials=abc): trials must be an integer >= 1, got 'abc'; no job was run\n"
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / ".agenttts").exists()


def test_a_sweep_whose_output_is_a_file_runs_no_job(tmp_path, monkeypatch, capsys):
    # once: both searches ran and were logged, then the frontier failed to write (a half-valid sweep)
    monkeypatch.chdir(tmp_path)
    assert main(["search", "-m", "trials=2,3", "data.train_size=5", "sweep_out=/etc/passwd"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: job 1/2 (") and err.count("\n") == 1
    assert "sweep_out=/etc/passwd is a file; give a folder; no job was run" in err
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / ".agenttts").exists()
