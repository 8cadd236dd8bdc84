"""The cost model against the paper's numbers (AgentTTS Table 5, Appendix A.8)."""

import pytest

from components.cost import CostModel, flops, units
from components.space import Allocation, Budget, Model, SearchSpace, Stage


@pytest.mark.parametrize(
    "params, np_, nd, s, expected",
    [
        (72e9, 2048, 128, 1, 814),  # Qwen2.5-72B retrieval
        (32e9, 2048, 128, 1, 361),  # Qwen2.5-32B retrieval
        (7e9, 2048, 128, 1, 77),  # Qwen2.5-7B retrieval
        (70e9, 256, 64, 1, 115),  # Llama-3.1-70B QA
        (8e9, 256, 64, 1, 11),  # Llama-3.1-8B QA
        (3e9, 256, 64, 1, 3),  # Llama-3.2-3B QA
        (3e9, 256, 64, 50, 52),  # Llama-3.2-3B QA, S=50 (A.8)
        (72e9, 1024, 64, 1, 406),  # CWQ retrieval
        (70e9, 1024, 2048, 1, 1118),  # TaskBench parameter prediction
        (3e9, 1024, 1024, 1, 30),  # ChatDev coding, 3B
    ],
)
def test_units_reproduce_table5(params, np_, nd, s, expected):
    assert round(units(params, np_, nd, s)) == expected


def test_flops_formula_and_prefix_sharing():
    assert flops(3e9, 256, 64, 10) == 2 * 3e9 * (256 + 10 * 64)
    assert flops(3e9, 256, 64, 10, prefix_sharing=False) == 2 * 3e9 * 10 * (256 + 64)
    # one unit is one 3B sample on 128/64 tokens
    assert units(3e9, 128, 64, 1) == pytest.approx(1.0)


def _space(budget, count_fusion=False):
    ret = Stage("retrieval", (Model("Qwen2.5-72B", 72e9, 1.2), Model("Qwen2.5-7B", 7e9, 0.3)), 2048, 128, "id_vote")
    qa = Stage("qa", (Model("Llama-3.2-3B", 3e9, 0.06), Model("Llama-3.1-70B", 70e9, 0.88)), 256, 64, "llm")
    cm = CostModel([ret, qa], count_fusion=count_fusion)
    return SearchSpace([ret, qa], budget, cm)


def test_fusion_cost_reported_and_charged_only_when_asked():
    a = Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:50")
    free, charged = _space(Budget("units", 900)), _space(Budget("units", 900), count_fusion=True)
    c = free.cost_model.cost(a)
    assert round(c.units) == 866
    # fuser prompt = stage prompt + 50 candidates, one output: (256 + 51·64)/64 units of a 3B model
    assert c.fusion_units == pytest.approx((256 + 51 * 64) / 64)
    assert c.stages[0].fusion_flops == 0  # id-vote costs nothing
    assert free.is_feasible(a) and not charged.is_feasible(a)
    assert charged.cost(a) == pytest.approx(c.units + c.fusion_units)


def test_single_sample_needs_no_fuser():
    c = _space(Budget("units", 900)).cost_model.cost(Allocation.parse("retrieval=Qwen2.5-7B:1 qa=Llama-3.2-3B:1"))
    assert c.fusion_flops == 0


def test_budget_kinds():
    a = Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:50")
    c = _space(Budget("units", 900)).cost_model.cost(a)
    assert c.usd == pytest.approx(1.2 * 2176 / 1e6 + 0.06 * (256 + 50 * 64) / 1e6)
    assert _space(Budget("usd", c.usd + 1e-9)).is_feasible(a)
    assert not _space(Budget("usd", c.usd * 0.99)).is_feasible(a)
    assert _space(Budget("flops", c.flops)).is_feasible(a)
    assert not _space(Budget("flops", c.flops * 0.99)).is_feasible(a)


def test_measured_lengths_replace_declared():
    a = Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:10")
    sp = _space(Budget("units", 900))
    cm = CostModel(sp.stages, lengths={("qa", "Llama-3.2-3B"): (512, 32)})
    assert cm.cost(a).stages[1].flops == 2 * 3e9 * (512 + 10 * 32)
    assert sp.cost_model.cost(a).stages[1].flops == 2 * 3e9 * (256 + 10 * 64)


def test_cli_cost_prints_paper_numbers(capsys):
    from flows.cli import main

    assert main(["cost", "task=2wiki", "allocation.retrieval=Qwen2.5-72B:1", "allocation.qa=Llama-3.2-3B:50"]) == 0
    out = capsys.readouterr().out
    assert "814.0" in out and "52.0" in out
    assert "866.0 units without the fuser calls" in out
    assert "feasible" in out
    args = [
        "cost",
        "task=2wiki",
        "budget.units=900",
        "allocation.retrieval=Qwen2.5-72B:1",
        "allocation.qa=Llama-3.2-3B:50",
    ]
    assert main(args) == 0
    assert "feasible: 866 of 900 units" in capsys.readouterr().out
    assert main([*args, "cost.count_fusion=true"]) == 0
    assert "INFEASIBLE: 921 of 900 units" in capsys.readouterr().out  # the 55-unit fuser call is charged
