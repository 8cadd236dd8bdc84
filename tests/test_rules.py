"""The rules reasoner's moves on a simulated world (SIMULATED): what it proposes after given trials."""

import pytest

from components.agent.probes import insight1_probes
from components.bank import SampleBank
from components.reasoners.base import AgentView
from components.reasoners.rules import RulesReasoner
from components.space import Allocation
from flows.build import build
from flows.cli import compose


@pytest.fixture(scope="module")
def tight():
    """2wiki at the paper's low budget (500 units): the 72B retriever does not fit; probes evaluated."""
    ctx = build(compose(["task=synthetic", "scenario=2wiki_500", "scenario.seed=3", "data.seed=3"]))
    env = ctx.environment(bank=SampleBank(None))
    probes = {a: st for a, st, _ in insight1_probes(ctx.space)}
    return ctx.space, env, probes, env.evaluate(list(probes))


def view(space, history, probes, round_=1, k=4):
    return AgentView("trials", space, history, k, 50, probes, [], round_, 0)


def test_tight_budget_each_stage_yields_to_a_smaller_model_at_half_its_budget(tight):
    space, _, probes, history = tight
    cands = [c.allocation for c in RulesReasoner().candidates(view(space, history, probes))]
    combined = Allocation((("retrieval", "Qwen2.5-32B", 1), ("qa", "Llama-3.1-70B", 1)))
    assert cands[0] == combined  # the preferred models fit together only at one sample each
    half = space.stage_cost("retrieval", "Qwen2.5-32B", 1) / 2
    yielded = [a for a in cands[1:4] if a["retrieval"][0] == "Qwen2.5-7B" and a["qa"][0] == "Llama-3.1-70B"]
    assert yielded, cands[:4]  # the 7B retriever was outscored by its probe (at 60 samples), yet is tried
    (a,) = yielded
    assert space.stage_cost("retrieval", *a["retrieval"]) <= half
    assert a["qa"][1] > 1 and space.is_feasible(a)  # the freed budget went to the QA samples
    assert not space.is_feasible(a.replace("qa", samples=a["qa"][1] + 1))  # all of it


def test_no_yield_when_the_preferred_models_leave_room(tight):
    space, env, probes, history = tight
    roomy = build(compose(["task=synthetic", "scenario=2wiki_2000", "scenario.seed=3", "data.seed=3"])).space
    env_probes = {a: st for a, st, _ in insight1_probes(roomy)}
    hist = [r for r in env.evaluate(list(env_probes)) if roomy.is_feasible(r.allocation)]
    reasons = [c.rationale for c in RulesReasoner().candidates(view(roomy, hist, env_probes))]
    assert not any("yields to" in r for r in reasons)


def test_coarse_scan_skips_counts_next_to_a_tried_one(tight):
    space, env, probes, history = tight
    rules = RulesReasoner()
    anchor = Allocation((("retrieval", "Qwen2.5-32B", 1), ("qa", "Llama-3.2-3B", 39)))
    hist = history + env.evaluate([anchor])
    lane = [
        c.allocation["qa"][1]
        for c in rules._lane(view(space, hist, probes, 2), anchor, space.stages[1], "Llama-3.2-3B")
    ]
    assert 40 not in lane  # 40 samples share 39 of their samples with the tried 39: nearly the same trial
    assert 15 in lane and 100 in lane  # the coarse ladder's farther steps remain
