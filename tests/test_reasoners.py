"""The LLM reasoners without an LLM: a closed port, a fake OpenAI-compatible server, the registry.

The real-engine tests (a vLLM server and in-process engine on a tiny model) are in
tests/integration (``scripts/run_integration.sh``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import traceback

import pytest

from components.errors import ConfigError, UnknownNameError
from components.reasoners import REASONERS, OpenAIReasoner, ReasonerError, VLLMReasoner, make_reasoner
from components.reasoners.base import AgentView
from tests.chat_server import NOT_FOUND, ChatServer, completion, model_list

SECRET = "sk-test-9f8e7d6c5b4a39281706f5e4d3c2b1a0-NEVER-LOG-ME"


def closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeServer(ChatServer):
    """A minimal OpenAI-compatible server whose answers the test sets.

    ``models``: ids listed at /v1/models (None: 404 there). ``status``: HTTP status of every answer
    when not 200 (body echoes the Authorization header, as some servers echo the key). ``reply``:
    the chat completion text. ``delay``: seconds to wait before answering.
    """

    def __init__(self):
        self.models: list[str] | None = ["tiny"]
        self.status = 200
        self.reply = "hello"
        self.delay = 0.0
        self.requests: list[tuple[str, dict, dict]] = []
        super().__init__()

    def answer(self, method, path, headers, payload):
        self.requests.append((path, headers, payload))
        if self.delay:
            time.sleep(self.delay)
        if self.status != 200:
            auth = headers.get("authorization", "")
            return self.status, {
                "error": {"message": f"Incorrect API key provided: {auth}", "type": "invalid_request_error"}
            }
        if path.endswith("/models"):
            return NOT_FOUND if self.models is None else (200, model_list(self.models))
        if path.endswith("/chat/completions"):
            return 200, completion(self.reply, payload.get("model"), 11, 7)
        return NOT_FOUND


@pytest.fixture
def fake():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture
def view():
    return AgentView("trials", space=None, history=[], k=4)  # the openai reasoner never reads the view


def leaks(text: str) -> bool:
    """The key, or a recognisable piece of it, is in ``text``."""
    return SECRET in text or SECRET[8:24] in text


# -- start-up failures --------------------------------------------------------------------------------
def test_check_closed_port_fails_fast_naming_the_url():
    url = f"http://127.0.0.1:{closed_port()}/v1"
    r = OpenAIReasoner(base_url=url, model="x")
    with pytest.raises(ReasonerError) as e:
        r.check()
    assert url in str(e.value) and "cannot connect" in str(e.value)


def test_complete_on_closed_port_is_a_reasoner_error(view):
    r = OpenAIReasoner(base_url=f"http://127.0.0.1:{closed_port()}/v1", model="x", max_retries=0)
    with pytest.raises(ReasonerError, match="cannot connect"):
        r.complete("sys", "prompt", view)


def test_check_model_not_served(fake):
    fake.models = ["a", "b"]
    with pytest.raises(ReasonerError, match=r"model 'tiny' is not served; served: \['a', 'b'\]") as e:
        OpenAIReasoner(fake.url, "tiny").check()
    assert fake.url in str(e.value)


def test_check_picks_the_only_model_and_refuses_ambiguity(fake):
    r = OpenAIReasoner(fake.url, None)
    r.check()
    assert r.model == "tiny"
    fake.models = ["a", "b"]
    with pytest.raises(ConfigError, match="set reasoner.model"):
        OpenAIReasoner(fake.url, None).check()


def test_check_without_a_models_listing_pings_a_chat_completion(fake):
    fake.models = None
    OpenAIReasoner(fake.url, "tiny").check()
    assert fake.requests[-1][0].endswith("/chat/completions")
    assert fake.requests[-1][2]["max_completion_tokens"] == 1


def test_check_timeout(fake):
    fake.delay = 2.0
    with pytest.raises(ReasonerError, match="timed out"):
        OpenAIReasoner(fake.url, "tiny", timeout_s=0.3, max_retries=0).check()


# -- answers --------------------------------------------------------------------------------------------
def test_complete_returns_text_and_tokens(fake, view):
    fake.reply = "guidelines: try more samples"
    r = OpenAIReasoner(fake.url, "tiny", max_tokens=64, temperature=0.5)
    reply = r.complete("you are an expert", "what next?", view)
    assert (reply.text, reply.prompt_tokens, reply.completion_tokens) == ("guidelines: try more samples", 11, 7)
    body = fake.requests[-1][2]
    assert body["messages"] == [
        {"role": "system", "content": "you are an expert"},
        {"role": "user", "content": "what next?"},
    ]
    assert body["model"] == "tiny" and body["max_completion_tokens"] == 64 and body["temperature"] == 0.5


def test_complete_null_content_is_empty_text(fake, view):
    fake.reply = None
    assert OpenAIReasoner(fake.url, "tiny").complete("s", "p", view).text == ""


@pytest.mark.parametrize(
    "status, match", [(500, "HTTP 500"), (400, "HTTP 400"), (429, "rate limited"), (404, "not found")]
)
def test_http_errors_are_reasoner_errors(fake, view, status, match):
    fake.status = status
    with pytest.raises(ReasonerError, match=match):
        OpenAIReasoner(fake.url, "tiny", max_retries=0).complete("s", "p", view)


# -- the key never leaks ----------------------------------------------------------------------------
@pytest.mark.parametrize("status", [401, 403, 429, 500])
def test_api_key_never_leaks(fake, view, monkeypatch, status):
    monkeypatch.setenv("AGENTTTS_TEST_KEY", SECRET)
    fake.status = status  # the server echoes the Authorization header (the key) in its error message
    r = OpenAIReasoner(fake.url, "tiny", api_key_env="AGENTTTS_TEST_KEY", max_retries=0)
    assert not leaks(repr(r)) and not leaks(str(r)) and "AGENTTTS_TEST_KEY" in repr(r)
    for call in (r.check, lambda: r.complete("s", "p", view)):
        with pytest.raises(ReasonerError) as e:
            call()
        shown = str(e.value) + repr(e.value) + "".join(traceback.format_exception(e.value))
        assert not leaks(shown), shown
        assert fake.url in str(e.value)
    assert fake.requests[-1][1]["authorization"] == f"Bearer {SECRET}"  # it was sent, just never shown
    if status in (401, 403):
        assert "AGENTTTS_TEST_KEY" in str(e.value)  # the message says where the key comes from


def test_api_key_never_leaks_when_unreachable(monkeypatch, view):
    monkeypatch.setenv("AGENTTTS_TEST_KEY", SECRET)
    r = OpenAIReasoner(f"http://127.0.0.1:{closed_port()}/v1", "x", api_key_env="AGENTTTS_TEST_KEY", max_retries=0)
    with pytest.raises(ReasonerError) as e:
        r.check()
    assert not leaks(str(e.value) + "".join(traceback.format_exception(e.value)))


def test_key_pasted_into_the_config_is_refused_without_echo():
    with pytest.raises(ConfigError) as e:
        make_reasoner({"name": "openai", "base_url": "http://x/v1", "model": "m", "api_key": SECRET})
    assert not leaks(str(e.value)) and "api_key_env" in str(e.value)
    with pytest.raises(ConfigError) as e:
        make_reasoner({"name": "openai", "base_url": "http://x/v1", "model": "m", "api_key_env": SECRET})
    assert not leaks(str(e.value))


# -- the registry -----------------------------------------------------------------------------------
def test_registry_names():
    assert set(REASONERS) == {"rules", "openai", "vllm"}
    assert make_reasoner({"name": "rules"}).name == "rules"
    r = make_reasoner({"name": "openai", "base_url": "http://127.0.0.1:1/v1", "model": "m", "timeout_s": 5})
    assert isinstance(r, OpenAIReasoner) and r.timeout_s == 5.0 and r.is_llm
    v = make_reasoner({"name": "vllm", "model": "/models/tiny", "enforce_eager": True})
    assert isinstance(v, VLLMReasoner) and v.engine_kwargs == {"enforce_eager": True} and v._llm is None


def test_make_reasoner_errors():
    with pytest.raises(UnknownNameError, match=r"unknown reasoner 'claude'; available: \['openai', 'rules', 'vllm'\]"):
        make_reasoner({"name": "claude"})
    with pytest.raises(UnknownNameError, match="unknown reasoner 'None'"):
        make_reasoner({})
    with pytest.raises(ConfigError, match=r"does not take \['temperatur'\]"):
        make_reasoner({"name": "openai", "base_url": "http://x/v1", "temperatur": 1})
    with pytest.raises(ConfigError, match=r"does not take \['model'\]"):
        make_reasoner({"name": "rules", "model": "x"})
    with pytest.raises(ConfigError, match=r"needs \['reasoner.model'\]"):
        make_reasoner({"name": "vllm", "model": None})
    with pytest.raises(ConfigError, match="base_url"):
        make_reasoner({"name": "openai", "base_url": None})
    with pytest.raises(ConfigError, match="timeout_s > 0"):
        make_reasoner({"name": "openai", "base_url": "http://x/v1", "timeout_s": 0})


def test_config_group_files_make_reasoners(compose_cfg):
    assert make_reasoner(compose_cfg("reasoner=rules")["reasoner"]).name == "rules"
    r = make_reasoner(compose_cfg("reasoner=openai", "reasoner.model=m")["reasoner"])
    assert (r.base_url, r.model, r.api_key_env, r.timeout_s, r.max_tokens) == (
        "http://127.0.0.1:8000/v1",
        "m",
        "OPENAI_API_KEY",
        120.0,
        4096,
    )
    v = make_reasoner(compose_cfg("reasoner=vllm", "reasoner.model=/m")["reasoner"])
    assert v.max_model_len == 8192 and v.engine_kwargs["gpu_memory_utilization"] == 0.9


def test_registry_does_not_import_vllm(tmp_path):
    # an importable stand-in for vllm, so that an eager import would show up whether or not it is installed
    (tmp_path / "vllm").mkdir()
    (tmp_path / "vllm" / "__init__.py").write_text("")
    code = "import sys, components.reasoners as r; r.make_reasoner({'name': 'vllm', 'model': 'x'}); print('vllm' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.getcwd()])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=os.getcwd(), env=env
    )
    assert out.stdout.strip() == "False"
    probe = "import vllm, sys; print('vllm' in sys.modules)"  # the stand-in is found: the check above can fail
    assert (
        subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env).stdout.strip() == "True"
    )


def test_vllm_reasoner_without_vllm_names_the_model(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm → ImportError, installed or not
    r = VLLMReasoner("/models/tiny-llama")
    with pytest.raises(ReasonerError, match="cannot load model '/models/tiny-llama': vllm is not installed"):
        r.check()


def test_a_failing_reasoner_round_is_recorded_as_the_rules_fallback():
    """The round's trials and guidelines come from the rules reasoner when the LLM fails: they were
    recorded as the LLM's (source, answer artifact) and no fallback round was counted."""
    from components.agent.prompts import PromptSet, TaskInfo
    from components.bank import SampleBank
    from components.searchers.agenttts import AgentTTSSearcher
    from flows.build import PROMPTS_DIR, build
    from flows.cli import compose

    ctx = build(compose(["data.train_size=10"]))
    env = ctx.environment(bank=SampleBank(None))
    down = OpenAIReasoner(base_url=f"http://127.0.0.1:{closed_port()}/v1", model="x", max_retries=0)
    task = TaskInfo(ctx.task.name, "", (ctx.task.metric,), ctx.task.metric)
    searcher = AgentTTSSearcher(down, PromptSet(PROMPTS_DIR), task, n_questions=10)
    history: list = []
    while searcher.round == 0:  # the probes, then the first round
        batch = searcher.propose(env.space, history, 4)
        history += env.evaluate([p.allocation for p in batch])
    source = batch[0].trace["source"]
    assert source.startswith("rules (fallback: openai failed: ") and "cannot connect" in source
    assert searcher.counts["reasoner_failed"] == 2 and searcher.counts["fallback_rounds"] == 1
    arts = dict(searcher.artifacts)
    assert "agent/round_01_answer.txt" not in arts and "agent/round_01_trials_error.txt" in arts
    assert arts["guidelines/round_01.md"].startswith("<!-- written by the rules reasoner: openai failed: ")
