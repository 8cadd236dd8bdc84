"""The insight-shaped surrogate: it learns an additive score, and ranks only near tried choices."""

import json

import numpy as np
import pytest

from components.agent.probes import insight1_probes
from components.agent.surrogate import TRUST, Surrogate
from components.pipeline import TrialResult
from components.reasoners.base import AgentView
from components.reasoners.rules import RulesReasoner
from flows.build import build
from flows.cli import compose


@pytest.fixture(scope="module")
def space():
    """The simulated TaskBench space: 3 stages, 8B / 70B each."""
    return build(compose(["task=taskbench", "scenario=taskbench"])).space


def additive(a) -> float:
    """A known score, additive over stages: a model offset plus a concave curve in log samples."""
    peak = {"decomposition": 20, "tool_selection": 3, "parameter_prediction": 2}
    total = 0.0
    for stage, model, n in a.choices:
        total += (0.05 if "70B" in model else 0.0) - 0.02 * (np.log(n) - np.log(peak[stage])) ** 2
    return total


def test_it_learns_an_additive_score_from_a_few_dozen_trials(space):
    rng = np.random.default_rng(0)
    train, test = space.sample(rng, 30), space.sample(rng, 200)
    s = Surrogate(space)
    s.fit(train, [additive(a) for a in train])
    truth, pred = np.array([additive(a) for a in test]), s.predict(test)
    assert np.corrcoef(truth, pred)[0, 1] > 0.9
    # an untrained surrogate predicts nothing
    assert not Surrogate(space).predict(test).any()


def test_it_ranks_only_choices_near_tried_ones(space):
    rng = np.random.default_rng(1)
    train = space.sample(rng, 12)
    s = Surrogate(space)
    s.fit(train, [additive(a) for a in train])
    ranked = s.ranked(limit=40)
    assert ranked and len(set(ranked)) == len(ranked)
    assert all(space.is_feasible(a) for a in ranked)
    for a in ranked:
        for stage, model, n in a.choices:
            tried = [t[stage][1] for t in train if t[stage][0] == model]
            assert tried and min(abs(np.log(n / t)) for t in tried) <= np.log(TRUST) + 1e-9
    scores = s.predict(ranked)
    assert (np.diff(scores) <= 1e-12).all()  # best first


def trial(space, a, score):
    return TrialResult(a, score, {}, space.cost_model.cost(a), 0, 0, 0, 0, 0)


def test_the_surrogates_untried_pick_leads_from_round_two(space):
    probes = {a: st for a, st, _ in insight1_probes(space)}
    history = [trial(space, a, 0.4 + additive(a)) for a in probes]
    reasoner = RulesReasoner()

    def proposals(round_):
        view = AgentView("trials", space, history, 4, 50, probes, [], round_, 0)
        return json.loads(reasoner.trials(view))["candidates"]

    # after the probes alone, the surrogate's pick is a probe: the slot stays with the rules
    assert all(c["insight"] != "surrogate" for c in proposals(2))
    # once the archive shows where each stage's gains level off, its pick is new and leads the round
    for a in space.sample(np.random.default_rng(2), 10):
        history.append(trial(space, a, 0.4 + additive(a)))
    assert all(c["insight"] != "surrogate" for c in proposals(1))  # round 1 belongs to Insight 1
    second = proposals(2)
    assert [c["insight"] for c in second].count("surrogate") == 1 and second[0]["insight"] == "surrogate"
    s = Surrogate(space)
    s.fit([r.allocation for r in history], [r.score for r in history])
    top = s.ranked(limit=1)[0].to_dict()
    assert {st: second[0][st] for st in top} == top
