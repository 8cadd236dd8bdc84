"""The rules reasoner's moves on a simulated world (SIMULATED): what it proposes after given trials."""

import json

import pytest

from components.agent.probes import insight1_probes
from components.bank import SampleBank
from components.pipeline import TrialResult
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


@pytest.fixture(scope="module")
def taskbench():
    """The simulated TaskBench space (3 stages, 8B / 70B each) and its Insight-1 probes."""
    space = build(compose(["task=taskbench", "scenario=taskbench"])).space
    return space, {a: st for a, st, _ in insight1_probes(space)}


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


def test_no_yield_when_the_preferred_models_leave_room():
    ctx = build(compose(["task=synthetic", "scenario=2wiki_2000", "scenario.seed=3", "data.seed=3"]))
    probes = {a: st for a, st, _ in insight1_probes(ctx.space)}
    hist = ctx.environment(bank=SampleBank(None)).evaluate(list(probes))
    reasons = [c.rationale for c in RulesReasoner().candidates(view(ctx.space, hist, probes))]
    assert not any("yields to" in r for r in reasons)


def test_a_best_scoring_probe_model_that_fits_only_alone_is_still_tried():
    """2wiki at 900 units, world 12: the 72B retriever's probe scores best (within noise of the 32B's,
    so 32B is preferred) but leaves too little budget for the 70B QA model. The second proposal keeps
    the 72B retriever and gives QA a smaller model, rather than moving retrieval to 32B again."""
    ctx = build(compose(["task=synthetic", "scenario=2wiki_900", "scenario.seed=12", "data.seed=12"]))
    probes = {a: st for a, st, _ in insight1_probes(ctx.space)}
    hist = ctx.environment(bank=SampleBank(None)).evaluate(list(probes))
    rules, v = RulesReasoner(), view(ctx.space, hist, probes)
    assert rules.top_models(v)["retrieval"][0] == "Qwen2.5-72B"
    assert rules.preferred_models(v)["retrieval"][0] == "Qwen2.5-32B"
    first, second = (c.allocation for c in rules.candidates(v)[:2])
    assert first["retrieval"][0] == "Qwen2.5-32B"  # the preferred combination
    assert second["retrieval"][0] == "Qwen2.5-72B" and second["qa"][0] == "Llama-3.1-8B", second


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


# -- the moves on hand-set scores (no simulation): what each rule does with a given archive ------------


def trial(space, a: Allocation, score: float) -> TrialResult:
    return TrialResult(a, score, {}, space.cost_model.cost(a), 0, 0, 0, 0, 0)


def alloc(r_model, r_samples, q_model, q_samples) -> Allocation:
    return Allocation((("retrieval", r_model, r_samples), ("qa", q_model, q_samples)))


def test_probes_within_noise_prefer_the_smaller_model_and_clear_losers_are_ruled_out(tight):
    space, _, probes, _ = tight
    scores = {"Qwen2.5-32B": 0.50, "Qwen2.5-7B": 0.46, "Llama-3.1-70B": 0.60, "Llama-3.1-8B": 0.50}
    hist = [trial(space, a, scores.get(a[st][0], 0.30)) for a, st in probes.items()]
    v = view(space, hist, probes)
    rules = RulesReasoner()
    prefs = {st: m for st, (m, _) in rules.preferred_models(v).items()}
    assert prefs == {"retrieval": "Qwen2.5-7B", "qa": "Llama-3.1-70B"}  # 0.46 is within 2 questions of 0.50
    assert rules.ruled_out(v) == {"retrieval": set(), "qa": {"Llama-3.1-8B", "Llama-3.2-3B"}}
    assert {st: m for st, (m, _) in rules.top_models(v).items()} == {"retrieval": "Qwen2.5-32B", "qa": "Llama-3.1-70B"}


