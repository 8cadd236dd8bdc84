"""Spend control: the dry-run projection and search.max_flops / search.max_usd."""

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from components.spend import project
from flows.build import build
from flows.cli import compose, main

ROOT = Path(__file__).resolve().parents[1]


def tiny(tiny_dir, *more):
    return [f"hydra.searchpath=[file://{tiny_dir}]", "scenario=tiny", "data.train_size=10", "budget.units=900", *more]


def brute_force(space, questions):
    """Per feasible allocation, FLOPs and dollars of every sample and fuser call, from the cost model."""
    rows = []
    for a in space.enumerate():
        c = space.cost_model.cost(a)
        usd = None if c.usd is None else sum(s.usd + s.fusion_usd for s in c.stages) * questions
        rows.append((sum(s.flops + s.fusion_flops for s in c.stages) * questions, usd))
    return rows


def test_projection_matches_the_cost_model_allocation_by_allocation(tiny_dir):
    ctx = build(compose(tiny(tiny_dir)))
    rows = brute_force(ctx.space, 10)
    grid = project(ctx.space, 1, 10, grid=True)
    assert grid.trials == ctx.space.size == len(rows)
    assert grid.flops == pytest.approx(sum(f for f, _ in rows))
    assert grid.usd is None  # the tiny scenario has no prices
    worst = project(ctx.space, 7, 10)
    assert worst.flops == pytest.approx(7 * max(f for f, _ in rows)) and worst.per_trial_flops == max(rows)[0]
    capped = project(ctx.space, 10**6, 10)  # never more trials than distinct allocations
    assert capped.trials == ctx.space.size


def test_projection_prices_dollars_where_every_model_has_a_price(compose_cfg):
    ctx = build(compose_cfg("data.train_size=5"))
    rows = brute_force(ctx.space, 5)
    p = project(ctx.space, 3, 5)
    assert p.usd == pytest.approx(3 * max(u for _, u in rows))
    assert p.calls == 3 * 5 * (1 + 2)  # worst allocation: retrieval call, QA call, QA's LLM fuser call


