"""Real backends: the openai backend against a local OpenAI-compatible HTTP server (n=, retries,
failures, start-up errors), the sample bank on real runs, replay, export/import, measured lengths.

The server here is a toy (random reference ids and answers) so that these tests run in the fast
tier; the same paths against a real vLLM engine are in tests/integration/test_backends_vllm.py.
"""

from __future__ import annotations

import json
import random
import threading

import pytest
import yaml
from mlflow.tracking import MlflowClient

from components.backends.base import Decoding, Request
from components.backends.openai import Endpoint, OpenAIBackend
from components.bank import SampleBank, counts, export_bank, import_bank, stream_key
from components.errors import BackendError, ConfigError, MissingSampleError
from flows.build import build
from flows.cli import CONF_DIR, compose, main
from tests.chat_server import NOT_FOUND, ChatServer, model_list

CATALOG = yaml.safe_load((CONF_DIR / "models" / "paper.yaml").read_text())
SERVED = [m["hf"] for m in CATALOG.values()]


class ToyModels(ChatServer):
    """Serves every catalog model: random reference ids or answers; records each completion request.

    Args:
        honour_n: answer n choices (False: always one, like servers that ignore n).
        fail: ``fail(payload, call_no)`` -> (status, body) to answer an error instead, or None.
    """

    def __init__(self, honour_n: bool = True, fail=None):
        self.rng = random.Random(0)
        self.lock = threading.Lock()
        self.calls: list[dict] = []
        self.honour_n = honour_n
        self.fail = fail or (lambda payload, k: None)
        super().__init__()

    def sample(self, prompt: str) -> str:
        if "Selected references" in prompt:  # references naming someone of the query, and noise
            query = next((ln for ln in prompt.splitlines() if ln.startswith("Query:")), "")
            names = {w.strip("?,.") for w in query.split()[2:] if w[:1].isupper()}
            refs = [ln for ln in prompt.splitlines() if ln.startswith("[")]
            hits = [i for i, ln in enumerate(refs, 1) if names & {w.strip("?,.;'") for w in ln.split()}]
            ids = sorted(set(self.rng.sample(hits, min(len(hits), 2)) + self.rng.sample(range(1, 101), 2)))
            return "Selected references: " + " ".join(f"[{i}]" for i in ids)
        return "Answer: " + self.rng.choice(["Elkase Institute", "Paris", "1987", "no idea"])

    def answer(self, method, path, headers, payload):
        if method == "GET" and path.endswith("/models"):
            return 200, model_list(SERVED)
        chat = path.endswith("/chat/completions")
        if not chat and not path.endswith("/completions"):
            return NOT_FOUND
        with self.lock:
            self.calls.append({**payload, "path": path})
            k = len(self.calls)
            err = self.fail(payload, k)
            if err:
                return err
            prompt = payload["messages"][-1]["content"] if chat else payload["prompt"]
            n = int(payload.get("n") or 1) if self.honour_n else 1
            texts = [self.sample(prompt) for _ in range(n)]
        if chat:
            choices = [{"index": i, "finish_reason": "stop", "message": {"role": "assistant", "content": t}} for i, t in enumerate(texts)]  # fmt: skip
        else:
            choices = [{"index": i, "finish_reason": "stop", "text": t} for i, t in enumerate(texts)]
        completion_tokens = sum(len(t.split()) + 1 for t in texts)
        usage = {"prompt_tokens": len(prompt.split()), "completion_tokens": completion_tokens}
        return 200, {"id": "x", "object": "chat.completion", "created": 0, "model": payload["model"], "choices": choices, "usage": usage}  # fmt: skip


@pytest.fixture
def toy():
    s = ToyModels()
    yield s
    s.close()


def _backend(server, **kw) -> OpenAIBackend:
    eps = {name: Endpoint(server.url, m["hf"]) for name, m in CATALOG.items()}
    return OpenAIBackend(eps, backoff_s=0, **kw)


def _req(n: int, prompt: str = "Question: q?\nSelected references: ?") -> Request:
    return Request(model="Llama-3.2-3B", prompt=prompt, n=n, decoding=Decoding(temperature=0.9, max_tokens=8))


# -- the openai backend on its own ------------------------------------------------------------------
def test_openai_backend_uses_n_and_counts_tokens(toy):
    b = _backend(toy)
    b.check()
    [g] = b.generate([_req(5)])
    assert len(g.texts) == 5 and len(g.output_tokens) == 5 and not g.error
    assert len(toy.calls) == 1 and toy.calls[0]["n"] == 5  # one call for the five samples
    assert sum(g.output_tokens) == sum(len(t.split()) + 1 for t in g.texts)  # the server's total, split exactly
    assert g.prompt_tokens == len(_req(1).prompt.split())