def test_the_shared_probe_counts_for_every_stage(taskbench):
    """TaskBench's probes share one allocation, every stage's 70B once: it is run once (listed under the
    first stage) but is each stage's 70B probe, so 8B probes that lose to it are ruled out."""
    space, probes = taskbench
    assert len(probes) == 4 and set(probes.values()) == {s.name for s in space.stages}
    big = "Llama-3.1-70B"

    def score(a):
        small = [s for s, m, _ in a.choices if m != big]
        return {(): 0.50, ("decomposition",): 0.54, ("tool_selection",): 0.40}.get(tuple(small), 0.32)

    v = view(space, [trial(space, a, score(a)) for a in probes], probes)
    rules = RulesReasoner()
    prefs = {st: m for st, (m, _) in rules.preferred_models(v).items()}
    assert prefs == {"decomposition": "Llama-3.1-8B", "tool_selection": big, "parameter_prediction": big}
    assert rules.ruled_out(v) == {
        "decomposition": set(),
        "tool_selection": {"Llama-3.1-8B"},
        "parameter_prediction": {"Llama-3.1-8B"},
    }
    first = rules.candidates(v)[0].allocation  # the preferred models combined
    assert [m for _, m, _ in first.choices] == ["Llama-3.1-8B", big, big]


def test_the_anchor_is_the_costliest_of_equally_best_trials(tight):
    space, _, probes, _ = tight
    cheap, dear = alloc("Qwen2.5-7B", 2, "Llama-3.2-3B", 10), alloc("Qwen2.5-7B", 20, "Llama-3.2-3B", 40)
    hist = [
        trial(space, cheap, 0.6),
        trial(space, dear, 0.6),
        trial(space, alloc("Qwen2.5-7B", 5, "Llama-3.2-3B", 5), 0.5),
    ]
    assert space.cost_model.cost(dear).units > space.cost_model.cost(cheap).units
    assert RulesReasoner.anchor_trial(view(space, hist, probes)).allocation == dear


def test_trades_along_the_budget_line_stay_feasible_and_move_both_stages(tight):
    space, _, probes, _ = tight
    rules = RulesReasoner()
    anchor = alloc("Qwen2.5-7B", 11, "Llama-3.1-70B", 1)
    anchor = anchor.replace("qa", samples=rules._room(space, anchor, "qa", "Llama-3.1-70B"))  # on the budget line
    trades = rules._trade(view(space, [trial(space, anchor, 0.7)], probes, 2), anchor)
    assert trades
    for c in trades:
        a = c.allocation
        assert space.is_feasible(a)
        up = [s for s in ("retrieval", "qa") if a[s][1] > anchor[s][1]]
        down = [s for s in ("retrieval", "qa") if a[s][1] < anchor[s][1]]
        assert len(up) == 1 and len(down) == 1  # one stage a step more samples, the other fewer


def test_the_coarse_scan_does_not_walk_past_a_clear_drop(tight):
    space, _, probes, _ = tight
    base = alloc("Qwen2.5-32B", 1, "Llama-3.2-3B", 60)
    hist = [trial(space, base, 0.60), trial(space, base.replace("qa", samples=100), 0.58)]
    rules = RulesReasoner()
    lane = [
        c.allocation["qa"][1] for c in rules._lane(view(space, hist, probes, 2), base, space.stages[1], "Llama-3.2-3B")
    ]
    assert lane[:3] == [40, 15, 6]  # downwards, nearest first (100 was no better)
    hist.append(trial(space, base.replace("qa", samples=40), 0.50))  # 5 questions worse: a clear drop
    lane = [
        c.allocation["qa"][1] for c in rules._lane(view(space, hist, probes, 2), base, space.stages[1], "Llama-3.2-3B")
    ]
    assert not [n for n in lane if n < 40]  # beyond the drop the curve is not searched further
    assert lane and all(40 < n < 100 for n in lane)  # the fine ladder between the neighbours instead


