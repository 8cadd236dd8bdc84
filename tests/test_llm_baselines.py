"""The LLM baselines (llm_zs, mlcopilot, agenthpo) against a scripted OpenAI-compatible server.

A tiny http.server thread on 127.0.0.1 answers /v1/models and /v1/chat/completions with canned
answers (some malformed, some HTTP errors) to the real ``OpenAIReasoner``; the searchers are driven
round by round on the simulator, as the search flow drives them.
"""

from __future__ import annotations

import csv
import json
import shutil
import socket
from collections.abc import Callable

import numpy as np
import pytest

from components.agent.prompts import history_text
from components.bank import SampleBank
from components.errors import ConfigError
from components.searchers import SEARCHERS
from components.searchers.llm_baselines import (
    BASELINE_PROMPTS_DIR,
    AgentHPOSearcher,
    LLMZeroShotSearcher,
    MLCopilotSearcher,
)
from components.space import Allocation
from flows.build import build, make_searcher
from flows.cli import compose, main
from tests.chat_server import NOT_FOUND, ChatServer, completion, model_list

NAMES = ("llm_zs", "mlcopilot", "agenthpo")


class ScriptedLLM(ChatServer):
    """An OpenAI-compatible server whose chat answers come from a script.

    ``script``: answers used in order, each a text or an int (that HTTP status, an error). When it is
    exhausted, ``default(prompt)`` answers. Every chat request's (system, user) pair is kept in ``prompts``.
    """

    def __init__(self, default: Callable[[str], str | int] | None = None):
        self.script: list[str | int] = []
        self.default = default or (lambda prompt: 500)
        self.prompts: list[tuple[str, str]] = []
        super().__init__()

    def answer(self, method, path, headers, payload):
        if method == "GET":
            return (200, model_list(["tiny"])) if path.endswith("/models") else NOT_FOUND
        if not path.endswith("/chat/completions"):
            return NOT_FOUND
        msgs = payload.get("messages", [])
        system = next((m["content"] for m in msgs if m["role"] == "system"), "")
        user = next((m["content"] for m in msgs if m["role"] == "user"), "")
        self.prompts.append((system, user))
        answer = self.script.pop(0) if self.script else self.default(user)
        if isinstance(answer, int):
            return answer, {"error": {"message": f"scripted HTTP {answer}", "type": "server_error"}}
        return 200, completion(answer, "tiny", 100, 20)


@pytest.fixture
def llm():
    s = ScriptedLLM()
    yield s
    s.close()


def overrides(llm: ScriptedLLM, name: str, *extra: str) -> list[str]:
    return [
        f"searcher={name}",
        "reasoner=openai",
        f"reasoner.base_url={llm.url}",
        "reasoner.model=tiny",
        "reasoner.max_retries=0",
        "reasoner.timeout_s=10",
        "data.train_size=8",
        *extra,
    ]


def setup(llm: ScriptedLLM, name: str, *extra: str):
    """Build as the CLI does (the reasoner is checked against the server), then the searcher and an environment."""
    ctx = build(compose(overrides(llm, name, *extra)))  # calls make_searcher(check=True): GET /v1/models
    searcher = make_searcher(ctx.cfg, len(ctx.train), check=False)
    return ctx, searcher, ctx.environment(bank=SampleBank(None))


def feasible(space, n: int, seed: int = 1) -> list[Allocation]:
    out = list(dict.fromkeys(space.sample(np.random.default_rng(seed), 4 * n)))
    return out[:n]


def answer(*allocs: Allocation, rationale: str | None = None, fence: bool = False) -> str:
    cands = []
    for a in allocs:
        c = a.to_dict()
        if rationale is not None:
            c["rationale"] = f"{rationale} {a}"
        cands.append(c)
    text = json.dumps({"candidates": cands})
    return f"Here you go:\n```json\n{text}\n```\nGood luck!" if fence else text


def run_round(searcher, env, history, k):
    props = searcher.propose(env.space, list(history), k)
    if props:
        results = env.evaluate([p.allocation for p in props])
        history.extend(results)
        searcher.observe(results)
    return props


def check_batch(space, props, history_before, k):
    allocs = [p.allocation for p in props]
    assert len(allocs) <= k and len(set(allocs)) == len(allocs)  # distinct
    assert all(space.is_feasible(a) for a in allocs)  # feasible
    assert not set(allocs) & {r.allocation for r in history_before}  # new
    for p in props:
        assert {"source", "repairs", "rationale", "round"} <= set(p.trace)
        assert p.trace["source"].endswith("(openai)") and p.rationale


