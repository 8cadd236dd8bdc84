"""Search space, allocations, feasibility, enumeration, sampling, projection."""

import itertools

import numpy as np
import pytest

from components.errors import AllocationError, InfeasibleBudgetError, UnknownNameError
from components.space import Allocation, Budget, Model, SearchSpace, Stage

RET = Stage(
    "retrieval",
    (Model("Qwen2.5-7B", 7e9), Model("Qwen2.5-32B", 32e9), Model("Qwen2.5-72B", 72e9)),
    2048,
    128,
    "id_vote",
)
QA = Stage("qa", (Model("Llama-3.2-3B", 3e9), Model("Llama-3.1-8B", 8e9), Model("Llama-3.1-70B", 70e9)), 256, 64, "llm")


def space(units=929.0, stages=(RET, QA)):
    return SearchSpace(stages, Budget("units", units))


def test_allocation_is_hashable_printable_and_parses_both_forms():
    a = Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:50")
    b = Allocation.parse({"retrieval": "Qwen2.5-72B:1", "qa": {"model": "Llama-3.2-3B", "samples": 50}})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert str(a) == "retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:50"
    assert a.to_dict()["qa"] == {"model": "Llama-3.2-3B", "samples": 50}
    assert a.replace("qa", samples=10)["qa"] == ("Llama-3.2-3B", 10)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("retrieval=Qwen2.5-72B", "expected MODEL:SAMPLES"),
        ("retrieval=Qwen2.5-72B:x qa=Llama-3.2-3B:1", "must be an integer"),
        ("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:0", "must be in [1, 100], got 0"),
        ("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:101", "must be in [1, 100], got 101"),
        ("retrieval=Qwen2.5-72B:1", "gives no model for stage(s) ['qa']"),
        ("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:1 rerank=X:1", "unknown stage 'rerank'"),
    ],
)
def test_bad_allocations(spec, message):
    with pytest.raises(AllocationError, match=None) as e:
        space().validate(Allocation.parse(spec))
    assert message in str(e.value)


def test_unknown_model_names_the_stage_and_the_choices():
    with pytest.raises(UnknownNameError) as e:
        space().validate(Allocation.parse("retrieval=qwen-7b:1 qa=Llama-3.2-3B:1"))
    assert "unknown model 'qwen-7b' for stage 'retrieval'" in str(e.value) and "Qwen2.5-72B" in str(e.value)


@pytest.mark.parametrize("units", [150.0, 500.0, 929.0])
def test_enumeration_matches_brute_force(units):
    sp = space(units, (RET, QA))
    brute = [
        Allocation((("retrieval", rm.name, rs), ("qa", qm.name, qs)))
        for rm, rs, qm, qs in itertools.product(RET.models, range(1, 101), QA.models, range(1, 101))
    ]
    feasible = {a for a in brute if sp.is_feasible(a)}
    assert set(sp.enumerate()) == feasible and sp.size == len(feasible)


def test_three_stage_enumeration_with_pruning():
    small = [Stage(s.name, s.models, s.prompt_tokens, s.output_tokens, s.fusion, 1, 12) for s in (RET, QA)]
    s3 = Stage("test", (Model("a", 3e9), Model("b", 70e9)), 1024, 256, "vote", 1, 20)
    sp = space(1200, (*small, s3))
    brute = sum(
        1
        for combo in itertools.product(
            *[[(m.name, n) for m in st.models for n in range(st.min_samples, st.max_samples + 1)] for st in sp.stages]
        )
        if sp.is_feasible(Allocation(tuple((st.name, m, n) for st, (m, n) in zip(sp.stages, combo))))
    )
    assert sp.size == brute


def test_uniform_sampling_is_feasible_and_covers_the_space():
    sp = space(300)
    draws = sp.sample(np.random.default_rng(0), 3000)
    assert all(sp.is_feasible(a) for a in draws)
    # uniform: every feasible retrieval model appears roughly in proportion to its share
    share = sum(a["retrieval"][0] == "Qwen2.5-32B" for a in sp.enumerate()) / sp.size
    got = sum(a["retrieval"][0] == "Qwen2.5-32B" for a in draws) / len(draws)
    assert abs(got - share) < 0.03


def test_budget_below_cheapest_is_one_clear_error():
    with pytest.raises(InfeasibleBudgetError) as e:
        space(40).check_budget()
    assert (
        "budget 40 units is below the cheapest allocation (80.3333 units: retrieval=Qwen2.5-7B:1 qa=Llama-3.2-3B:1)"
        in str(e.value)
    )


def test_projection_changes_as_little_as_possible():
    sp = space(929)
    a = Allocation.parse("retrieval=Qwen2.5-72B:3 qa=Llama-3.2-3B:50")
    p = sp.project(a)
    assert sp.is_feasible(p)
    assert sum(x != y for x, y in zip(a.choices, p.choices)) == 1
    assert p == Allocation.parse("retrieval=Qwen2.5-72B:2 qa=Llama-3.2-3B:50")
    assert sp.project(p) == p


def test_neighbours_are_feasible_and_one_move_away():
    sp = space(929)
    a = Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:20")
    ns = sp.neighbours(a)
    assert ns and a not in ns and all(sp.is_feasible(b) for b in ns)
    assert all(sum(x != y for x, y in zip(a.choices, b.choices)) == 1 for b in ns)
    assert Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:40") in ns


def test_default_budget_is_the_papers(compose_cfg):
    from flows.build import build

    ctx = build(compose_cfg("task=2wiki"), with_data=False)
    assert ctx.space.budget.kind == "units" and round(ctx.space.budget.value) == 929


def test_the_default_budget_is_never_rounded_below_its_own_allocation(compose_cfg):
    """Shown to 6 decimals, 813.4583333 was rounded down to 813.458333, and one sample of the largest
    model per stage (the allocation that defines the budget) became infeasible."""
    from flows.build import build, default_budget_units

    lengths = ["task.stages.1.prompt_tokens=1", "task.stages.1.output_tokens=3"]
    sp = build(compose_cfg("task=2wiki", "backend=replay", *lengths), with_data=False).space
    exact = default_budget_units(sp.stages, sp.cost_model)
    assert round(exact, 6) < exact <= sp.budget.value == 813.458334
    largest = Allocation(tuple((s.name, max(s.models, key=lambda m: m.params).name, 1) for s in sp.stages))
    assert sp.is_feasible(largest)


def test_projection_of_a_three_stage_allocation_over_budget_everywhere():
    s3 = Stage("test", (Model("a", 3e9), Model("b", 70e9)), 1024, 256, "vote", 1, 100)
    sp = space(700, (RET, QA, s3))  # the joint option table is large: the chunked path runs
    a = Allocation.parse("retrieval=Qwen2.5-72B:100 qa=Llama-3.1-70B:100 test=b:100")
    p = sp.project(a)
    assert sp.is_feasible(p)
    # nothing with fewer changed stages fits, so all three change
    assert sum(x != y for x, y in zip(a.choices, p.choices)) == 3


def test_samples_for_follows_prefix_sharing():
    """Two models of one size at one stage's FLOPs get the same samples, whether or not the samples
    share the prompt's encoding (without sharing it the formula once gave 46 for 10)."""
    from components.cost import CostModel

    st = [Stage("qa", (Model("a", 3e9), Model("b", 3e9)), 256, 64, max_samples=50)]
    for sharing in (True, False):
        sp = SearchSpace(st, Budget("units", 1e6), CostModel(st, prefix_sharing=sharing))
        flops = sp.cost_model.stage_cost("qa", "a", 10).flops
        assert sp.samples_for(st[0], st[0].models[1], flops) == 10
