"""The agent's prompts (``components.agent.prompts``) against the paper's content, and the Insight-1 probes.

AgentTTS (arXiv 2508.00890) §5 / A.7, as digested in ../shared/reference/agenttts-paper.md §5.3-5.5:
the initial-guideline prompt asks for model choice (prefer the small model when similar), the
sample-count plateau and budget planning; later guideline prompts split old and recent history and
add exploration; the trial prompt carries the Python budget function, the sample range [1, 100],
the batch size, a JSON example, the first and two most recent guidelines, and the full history.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest

from components.agent.answers import parse_trials
from components.agent.probes import insight1_probes
from components.agent.prompts import (
    BUDGET_FUNCTIONS,
    PromptSet,
    TaskInfo,
    history_text,
    render_guidelines,
    render_trials,
)
from components.cost import CostModel
from components.errors import ConfigError
from components.space import Allocation

HISTORY = [
    "retrieval=Qwen2.5-72B:1 qa=Llama-3.1-70B:1",
    "retrieval=Qwen2.5-32B:22 qa=Llama-3.1-70B:1",
    "retrieval=Qwen2.5-7B:60 qa=Llama-3.1-70B:1",
    "retrieval=Qwen2.5-72B:1 qa=Llama-3.1-8B:39",
    "retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:60",
]
HISTORY_LINE = re.compile(
    r"^Parameters: (\{.*\}), Score: (\{.*\}), Used budget: ([0-9.e+]+), total budget: ([0-9.e+]+)$", re.M
)
PLACEHOLDER = re.compile(r"\$\{?[A-Za-z_]")


def _ctx(*overrides: str):
    from flows.build import build
    from flows.cli import compose

    return build(compose(["task=2wiki", *overrides]), with_data=False)


@pytest.fixture(scope="module")
def ctx():
    return _ctx()


@pytest.fixture(scope="module")
def space(ctx):
    return ctx.space


@pytest.fixture(scope="module")
def task(ctx) -> TaskInfo:
    t = ctx.cfg["task"]  # as flows.build.make_searcher builds it
    return TaskInfo(t["name"], t.get("description", ""), tuple(t.get("metrics") or [t["metric"]]), t["metric"])


@pytest.fixture(scope="module")
def prompts() -> PromptSet:
    from flows.build import PROMPTS_DIR

    return PromptSet(PROMPTS_DIR)


@pytest.fixture(scope="module")
def history():
    """Evaluated trials from the simulator (the synthetic task has the same stages and models as 2wiki)."""
    from components.bank import SampleBank
    from flows.build import build
    from flows.cli import compose

    env = build(compose(["data.train_size=10"])).environment(bank=SampleBank(None))
    return env.evaluate([Allocation.parse(s) for s in HISTORY])


def history_lines(text: str) -> list[tuple[dict, dict, float, float]]:
    return [(json.loads(p), json.loads(s), float(u), float(b)) for p, s, u, b in HISTORY_LINE.findall(text)]


def section(text: str, start: str, end: str) -> str:
    return text[text.index(start) + len(start) : text.index(end)]


def assert_common(text: str, space, task: TaskInfo) -> None:
    """What every prompt carries: preamble, task, subtasks with models and lengths, budget, metrics."""
    assert "the parameters are the model size and the number of repeated samples" in text  # the shared preamble
    assert "fixed total compute budget" in text
    assert f"Task: {task.name}" in text and task.name == "2wiki"
    assert f"Description: {task.description}" in text and "2WikiMultiHopQA" in task.description
    for i, stage in enumerate(space.stages, 1):
        line = next(ln for ln in text.splitlines() if ln.startswith(f"{i}. {stage.name}: "))
        for m in stage.models:
            assert f"{m.name} ({m.params / 1e9:g}B parameters)" in line
        assert f"average prompt length {stage.prompt_tokens} tokens" in line
        assert f"average generation length {stage.output_tokens} tokens" in line
    assert "average prompt length 2048 tokens, average generation length 128 tokens" in text  # retrieval, Table 4
    assert "average prompt length 256 tokens, average generation length 64 tokens" in text  # QA
    assert "Total budget: 928.667 units" in text
    assert "Evaluation metrics: em, f1 (main metric: em)" in text
    assert not PLACEHOLDER.search(text), "an unrendered $placeholder"


# --- history lines --------------------------------------------------------------------------------


def test_history_lines_have_agenttts_form(space, history):
    text = history_text(space, history)
    lines = history_lines(text)
    assert len(lines) == len(history) == len(text.splitlines())
    for (params, score, used, total), r in zip(lines, history):
        assert params == r.allocation.to_dict()
        assert score["score"] == round(r.score, 4) and {"em", "f1"} <= set(score)
        assert used == pytest.approx(space.cost(r.allocation), abs=1e-3)
        assert total == pytest.approx(928.667)
    assert lines[0][2] == pytest.approx(928.667)  # 72B x1 + 70B x1: the default budget exactly
    assert history_text(space, []) == "(none)"


# --- guideline prompts --------------------------------------------------------------------------


def test_initial_guidelines_prompt(prompts, task, space, history):
    text = render_guidelines(prompts, task, space, history, recent=2, initial=True)
    assert_common(text, space, task)
    # Insight 1: model choice at equal budget, prefer the small model when it is similar
    assert "compares different model sizes of each subtask at the same budget (small models get more samples)" in text
    assert "Choose the large model only if it is significantly better" in text
    assert "if it is similar or only slightly better, prefer the small model" in text
    # Insight 2: the sample-count plateau
    assert "rises with the number of samples and then levels off" in text
    assert "the point beyond which more samples stop helping" in text
    # Insight 3: shared budget, interdependent subtasks, planning and balance
    assert "The budget is shared and the subtasks depend on each other" in text
    assert "prioritize subtasks, try different budget combinations for the others, and balance the allocations" in text
    # the whole history, in AgentTTS's form
    lines = history_lines(text)
    assert [Allocation.parse(p) for p, *_ in lines] == [r.allocation for r in history]
    assert "crossover" not in text and "Older trials" not in text  # those belong to the later prompts
    assert text.index("1. Model choice") < text.index("2. Sample count") < text.index("3. Budget balance")


def test_without_probes_the_initial_prompt_says_none_for_insight1(prompts, task, space, history):
    """The ablation "w/o Insight 1" (searcher.probes=false): the agent's first guidelines prompt
    replaces the Insight-1 item with "None" (the paper's code), the other items stay."""
    from components.bank import SampleBank
    from components.reasoners.rules import RulesReasoner
    from components.searchers.agenttts import AgentTTSSearcher
    from flows.build import build
    from flows.cli import compose

    text = render_guidelines(prompts, task, space, history, recent=2, initial=True, insight1=False)
    assert "1. None.\n2. Sample count (Insight 2)." in text
    assert "Insight 1" not in text and "compares different model sizes" not in text
    assert "3. Budget balance (Insight 3)." in text

    class Recording(RulesReasoner):
        """The rules reasoner, keeping the prompts the searcher sends it."""

        def __init__(self):
            self.sent: list[tuple[str, str]] = []

        def complete(self, system, prompt, view):
            self.sent.append((view.kind, prompt))
            return super().complete(system, prompt, view)

    env = build(compose(["data.train_size=10"])).environment(bank=SampleBank(None))
    for probes in (False, True):
        reasoner = Recording()
        searcher = AgentTTSSearcher(reasoner, prompts, task, n_questions=10, probes=probes)
        history_: list = []
        while not reasoner.sent:  # the random start (or the probes), then the first round
            history_ += env.evaluate([p.allocation for p in searcher.propose(env.space, history_, 4)])
        kind, first = reasoner.sent[0]
        assert kind == "initial_guidelines"
        assert ("1. None." in first) is not probes and ("(Insight 1)" in first) is probes
        assert len(history_lines(first)) == (len(insight1_probes(env.space)) if probes else 1)  # what it was run on


def test_later_guidelines_prompt_splits_old_and_recent_history(prompts, task, space, history):
    text = render_guidelines(prompts, task, space, history, recent=2, initial=False)
    assert_common(text, space, task)
    old = section(text, "Older trials:", "Most recent trials:")
    recent = section(text, "Most recent trials:", "Based on the whole history")
    assert [Allocation.parse(p) for p, *_ in history_lines(old)] == [r.allocation for r in history[:3]]
    assert [Allocation.parse(p) for p, *_ in history_lines(recent)] == [r.allocation for r in history[3:]]
    assert "levels off" in text and "prioritize subtasks" in text  # Insights 2 and 3
    assert "Exploration" in text and "performance varies little" in text
    for move in ("crossover", "mutation", "random search"):
        assert move in text
    assert "instead of following the existing pattern" in text
    assert "significantly better" not in text  # the Insight-1 item is only in the initial prompt


@pytest.mark.parametrize(("recent", "n_old", "n_recent"), [(0, 5, 0), (1, 4, 1), (5, 0, 5), (9, 0, 5)])
def test_later_guidelines_recent_window(prompts, task, space, history, recent, n_old, n_recent):
    text = render_guidelines(prompts, task, space, history, recent=recent, initial=False)
    old = section(text, "Older trials:", "Most recent trials:")
    new = section(text, "Most recent trials:", "Based on the whole history")
    assert len(history_lines(old)) == n_old and len(history_lines(new)) == n_recent
    assert ("(none)" in old) == (n_old == 0) and ("(none)" in new) == (n_recent == 0)


# --- trial prompt -----------------------------------------------------------------------------


def budget_function(text: str):
    """The Python budget function printed in the prompt, exec'd."""
    m = re.search(r"^def budget\(.*\):\n(?:[ \t]+.*\n?)+", text, re.M)
    assert m, "no budget function in the prompt"
    scope: dict = {}
    exec(m.group(0), scope)  # our own prompt text
    return scope["budget"]


def test_trials_prompt(prompts, task, space, history):
    guidelines = ["GUIDELINE-1 first", "GUIDELINE-2 old", "GUIDELINE-3 recent", "GUIDELINE-4 latest"]
    text = render_trials(prompts, task, space, history, guidelines, 4)
    assert_common(text, space, task)
    assert BUDGET_FUNCTIONS["units"] in text
    budget = budget_function(text)
    assert round(budget(72e9, 1, 2048, 128)) == 814  # Qwen2.5-72B retrieval, S = 1 (paper Table 5)
    assert round(budget(3e9, 50, 256, 64)) == 52  # 2Wiki QA with a 3B model, S = 50 (paper A.8)
    assert round(budget(70e9, 1, 256, 64)) == 115 and round(budget(32e9, 1, 2048, 128)) == 361
    assert "the total is the sum over the subtasks and must not exceed the total budget" in text
    assert "Available samples per subtask: [1, 100]" in text
    assert "Propose exactly 4 new configurations that are not in the history" in text
    assert "strict JSON" in text
    # the full history
    assert [Allocation.parse(p) for p, *_ in history_lines(text)] == [r.allocation for r in history]
    # the first guideline and the two most recent, in that order
    g = section(text, "Guidelines from earlier analysis:", "Propose exactly")
    assert "GUIDELINE-2" not in g
    assert g.index("GUIDELINE-1") < g.index("GUIDELINE-3") < g.index("GUIDELINE-4")
    # the JSON example: the largest model once per stage, in a form the parser accepts
    example = json.loads(text.rstrip().splitlines()[-1])
    assert example == {
        "candidates": [
            {"retrieval": {"model": "Qwen2.5-72B", "samples": 1}, "qa": {"model": "Llama-3.1-70B", "samples": 1}}
        ]
    }
    parsed = parse_trials(json.dumps(example), space, set(), 1)
    assert [str(p.allocation) for p in parsed.proposals] == [HISTORY[0]] and not parsed.counts


@pytest.mark.parametrize(
    ("guidelines", "shown", "hidden"),
    [
        ([], ["(none yet)"], []),
        (["G-one"], ["G-one"], []),
        (["G-one", "G-two"], ["G-one", "G-two"], []),
        (["G-one", "G-two", "G-three"], ["G-one", "G-two", "G-three"], []),
        (["G-one", "G-two", "G-three", "G-four", "G-five"], ["G-one", "G-four", "G-five"], ["G-two", "G-three"]),
    ],
    ids=["none", "one", "two", "three", "five"],
)
def test_trials_prompt_guideline_selection(prompts, task, space, history, guidelines, shown, hidden):
    g = section(
        render_trials(prompts, task, space, history, guidelines, 2), "Guidelines from earlier analysis:", "Propose"
    )
    assert [s for s in shown if s in g] == shown
    assert all(g.count(s) == 1 for s in shown)
    assert not [s for s in hidden if s in g]
    assert [g.index(s) for s in shown] == sorted(g.index(s) for s in shown)


def test_trials_prompt_in_flops_prints_the_flops_function(prompts, task):
    space = _ctx("budget.flops=2e15").space
    text = render_trials(prompts, task, space, [], [], 3)
    assert BUDGET_FUNCTIONS["flops"] in text and BUDGET_FUNCTIONS["units"] not in text
    budget = budget_function(text)
    assert budget(72e9, 1, 2048, 128) == pytest.approx(space.stage_cost("retrieval", "Qwen2.5-72B", 1))
    assert "Total budget: 2e+15 flops" in text and "Search history (every trial evaluated so far):\n(none)" in text


@pytest.mark.parametrize(
    "overrides",
    [
        ["cost.count_fusion=true"],
        ["cost.prefix_sharing=false"],
        ["budget.usd=0.004"],
        ["budget.usd=0.004", "cost.count_fusion=true"],
        ["budget.flops=2e15", "cost.count_fusion=true", "cost.prefix_sharing=false"],
    ],
    ids=["fusion-charged", "no-prefix-sharing", "usd", "usd-fusion-charged", "flops-both"],
)
def test_the_budget_function_shown_prices_as_the_space_does(prompts, task, overrides):
    """Whatever the cost settings, a proposal costed with the prompt's function is feasible exactly
    when the space says so: the function gives every stage cost the space computes."""
    space = _ctx(*overrides).space
    text = render_trials(prompts, task, space, [], [], 2)
    budget = budget_function(text)
    usd = space.budget.kind == "usd"
    for stage in space.stages:
        for m in stage.models:
            if usd:
                assert f"{m.name} ({m.params / 1e9:g}B parameters; ${m.price_per_mtok:g} per million tokens)" in text
            for n in (1, 2, 7, 100):
                args = [m.price_per_mtok if usd else m.params, n, stage.prompt_tokens, stage.output_tokens]
                if space.cost_model.count_fusion:
                    args.append(stage.fusion == "llm")
                assert budget(*args) == pytest.approx(space.stage_cost(stage.name, m.name, n), rel=1e-12)


def test_measured_lengths_and_per_stage_ranges_are_shown(prompts, task):
    from components.agent.prompts import sample_range_text, subtasks_text
    from components.space import SearchSpace

    space = _ctx("task=taskbench").space
    assert sample_range_text(space) == "decomposition [1, 60], tool_selection [1, 30], parameter_prediction [1, 20]"
    assert "Available samples per subtask: decomposition [1, 60], tool_selection [1, 30]" in render_trials(
        prompts, task, space, [], [], 2
    )
    # measured lengths price a model (a real backend): the prompt shows them next to it
    cm = CostModel(space.stages, lengths={("tool_selection", "Llama-3.1-8B"): (900.0, 300.0)})
    measured = SearchSpace(space.stages, space.budget, cm)
    text = subtasks_text(measured)
    assert "Llama-3.1-8B (8B parameters; measured prompt length 900 tokens, generation length 300 tokens)" in text
    assert text.count("measured") == 1


# --- prompt folders -----------------------------------------------------------------------------


@pytest.fixture
def prompt_copy(tmp_path):
    from flows.build import PROMPTS_DIR

    d = tmp_path / "prompts"
    shutil.copytree(PROMPTS_DIR, d)
    return d


def test_prompt_copy_loads_and_renders_literal_dollars(prompt_copy, task, space):
    f = prompt_copy / "system.txt"
    f.write_text(f.read_text() + "\nBudgets are not $$ amounts.\n")
    p = PromptSet(prompt_copy)
    assert p.render("system").endswith("Budgets are not $ amounts.\n")
    braced = prompt_copy / "trials.txt"
    braced.write_text(braced.read_text().replace("$history", "${history}"))
    assert "Parameters:" not in render_trials(PromptSet(prompt_copy), task, space, [], [], 1)


def _delete(name):
    return lambda d: (d / name).unlink()


def _edit(name, old, new):
    def apply(d):
        f = d / name
        text = f.read_text()
        assert old in text
        f.write_text(text.replace(old, new))

    return apply


@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        (_delete("trials.txt"), ["prompt file missing", "trials.txt"]),
        (_delete("guidelines.txt"), ["prompt file missing", "guidelines.txt"]),
        (_delete("system.txt"), ["prompt file missing", "system.txt"]),
        (_edit("trials.txt", "$history", ""), ["trials.txt", "lacks required placeholder", "$history"]),
        (_edit("trials.txt", "$budget_function", "(see above)"), ["trials.txt", "$budget_function"]),
        (_edit("guidelines.txt", "$recent_history", ""), ["guidelines.txt", "$recent_history"]),
        (_edit("initial_guidelines.txt", "$total_budget", "a lot"), ["initial_guidelines.txt", "$total_budget"]),
        (
            _edit("guidelines.txt", "$old_history", "$old_history $budget_left"),
            ["guidelines.txt", "unknown placeholder", "$budget_left"],
        ),
        (
            _edit("initial_guidelines.txt", "$history", "$history $old_history"),
            ["initial_guidelines.txt", "unknown", "$old_history"],
        ),
        (_edit("system.txt", "expert", "$role expert"), ["system.txt", "unknown placeholder", "$role"]),
        (_edit("trials.txt", "$example", "$example costs $5"), ["trials.txt", "malformed placeholder"]),
    ],
    ids=[
        "missing-trials",
        "missing-guidelines",
        "missing-system",
        "trials-without-history",
        "trials-without-budget-function",
        "guidelines-without-recent-history",
        "initial-without-total-budget",
        "unknown-placeholder",
        "placeholder-of-another-prompt",
        "placeholder-in-system",
        "bare-dollar",
    ],
)
def test_bad_prompt_folders_fail_at_start_with_the_name(prompt_copy, breakage, expected):
    breakage(prompt_copy)
    with pytest.raises(ConfigError) as err:
        PromptSet(prompt_copy)
    for part in expected:
        assert part in str(err.value)


