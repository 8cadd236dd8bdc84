"""Warm start and the champion: paired tests, compatibility checks, and searches end to end in MLflow."""

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.champion import paired_test
from components.errors import ConfigError
from components.warm import top_allocations
from flows.build import build
from flows.cli import compose, main
from flows.nightly import nightly_overrides
from tests.conftest import data_file


def test_paired_test_needs_a_gain_beyond_noise():
    base = [1.0] * 30 + [0.0] * 20
    better = [1.0] * 45 + [0.0] * 5  # 15 more questions right, none lost
    assert paired_test(better, base).better and paired_test(better, base, test="sign").better
    one_more = [1.0] * 31 + [0.0] * 19  # one question: noise
    t = paired_test(one_more, base)
    assert not t.better and t.p_value > 0.05 and (t.wins, t.losses) == (1, 0)
    assert not paired_test(better, base, min_delta=0.5).better  # gain 0.3 is below the required 0.5
    assert not paired_test(base, better).better  # worse is never promoted
    with pytest.raises(ConfigError, match="champion.test must be one of"):
        paired_test(better, base, test="t")


def _rows(*trials):
    return [
        {"trial": str(i + 1), "status": "ok", "score": str(s), "cost/units": "0", **cols}
        for i, (s, cols) in enumerate(trials)
    ]


def test_warm_start_trials_are_checked_against_the_task():
    ctx = build(compose(["budget.units=500"]), with_data=False)
    ok = {"retrieval.model": "Qwen2.5-7B", "retrieval.samples": "2", "qa.model": "Llama-3.2-3B", "qa.samples": "10"}
    big = {"retrieval.model": "Qwen2.5-72B", "retrieval.samples": "1", "qa.model": "Llama-3.2-3B", "qa.samples": "10"}
    allocs, scores, notes = top_allocations(_rows((0.5, ok), (0.9, big), (0.1, ok)), ctx.space, 4, "r1")
    assert scores == [0.9, 0.5]  # best first; the duplicate dropped
    assert all(ctx.space.is_feasible(a) for a in allocs)
    assert "over the current budget" in notes[0] and "re-projected" in notes[0]  # 72B:1 costs 814 > 500
    other_stages = {"plan.model": "Qwen2.5-7B", "plan.samples": "1"}
    with pytest.raises(ConfigError, match=r"warm_start=r1: that search has stages \['plan'\]"):
        top_allocations(_rows((0.5, other_stages)), ctx.space, 4, "r1")
    unknown = {**ok, "qa.model": "GPT-9"}
    with pytest.raises(
        ConfigError, match="warm_start=r1: its trial .* does not fit the current task: unknown model 'GPT-9'"
    ):
        top_allocations(_rows((0.5, unknown)), ctx.space, 4, "r1")


def test_a_champion_that_no_longer_fits_is_projected_or_rejected():
    from flows.champion import Champion, _on_budget

    ctx = build(compose(["budget.units=500"]), with_data=False)
    over = {"retrieval": {"model": "Qwen2.5-72B", "samples": 1}, "qa": {"model": "Llama-3.2-3B", "samples": 10}}
    champ = Champion("synthetic-allocation", "3", "r", over, {})
    a, why = _on_budget(ctx.space, champ, "project")
    assert ctx.space.is_feasible(a) and "champion v3 (retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:10) costs 826" in why
    assert "re-projected to" in why
    assert _on_budget(ctx.space, champ, "reject") == (
        None,
        why.split(": re-projected")[0] + ": rejected (champion.infeasible=reject)",
    )
    gone = Champion("synthetic-allocation", "4", "r", {"answer": {"model": "Llama-3.2-3B", "samples": 1}}, {})
    a, why = _on_budget(ctx.space, gone, "project")
    assert a is None and why.startswith("champion v4 does not fit the current task") and why.endswith("rejected")