# -- refusal without an LLM ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_refuses_without_an_llm_reasoner(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", f"searcher={name}"]) == 2  # reasoner=rules is the default
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert (
        f"{name} is an LLM method and needs an LLM reasoner: reasoner=openai reasoner.base_url=... reasoner.model=... (or reasoner=vllm)"
        in err
    )
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / ".agenttts").exists()


def test_registered_and_constructors_refuse_rules(compose_cfg):
    from components.agent.prompts import TaskInfo
    from components.reasoners import RulesReasoner

    assert {
        "llm_zs": LLMZeroShotSearcher,
        "mlcopilot": MLCopilotSearcher,
        "agenthpo": AgentHPOSearcher,
    }.items() <= SEARCHERS.items()
    for name in NAMES:
        assert compose_cfg(f"searcher={name}")["searcher"]["name"] == name  # the config files compose
    with pytest.raises(ConfigError, match="llm_zs is an LLM method"):
        LLMZeroShotSearcher(RulesReasoner(), LLMZeroShotSearcher.load_prompts(), TaskInfo("t", "", ("em",), "em"))


def test_unreachable_llm_stops_at_start_up(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a local port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    assert (
        main(
            [
                "search",
                "searcher=agenthpo",
                "reasoner=openai",
                f"reasoner.base_url=http://127.0.0.1:{port}/v1",
                "reasoner.model=m",
            ]
        )
        == 2
    )
    assert "cannot connect" in capsys.readouterr().err
    assert not (tmp_path / "mlruns").exists()


# -- start-up validation --------------------------------------------------------------------------------
def test_mlcopilot_needs_a_prior_history(compose_cfg, tmp_path):
    base = ["searcher=mlcopilot", "reasoner=openai", "reasoner.model=m"]
    with pytest.raises(ConfigError, match=r"give searcher.prior_history=PATH/trials.csv"):
        make_searcher(compose_cfg(*base), check=False)
    with pytest.raises(ConfigError, match="no such file"):
        make_searcher(compose_cfg(*base, f"searcher.prior_history={tmp_path / 'nope.csv'}"), check=False)
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ConfigError, match=r"lacks column\(s\) \['allocation', 'score'\]"):
        make_searcher(compose_cfg(*base, f"searcher.prior_history={bad}"), check=False)
    empty = tmp_path / "empty.csv"
    empty.write_text("allocation,score\nx=y:1,nan\n")
    with pytest.raises(ConfigError, match="no usable trial"):
        make_searcher(compose_cfg(*base, f"searcher.prior_history={empty}"), check=False)


@pytest.mark.parametrize(
    "name, file",
    [("llm_zs", "llm_zs_trials"), ("mlcopilot", "mlcopilot_initial_guidelines"), ("agenthpo", "agenthpo_trials")],
)
def test_prompt_files_are_validated_at_start_up(name, file, compose_cfg, tmp_path):
    d = tmp_path / "prompts"
    shutil.copytree(BASELINE_PROMPTS_DIR, d)
    cfg = compose_cfg(
        f"searcher={name}", "reasoner=openai", "reasoner.model=m", f"searcher.prompts_dir={d}"
    )  # prompts come first
    path = d / f"{file}.txt"
    path.write_text(path.read_text().replace("$budget_function", "").replace("$prior_history", ""))
    with pytest.raises(ConfigError, match=rf"prompt file {path} lacks required placeholder"):
        make_searcher(cfg, check=False)
    path.unlink()
    with pytest.raises(ConfigError, match=rf"prompt file missing: {path}"):
        make_searcher(cfg, check=False)


def test_prompt_files_are_complete():
    for cls in (LLMZeroShotSearcher, MLCopilotSearcher, AgentHPOSearcher):
        assert set(cls.load_prompts().templates) == set(cls.PROMPTS)


