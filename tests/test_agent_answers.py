"""The reasoner-answer parser (``components.agent.answers``) against a corpus of malformed answers.

Every case asserts the exact proposals that come out and the exact problem counts. The space is the
real 2Wiki one: retrieval Qwen2.5-7B/32B/72B, QA Llama-3.2-3B/3.1-8B/3.1-70B, samples [1, 100],
default budget ≈ 929 units (one sample of the largest model per stage).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from components.agent import answers
from components.agent.answers import MAX_ANSWER_CHARS, extract_json, parse_trials
from components.space import Allocation


@pytest.fixture(scope="module")
def space():
    from flows.build import build
    from flows.cli import compose

    return build(compose(["task=2wiki"]), with_data=False).space


def cand(r_model, r_samples, q_model, q_samples, **extra) -> dict:
    return {
        "retrieval": {"model": r_model, "samples": r_samples},
        "qa": {"model": q_model, "samples": q_samples},
        **extra,
    }


A = cand("Qwen2.5-7B", 10, "Llama-3.2-3B", 20)
A_KEY = "retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:20"
B = cand("Qwen2.5-32B", 5, "Llama-3.1-8B", 8)
B_KEY = "retrieval=Qwen2.5-32B:5 qa=Llama-3.1-8B:8"
C = cand("Qwen2.5-72B", 1, "Llama-3.2-3B", 10)
C_KEY = "retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:10"
D = cand("Qwen2.5-7B", 30, "Llama-3.1-70B", 2)
D_KEY = "retrieval=Qwen2.5-7B:30 qa=Llama-3.1-70B:2"
FALLBACK = "retrieval=Qwen2.5-32B:5 qa=Llama-3.1-8B:20"  # the best trial so far
STRICT = json.dumps({"candidates": [A, B]})


def qa_samples(value) -> str:
    """An answer whose only candidate gives the QA stage ``value`` samples (retrieval as in A)."""
    c = cand("Qwen2.5-7B", 10, "Llama-3.2-3B", value)
    return json.dumps(c)


def models(r_model: str, q_model: str) -> str:
    return json.dumps(cand(r_model, 10, q_model, 20))


@dataclass
class Case:
    text: str | None
    proposals: list[str]
    counts: dict[str, int]
    k: int = 2
    seen: tuple[str, ...] = ()
    fallback: str | None = FALLBACK


def _endless_repetition() -> tuple[str, int]:
    """An answer that repeats the same candidate forever and never closes (cut at MAX_ANSWER_CHARS)."""
    head, piece = '{"candidates": [', json.dumps(A) + ", "
    text = head + piece * (3 * MAX_ANSWER_CHARS // len(piece))
    complete = (MAX_ANSWER_CHARS - len(head) + 2) // len(piece)  # copies whose "}" lies before the cut
    return text, complete


ENDLESS_REPEAT, N_COMPLETE = _endless_repetition()

CASES = {
    # --- structure -----------------------------------------------------------------------------
    "strict-json": Case(STRICT, [A_KEY, B_KEY], {}),
    "bare-list": Case(json.dumps([A, B]), [A_KEY, B_KEY], {}),
    "single-candidate-dict": Case(json.dumps(A), [A_KEY], {}, k=1),
    "trial_N-keys": Case(json.dumps({"trial_1": A, "trial_2": B}), [A_KEY, B_KEY], {}),
    "other-list-key-trials": Case(json.dumps({"trials": [A, B], "note": "balanced"}), [A_KEY, B_KEY], {}),
    "fenced-with-prose": Case(
        "Based on the guidelines I propose two trials.\n```json\n" + STRICT + "\n```\nBoth fit the budget.",
        [A_KEY, B_KEY],
        {},
    ),
    "fence-without-language": Case("Here:\n```\n" + STRICT + "\n```", [A_KEY, B_KEY], {}),
    "prose-with-brackets-before-json": Case(
        "Samples must be in [1, 100] and the total under {budget}. My answer: " + STRICT + " (end)", [A_KEY, B_KEY], {}
    ),
    # --- near-JSON repaired --------------------------------------------------------------------
    "single-quotes-python-literals": Case(
        "{'candidates': [{'retrieval': {'model': 'Qwen2.5-7B', 'samples': 10}, "
        "'qa': {'model': 'Llama-3.2-3B', 'samples': 20}, 'insight': None, 'final': True}]}",
        [A_KEY],
        {"json_repaired": 1},
        k=1,
    ),
    "trailing-commas": Case(
        '{"candidates": [{"retrieval": {"model": "Qwen2.5-7B", "samples": 10,}, '
        '"qa": {"model": "Llama-3.2-3B", "samples": 20,},},],}',
        [A_KEY],
        {"json_repaired": 1},
        k=1,
    ),
    "bare-keys": Case(
        '{candidates: [{retrieval: {model: "Qwen2.5-7B", samples: 10}, qa: {model: "Llama-3.2-3B", samples: 20}}]}',
        [A_KEY],
        {"json_repaired": 1},
        k=1,
    ),
    "line-comments": Case(
        '{"candidates": [\n  // cheap retriever, many samples\n  {"retrieval": {"model": "Qwen2.5-7B", "samples": 10},'
        ' // Insight 2\n   "qa": {"model": "Llama-3.2-3B", "samples": 20}}\n]}',
        [A_KEY],
        {"json_repaired": 1},
        k=1,
    ),
    "cut-off-inside-second-candidate": Case(
        STRICT[: STRICT.index('"Llama-3.1-8B"') + 6], [A_KEY], {"json_repaired": 1, "too_few": 1}
    ),
    "cut-off-between-candidates": Case(STRICT[: STRICT.index(json.dumps(B))], [A_KEY], {"json_repaired": 1}, k=1),
    "cut-off-inside-first-candidate": Case(
        STRICT[: STRICT.index('"Llama-3.2-3B"') + 4], [], {"json_repaired": 1, "too_few": 1}, k=1
    ),
    "cut-off-in-open-fence": Case(
        "```json\n" + STRICT[: STRICT.index('"samples": 8')], [A_KEY], {"json_repaired": 1, "too_few": 1}
    ),
    "cut-off-trial_N-dict": Case(
        json.dumps({"trial_1": A, "trial_2": B})[:-30], [A_KEY], {"json_repaired": 1, "too_few": 1}
    ),
    # --- per-stage forms -----------------------------------------------------------------------
    "model-colon-samples-strings": Case(
        json.dumps({"candidates": [{"retrieval": "Qwen2.5-7B:10", "qa": "Llama-3.2-3B:20"}]}), [A_KEY], {}, k=1
    ),
    "model-string-without-samples": Case(
        json.dumps({"retrieval": "Qwen2.5-7B", "qa": "Llama-3.2-3B:20"}),
        ["retrieval=Qwen2.5-7B:1 qa=Llama-3.2-3B:20"],
        {"missing_samples": 1},
        k=1,
    ),
    "subtask_N-single-candidate": Case(
        json.dumps(
            {"subtask_1": {"model": "Qwen2.5-7B", "samples": 10}, "subtask_2": {"model": "Llama-3.2-3B", "samples": 20}}
        ),
        [A_KEY],
        {},
        k=1,
    ),
    "subtask_N-in-candidates": Case(
        json.dumps(
            {
                "candidates": [
                    {
                        "subtask_1": {"model": "Qwen2.5-7B", "samples": 10},
                        "subtask_2": {"model": "Llama-3.2-3B", "samples": 20},
                    },
                    {
                        "Subtask 1": {"model": "Qwen2.5-32B", "samples": 5},
                        "Subtask 2": {"model": "Llama-3.1-8B", "samples": 8},
                    },
                ]
            }
        ),
        [A_KEY, B_KEY],
        {},
    ),
    "stage-names-other-case": Case(
        json.dumps(
            {"RETRIEVAL": {"Model": "Qwen2.5-7B", "Samples": 10}, "QA": {"MODEL": "Llama-3.2-3B", "num_samples": 20}}
        ),
        [A_KEY],
        {},
        k=1,
    ),
    # --- model names ---------------------------------------------------------------------------
    "model-wrong-case": Case(models("qwen2.5-7b", "LLAMA-3.2-3B"), [A_KEY], {}, k=1),
    "model-lowercase-b": Case(
        json.dumps(cand("Qwen2.5-72b", 1, "Llama-3.2-3b", 20)), ["retrieval=Qwen2.5-72B:1 qa=Llama-3.2-3B:20"], {}, k=1
    ),
    "model-close-typo": Case(models("Qwen2.5-7", "Llama-3.2-3"), [A_KEY], {"model_repaired": 2}, k=1),
    "model-size-only": Case(models("the 7B qwen", "the 3B llama"), [A_KEY], {"model_repaired": 2}, k=1),
    "model-size-in-other-spelling": Case(
        models("Qwen-2.5 7b", "Llama3.2-3B-Instruct"), [A_KEY], {"model_repaired": 2}, k=1
    ),
    "model-unknown-dropped": Case(
        json.dumps([cand("Qwen2.5-7B", 10, "GPT-4o", 20), B]), [B_KEY], {"unknown_model": 1, "too_few": 1}
    ),
    "model-null-unknown": Case(models(None, "Llama-3.2-3B"), [], {"unknown_model": 1, "too_few": 1}, k=1),
    # --- samples -------------------------------------------------------------------------------
    "samples-string-with-words": Case(qa_samples("20 samples"), [A_KEY], {}, k=1),
    "samples-float-rounded": Case(qa_samples(19.6), [A_KEY], {}, k=1),
    "samples-zero-clipped": Case(
        qa_samples(0), ["retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:1"], {"samples_out_of_range": 1}, k=1
    ),
    "samples-negative-clipped": Case(
        qa_samples(-3), ["retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:1"], {"samples_out_of_range": 1}, k=1
    ),
    "samples-negative-string-clipped": Case(
        qa_samples("-3"), ["retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:1"], {"samples_out_of_range": 1}, k=1
    ),
    "samples-above-max-clipped": Case(
        qa_samples(250), ["retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:100"], {"samples_out_of_range": 1}, k=1
    ),
    "samples-missing": Case(
        json.dumps({"retrieval": {"model": "Qwen2.5-7B", "samples": 10}, "qa": {"model": "Llama-3.2-3B"}}),
        ["retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:1"],
        {"missing_samples": 1},
        k=1,
    ),
    "samples-words-only": Case(
        qa_samples("many"), ["retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:1"], {"missing_samples": 1}, k=1
    ),
    "samples-boolean": Case(
        qa_samples(True), ["retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:1"], {"missing_samples": 1}, k=1
    ),
    "samples-NaN": Case(
        qa_samples(float("nan")), ["retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:1"], {"missing_samples": 1}, k=1
    ),
    "samples-Infinity": Case(
        qa_samples(float("inf")), ["retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:1"], {"missing_samples": 1}, k=1
    ),
    # --- stages --------------------------------------------------------------------------------
    "missing-stage-from-fallback": Case(
        json.dumps({"retrieval": {"model": "Qwen2.5-7B", "samples": 10}}),
        ["retrieval=Qwen2.5-7B:10 qa=Llama-3.1-8B:20"],
        {"missing_stage": 1},
        k=1,
    ),
    "missing-stage-without-fallback": Case(
        json.dumps({"retrieval": {"model": "Qwen2.5-7B", "samples": 10}}),
        [],
        {"missing_stage": 1, "too_few": 1},
        k=1,
        fallback=None,
    ),
    # --- budget --------------------------------------------------------------------------------
    "over-budget-one-stage-projected": Case(
        json.dumps(cand("Qwen2.5-72B", 1, "Llama-3.1-70B", 50)),
        ["retrieval=Qwen2.5-72B:1 qa=Llama-3.1-70B:1"],
        {"over_budget": 1},
        k=1,
    ),
    "over-budget-samples-projected": Case(
        json.dumps(cand("Qwen2.5-32B", 30, "Llama-3.2-3B", 10)),
        ["retrieval=Qwen2.5-32B:27 qa=Llama-3.2-3B:10"],
        {"over_budget": 1},
        k=1,
    ),
    "over-budget-projects-onto-seen": Case(
        json.dumps([cand("Qwen2.5-72B", 1, "Llama-3.1-70B", 50), A]),
        [A_KEY],
        {"over_budget": 1, "duplicate": 1},
        seen=("retrieval=Qwen2.5-72B:1 qa=Llama-3.1-70B:1",),
        k=1,
    ),
    # --- duplicates and batch size -------------------------------------------------------------
    "duplicate-of-archived": Case(STRICT, [B_KEY], {"duplicate": 1, "too_few": 1}, seen=(A_KEY,)),
    "duplicate-within-batch": Case(json.dumps([A, A, B]), [A_KEY, B_KEY], {"duplicate": 1, "too_few": 1}, k=3),
    "duplicate-after-model-repair": Case(
        json.dumps([A, cand("qwen2.5-7b", "10", "the 3B llama", 20.0)]),
        [A_KEY],
        {"duplicate": 1, "model_repaired": 1},
        k=1,
    ),
    "too-many": Case(json.dumps([A, B, C, D]), [A_KEY, B_KEY], {"too_many": 2}),
    "too-many-after-duplicates": Case(
        json.dumps([A, B, C, D]), [B_KEY, C_KEY], {"duplicate": 1, "too_many": 1}, seen=(A_KEY,)
    ),
    "too-few": Case(json.dumps([A]), [A_KEY], {"too_few": 1}, k=3),
    # --- unusable answers ----------------------------------------------------------------------
    "empty-string": Case("", [], {"empty_answer": 1}),
    "none": Case(None, [], {"empty_answer": 1}),
    "whitespace": Case("  \n\t \n", [], {"empty_answer": 1}),
    "pure-prose": Case(
        "I'd keep the retriever small and spend the rest on more QA samples; 20 seems right.", [], {"no_json": 1}
    ),
    "endless-junk-after-json": Case(
        STRICT + (" and so on {again} [and again]" * 12_000), [A_KEY, B_KEY], {"truncated_answer": 1}
    ),
    "endless-repetition-never-closed": Case(
        ENDLESS_REPEAT, [A_KEY], {"truncated_answer": 1, "json_repaired": 1, "duplicate": N_COMPLETE - 1, "too_few": 1}
    ),
    "deeply-nested-brackets": Case("[" * 5000 + "]" * 5000, [], {"no_json": 1}),
    "wrong-shape-number": Case("42", [], {"bad_structure": 1, "too_few": 1}),
    "wrong-shape-string": Case('"retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:20"', [], {"bad_structure": 1, "too_few": 1}),
    "wrong-shape-list-of-numbers": Case("[1, 2, 3]", [], {"bad_structure": 1, "too_few": 1}),
    "wrong-shape-null": Case("null", [], {"bad_structure": 1}),
    "wrong-shape-dict-without-candidates": Case(
        '{"note": "no idea", "score": 0.5}', [], {"bad_structure": 1, "too_few": 1}
    ),
}


@pytest.mark.parametrize("case", [pytest.param(c, id=name) for name, c in CASES.items()])
def test_answer_corpus(space, case: Case):
    seen = {Allocation.parse(s) for s in case.seen}
    fallback = Allocation.parse(case.fallback) if case.fallback else None
    parsed = parse_trials(case.text, space, seen, case.k, fallback)
    assert [str(p.allocation) for p in parsed.proposals] == case.proposals
    assert dict(parsed.counts) == case.counts
    assert bool(parsed.error) == (not case.proposals)
    for p in parsed.proposals:  # whatever came out is usable as is
        assert space.validate(p.allocation) == p.allocation
        assert space.is_feasible(p.allocation)
        assert p.allocation not in seen


def test_corpus_meets_every_problem_the_parser_counts():
    # every problem kind the parser can count (read from its source) has at least one case
    source = Path(answers.__file__).read_text()
    kinds = set(re.findall(r'counts\["(\w+)"\] \+= 1', source))
    assert len(kinds) >= 10, kinds
    met = set().union(*(case.counts for case in CASES.values()))
    assert kinds <= met, sorted(kinds - met)


def test_endless_answer_is_cut_to_the_limit(space):
    counts: Counter = Counter()
    text = STRICT + "x" * (3 * MAX_ANSWER_CHARS)
    assert len(text) > 300_000
    assert extract_json(text, counts) == {"candidates": [A, B]}
    assert counts == {"truncated_answer": 1}


def test_over_budget_uses_space_project(space):
    for text in (
        json.dumps(cand("Qwen2.5-72B", 1, "Llama-3.1-70B", 50)),
        json.dumps(cand("Qwen2.5-32B", 30, "Llama-3.2-3B", 10)),
        json.dumps(cand("Qwen2.5-72B", 10, "Llama-3.2-3B", 20)),
    ):
        raw = Allocation.parse(
            {st: {"model": v["model"], "samples": v["samples"]} for st, v in json.loads(text).items()}
        )
        assert not space.is_feasible(raw)
        parsed = parse_trials(text, space, set(), 1)
        (p,) = parsed.proposals
        assert p.allocation == space.project(raw) and space.is_feasible(p.allocation)
        assert parsed.counts == {"over_budget": 1}
        assert any(r.startswith("over budget") for r in p.repairs)


def test_repairs_insight_and_rationale_are_kept(space):
    text = json.dumps(
        {
            "candidates": [
                cand(
                    "the 7B qwen", 10, "Llama-3.2-3B", 250, insight="2", rationale="more QA samples until the plateau"
                ),
                {"retrieval": {"model": "Qwen2.5-32B", "samples": 5}, "reason": "keep the 32B retriever"},
            ]
        }
    )
    parsed = parse_trials(text, space, set(), 2, Allocation.parse(FALLBACK))
    first, second = parsed.proposals
    assert str(first.allocation) == "retrieval=Qwen2.5-7B:10 qa=Llama-3.2-3B:100"
    assert first.insight == "2" and first.rationale == "more QA samples until the plateau"
    assert any("(size)" in r for r in first.repairs) and any("range [1, 100]" in r for r in first.repairs)
    assert str(second.allocation) == "retrieval=Qwen2.5-32B:5 qa=Llama-3.1-8B:20"
    assert second.rationale == "keep the 32B retriever" and second.insight == ""
    assert any("stage 'qa' missing" in r for r in second.repairs)
    assert parsed.counts == {"model_repaired": 1, "samples_out_of_range": 1, "missing_stage": 1}


def test_k_zero_keeps_nothing(space):
    parsed = parse_trials(STRICT, space, set(), 0)
    assert parsed.proposals == [] and parsed.counts == {"too_many": 2}


# --- property-style: garbage never raises, and whatever comes out is usable ---------------------------

TOKENS = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    ":",
    ",",
    " ",
    "\n",
    "```json",
    "```",
    "//",
    "candidates",
    "retrieval",
    "qa",
    "QA",
    "subtask_1",
    "subtask_2",
    "trial_1",
    "model",
    "samples",
    "Qwen2.5-7B",
    "Qwen2.5-72B",
    "qwen2.5-32b",
    "Llama-3.2-3B",
    "Llama-3.1-70B",
    "llama 8B",
    "GPT-4o",
    "0",
    "1",
    "3",
    "10",
    "-3",
    "9.6",
    "250",
    "1e400",
    "NaN",
    "Infinity",
    "True",
    "None",
    "null",
    '"Qwen2.5-7B:10"',
    "\\",
    '\\"',
]
MODEL_NAMES = {
    "retrieval": ["Qwen2.5-7B", "Qwen2.5-32B", "Qwen2.5-72B", "qwen2.5-72b", "Qwen-32B", "the 7B qwen", "GPT-4o"],
    "qa": ["Llama-3.2-3B", "Llama-3.1-8B", "Llama-3.1-70B", "llama-3.2-3b", "Llama3.1-8B", "the 3B llama", "Mistral"],
}
# QA samples stay small: an allocation over budget in both stages makes SearchSpace.project search
# all pairs of options (about a second each), which this test is not about
SAMPLE_VALUES = {
    "retrieval": [0, 1, 2, 3, 5, 10, 30, -3, 9.6, "7 samples", "many", 250, None],
    "qa": [0, 1, 2, 3, 5, 10, 20, 30, -3, 9.6, "7 samples", "many", None],
}


def _structured(rng: random.Random) -> str:
    """Near-valid answers: random candidates in one of the accepted shapes, then a few mutations."""
    cands = []
    for _ in range(rng.randint(0, 6)):
        c = {}
        for st in ("retrieval", "qa"):
            if rng.random() < 0.9:
                entry = {"model": rng.choice(MODEL_NAMES[st])}
                s = rng.choice(SAMPLE_VALUES[st])
                if s is not None:
                    entry["samples"] = s
                c[st if rng.random() < 0.8 else st.upper()] = entry
        cands.append(c)
    text = json.dumps(rng.choice([{"candidates": cands}, cands, {f"trial_{i}": c for i, c in enumerate(cands, 1)}]))
    for _ in range(rng.randint(0, 3)):
        i = rng.randrange(len(text) + 1)
        op = rng.random()
        if op < 0.4:
            text = text[:i] + text[i + rng.randint(1, 8) :]
        elif op < 0.8:
            text = text[:i] + rng.choice(TOKENS) + text[i:]
        else:
            text = text[:i]
    return text


def test_random_garbage_never_raises_and_yields_usable_proposals(space):
    rng = random.Random(20250801)
    seen = {Allocation.parse(A_KEY), Allocation.parse("retrieval=Qwen2.5-72B:1 qa=Llama-3.1-70B:1")}
    fallback = Allocation.parse(FALLBACK)
    stage_models = {s.name: {m.name for m in s.models} for s in space.stages}
    produced = 0
    for i in range(400):
        text = "".join(rng.choices(TOKENS, k=rng.randint(0, 60))) if i % 2 else _structured(rng)
        k = rng.randint(1, 4)
        parsed = parse_trials(text, space, seen, k, rng.choice([None, fallback]))
        allocations = [p.allocation for p in parsed.proposals]
        assert len(allocations) <= k
        assert len(set(allocations)) == len(allocations), text
        assert all(n > 0 for n in parsed.counts.values())
        for a in allocations:
            assert [st for st, _, _ in a.choices] == [s.name for s in space.stages], text
            for stage in space.stages:
                model, n = a[stage.name]
                assert model in stage_models[stage.name], text
                assert stage.min_samples <= n <= stage.max_samples, text
            assert space.is_feasible(a), text
            assert a not in seen, text
        produced += len(allocations)
    assert produced > 50  # the structured half does produce proposals