def test_a_runner_up_scan_stops_after_its_own_counts_all_lose_clearly(tight):
    # 2wiki_500 seed 16: one lucky trial of the 7B retriever (0.60, next to the best 0.62) kept its
    # scan open for ten trials, although every count of it behind the best trial's QA scored <= 0.52
    space, _, probes, _ = tight
    best = alloc("Qwen2.5-32B", 1, "Llama-3.1-70B", 1)
    hist = [trial(space, best, 0.62), trial(space, alloc("Qwen2.5-7B", 23, "Llama-3.1-70B", 9), 0.60)]
    rules = RulesReasoner()
    lane = lambda: rules._runner_up(view(space, hist, probes, 2), best)  # noqa: E731
    assert [c.allocation["retrieval"][0] for c in lane()] == ["Qwen2.5-7B"] * len(lane()) and lane()
    hist.append(trial(space, best.replace("retrieval", model="Qwen2.5-7B", samples=3), 0.52))
    assert lane()  # one count of its own scan is not enough to close it
    hist.append(trial(space, best.replace("retrieval", model="Qwen2.5-7B", samples=6), 0.48))
    assert lane() == []  # two counts, both more than two questions below the best: closed
    hist.append(trial(space, best.replace("retrieval", model="Qwen2.5-7B", samples=15), 0.61))
    assert lane()  # a count within noise of the best reopens it


def test_a_runner_up_is_first_tried_at_the_best_trials_stage_budget(tight):
    # 2wiki_900 seed 10: the 3B QA model's scan began at its probe's one sample (3, then 6, ...) and
    # was closed after two low counts, before reaching the counts where a small model peaks
    space, _, probes, _ = tight
    best = alloc("Qwen2.5-32B", 1, "Llama-3.1-70B", 1)
    hist = [trial(space, best, 0.62), trial(space, best.replace("qa", model="Llama-3.2-3B", samples=1), 0.58)]
    first = RulesReasoner()._runner_up(view(space, hist, probes, 2), best)[0].allocation
    n = space.max_samples(space.stages[1], "Llama-3.2-3B", space.stage_cost("qa", "Llama-3.1-70B", 1))
    assert first == best.replace("qa", model="Llama-3.2-3B", samples=n) and n > 10


def test_a_trials_answer_is_k_new_feasible_allocations(tight):
    space, _, probes, history = tight
    v = view(space, history, probes, k=4)
    answer = json.loads(RulesReasoner().trials(v))["candidates"]
    allocs = [Allocation.parse({st: c[st] for st in ("retrieval", "qa")}) for c in answer]
    assert len(allocs) == 4 and len(set(allocs)) == 4
    assert all(space.is_feasible(a) and a not in {r.allocation for r in history} for a in allocs)
    assert all(c["insight"] and c["rationale"] for c in answer)


def test_a_count_that_lost_at_other_anchors_is_proposed_last(taskbench):
    """TaskBench: tool selection 70B x4 lost to x3 at two decomposition counts (by 3 and 1 questions,
    2 on average), so moves that give tool selection 4 samples again come after every other move;
    x1, which lost once by one question only, is not held back."""
    space, probes = taskbench
    big, small = "Llama-3.1-70B", "Llama-3.1-8B"

    def a(d, t):
        return Allocation((("decomposition", small, d), ("tool_selection", big, t), ("parameter_prediction", big, 1)))

    scores = {a(15, 3): 0.68, a(15, 4): 0.62, a(29, 3): 0.66, a(29, 4): 0.64, a(29, 1): 0.64}
    hist = [trial(space, p, 0.4) for p in probes] + [trial(space, x, v) for x, v in scores.items()]
    v = view(space, hist, probes, round_=3)
    rules = RulesReasoner()
    lost = rules.lost_choices(v)
    assert ("tool_selection", big, 4) in lost
    assert ("tool_selection", big, 1) not in lost and ("tool_selection", big, 3) not in lost
    reusing = [c for c in rules.candidates(v) if c.allocation["tool_selection"] == (big, 4)]
    assert reusing  # the moves still generate it ...
    picked = json.loads(rules.trials(v))["candidates"]
    assert len(picked) == 4
    assert all(c["tool_selection"]["samples"] != 4 for c in picked)  # ... but it is not picked
    assert "tool_selection Llama-3.1-70B×4" in rules.guidelines(v)  # and the guidelines say so