# -- llm_zs -----------------------------------------------------------------------------------------------
def test_llm_zs_batches_without_history(llm):
    ctx, searcher, env = setup(llm, "llm_zs")
    space, k = ctx.space, 4
    a = feasible(space, 12)
    over = Allocation.parse("retrieval=Qwen2.5-72B:100 qa=Llama-3.1-70B:100")
    assert not space.is_feasible(over)
    sized = a[1].to_dict()
    sized["retrieval"]["model"] = {"Qwen2.5-7B": "Qwen 7B", "Qwen2.5-32B": "qwen-32b", "Qwen2.5-72B": "Qwen 72B"}[
        sized["retrieval"]["model"]
    ]
    first = json.dumps({"candidates": [a[0].to_dict(), sized, over.to_dict(), a[0].to_dict()]})
    almost = "{'candidates': [" + json.dumps(a[2].to_dict()).replace('"', "'") + ",]}"  # near-JSON, one candidate
    llm.script = [
        f"```json\n{first}\n```",  # round 1: 3 usable (a model name repaired, one projected), 1 duplicate
        almost,  # top-up ask: repaired JSON
        "I would rather not answer in JSON.",  # round 2: unusable
        answer(a[0], a[3], a[4], a[5], a[6], a[7]),  # retry: a[0] is a repeat of round 1, one too many
        500,
        500,  # round 3: the reasoner fails twice: an empty round, no fallback
    ]
    history: list = []
    r1 = run_round(searcher, env, history, k)
    check_batch(space, r1, [], k)
    assert len(r1) == 4 and r1[0].allocation == a[0] and r1[3].allocation == a[2]
    assert any("(size)" in x for x in r1[1].trace["repairs"])
    assert any("over budget" in x for x in r1[2].trace["repairs"])
    r2 = run_round(searcher, env, history, k)
    check_batch(space, r2, history[:4], k)
    assert [p.allocation for p in r2] == a[3:7]
    assert run_round(searcher, env, history, k) == []
    c = searcher.counts
    assert c["model_repaired"] == 1 and c["over_budget"] == 1 and c["json_repaired"] == 1
    assert c["duplicate"] == 2 and c["too_many"] == 1 and c["topup_asks"] == 1
    assert c["unusable_answers"] == 1 and c["no_json"] == 1 and c["retries"] == 2 and c["reasoner_failed"] == 2
    assert c["empty_rounds"] == 1 and c["llm_calls"] == 6 and "fallback_rounds" not in c
    assert searcher.agent_tokens == 4 * 120
    # no history, no guidelines in any prompt: the same prompt every round
    assert len(llm.prompts) == 6 and len({u for _, u in llm.prompts}) == 1
    for _, user in llm.prompts:
        assert "Parameters:" not in user and "history" not in user.lower() and "guideline" not in user.lower()
        assert "Score:" not in user and "Used budget" not in user  # the round-1 prompt, asked before any trial
        assert "def budget(" in user and "Total budget: " in user and "Qwen2.5-72B (72B parameters)" in user
        assert "Propose exactly 4 different configurations" in user
    paths = [p for p, _ in searcher.artifacts]
    assert "llm_zs/round_01_trials_prompt.txt" in paths and "llm_zs/round_01_trials_answer_2.txt" in paths
    assert "llm_zs/round_03_trials_error_2.txt" in paths


def test_llm_zs_gives_up_after_max_asks(llm):
    ctx, searcher, env = setup(llm, "llm_zs", "searcher.max_asks=2")
    a = feasible(ctx.space, 3)
    llm.default = lambda prompt: answer(a[0])  # a deterministic LLM: always the same single trial
    history: list = []
    assert [p.allocation for p in run_round(searcher, env, history, 4)] == [a[0]]  # 1 + a top-up ask of repeats
    assert run_round(searcher, env, history, 4) == []  # only repeats: nothing new, the flow would stop
    assert searcher.counts["llm_calls"] == 4 and searcher.counts["duplicate"] == 3


# -- mlcopilot ----------------------------------------------------------------------------------------------
PRIOR_ROWS = [  # another scenario's search: different stages and models, archived by a search (trials.csv)
    ("plan=Small-1B:3 solve=Big-70B:1", "Small-1B", 3, "Big-70B", 1, 0.41),
    ("plan=Big-70B:1 solve=Small-1B:9", "Big-70B", 1, "Small-1B", 9, 0.77),
    ("plan=Small-1B:20 solve=Small-1B:20", "Small-1B", 20, "Small-1B", 20, 0.55),
    ("plan=Big-70B:2 solve=Big-70B:1", "Big-70B", 2, "Big-70B", 1, 0.12),
]