def test_openai_backend_sends_the_stage_formatting(toy):
    b = _backend(toy)
    chat = Decoding(temperature=0.3, max_tokens=7, stop=("\n\n",), system="Be brief.", chat_template="{{ messages }}")
    raw = Decoding(chat=False, stop=("END",))
    [g1, g2] = b.generate(
        [Request("Llama-3.2-3B", "Q1", 1, decoding=chat), Request("Llama-3.2-3B", "Q2", 2, decoding=raw)]
    )
    assert len(g1.texts) == 1 and len(g2.texts) == 2
    c1, c2 = sorted(toy.calls, key=lambda c: c["path"])
    assert c1["path"].endswith("/chat/completions") and c2["path"].endswith("/v1/completions")
    assert c1["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Q1"}]
    assert c1["chat_template"] == "{{ messages }}" and c1["stop"] == ["\n\n"]
    assert c1["temperature"] == 0.3 and c1["max_tokens"] == 7 and c1["model"] == CATALOG["Llama-3.2-3B"]["hf"]
    assert c2["prompt"] == "Q2" and c2["stop"] == ["END"] and c2["n"] == 2
    assert chat.key() != Decoding(temperature=0.3, max_tokens=7, stop=("\n\n",)).key() != raw.key()  # other streams


def test_openai_backend_falls_back_to_repeated_calls_when_n_is_ignored():
    s = ToyModels(honour_n=False)
    try:
        b = _backend(s, concurrency=1)
        [g1, g2] = b.generate([_req(4), _req(3, "other prompt")])
        assert len(g1.texts) == 4 and len(g2.texts) == 3
        # request 1: one n=4 call answered with 1 choice, then 3 single calls; request 2: learned, 3 single calls
        assert [c.get("n") for c in s.calls] == [4, 1, 1, 1, 1, 1, 1]
    finally:
        s.close()


def test_openai_backend_retries_429_and_5xx_then_succeeds():
    s = ToyModels(
        fail=lambda p, k: (429, {"error": {"message": "slow down"}}) if k == 1 else (503, {}) if k == 2 else None
    )
    try:
        b = _backend(s, max_retries=3)
        [g] = b.generate([_req(2)])
        assert len(g.texts) == 2 and not g.error
        assert b.retries == 2 and len(s.calls) == 3
    finally:
        s.close()


def test_openai_backend_gives_up_with_the_reason():
    s = ToyModels(fail=lambda p, k: (500, {"error": {"message": "engine dead"}}))
    try:
        b = _backend(s, max_retries=2)
        [g] = b.generate([_req(2)])
        assert g.texts == () and "HTTP 500" in g.error and "engine dead" in g.error and "after 3 attempts" in g.error
        s.fail = lambda p, k: (400, {"error": {"message": "This model's maximum context length is 8 tokens"}})
        [g] = b.generate([_req(1)])  # a client error is not retried
        assert "maximum context length" in g.error and "attempts" not in g.error
    finally:
        s.close()


def test_openai_backend_unreachable_server_is_a_startup_error(toy):
    url = toy.url
    toy.close()  # nothing listens there now
    with pytest.raises(BackendError, match="cannot reach"):
        OpenAIBackend({"Llama-3.2-3B": Endpoint(url, "x")}, max_retries=0).check()


def test_openai_backend_model_not_served_is_a_startup_error(toy):
    with pytest.raises(BackendError, match="does not serve"):
        OpenAIBackend({"Llama-3.2-3B": Endpoint(toy.url, "nope/none")}).check()


# -- bank files ---------------------------------------------------------------------------------------
def _bank_with(path, key, texts):
    b = SampleBank(path)
    b.append(key, "m", "qa", "q1", 10, texts, [len(t) for t in texts], world="", role="sample")
    b.close()


