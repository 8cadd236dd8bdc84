"""The LLM reasoners against a real vLLM engine (CPU build, tiny random-weight model).

The model answers garbage, so these tests check the plumbing and the robustness path: the
endpoint is reached, answers come back with token counts, and a search whose reasoner answers
garbage still completes with feasible, distinct trials (its rounds fall back to the rules reasoner),
and replays from the sample bank with the server out of reach.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from components.reasoners import OpenAIReasoner, ReasonerError, VLLMReasoner
from components.reasoners.base import AgentView

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _view() -> AgentView:
    return AgentView("guidelines", space=None, history=[], k=4)  # LLM reasoners never read the view


# a. the OpenAI-compatible reasoner against the live server ---------------------------------------------
def test_openai_reasoner_against_vllm_server(vllm_server):
    r = OpenAIReasoner(base_url=vllm_server.url, model=vllm_server.model, max_tokens=16, timeout_s=60)
    r.check()
    t = time.perf_counter()
    reply = r.complete("You are an expert.", "Propose the next trials as JSON.", _view())
    print(f"\n[integration] chat completion in {time.perf_counter() - t:.2f} s: {reply}")
    assert isinstance(reply.text, str)
    assert reply.prompt_tokens > 0 and 1 <= reply.completion_tokens <= 16

    auto = OpenAIReasoner(base_url=vllm_server.url, model=None)  # the server's only model
    auto.check()
    assert auto.model == vllm_server.model
    with pytest.raises(ReasonerError, match="model 'no-such-model' is not served"):
        OpenAIReasoner(base_url=vllm_server.url, model="no-such-model").check()


def test_openai_reasoner_prompt_too_long_is_a_reasoner_error(vllm_server):
    r = OpenAIReasoner(base_url=vllm_server.url, model=vllm_server.model, max_tokens=16, max_retries=0)
    with pytest.raises(ReasonerError, match="HTTP 400"):
        r.complete("s", "budget " * 40000, _view())  # far beyond the server's max-model-len


# b. a whole (short) agent search whose reasoner is the live server ---------------------------------------
def _agent_search(ctx, reasoner, bank_path):
    """16 trials of the agent over ``reasoner``, its replies kept in the bank at ``bank_path``."""
    from components.agent.prompts import PromptSet, TaskInfo
    from components.bank import SampleBank
    from components.reasoners.banked import BankedReasoner
    from components.searchers.agenttts import AgentTTSSearcher

    env = ctx.environment(bank=SampleBank(None))
    t = ctx.cfg["task"]
    searcher = AgentTTSSearcher(
        BankedReasoner(reasoner, SampleBank(bank_path)),
        PromptSet(ROOT / "conf" / "prompts"),
        TaskInfo(t["name"], t.get("description", ""), tuple(t.get("metrics") or [t["metric"]]), t["metric"]),
        n_questions=len(ctx.train),
        seed=0,
    )
    history, k = [], 4
    while len(history) < 16:
        props = searcher.propose(ctx.space, history, k)
        assert props, f"the agent proposed nothing after {len(history)} trials"
        allocations = [p.allocation for p in props][: 16 - len(history)]
        results = env.evaluate(allocations)
        searcher.observe(results)
        history += results
    searcher.reasoner.bank.close()
    return searcher, history


def test_agent_search_with_a_garbage_llm_completes_and_replays_without_it(vllm_server, tmp_path):
    import socket

    from flows.build import build
    from flows.cli import compose

    ctx = build(compose(["searcher=agenttts", "trials=16"]))
    reasoner = OpenAIReasoner(
        base_url=vllm_server.url, model=vllm_server.model, max_tokens=64, timeout_s=120, max_retries=0
    )
    reasoner.check()
    started = time.perf_counter()
    searcher, history = _agent_search(ctx, reasoner, tmp_path / "bank.sqlite")
    print(
        f"\n[integration] 16-trial agent search in {time.perf_counter() - started:.1f} s; rounds {searcher.round}, "
        f"counts {dict(searcher.counts)}, agent {searcher.agent_seconds:.1f} s, {searcher.agent_tokens} tokens"
    )

    allocations = [r.allocation for r in history]
    assert len(allocations) == 16 and len(set(allocations)) == 16  # distinct
    assert all(ctx.space.is_feasible(a) for a in allocations)  # feasible
    assert searcher.round >= 1
    assert searcher.counts["fallback_rounds"] >= 1  # garbage answers fell back to the rules reasoner
    assert searcher.counts["reasoner_failed"] == 0, [a for a in searcher.artifacts if a[0].endswith("_error.txt")]
    assert searcher.agent_tokens > 0  # the server really answered
    paths = [p for p, _ in searcher.artifacts]
    for i in range(1, searcher.round + 1):
        assert f"guidelines/round_{i:02d}.md" in paths
        assert f"agent/round_{i:02d}_answer.txt" in paths and f"agent/round_{i:02d}_prompt.txt" in paths
    assert all(text.strip() for p, text in searcher.artifacts if p.startswith("guidelines/"))
    assert searcher.reasoner.answered >= 2 and searcher.reasoner.replayed == 0

    # the same search again, with the server out of reach: every reply comes from the bank
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    gone = OpenAIReasoner(
        base_url=f"http://127.0.0.1:{port}/v1", model=vllm_server.model, max_tokens=64, timeout_s=5, max_retries=0
    )
    again, replayed = _agent_search(ctx, gone, tmp_path / "bank.sqlite")
    assert [r.allocation for r in replayed] == allocations
    guidelines = [text for p, text in searcher.artifacts if p.startswith("guidelines/")]
    assert [text for p, text in again.artifacts if p.startswith("guidelines/")] == guidelines  # the LLM's texts
    assert again.counts["reasoner_failed"] == 0 and again.agent_tokens == 0
    assert again.reasoner.replayed == searcher.reasoner.answered and again.reasoner.answered == 0


# c. the in-process vLLM reasoner -------------------------------------------------------------------------
def test_vllm_reasoner_in_process(tiny_model_dir, vllm_env):
    r = VLLMReasoner(
        str(tiny_model_dir),
        max_model_len=512,
        dtype="float32",
        max_tokens=16,
        temperature=0.9,
        enforce_eager=True,
        gpu_memory_utilization=0.3,
    )
    t = time.perf_counter()
    r.check()
    print(f"\n[integration] in-process engine loaded in {time.perf_counter() - t:.1f} s")
    try:
        engine = r.engine()
        reply = r.complete("You are an expert.", "Write the guidelines.", _view())
        assert isinstance(reply.text, str)
        assert reply.prompt_tokens > 0 and 1 <= reply.completion_tokens <= 16
        assert r.engine() is engine  # made once, kept
        with pytest.raises(ReasonerError, match="chat failed"):
            r.complete("s", "budget " * 2000, _view())  # longer than max_model_len=512
        assert r.complete("s", "again", _view()).completion_tokens >= 1  # the engine survives that
    finally:
        r.close()


def test_vllm_reasoner_missing_model_fails_at_check(vllm_env, tmp_path):
    missing = tmp_path / "no-model-here"
    with pytest.raises(ReasonerError, match=f"cannot load model '{missing}'"):
        VLLMReasoner(str(missing), dtype="float32", enforce_eager=True).check()