def test_missing_prompt_folder(tmp_path):
    with pytest.raises(ConfigError, match="prompt file missing"):
        PromptSet(tmp_path / "nowhere")


# --- Insight-1 probes ---------------------------------------------------------------------------


def probe_list(space) -> list[tuple[str, str]]:
    return [(str(a), stage) for a, stage, _ in insight1_probes(space)]


PAPER_EXAMPLE = [  # digest §5.3: 2Wiki at B ≈ 929; the QA probe with Llama-70B x1 is the first one again
    ("retrieval=Qwen2.5-72B:1 qa=Llama-3.1-70B:1", "retrieval"),
    ("retrieval=Qwen2.5-32B:22 qa=Llama-3.1-70B:1", "retrieval"),
    ("retrieval=Qwen2.5-7B:60 qa=Llama-3.1-70B:1", "retrieval"),
    ("retrieval=Qwen2.5-72B:1 qa=Llama-3.1-8B:39", "qa"),
    ("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:60", "qa"),
]


def test_probes_reproduce_the_paper_example_at_the_default_budget(space):
    assert space.budget.value == pytest.approx(928.667, abs=1e-3)
    probes = insight1_probes(space)
    assert [(str(a), st) for a, st, _ in probes] == PAPER_EXAMPLE
    for a, stage, why in probes:
        assert space.is_feasible(a) and space.validate(a) == a
        assert why.startswith(f"Insight 1 probe of stage '{stage}'")
    # every model of a stage gets the same stage budget: one sample of its largest model
    for stage_name, largest in (("retrieval", "Qwen2.5-72B"), ("qa", "Llama-3.1-70B")):
        stage = next(s for s in space.stages if s.name == stage_name)
        b = space.stage_cost(stage_name, largest, 1)
        for a, st, _ in probes:
            if st != stage_name:
                continue
            model, n = a[stage_name]
            assert space.stage_cost(stage_name, model, n) <= b + 1e-9
            assert n == 60 or space.stage_cost(stage_name, model, n + 1) > b  # as many samples as it buys (cap 60)
            assert stage.model(model)


