"""An LLM reasoner's replies in the sample bank: kept as they arrive, replayed by the same search.

The reasoner is the real ``openai`` one over HTTP to a local OpenAI-compatible server whose every
answer is new (as a sampling LLM's are), so a replayed reply is one the server did not send again.
"""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient

from components.bank import SampleBank, counts
from components.reasoners import OpenAIReasoner, ReasonerError, RulesReasoner
from components.reasoners.banked import BankedReasoner, bank_replies, has_replies
from components.reasoners.base import AgentView
from flows.build import build, make_searcher
from flows.cli import compose, main
from tests.chat_server import FreshLLM, trials_answers


@pytest.fixture
def llm():
    s = FreshLLM()
    yield s
    s.close()


def banked(llm: FreshLLM, path, **kw) -> BankedReasoner:
    return BankedReasoner(OpenAIReasoner(llm.url, "tiny", max_retries=0, timeout_s=10, **kw), SampleBank(path))


def ask(r: BankedReasoner, prompt: str, seed: int = 0):
    return r.complete("system", prompt, AgentView("trials", space=None, history=[], k=4, seed=seed))


def test_replies_are_replayed_in_the_order_they_were_asked(llm, tmp_path):
    first = banked(llm, tmp_path / "bank.sqlite")
    replies = [ask(first, p) for p in ("A", "A", "B")]
    assert [r.text for r in replies] == ["reply 1", "reply 2", "reply 3"]
    assert (replies[0].prompt_tokens, replies[0].completion_tokens) == (11, 7)
    assert (first.answered, first.replayed, first.bank.generated, first.bank.generated_tokens) == (3, 0, 0, 0)
    first.bank.close()

    again = banked(llm, tmp_path / "bank.sqlite")  # a new process: a new bank object on the same file
    replayed = [ask(again, p) for p in ("A", "A", "B")]
    assert [r.text for r in replayed] == ["reply 1", "reply 2", "reply 3"] and llm.calls == 3
    assert all(r.prompt_tokens == r.completion_tokens == 0 for r in replayed)  # nothing generated
    assert ask(again, "A").text == "reply 4"  # beyond what was asked before: the LLM answers
    assert (again.replayed, again.answered) == (3, 1)
    again.bank.close()
    assert counts(tmp_path / "bank.sqlite") == {"streams": 2, "samples": 4, "replies": 4}


def test_bank_export_and_import_say_how_many_replies_they_carry(llm, tmp_path, capsys):
    r = banked(llm, tmp_path / "a.sqlite")
    ask(r, "A")
    ask(r, "B")
    r.bank.close()
    assert main(["bank", "export", str(tmp_path / "x.sqlite"), f"bank.path={tmp_path / 'a.sqlite'}"]) == 0
    assert "exported 2 streams, 2 samples (2 of them reasoner replies)" in capsys.readouterr().out
    assert main(["bank", "import", str(tmp_path / "x.sqlite"), f"bank.path={tmp_path / 'b.sqlite'}"]) == 0
    assert "2 new streams, 2 new samples (2 of them reasoner replies)" in capsys.readouterr().out
    assert ask(banked(llm, tmp_path / "b.sqlite"), "B").text == "reply 2"  # replayed on the other machine


def test_has_replies_names_the_reasoner_whose_replies_the_bank_holds(llm, tmp_path):
    path = tmp_path / "bank.sqlite"
    assert not has_replies(path, OpenAIReasoner(llm.url, "tiny"))  # no bank file yet
    r = banked(llm, path)
    ask(r, "A")
    r.bank.close()
    assert has_replies(path, OpenAIReasoner("http://elsewhere:1/v1", "tiny", max_retries=0, timeout_s=10))
    assert not has_replies(path, OpenAIReasoner(llm.url, "tiny", temperature=0.3))
    assert not has_replies(path, OpenAIReasoner(llm.url, "other"))


def test_another_seed_or_other_sampling_settings_draw_their_own_replies(llm, tmp_path):
    ask(banked(llm, tmp_path / "bank.sqlite"), "A")
    assert ask(banked(llm, tmp_path / "bank.sqlite"), "A", seed=1).text == "reply 2"
    assert ask(banked(llm, tmp_path / "bank.sqlite", temperature=0.2), "A").text == "reply 3"
    assert ask(banked(llm, tmp_path / "bank.sqlite"), "A").text == "reply 1"


def test_a_failed_answer_is_not_kept_and_takes_no_place(llm, tmp_path):
    r = banked(llm, tmp_path / "bank.sqlite")
    llm.fail = 1
    with pytest.raises(ReasonerError, match="HTTP 500"):
        ask(r, "A")
    assert ask(r, "A").text == "reply 1"  # the agent asks again: the first reply to this prompt
    assert ask(banked(llm, tmp_path / "bank.sqlite"), "A").text == "reply 1"