def write_prior(path, rows=PRIOR_ROWS):
    cols = [
        "trial",
        "allocation",
        "status",
        "plan.model",
        "plan.samples",
        "solve.model",
        "solve.samples",
        "score",
        "acc",
        "cost/units",
        "wall_s",
        "rationale",
    ]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i, (a, m1, s1, m2, s2, score) in enumerate(rows, 1):
            w.writerow([i, a, "ok", m1, s1, m2, s2, score, score, 100 * i, 0.1, "random"])
        w.writerow(
            [
                len(rows) + 1,
                "plan=Big-70B:9 solve=Big-70B:9",
                "failed",
                "Big-70B",
                9,
                "Big-70B",
                9,
                0.0,
                0.0,
                999,
                0.1,
                "x",
            ]
        )
    return path


def test_mlcopilot_guidelines_start_from_the_prior_history(llm, tmp_path):
    prior = write_prior(tmp_path / "trials.csv")
    ctx, searcher, env = setup(llm, "mlcopilot", f"searcher.prior_history={prior}", "searcher.prior_max_rows=3")
    space, k = ctx.space, 3
    a = feasible(space, 8)
    partial = a[4].to_dict()
    del partial["qa"]  # a stage left out: filled from the best trial
    llm.script = [
        "",  # round 1, phase 1: an empty answer, retried
        "G1: spend the budget on the larger model of the first subtask.",
        answer(a[0], a[1], a[2], fence=True),
        "G2: keep the large retrieval model; vary qa samples.",  # round 2, phase 1 from feedback
        json.dumps({"trials": [a[3].to_dict(), partial]}),
    ]
    history: list = []
    r1 = run_round(searcher, env, history, k)
    check_batch(space, r1, [], k)
    assert [p.allocation for p in r1] == a[:3]
    first = llm.prompts[0][1]
    assert llm.prompts[1][1] == first  # the retry asks the same
    assert "Prior experience: the search history of a similar task" in first
    assert f"4 trials from trials.csv ({prior})" in first and "plan [Small-1B, Big-70B]" in first
    lines = [ln for ln in first.splitlines() if ln.startswith("Parameters: ")]
    assert [json.loads(ln.split("Score: ")[1].split(", Used")[0])["score"] for ln in lines] == [
        0.77,
        0.55,
        0.41,
    ]  # best first, 3 rows
    assert '"plan": {"model": "Big-70B", "samples": 1}' in lines[0] and "Used budget: 200 units" in lines[0]
    assert "Task: synthetic" in first and "Qwen2.5-72B (72B parameters)" in first  # the new task
    trials1 = llm.prompts[2][1]
    assert "G1: spend the budget" in trials1 and "Search history (every trial evaluated so far):\n(none)" in trials1
    r2 = run_round(searcher, env, history, k)
    check_batch(space, r2, history[:3], k)
    assert [p.allocation.choices[0] for p in r2] == [a[3].choices[0], a[4].choices[0]]
    assert any("stage 'qa' missing" in x for x in r2[1].trace["repairs"])
    revise = llm.prompts[3][1]
    assert "Current guidelines:\nG1: spend the budget" in revise and "Revise the guidelines" in revise
    assert history_text(space, history[:3]) in revise and "Prior experience" not in revise
    assert "G2: keep" in llm.prompts[4][1] and history_text(space, history[:3]) in llm.prompts[4][1]
    c = searcher.counts
    assert c["empty_guidelines"] == 1 and c["retries"] == 1 and c["missing_stage"] == 1 and c["too_few"] == 1
    assert searcher.guidelines == [
        "G1: spend the budget on the larger model of the first subtask.",
        "G2: keep the large retrieval model; vary qa samples.",
    ]
    assert {p for p, _ in searcher.artifacts} >= {
        "guidelines/round_01.md",
        "guidelines/round_02.md",
        "mlcopilot/round_01_initial_guidelines_prompt.txt",
        "mlcopilot/round_02_trials_answer_1.txt",
    }