def test_probes_at_a_high_budget_are_the_same(space):
    assert probe_list(_ctx("budget.units=2000").space) == PAPER_EXAMPLE


def test_probes_at_a_low_budget_downsize(space):
    low = _ctx("budget.units=500").space
    probes = insight1_probes(low)
    assert [(str(a), st) for a, st, _ in probes] == [
        # retrieval: the 72B does not fit next to the cheapest QA; the stage budget is 500 - 3 (Llama-3B x1)
        ("retrieval=Qwen2.5-32B:7 qa=Llama-3.2-3B:1", "retrieval"),
        ("retrieval=Qwen2.5-7B:60 qa=Llama-3.2-3B:1", "retrieval"),
        # QA: its largest model fits, but the 72B retriever does not, so retrieval runs its smallest model
        ("retrieval=Qwen2.5-7B:1 qa=Llama-3.1-70B:1", "qa"),
        ("retrieval=Qwen2.5-7B:1 qa=Llama-3.1-8B:39", "qa"),
        ("retrieval=Qwen2.5-7B:1 qa=Llama-3.2-3B:60", "qa"),
    ]
    b_retrieval = 500 - low.stage_cost("qa", "Llama-3.2-3B", 1)
    assert low.stage_cost("retrieval", "Qwen2.5-72B", 1) > b_retrieval
    assert low.stage_cost("retrieval", "Qwen2.5-32B", 7) <= b_retrieval < low.stage_cost("retrieval", "Qwen2.5-32B", 8)
    for a, _, _ in probes:
        assert low.is_feasible(a) and "Qwen2.5-72B" not in str(a)