def test_nightly_runs_warm_start_from_the_champion_and_promote():
    assert nightly_overrides(["trials=5"]) == ["warm_start=champion", "champion.enabled=true", "trials=5"]
    assert nightly_overrides(["warm_start=abc", "champion.enabled=false"]) == [
        "warm_start=abc",
        "champion.enabled=false",
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "champion.test=t"], "champion.test must be one of"),
        (["search", "champion.alpha=2"], "champion.alpha must be in (0, 1)"),
        (["search", "champion.infeasible=keep"], "champion.infeasible must be project or reject"),
        (["search", "warm_start=nosuchrun"], "warm_start=nosuchrun: run=nosuchrun: no such MLflow run"),
        (["search", "warm_start=last"], "warm_start=last: run=last: no finished search of task 'synthetic'"),
        (["schedule", "trials=5"], 'give the schedule as cron="MIN HOUR DOM MON DOW"'),
        (
            ["schedule", "cron=61 * * * *"],
            "cron='61 * * * *' is not a valid cron expression (Value error, Invalid cron",
        ),
        (["schedule", "cron=0 2 * * *", "schedule.timezone=Mars/Base"], "schedule.timezone='Mars/Base' is not an IANA"),
        (["schedule", "cron=0 2 * * *", "warm_start=nosuchrun"], "warm_start=nosuchrun: run=nosuchrun: no such MLflow"),
    ],
)
def test_bad_operations_input_stops_with_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err
    assert not (tmp_path / ".agenttts").exists()  # nothing generated
    # no store either: a bad cron, and a warm-start lookup where no search ran, once created one
    assert not (tmp_path / "mlruns").exists()


def _search_runs(client):
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id], max_results=1000)]
    return sorted((r for r in runs if r.data.tags.get("kind") == "search"), key=lambda r: r.info.start_time)


def _decision(client, run_id, tmp_path) -> dict:
    return json.loads(Path(client.download_artifacts(run_id, "champion/decision.json", str(tmp_path))).read_text())


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_warm_start_and_champion_end_to_end(tmp_path, monkeypatch, capsys, tiny_dir):
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    base = ["data.train_size=20", "searcher.batch_size=4"]
    # 1. a first search: no champion yet, so its best is promoted and registered
    assert main(["search", "trials=10", *base]) == 0
    client = MlflowClient(uri)
    (first,) = _search_runs(client)
    assert first.data.tags["champion.decision"] == "promoted" and first.data.tags["champion.version"] == "1"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # how a serving system points MLflow at the archive
    path = mlflow.artifacts.download_artifacts("models:/synthetic-allocation@champion", dst_path=str(tmp_path / "dl"))
    served = yaml.safe_load((Path(path) / "allocation.yaml").read_text())
    best = yaml.safe_load(
        Path(client.download_artifacts(first.info.run_id, "best_allocation.yaml", str(tmp_path))).read_text()
    )
    assert served["allocation"] == best["allocation"] and served["simulated"] is True
    from flows.champion import champion_allocation

    champ = champion_allocation(compose([]), "synthetic")
    assert champ.allocation == best["allocation"] and champ.run_id == first.info.run_id and champ.version == "1"

    # 2. warm start from it: its 4 best trials re-evaluated first (from the sample bank: no new tokens)
    capsys.readouterr()
    assert main(["search", "trials=8", "warm_start=last", "seed=1", *base]) == 0
    out = capsys.readouterr().out
    assert f"warm start from search {first.info.run_id}: its 4 best trials are re-evaluated first" in out
    assert "that search ran on" not in out  # same backend, scenario and world: nothing to warn about
    second = _search_runs(client)[-1]
    assert second.data.tags["warm_start"] == first.info.run_id
    assert second.data.metrics["warm/trials"] == 4 and second.data.metrics["warm/tokens_generated"] == 0
    trace = [
        json.loads(line)
        for line in Path(client.download_artifacts(second.info.run_id, "decision_trace.jsonl", str(tmp_path)))
        .read_text()
        .splitlines()
    ]
    assert [t["source"] for t in trace[:4]] == ["warm_start"] * 4 and trace[4]["source"] != "warm_start"
    prior = Path(client.download_artifacts(second.info.run_id, "guidelines/prior.md", str(tmp_path))).read_text()
    assert first.info.run_id in prior and "Its latest guidelines:" in prior
    assert second.data.metrics.get("agent/probes_skipped", 0) >= 1  # the prior settles at least one stage's model
    d = _decision(client, second.info.run_id, tmp_path)
    assert d["decision"] in ("promoted", "kept") and d["champion"]["version"] == "1"
    assert second.data.tags["champion.decision"] == d["decision"]

    # 3. a weak challenger under a smaller budget: the 929-unit champion is re-projected, then compared
    assert main(["search", "searcher=random", "trials=2", "budget.units=500", "seed=3", *base]) == 0
    third = _search_runs(client)[-1]
    d = _decision(client, third.info.run_id, tmp_path)
    assert "over the current budget 500 units: re-projected to" in d["reason"]
    if d["champion"]["evaluated"] != d["challenger"]["allocation"]:
        assert {"p_value", "mean_diff", "wins", "losses"} <= set(d["test"])
        assert len(d["per_question"]["champion"]) == 20 == len(d["per_question"]["challenger"])
        assert third.data.metrics["champion/p_value"] == d["test"]["p_value"]
    champ = champion_allocation(compose(["budget.units=500"]), "synthetic")  # feasible whichever was kept
    ctx = build(compose(["budget.units=500"]), with_data=False)
    from components.space import Allocation

    assert ctx.space.is_feasible(Allocation.parse(champ.allocation)) and int(champ.version) == int(d["version"])

    # a warm start from another simulated world is allowed (its trials are re-evaluated), with a note
    capsys.readouterr()
    args = ["search", "searcher=random", "trials=5", "warm_start=last", "scenario.seed=7", "champion.enabled=false"]
    assert main([*args, *base]) == 0
    out = capsys.readouterr().out
    assert "note: that search ran on backend sim (scenario 2wiki v1, world seed 0), this one on backend sim" in out
    assert "world seed 7): its scores and guidelines describe the former" in out

    # 4. with champion.infeasible=reject, a champion over budget is rejected and the challenger promoted
    assert main(["search", "searcher=random", "trials=2", "budget.units=100", "champion.infeasible=reject", *base]) == 0
    fourth = _search_runs(client)[-1]
    assert fourth.data.tags["champion.decision"] == "promoted"
    assert (
        "over the current budget 100 units: rejected (champion.infeasible=reject)"
        in fourth.data.tags["champion.reason"]
    )

    # bad input: a run of another task, a run whose trials do not fit the task (tiny's qa allows 1..12 samples)
    capsys.readouterr()
    searchpath = f"hydra.searchpath=[file://{tiny_dir}]"
    assert main(["search", f"warm_start={first.info.run_id}", "scenario=tiny", searchpath, *base]) == 2
    assert "does not fit the current task" in capsys.readouterr().err
    n_runs = len(_search_runs(client))
    gsm8k = data_file("gsm8k", "test.jsonl")
    assert main(["search", "task=gsm8k", f"data.path={gsm8k}", f"warm_start={first.info.run_id}"]) == 2
    assert "is a search of task 'synthetic', not of task 'gsm8k'" in capsys.readouterr().err
    assert len(_search_runs(client)) == n_runs  # no run was started for bad input