def test_only_llm_reasoners_with_a_bank_on_disk_are_banked(llm, tmp_path):
    over = ["reasoner=openai", f"reasoner.base_url={llm.url}", "reasoner.model=tiny"]
    cfg = compose([*over, "searcher=agenttts"])
    disk, memory = SampleBank(tmp_path / "bank.sqlite"), SampleBank(None)
    assert bank_replies(make_searcher(cfg, check=False), memory) is None
    assert bank_replies(make_searcher(compose(["searcher=agenttts"]), check=False), disk) is None  # rules
    assert bank_replies(make_searcher(compose(["searcher=random"]), check=False), disk) is None
    searcher = make_searcher(cfg, check=False)
    r = bank_replies(searcher, disk)
    assert isinstance(r, BankedReasoner) and searcher.reasoner is r and r.name == "openai" and r.is_llm
    assert bank_replies(searcher, disk) is r  # not wrapped twice
    assert not isinstance(r.inner, (BankedReasoner, RulesReasoner))
    baseline = make_searcher(compose([*over, "searcher=llm_zs"]), check=False)
    assert isinstance(bank_replies(baseline, disk), BankedReasoner)


def _search_run(tmp_path, n: int):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("agenttts-synthetic")
    runs = client.search_runs([exp.experiment_id], "tags.kind = 'search'", order_by=["attributes.start_time ASC"])
    assert len(runs) == n
    run = runs[-1]
    path = client.download_artifacts(run.info.run_id, "decision_trace.jsonl", str(tmp_path / f"dl{n}"))
    trace = [json.loads(x) for x in open(path).read().splitlines()]
    return run, [(t["allocation"], t["source"]) for t in trace]


@pytest.mark.slow
def test_the_same_search_again_replays_its_llm_agent_from_the_bank(llm, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [
        "search", "searcher=agenttts", "reasoner=openai", f"reasoner.base_url={llm.url}", "reasoner.model=tiny",
        "reasoner.max_retries=0", "trials=16", "champion.enabled=false",
    ]  # fmt: skip
    llm.answer_for = trials_answers(build(compose(args[1:]), with_data=False).space)
    assert main(args) == 0
    first, trace = _search_run(tmp_path, 1)
    asked = llm.calls
    assert asked >= 4 and first.data.metrics["agent/replies_answered"] == asked
    assert any(s == "openai" for _, s in trace)  # the LLM's answers made trials

    capsys.readouterr()
    assert main(args) == 0  # the same command: a rerun
    again, replayed = _search_run(tmp_path, 2)
    assert llm.calls == asked and replayed == trace  # no new answer, the same trials from the same sources
    assert again.data.metrics["agent/replies_from_bank"] == asked and again.data.metrics["agent/tokens"] == 0
    assert f"reasoner: {asked} replies from the sample bank" in capsys.readouterr().out

    assert main([*args, "seed=1"]) == 0  # another seed asks the LLM afresh
    assert llm.calls > asked


def test_replies_false_leaves_the_reasoner_unbanked(llm, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = [
        "search", "searcher=agenttts", "reasoner=openai", f"reasoner.base_url={llm.url}", "reasoner.model=tiny",
        "reasoner.max_retries=0", "trials=8", "champion.enabled=false", "bank.replies=false",
    ]  # fmt: skip
    assert main(args) == 0 and main(args) == 0
    run, _ = _search_run(tmp_path, 2)
    assert "agent/replies_from_bank" not in run.data.metrics and run.data.metrics["agent/tokens"] > 0


def test_a_replay_does_not_contact_a_reasoner_whose_replies_are_in_the_bank(llm, tmp_path):
    from components.reasoners import make_reasoner
    from flows.build import replays_reasoner

    path = tmp_path / "bank.sqlite"
    base = ["reasoner=openai", f"reasoner.base_url={llm.url}", "reasoner.model=tiny", f"bank.path={path}"]
    cfg = compose(["backend=replay", *base])
    assert not replays_reasoner(cfg)  # nothing recorded: the reasoner is checked as usual
    r = BankedReasoner(make_reasoner(cfg["reasoner"]), SampleBank(path))
    ask(r, "A")
    r.bank.close()
    assert replays_reasoner(cfg)
    assert not replays_reasoner(compose(["backend=replay", *base, "bank.replies=false"]))
    assert not replays_reasoner(compose(base))  # not a replay: the endpoint must answer