def test_a_probe_stopped_short_of_the_stage_budget_says_so():
    """ChatDev's coding range [1, 10] stops the 3B probe at 174 of the 745-unit stage budget: its
    reason must not read as a comparison at equal budget."""
    space = _ctx("task=chatdev").space
    why = {str(a): w for a, _, w in insight1_probes(space)}
    coding_3b = why["coding=Llama-3.2-3B:10 static_test=Llama-3.1-70B:1 dynamic_test=Llama-3.1-70B:1"]
    assert coding_3b.endswith(
        "at the stage budget 745 units (other stages fixed); capped by the stage's range [1, 10], it spends 174 of them"
    )
    static_3b = why["coding=Llama-3.1-70B:1 static_test=Llama-3.2-3B:60 dynamic_test=Llama-3.1-70B:1"]
    assert "capped by the 60-sample cap, it spends 494 of them" in static_3b
    coding_70b = why["coding=Llama-3.1-70B:1 static_test=Llama-3.1-70B:1 dynamic_test=Llama-3.1-70B:1"]
    assert "capped" not in coding_70b  # one sample is the whole stage budget


def test_probe_cap(space):
    capped = [(str(a), st) for a, st, _ in insight1_probes(space, cap=30)]
    assert ("retrieval=Qwen2.5-7B:30 qa=Llama-3.1-70B:1", "retrieval") in capped
    assert ("retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:30", "qa") in capped
    assert ("retrieval=Qwen2.5-32B:22 qa=Llama-3.1-70B:1", "retrieval") in capped  # under the cap: unchanged