def test_warm_start_trials_come_first_then_any_searcher_continues_with_them_as_history():
    from components.bank import SampleBank
    from components.space import Allocation
    from components.warm import WarmStart, WarmStartSearcher
    from flows.build import make_searcher

    ctx = build(compose(["searcher=optuna_tpe", "data.train_size=10"]))
    a1 = Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:10")
    a2 = Allocation.parse("retrieval=Qwen2.5-32B:2 qa=Llama-3.2-3B:5")
    s = WarmStartSearcher(make_searcher(ctx.cfg, 10), WarmStart("r0", [a1, a2], [0.9, 0.8]))
    assert s.name == "optuna_tpe"
    first = s.propose(ctx.space, [], 4)
    assert [p.allocation for p in first] == [a1, a2] and {p.trace["source"] for p in first} == {"warm_start"}
    env = ctx.environment(bank=SampleBank(None))
    history = env.evaluate([a1, a2])
    s.observe(history)
    nxt = s.propose(ctx.space, history, 3)
    assert len(nxt) == 3 and not {p.allocation for p in nxt} & {a1, a2}
    assert {a1, a2} <= set(s.inner._known)  # Optuna ingested the re-evaluated trials as its history


def test_agent_takes_the_prior_as_experience_and_skips_probes_of_settled_stages():
    from components.agent.probes import insight1_probes
    from components.space import Allocation
    from components.warm import WarmStart
    from flows.build import make_searcher

    ctx = build(compose(["data.train_size=10"]))
    warm = WarmStart(
        "r0",
        [
            Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:10"),
            Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.1-8B:3"),
        ],
        [0.9, 0.8],
        ["1. Model choice: retrieval prefers Qwen2.5-72B."],
    )
    agent = make_searcher(ctx.cfg, 10)
    agent.set_prior(warm)
    assert agent.guidelines[0].startswith("Prior experience") and "retrieval prefers Qwen2.5-72B" in agent.guidelines[0]
    props = agent.propose(ctx.space, [], 50)
    probed = {p.allocation for p in props}
    all_probes = insight1_probes(ctx.space)
    assert probed == {a for a, st, _ in all_probes if st == "qa"}  # retrieval is settled by the prior, qa is not
    assert agent.counts["probes_skipped"] == sum(st == "retrieval" for _, st, _ in all_probes) > 0
    view = agent._view("guidelines", ctx.space, [], 4)
    assert view.prior["retrieval"][0] == "Qwen2.5-72B"
    prefs = agent.rules.preferred_models(view)  # Insight 1 for the unprobed stage comes from the prior
    assert prefs["retrieval"][0] == "Qwen2.5-72B" and prefs["retrieval"][1].startswith("prior experience")
    assert ("guidelines/prior.md", agent.guidelines[0]) in agent.artifacts