# -- agenthpo -----------------------------------------------------------------------------------------------
def test_agenthpo_creator_gets_the_full_log_and_gives_rationales(llm):
    ctx, searcher, env = setup(llm, "agenthpo")
    space, k = ctx.space, 3
    a = feasible(space, 9)
    prose = (
        "Sure! Based on the log:\n" + answer(a[3], a[4], a[5], rationale="Because").replace('"', "'") + "\nThat is all."
    )
    llm.script = [
        "Initial guidelines: start with balanced allocations.",  # Executor, no trial yet
        answer(a[0], a[1], a[2], rationale="Try"),  # Creator
        "Analysis: the first trials plateau; try more qa samples.",  # Executor after round 1
        503,  # Creator fails once ...
        prose,  # ... and the retry is prose around single-quoted JSON
    ]
    history: list = []
    r1 = run_round(searcher, env, history, k)
    check_batch(space, r1, [], k)
    assert [p.rationale for p in r1] == [f"Try {x}" for x in a[:3]]
    assert r1[0].trace["rationale"] == f"Try {a[0]}"
    analysis1, creator1 = llm.prompts[0][1], llm.prompts[1][1]
    assert (
        "Experiment log (every trial run so far, in order):\n(none)" in analysis1
        and "If no trial has been run yet" in analysis1
    )
    assert "Initial guidelines: start with balanced allocations." in creator1
    assert "rationale" in creator1 and '"rationale":' in creator1  # asks for a rationale per trial
    r2 = run_round(searcher, env, history, k)
    check_batch(space, r2, history[:3], k)
    assert [p.allocation for p in r2] == a[3:6] and r2[0].rationale == f"Because {a[3]}"
    analysis2, creator2 = llm.prompts[2][1], llm.prompts[4][1]
    full = history_text(space, history[:3])
    assert full in analysis2 and full in creator2 and creator2.count("Parameters: ") == 3  # the full log
    assert "Initial guidelines" in creator2 and "Analysis: the first trials plateau" in creator2
    assert "insight" not in creator2.lower()  # no TTS-specific insights
    c = searcher.counts
    assert c["reasoner_failed"] == 1 and c["retries"] == 1 and c["json_repaired"] == 1
    assert len(searcher.guidelines) == 2 and searcher.agent_seconds > 0


def test_agenthpo_returns_what_is_usable_when_the_llm_keeps_failing(llm):
    ctx, searcher, env = setup(llm, "agenthpo")
    llm.script = [500, 500, "not json", "still not json"]
    assert run_round(searcher, env, [], 3) == []
    c = searcher.counts
    assert (
        c["guidelines_failed"] == 1
        and c["reasoner_failed"] == 2
        and c["unusable_answers"] == 2
        and c["empty_rounds"] == 1
    )
    assert searcher.guidelines == [] and len(llm.prompts) == 4
    assert "(none yet)" in llm.prompts[2][1]


# -- the flow ---------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_llm_zs_search_archives_and_stops_when_nothing_new(llm, tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    space = build(compose(overrides(llm, "llm_zs")), with_data=False).space
    a = feasible(space, 5)
    llm.default = lambda prompt: answer(*a[:4])  # always the same four: round 2 has nothing new
    assert main(["search", *overrides(llm, "llm_zs"), "trials=12"]) == 0
    out = capsys.readouterr().out
    assert "round 2: the searcher proposed nothing new; stopping at 4 trials" in out
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    parent = next(r for r in runs if r.data.tags.get("kind") == "search")
    assert parent.data.tags["searcher"] == "llm_zs" and parent.data.metrics["trials"] == 4
    assert parent.data.metrics["agent/duplicate"] >= 4 and parent.data.metrics["agent/empty_rounds"] == 1
    arts = {x.path for x in client.list_artifacts(parent.info.run_id, "llm_zs")}
    assert "llm_zs/round_01_trials_prompt.txt" in arts and "llm_zs/round_02_trials_answer_2.txt" in arts
    trace = [
        json.loads(x)
        for x in open(client.download_artifacts(parent.info.run_id, "decision_trace.jsonl", str(tmp_path)))
        .read()
        .splitlines()
    ]
    assert len(trace) == 4 and {t["source"] for t in trace} == {"llm_zs (openai)"}


def test_a_search_whose_llm_never_answers_usably_fails_with_one_line(llm, tmp_path, monkeypatch, capsys):
    """Two unusable answers in round 1 leave no trial: once an AttributeError traceback after the run started."""
    from mlflow.tracking import MlflowClient

    monkeypatch.chdir(tmp_path)
    llm.default = lambda prompt: "I cannot help with that."
    assert main(["search", *overrides(llm, "llm_zs"), "trials=12"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: llm_zs proposed no trial; search run ") and "Traceback" not in err
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    (run,) = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert run.info.status == "FAILED" and run.data.tags["status"] == "failed"
    arts = {x.path for x in client.list_artifacts(run.info.run_id, "llm_zs")}
    assert "llm_zs/round_01_trials_answer_2.txt" in arts  # what the LLM said, kept for the user
