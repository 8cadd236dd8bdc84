"""The public scenario library: every file loads, declares its budget, fits its task and searches."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from components.bank import SampleBank
from components.errors import ScenarioError
from components.scenario import SCENARIO_DIR, load_scenario
from components.searchers import RandomSearcher
from components.space import Allocation
from flows.build import build, default_budget_units
from flows.cli import main

# (scenario, task, declared budget_units or None for the paper's default)
PAIRS = [
    ("2wiki", "synthetic", None),
    ("synthetic", "synthetic", None),
    ("2wiki_500", "synthetic", 500.0),
    ("2wiki_900", "synthetic", 900.0),
    ("2wiki_2000", "synthetic", 2000.0),
    ("hotpotqa", "synthetic", None),
    ("gsm8k", "gsm8k", None),
    ("cwq", "cwq", 550.0),
    ("webqsp", "webqsp", 550.0),
    ("taskbench", "taskbench", 2000.0),
    ("chatdev", "chatdev", 2000.0),
]
CHAINS = ["taskbench", "chatdev"]


def test_every_public_scenario_is_covered_and_loads():
    public = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
    assert public == sorted(sc for sc, _, _ in PAIRS)
    for sc, _, declared in PAIRS:
        s = load_scenario(sc)
        assert s.budget_units == declared, sc
        assert s.name == ("2wiki" if sc == "synthetic" else sc)


@pytest.mark.parametrize("scenario,task,declared", PAIRS, ids=[p[0] for p in PAIRS])
def test_default_budget_and_space_of_each_pair(scenario, task, declared, compose_cfg, capsys):
    ctx = build(compose_cfg(f"task={task}", f"scenario={scenario}"), with_data=False)
    sp = ctx.space
    want = declared if declared is not None else default_budget_units(list(sp.stages), sp.cost_model)
    assert sp.budget.kind == "units" and sp.budget.value == pytest.approx(want)
    assert sp.size > 0
    assert main(["space", f"task={task}", f"scenario={scenario}"]) == 0
    out = capsys.readouterr().out
    assert f"budget: {sp.budget}" in out and f"feasible allocations: {sp.size}" in out


@pytest.mark.parametrize("name", ["cwq", "webqsp", "taskbench", "chatdev"])
def test_task_files_match_their_scenario(name, compose_cfg):
    """Stage names, kinds, candidate models, token lengths and sample ranges of task and scenario agree."""
    task = compose_cfg(f"task={name}")["task"]
    sc = load_scenario(name)
    assert task["data"]["format"] == "synthetic"
    assert [s["name"] for s in task["stages"]] == [s.name for s in sc.stages]
    for ts, ss in zip(task["stages"], sc.stages, strict=True):
        assert ts["kind"] == ss.kind and ts["fusion"] == ss.fusion
        assert ts["models"] == [m.name for m in ss.models]
        assert (ts["prompt_tokens"], ts["output_tokens"]) == (ss.prompt_tokens, ss.output_tokens)
        assert list(ts["samples"]) == [ss.min_samples, ss.max_samples]


def test_paper_token_lengths_of_the_new_scenarios():
    lengths = {
        name: [(s.name, s.prompt_tokens, s.output_tokens) for s in load_scenario(name).stages]
        for name in ("cwq", "webqsp", "taskbench", "chatdev")
    }
    assert lengths["cwq"] == [("retrieval", 1024, 64), ("qa", 256, 64)]
    assert lengths["webqsp"] == [("retrieval", 1024, 64), ("qa", 128, 64)]
    assert lengths["taskbench"] == [
        ("decomposition", 1024, 64),
        ("tool_selection", 1024, 256),
        ("parameter_prediction", 1024, 2048),
    ]
    assert lengths["chatdev"] == [("coding", 1024, 1024), ("static_test", 1024, 512), ("dynamic_test", 1024, 256)]
    for name in CHAINS:
        assert all(s.kind == "answer" for s in load_scenario(name).stages)


def test_a_budget_override_beats_the_scenario_budget(compose_cfg):
    ctx = build(compose_cfg("task=cwq", "budget.units=600"), with_data=False)
    assert ctx.space.budget.value == 600.0


@pytest.mark.parametrize("bad", [0, -5, 1e10, "many", float("nan")])
def test_budget_units_is_validated(bad):
    raw = yaml.safe_load((SCENARIO_DIR / "cwq.yaml").read_text())
    raw["budget_units"] = bad
    with pytest.raises(ScenarioError, match=r"budget_units = .*\(0, 1e\+09\]"):
        load_scenario(raw, origin="cwq.yaml")


def test_budget_units_error_names_the_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text((SCENARIO_DIR / "cwq.yaml").read_text().replace("budget_units: 550", "budget_units: 0"))
    with pytest.raises(ScenarioError) as e:
        load_scenario(f)
    assert str(f) in str(e.value) and "out of range" in str(e.value)


@pytest.mark.parametrize("name", CHAINS)
def test_short_random_search_through_the_environment(name, compose_cfg):
    ctx = build(compose_cfg(f"task={name}", "searcher=random", "data.train_size=8", "data.test_size=0"))
    env = ctx.environment(bank=SampleBank(None))
    searcher, history = RandomSearcher(seed=0), []
    for _ in range(2):
        proposals = searcher.propose(ctx.space, history, 4)
        results = env.evaluate([p.allocation for p in proposals])
        searcher.observe(results)
        history += results
    assert len({r.allocation for r in history}) == 8
    stages = [s.name for s in ctx.space.stages]
    for r in history:
        assert ctx.space.is_feasible(r.allocation) and 0.0 <= r.score <= 1.0
        assert {f"{s}/em" for s in stages[:-1]} <= set(r.metrics)
        assert r.flops_spent > 0
    # a wrong upstream answer hurts: the final EM never beats the first stage's EM by much
    assert np.mean([r.score for r in history]) <= np.mean([r.metrics[f"{stages[0]}/em"] for r in history]) + 0.25


def test_insight_3_budget_shape_on_2wiki(compose_cfg):
    low = build(compose_cfg("task=synthetic", "scenario=2wiki_500"), with_data=False).space
    high = build(compose_cfg("task=synthetic", "scenario=2wiki_2000"), with_data=False).space
    qa_models = [m.name for m in low.stages[1].models]
    for m in qa_models:  # at 500 the 72B retriever fits with no QA model at all
        assert not low.is_feasible(Allocation.parse(f"retrieval=Qwen2.5-72B:1 qa={m}:1"))
    assert not any(a["retrieval"][0] == "Qwen2.5-72B" for a in low.enumerate())
    # at 2000 it fits with many QA samples of the small models, and with the 70B QA model too
    for qa in ("Llama-3.2-3B:90", "Llama-3.1-8B:60", "Llama-3.1-70B:5"):
        assert high.is_feasible(Allocation.parse(f"retrieval=Qwen2.5-72B:1 qa={qa}"))


def test_a_scenario_outside_the_repo_via_hydra_searchpath(tmp_path, compose_cfg):
    d = tmp_path / "extra" / "scenario"
    d.mkdir(parents=True)
    # a full file: the taskbench world at another budget and seed
    (d / "my_chain.yaml").write_text(
        (SCENARIO_DIR / "taskbench.yaml")
        .read_text()
        .replace("name: taskbench", "name: my_chain")
        .replace("budget_units: 2000", "budget_units: 1500")
    )
    # an alias of a public scenario, resolved through the repository's config folder
    (d / "my_2wiki.yaml").write_text("defaults:\n  - 2wiki\n  - _self_\nname: my_2wiki\nbudget_units: 700\n")
    sp = f"hydra.searchpath=[file://{tmp_path / 'extra'}]"
    ctx = build(compose_cfg(sp, "task=taskbench", "scenario=my_chain"), with_data=False)
    assert ctx.scenario.name == "my_chain" and ctx.space.budget.value == 1500.0
    ctx = build(compose_cfg(sp, "task=synthetic", "scenario=my_2wiki", "data.train_size=4", "data.test_size=0"))
    assert ctx.scenario.name == "my_2wiki" and ctx.space.budget.value == 700.0
    assert [s.name for s in ctx.scenario.stages] == ["retrieval", "qa"]
    res = ctx.environment(bank=SampleBank(None)).evaluate([ctx.space.cheapest()])
    assert len(res) == 1 and 0.0 <= res[0].score <= 1.0