def test_champion_decisions_of_one_task_wait_for_each_other(tmp_path):
    """Two searches of one task finishing together: the second decision waits for the first and then
    compares with the champion the first registered (it must not also find "no champion yet")."""
    import threading

    from components.archive import Archive
    from components.bank import SampleBank
    from components.space import Allocation
    from flows.champion import _doc, _register, champion_lock, decide_champion, registered_name

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    ctx = build(compose([f"mlflow.tracking_uri={uri}", "data.train_size=20"]))
    env = ctx.environment(bank=SampleBank(None))
    first, second = env.evaluate(
        [Allocation((("retrieval", "Qwen2.5-72B", 1), ("qa", "Llama-3.2-3B", n))) for n in (10, 5)]
    )
    archives = [Archive(uri, "agenttts-synthetic") for _ in range(2)]
    for i, arch in enumerate(archives):
        arch.start_search(f"search {i}", {}, {"kind": "search"})
    out: dict = {}
    with champion_lock(uri, ctx.task.name):  # the first search's decision is in progress
        waiting = threading.Thread(
            target=lambda: out.update(ev=decide_champion(ctx, env, [second], archives[1], progress=lambda *_: None))
        )
        waiting.start()
        waiting.join(3)
        assert waiting.is_alive()  # the second decision waits
        arch = archives[0]
        version = _register(
            arch.client, registered_name("synthetic"), arch, _doc(ctx, first, arch.parent_id), "allocation", {}
        )
    waiting.join(120)
    ev = out["ev"]
    assert version == "1" and ev["champion"]["version"] == "1"  # compared with the champion registered meanwhile
    assert ev["champion"]["evaluated"] == str(first.allocation)


def test_a_champion_that_failed_in_this_search_is_measured_again(tmp_path):
    """The champion's allocation may fail in a search (a server error): the decision must not take that
    failure's score 0 as the champion's and promote any challenger against it."""
    from components.archive import Archive
    from components.bank import SampleBank
    from components.space import Allocation
    from flows.champion import _doc, _register, decide_champion, registered_name

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    ctx = build(compose([f"mlflow.tracking_uri={uri}", "data.train_size=20"]))
    env = ctx.environment(bank=SampleBank(None))
    strong, weak = (Allocation((("retrieval", "Qwen2.5-72B", 1), ("qa", "Llama-3.2-3B", n))) for n in (10, 1))
    champion, challenger = env.evaluate([strong, weak])
    assert champion.score > challenger.score
    first, second = Archive(uri, "agenttts-synthetic"), Archive(uri, "agenttts-synthetic")
    first.start_search("first", {}, {"kind": "search"})
    _register(first.client, registered_name("synthetic"), first, _doc(ctx, champion, first.parent_id), "allocation", {})
    second.start_search("second", {}, {"kind": "search"})
    history = [challenger, env._failed(strong, "server 500", 0.1)]
    ev = decide_champion(ctx, env, history, second, progress=lambda *_: None)
    assert ev["champion"]["score"] == champion.score and ev["decision"] == "kept"