def test_bank_export_and_import_merge_streams(tmp_path):
    k1, k2 = stream_key("m", "p1", "t=0.9"), stream_key("m", "p2", "t=0.9")
    _bank_with(tmp_path / "gpu.sqlite", k1, ["a", "b", "c"])
    assert export_bank(tmp_path / "gpu.sqlite", tmp_path / "copy.sqlite") == {"streams": 1, "samples": 3, "replies": 0}
    _bank_with(tmp_path / "laptop.sqlite", k2, ["x"])
    _bank_with(tmp_path / "laptop.sqlite", k1, ["a", "B"])  # the laptop holds 2 of k1's samples, one different
    got = import_bank(tmp_path / "copy.sqlite", tmp_path / "laptop.sqlite")
    assert got == {"streams_added": 0, "samples_added": 1, "replies_added": 0, "conflicts": 1}
    b = SampleBank(tmp_path / "laptop.sqlite")
    b.load([k1, k2])
    assert b.get(k1).texts == ["a", "B", "c"] and b.get(k2).texts == ["x"]  # append-only: held samples stay
    b.close()
    assert import_bank(tmp_path / "copy.sqlite", tmp_path / "laptop.sqlite")["samples_added"] == 0
    assert counts(tmp_path / "laptop.sqlite") == {"streams": 2, "samples": 4, "replies": 0}


def test_bank_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["bank", "export", str(tmp_path / "out.sqlite"), f"bank.path={tmp_path / 'none.sqlite'}"]) == 2
    assert "no sample bank at" in capsys.readouterr().err
    (tmp_path / "junk.sqlite").write_text("not a database " * 100)
    assert main(["bank", "import", str(tmp_path / "junk.sqlite"), f"bank.path={tmp_path / 'b.sqlite'}"]) == 2
    assert "is not a sample bank file" in capsys.readouterr().err
    # an empty file, or an SQLite file of something else: refused, and left exactly as it was (opening
    # it read-write would have written a bank's tables into it)
    import sqlite3

    empty, other = tmp_path / "empty.sqlite", tmp_path / "other.sqlite"
    empty.write_bytes(b"")
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    before = other.read_bytes()
    for f in (empty, other):
        assert main(["bank", "import", str(f), f"bank.path={tmp_path / 'b.sqlite'}"]) == 2
        assert "is not a sample bank file" in capsys.readouterr().err
    assert empty.read_bytes() == b"" and other.read_bytes() == before
    assert not (tmp_path / "b.sqlite").exists()
    # export into a folder that does not exist: refused, nothing created
    _bank_with(tmp_path / "bank.sqlite", stream_key("m", "p", "t"), ["a"])
    out = tmp_path / "no" / "such" / "out.sqlite"
    assert main(["bank", "export", str(out), f"bank.path={tmp_path / 'bank.sqlite'}"]) == 2
    assert f"no folder {out.parent}" in capsys.readouterr().err and not (tmp_path / "no").exists()