def test_dry_run_prints_the_projection_and_runs_nothing(tmp_path):
    code = (
        "import sys; from flows.cli import main; rc = main(['search', 'dry_run=true', 'trials=20']); "
        "print('prefect imported:', 'prefect' in sys.modules); "
        "sys.exit(rc)"
    )
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    text = out.stdout
    ctx = build(compose(["trials=20"]))
    p = project(ctx.space, 20, 50)
    assert "dry run: nothing was run" in text and "SIMULATED" in text
    assert f"FLOPs: {p.flops:.3e}" in text and f"dollars: ${p.usd:,.4f}" in text
    assert f"backend requests: {p.calls:,.0f}" in text
    assert "prefect imported: False" in text  # and no MLflow run: no mlruns/ below
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / ".agenttts").exists()
    assert not (tmp_path / ".prefect").exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("search.max_flops=-1", "search.max_flops must be positive"),
        ("search.max_flops=lots", "search.max_flops must be a number"),
        ("search.max_usd=1", "search.max_usd needs a price for every model"),
    ],
)
def test_bad_spend_limits(tiny_dir, tmp_path, monkeypatch, capsys, override, message):
    monkeypatch.chdir(tmp_path)
    assert main(["search", *tiny(tiny_dir, override)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "mlruns").exists()


def search_run(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("agenttts-synthetic")
    (run,) = client.search_runs([exp.experiment_id], "tags.kind = 'search'")
    children = client.search_runs([exp.experiment_id], f"tags.mlflow.parentRunId = '{run.info.run_id}'")
    return run, children


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.parametrize("cap, value", [("max_flops", 1.5e16), ("max_usd", 0.02)])
def test_spend_limit_stops_the_search_cleanly(tmp_path, monkeypatch, capsys, cap, value):
    monkeypatch.chdir(tmp_path)
    argv = ["search", "searcher=random", "trials=40", "searcher.batch_size=5", "data.train_size=20"]
    assert main([*argv, f"search.{cap}={value}"]) == 0
    out = capsys.readouterr().out
    assert f"stopped early (stop={cap})" in out
    run, children = search_run(tmp_path)
    m, tags = run.data.metrics, run.data.tags
    assert run.info.status == "FINISHED" and tags["status"] == "finished" and tags["stop"] == cap
    assert f"search.{cap}=" in tags["stop_reason"]
    spent = m["spend/flops"] if cap == "max_flops" else m["spend/usd"]
    assert spent >= value  # stopped only once reached...
    assert 5 <= m["trials"] < 40 and m["trials"] % 5 == 0  # ...at the end of a round, well before 40 trials
    assert len(children) == m["trials"]
    assert m["best_score"] == max(c.data.metrics["score"] for c in children)  # best so far kept
    assert m["spend/tokens"] == m["tokens_generated"]  # fresh bank: all its tokens are this search's own
    assert main(["report", "run=last"]) == 0
    report = capsys.readouterr().out
    assert f"stop={cap}" in report and "stopped early: spent" in report


def dominated(p, q):
    """q dominates p: no more FLOPs and a higher score, or fewer FLOPs and no lower score."""
    return (q[0] <= p[0] and q[1] > p[1]) or (q[0] < p[0] and q[1] >= p[1])


def test_pareto_front_holds_exactly_the_non_dominated_trials(tiny_dir):
    from components.bank import SampleBank
    from components.plots import flops_per_question, pareto_front, pareto_points, score_vs_flops_png

    ctx = build(compose(tiny(tiny_dir)))
    history = ctx.environment(bank=SampleBank(None)).evaluate(ctx.space.enumerate()[::7])
    pts = [(flops_per_question(r), r.score) for r in history]
    front = {(flops_per_question(r), r.score) for r in pareto_front(history, flops_per_question)}
    assert front == {p for p in pts if not any(dominated(p, q) for q in pts)}
    assert set(zip(*pareto_points([p[0] for p in pts], [p[1] for p in pts]))) == front
    assert score_vs_flops_png(history, "t")[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_failed_trial_is_on_no_frontier(tiny_dir, tmp_path):
    """A failed trial (score 0, no FLOPs spent) was the cheapest point, so it joined every front."""
    from components.archive import Archive
    from components.bank import SampleBank
    from components.plots import flops_per_question, pareto_front
    from flows.runs import experiment_name
    from flows.sweep import finish_sweep

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = compose(tiny(tiny_dir, f"mlflow.tracking_uri={uri}"))
    ctx = build(cfg)
    env = ctx.environment(bank=SampleBank(None))
    good, other = ctx.space.enumerate()[:2]
    ok = env.evaluate([good])[0]
    failed = env._failed(other, "server 500", 0.1)
    assert pareto_front([ok, failed], flops_per_question) == [ok]
    archive = Archive(uri, experiment_name(cfg, ctx.task.name))
    archive.start_search("s", {"data.train_size": 10}, {"kind": "search", "sweep_id": "sw", "sweep_index": 0})
    archive.log_trials_table([ok, failed])
    archive.finish({"best_score": ok.score, "trials": 2}, {"status": "finished"})
    cfg.update(sweep_id="sw", sweep_index=0, cli_overrides=["seed=0"])
    out = finish_sweep([cfg], "sw", ["seed"], tmp_path / "sweep")
    front = list(csv.DictReader(open(out / "frontier.csv")))
    assert [r["allocation"] for r in front] == [str(good)]
    assert next(csv.DictReader(open(out / "sweep.csv")))["on_combined_front"] == "1"
    # a sweep over the experiment: its searches are in two experiments, so there is no common front
    # (once the first job's experiment alone was read, as if it were the whole sweep)
    other = {**cfg, "mlflow": {**cfg["mlflow"], "experiment": "elsewhere"}, "sweep_index": 1}
    assert finish_sweep([cfg, other], "sw", ["mlflow.experiment"], tmp_path / "sweep2") is None


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_budget_sweep_gives_one_search_per_budget_and_a_combined_frontier(tmp_path, monkeypatch, capsys):
    import csv
    import io

    monkeypatch.chdir(tmp_path)
    argv = ["search", "-m", "budget.units=500,2000", "searcher=random", "trials=6", "data.train_size=10"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "combined Pareto frontier in sweep-out/" in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("agenttts-synthetic").experiment_id
    searches = client.search_runs([exp], "tags.kind = 'search'", order_by=["attributes.start_time ASC"])
    (sweep,) = client.search_runs([exp], "tags.kind = 'sweep'")
    assert [s.data.params["budget.value"] for s in searches] == ["500.0", "2000.0"]
    assert {s.data.tags["sweep_id"] for s in searches} == {sweep.data.tags["sweep_id"]}
    # the jobs explore; none of them challenged (and so replaced) the task's champion
    assert {s.data.tags["champion.decision"] for s in searches} == {"skipped"}
    assert not client.search_registered_models()
    assert sweep.data.params["searches"].split() == [s.info.run_id for s in searches]
    folder = tmp_path / "sweep-out" / sweep.data.tags["sweep_id"]
    assert (folder / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = list(csv.DictReader(open(folder / "sweep.csv")))
    assert [r["label"] for r in rows] == ["budget.units=500", "budget.units=2000"]
    # every trial of both searches, from their own trials.csv: the front is exactly the non-dominated ones
    pts = []
    for s in searches:
        text = open(client.download_artifacts(s.info.run_id, "trials.csv", str(tmp_path))).read()
        pts += [(float(r["cost/flops_spent"]) / 10, float(r["score"])) for r in csv.DictReader(io.StringIO(text))]
    front = {(float(r["flops_per_question"]), float(r["score"])) for r in csv.DictReader(open(folder / "frontier.csv"))}
    assert front == {p for p in pts if not any(dominated(p, q) for q in pts)}
    arts = {a.path for a in client.list_artifacts(sweep.info.run_id)}
    assert {"sweep.csv", "frontier.csv", "plots"} <= arts and sweep.data.metrics["searches"] == 2


def test_dry_run_bounds_a_capped_search(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "dry_run=true", "search.max_flops=1e17", "searcher.batch_size=4"]) == 0
    out = capsys.readouterr().out
    p = project(build(compose([])).space, 50, 50)
    assert f"with search.max_flops: at most {min(p.flops, 1e17 + 4 * p.per_trial_flops):.3e} FLOPs" in out
    assert not (tmp_path / "mlruns").exists()