def test_a_model_that_lost_to_another_model_at_other_anchors_is_proposed_last(taskbench):
    """TaskBench: parameter prediction on 8B x12 lost to 70B x1 (the same stage budget) at two
    decomposition counts, by six questions each: moves that put it back on 8B x12 come last, while
    70B x1 is not held back."""
    space, probes = taskbench
    big, small = "Llama-3.1-70B", "Llama-3.1-8B"

    def a(d, p_model, p_samples):
        return Allocation(
            (("decomposition", small, d), ("tool_selection", big, 3), ("parameter_prediction", p_model, p_samples))
        )

    scores = {a(15, big, 1): 0.62, a(15, small, 12): 0.50, a(40, big, 1): 0.58, a(40, small, 12): 0.46}
    hist = [trial(space, p, 0.3) for p in probes] + [trial(space, x, v) for x, v in scores.items()]
    v = view(space, hist, probes, round_=3)
    rules = RulesReasoner()
    lost = rules.lost_choices(v)
    assert ("parameter_prediction", small, 12) in lost
    assert ("parameter_prediction", big, 1) not in lost
    assert any(c.allocation["parameter_prediction"] == (small, 12) for c in rules.candidates(v))
    picked = json.loads(rules.trials(v))["candidates"]
    assert len(picked) == 4
    assert all(c["parameter_prediction"] != {"model": small, "samples": 12} for c in picked)
    assert "parameter_prediction Llama-3.1-8B×12" in rules.guidelines(v)


@pytest.mark.parametrize("move", ["_ladder", "_rebalance"])
def test_the_ladder_and_the_rebalance_lead_with_a_different_stage_each_round(taskbench, move):
    """A round's slots are shared between the move families, so a move's first candidate is often its
    only one: the stage the ladder scans (Insight 2) and the stage the rebalance takes budget from
    (Insight 3) rotate with the round, instead of always being the first stage."""
    space, probes = taskbench
    big, small = "Llama-3.1-70B", "Llama-3.1-8B"
    anchor = Allocation((("decomposition", small, 10), ("tool_selection", big, 2), ("parameter_prediction", small, 2)))
    hist = [trial(space, p, 0.4) for p in probes] + [trial(space, anchor, 0.6)]
    rules, names = RulesReasoner(), [s.name for s in space.stages]
    led = []
    for rnd in (1, 2, 3, 4):
        first = getattr(rules, move)(view(space, hist, probes, round_=rnd), anchor)[0].allocation
        changed = [s for s in names if first[s] != anchor[s]]
        if move == "_rebalance":  # the giving stage; the taking one grows
            changed = [s for s in changed if space.stage_cost(s, *first[s]) < space.stage_cost(s, *anchor[s])]
        (stage,) = changed
        led.append(stage)
    assert led == [names[1], names[2], names[0], names[1]]


def test_a_stalled_search_sweeps_the_plateau_of_the_best_trial(tight):
    """Scores on a plateau differ by a question or two from count to count, so once the search stalls
    one slot goes to an untried count between the plateau's ends, far from every tried count."""
    space, _, probes, _ = tight
    curve = {10: 0.60, 6: 0.50, 20: 0.60, 40: 0.59, 60: 0.50}  # the plateau: 10-40 (noise 0.04)
    hist = [trial(space, alloc("Qwen2.5-7B", 1, "Llama-3.2-3B", n), v) for n, v in curve.items()]
    assert all(space.is_feasible(r.allocation) for r in hist)
    rules = RulesReasoner()
    v = view(space, hist, probes, round_=3)
    assert rules._stalled(v)  # the last batch of 4 did not beat the first trial's 0.60
    first = rules.candidates(v)[0]
    assert "sweep the plateau of qa" in first.rationale
    assert first.allocation["retrieval"] == ("Qwen2.5-7B", 1)
    assert first.allocation["qa"][1] in (14, 28)  # the middles (in ratio) of the widest untried gaps
    improving = [hist[1], hist[0], *hist[2:]]  # the 0.60 came in the last batch
    assert not any("sweep" in c.rationale for c in rules.candidates(view(space, improving, probes, round_=3)))