# -- start-up errors through the CLI ----------------------------------------------------------------
def test_vllm_backend_missing_model_path_names_the_model(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = main(["search", "backend=vllm", f"backend.model_path_override={tmp_path / 'no-model'}", "trials=2"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert "model 'Qwen2.5-7B'" in err and "no-model" in err
    assert not (tmp_path / "mlruns").exists()  # nothing recorded


def test_openai_backend_server_down_stops_before_any_run(tmp_path, monkeypatch, capsys, toy):
    monkeypatch.chdir(tmp_path)
    url = toy.url
    toy.close()
    rc = main(["search", "backend=openai", f"backend.base_url={url}", "trials=2"])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot reach" in err and err.count("\n") == 1
    assert not (tmp_path / "mlruns").exists()


def test_openai_backend_needs_a_server_for_every_model(compose_cfg):
    with pytest.raises(Exception, match="has no server: set backend.base_url"):
        build(compose_cfg("backend=openai"), with_data=False)


# -- whole searches: record, then replay --------------------------------------------------------------
def _search_overrides(tmp_path, *extra):
    return [
        "searcher=random",
        "trials=6",
        "searcher.batch_size=3",
        "data.train_size=4",
        f"bank.path={tmp_path / 'bank.sqlite'}",
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_openai_search_is_recorded_and_replay_reproduces_it_without_generation(tmp_path, toy):
    from flows.search import search_flow

    rec = search_flow(compose(_search_overrides(tmp_path, "backend=openai", f"backend.base_url={toy.url}")), False)
    calls = len(toy.calls)
    assert rec.generated_tokens > 0 and calls > 0 and all(r.status == "ok" for r in rec.history)
    assert any(r.metrics["retrieval/f1"] > 0 for r in rec.history)  # real (toy) outputs were scored
    assert all(r.flops_spent > 0 for r in rec.history)  # from the server's usage counts

    # the recording ran on declared lengths (the bank was empty): replay with the same cost model
    rep = search_flow(compose(_search_overrides(tmp_path, "backend=replay", "cost.measured_lengths=false")), False)
    assert rep.generated_tokens == 0 and len(toy.calls) == calls  # nothing generated, the server untouched
    assert [(r.allocation, r.score, r.metrics, r.flops_spent) for r in rep.history] == [
        (r.allocation, r.score, r.metrics, r.flops_spent) for r in rec.history
    ]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    parents = client.search_runs(client.search_experiments()[0].experiment_id, "tags.kind = 'search'")
    assert {p.data.tags["backend"] for p in parents} == {"openai", "replay"}
    assert {p.data.tags["simulated"] for p in parents} == {"false"}

    # the bank now holds measured lengths: they replace the declared ones in the cost model
    ctx = build(compose(_search_overrides(tmp_path, "backend=replay")), with_data=False)
    lengths = ctx.space.cost_model.lengths
    assert {m for (stage, m) in lengths if stage == "qa"} <= {"Llama-3.2-3B", "Llama-3.1-8B", "Llama-3.1-70B"}
    assert lengths and all(nd < 10 for _, nd in lengths.values())  # toy answers are a few words, not 64-128 tokens
    declared = build(compose(_search_overrides(tmp_path, "backend=replay", "cost.measured_lengths=false")), False)
    stage, model = next(iter(lengths))
    assert (
        ctx.space.cost_model.stage_cost(stage, model, 5).flops
        < declared.space.cost_model.stage_cost(stage, model, 5).flops
    )
    off = build(compose(_search_overrides(tmp_path, "backend=replay", "cost.measured_lengths=false")), False)
    assert off.space.cost_model.lengths == {}


def test_a_replay_of_simulated_samples_is_labelled_simulated():
    from components.backends.replay import ReplayBackend
    from components.backends.sim import SimBackend

    world = SimBackend(build(compose([]), with_data=False).scenario).world  # "sim2:2wiki:v1:seed0:..."
    assert ReplayBackend(world).simulated
    assert not ReplayBackend("").simulated and not ReplayBackend("served:tiny").simulated


def test_replay_without_the_samples_it_starts_from_stops_before_any_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", *_search_overrides(tmp_path, "backend=replay")]) == 2  # no bank file at all
    assert "there is none at" in capsys.readouterr().err
    SampleBank(tmp_path / "bank.sqlite").close()  # a bank, but without this task's samples
    assert main(["search", *_search_overrides(tmp_path, "backend=replay")]) == 2
    err = capsys.readouterr().err
    assert "holds no samples of stage 'retrieval' for these 4 train questions" in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "mlruns").exists()  # stopped before the search's run was created


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_replay_names_what_the_bank_lacks_and_leaves_a_failed_run(tmp_path, toy, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    short = ["trials=3", "cost.measured_lengths=false"]  # one round recorded
    assert main(["search", *_search_overrides(tmp_path, "backend=openai", f"backend.base_url={toy.url}", *short)]) == 0
    capsys.readouterr()
    # six trials: the second round's allocations were never recorded
    assert main(["search", *_search_overrides(tmp_path, "backend=replay", "cost.measured_lengths=false")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err  # Prefect's failed-run logs are left to the one line below
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: backend=replay: the sample bank lacks samples of") and "model=" in last
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    runs = client.search_runs(client.search_experiments()[0].experiment_id, "tags.kind = 'search'")
    replay = [r for r in runs if r.data.tags["backend"] == "replay"]
    assert [(r.info.status, r.data.tags["status"]) for r in replay] == [("FAILED", "failed")]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_model_whose_server_keeps_failing_fails_its_trials_and_the_search_goes_on(tmp_path):
    from flows.search import search_flow

    dead = CATALOG["Llama-3.1-70B"]["hf"]
    s = ToyModels(fail=lambda p, k: (503, {"error": {"message": "overloaded"}}) if p["model"] == dead else None)
    try:
        allocs = ["searcher=grid", "budget.units=1200"]  # the grid includes trials on the failing model
        cfg = compose(
            _search_overrides(tmp_path, "backend=openai", f"backend.base_url={s.url}", "backend.max_retries=1", *allocs)
        )
        cfg["task"]["stages"][0]["samples"] = [1, 1]  # a small grid
        cfg["task"]["stages"][1]["samples"] = [1, 2]
        out = search_flow(cfg, False)
    finally:
        s.close()
    failed = [r for r in out.history if r.status == "failed"]
    ok = [r for r in out.history if r.status == "ok"]
    assert failed and ok
    assert all(r.allocation.choices[1][1] == "Llama-3.1-70B" for r in failed)
    assert all("HTTP 503" in r.error and "overloaded" in r.error and "qa" in r.error for r in failed)
    assert out.best.status == "ok"
    client = MlflowClient(out.tracking_uri)
    runs = client.search_runs(client.get_experiment_by_name(out.experiment).experiment_id, "tags.status = 'failed'")
    assert len(runs) == len(failed) and all("overloaded" in r.data.tags["error"] for r in runs)
    assert {r.info.status for r in runs} == {"FAILED"}


# -- public per-sample data ---------------------------------------------------------------------------
def test_public_samples_import_then_replay_scores_them(tmp_path, capsys):
    import json

    from components.space import Allocation
    from tests.conftest import data_file

    ov = [
        "task=gsm8k",
        f"data.path={data_file('gsm8k', 'test.jsonl')}",
        "data.train_size=3",
        "data.test_size=0",
        f"bank.path={tmp_path / 'bank.sqlite'}",
    ]
    ctx = build(compose(["backend=replay", *ov]))
    recs = []
    for it in ctx.train:
        gold = it.answers[0]
        recs.append({"question_id": it.id, "model": "Llama-3.2-3B", "samples": [f"so {gold}", "Answer: 0", f"Answer: {gold}"],
                     "correct": [True, False, True], "output_tokens": [5, 3, 4]})  # fmt: skip
        recs.append(
            {
                "question_id": it.id,
                "model": "Llama-3.1-8B",
                "samples": ["Answer: -1", "Answer: -1"],
                "correct": [False, True],
            }
        )  # fmt: skip  (one wrong label per question)
    f = tmp_path / "samples.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    assert main(["bank", "import-samples", str(f), *ov]) == 0
    out = capsys.readouterr().out
    assert "imported 6 records" in out and "15 new samples" in out and "labels: 12 of 15 agree" in out
    assert "12 token counts estimated" in out  # the 6 samples of 8B and the 6 prompts come without counts
    assert main(["bank", "import-samples", str(f), *ov]) == 0  # again: nothing new
    assert "0 new samples (15 already banked" in capsys.readouterr().out

    bank = SampleBank(tmp_path / "bank.sqlite")
    env = ctx.environment(bank=bank)
    a = [Allocation.parse({"solve": m}) for m in ("Llama-3.2-3B:1", "Llama-3.2-3B:3", "Llama-3.1-8B:2")]
    assert [r.score for r in env.evaluate(a)] == [1.0, 1.0, 0.0]  # first sample right; vote 2 of 3; always wrong
    assert bank.generated == 0
    with pytest.raises(MissingSampleError, match="model=Llama-3.1-70B stage=solve question="):
        env.evaluate([Allocation.parse({"solve": "Llama-3.1-70B:1"})])
    bank.close()

    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(recs[0]) + "\n" + json.dumps({**recs[1], "model": "GPT-9"}) + "\n")
    before = counts(tmp_path / "bank.sqlite")
    assert main(["bank", "import-samples", str(bad), *ov]) == 2
    assert f"{bad}:2: model 'GPT-9' is not a candidate of stage 'solve'" in capsys.readouterr().err
    assert counts(tmp_path / "bank.sqlite") == before  # nothing written
    # bad or empty input into a folder without a bank: refused before the bank is opened, none created
    fresh = [*ov[:-1], f"bank.path={tmp_path / 'fresh' / 'bank.sqlite'}"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["bank", "import-samples", str(empty), *fresh]) == 2
    assert f"{empty}: no records" in capsys.readouterr().err
    assert main(["bank", "import-samples", str(bad), *fresh]) == 2
    assert "GPT-9" in capsys.readouterr().err and not (tmp_path / "fresh").exists()


def test_failed_trials_are_shown_to_llm_agents_as_failed(compose_cfg):
    from components.agent.prompts import history_text
    from components.bank import SampleBank as Bank
    from components.space import Allocation

    ctx = build(compose_cfg("data.train_size=2"))
    env = ctx.environment(bank=Bank(None))
    a = Allocation.parse({"retrieval": "Qwen2.5-7B:1", "qa": "Llama-3.2-3B:1"})
    ok = env.evaluate([a])[0]
    failed = env._failed(a, "HTTP 503: overloaded", 0.0)
    text = history_text(ctx.space, [ok, failed]).splitlines()
    assert '"score"' in text[0] and text[1].count('"failed": "HTTP 503: overloaded"') == 1 and '"score"' not in text[1]


def test_a_bank_file_of_the_first_release_opens_and_keeps_its_samples(tmp_path):
    import sqlite3

    old = tmp_path / "old.sqlite"
    db = sqlite3.connect(old)
    db.executescript(
        "CREATE TABLE streams (key TEXT PRIMARY KEY, model TEXT, stage TEXT, item TEXT, prompt_tokens INTEGER);"
        "CREATE TABLE samples (key TEXT, idx INTEGER, text TEXT, tokens INTEGER, PRIMARY KEY (key, idx));"
        "INSERT INTO streams VALUES ('k', 'm', 'qa', 'q1', 12);"
        "INSERT INTO samples VALUES ('k', 0, 'a', 3), ('k', 1, 'b', 4);"
    )
    db.commit()
    db.close()
    b = SampleBank(old)
    b.load(["k"])
    s = b.get("k")
    assert (s.texts, s.tokens, s.prompt_tokens, s.world, s.role) == (["a", "b"], [3, 4], 12, "", "sample")
    b.append("k", "m", "qa", "q1", 12, ["c"], [5], world="", role="sample")
    b.close()
    assert counts(old) == {"streams": 1, "samples": 3, "replies": 0}
    assert {r[1] for r in sqlite3.connect(old).execute("PRAGMA table_info(streams)")} >= {"world", "role"}


def test_decoding_keys_tell_every_decoding_apart_and_keep_earlier_keys():
    # the plain form is what earlier banks hold: it must not move
    assert Decoding(temperature=0.7, max_tokens=64, stop=("\n\n", "###")).key() == "t=0.7;max=64;stop=\n\n|###"
    assert Decoding(temperature=1, max_tokens=8).key() == "t=1;max=8;stop="
    # stop lists that "|" joins alike, and temperatures that 6 digits round alike, are other streams
    stops = [("a|b",), ("a", "b"), ("",), (), ("a;max=1",), ("a", "")]
    assert len({Decoding(stop=s).key() for s in stops}) == len(stops)
    temps = [0.7, 0.7000001, 0.70000001, 1e-7, 0.0]
    assert len({Decoding(temperature=t).key() for t in temps}) == len(temps)


def test_a_search_on_one_served_model_is_tagged_with_the_world_to_replay(compose_cfg):
    """The world a replay must name (backend.world=served:ID) was only inside the run's config.yaml."""
    from flows.runs import world_tags

    cfg = compose_cfg("backend=openai", "backend.base_url=http://127.0.0.1:9/v1", "backend.served_model_override=tiny")
    assert world_tags(cfg, build(cfg, with_data=False))["bank_world"] == "served:tiny"
    cfg = compose_cfg("backend=openai", "backend.base_url=http://127.0.0.1:9/v1")
    assert "bank_world" not in world_tags(cfg, build(cfg, with_data=False))  # the catalog's models: world ""
    sim = compose_cfg()
    assert "bank_world" not in world_tags(sim, build(sim, with_data=False))


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_a_search_on_measured_lengths_replays_with_the_lengths_it_used(tmp_path, toy):
    """The second search of a world prices with lengths measured in the bank, and it adds samples, so
    the measured lengths move: its replay (prompts, budget, trials) needs the lengths it used."""
    from flows.search import search_flow

    search_flow(compose(_search_overrides(tmp_path, "backend=openai", f"backend.base_url={toy.url}")), False)
    second = search_flow(
        compose(_search_overrides(tmp_path, "backend=openai", f"backend.base_url={toy.url}", "seed=1", "trials=9")),
        False,
    )
    calls = len(toy.calls)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    used = json.loads(open(client.download_artifacts(second.run_id, "cost/lengths.json", str(tmp_path))).read())
    now = build(compose(_search_overrides(tmp_path, "backend=replay")), with_data=False).space.cost_model
    assert any(now.token_lengths(r["stage"], r["model"]) != (r["prompt_tokens"], r["output_tokens"]) for r in used)
    pinned = _search_overrides(tmp_path, "backend=replay", "seed=1", "trials=9", f"cost.lengths_from={second.run_id}")
    rep = search_flow(compose(pinned), False)
    assert rep.generated_tokens == 0 and len(toy.calls) == calls
    assert [(r.allocation, r.score) for r in rep.history] == [(r.allocation, r.score) for r in second.history]
    with pytest.raises(ConfigError, match="cost.lengths_from is for real backends"):
        build(compose(["cost.lengths_from=last"]), with_data=False)
