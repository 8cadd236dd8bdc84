"""The real backends against a real vLLM engine (CPU build, tiny random-weight model).

a. ``backend=vllm`` in-process: a short search records into the sample bank with the engine's exact
   token counts, one batched generate call per stage per round; ``backend=replay`` then reproduces
   every score with zero generation; the context policy on a prompt beyond the window.
b. ``backend=openai`` against the vLLM OpenAI-compatible server: the same, through HTTP with ``n=``.

The searches are driven without Prefect/MLflow (the integration venv has neither): the searcher's
propose/observe loop over ``Environment.evaluate``, which is what the search flow's tasks call.
"""

from __future__ import annotations

import time

import pytest

from components.backends.base import Decoding, Request
from components.bank import SampleBank
from flows.build import build, make_searcher
from flows.cli import compose

pytestmark = pytest.mark.integration


def _cfg(tmp_path, *overrides: str) -> dict:
    cfg = compose(
        ["searcher=random", "seed=0", "data.train_size=3", f"bank.path={tmp_path / 'bank.sqlite'}", *overrides]
    )
    for st in cfg["task"]["stages"]:  # a small space and short answers: seconds per round on 2 cores
        st["samples"] = [1, 4]
        for k in ("decoding", "fuse_decoding"):
            if k in st:
                st[k]["max_tokens"] = 8
    return cfg


def _search(ctx, bank: SampleBank, trials: int = 6, k: int = 3):
    """The search loop: propose, evaluate (infer -> fuse per stage, score), observe."""
    searcher = make_searcher(ctx.cfg, len(ctx.train), check=False)
    env = ctx.environment(bank=bank)
    history, rounds = [], 0
    while len(history) < trials:
        seen = {r.allocation for r in history}
        allocs = list(dict.fromkeys(p.allocation for p in searcher.propose(ctx.space, history, k)))
        allocs = [a for a in allocs if a not in seen and ctx.space.is_feasible(a)][: trials - len(history)]
        assert allocs, "the searcher proposed nothing new"
        results = env.evaluate(allocs)
        searcher.observe(results)
        history += results
        rounds += 1
    return history, env, rounds


def _replay(tmp_path, world: str, allocations):
    ctx = build(_cfg(tmp_path, "backend=replay", f"backend.world={world}", "cost.measured_lengths=false"))
    bank = SampleBank(tmp_path / "bank.sqlite")
    t = time.perf_counter()
    results = ctx.environment(bank=bank).evaluate(list(allocations))
    print(f"\n[integration] replay of {len(results)} trials in {time.perf_counter() - t:.2f} s, 0 generated")
    assert bank.generated == 0 and bank.generated_tokens == 0
    bank.close()
    return results


def _same(a, b):
    return [(r.allocation, r.status, r.score, r.metrics, r.outputs, r.flops_spent) for r in a] == [
        (r.allocation, r.status, r.score, r.metrics, r.outputs, r.flops_spent) for r in b
    ]


# a. in-process engine ------------------------------------------------------------------------------------
def test_vllm_backend_search_records_then_replay_reproduces(tmp_path, tiny_model_dir, vllm_env):
    cfg = _cfg(
        tmp_path,
        "backend=vllm",
        f"backend.model_path_override={tiny_model_dir}",
        "backend.dtype=float32",
        "backend.enforce_eager=true",
        "backend.gpu_memory_utilization=0.3",
        "backend.max_model_len=16384",
        "backend.preload=true",
    )
    t = time.perf_counter()
    ctx = build(cfg)  # checks the weights path and, with preload, loads the engine before any trial
    load_s = time.perf_counter() - t
    backend = ctx.backend
    assert backend.world == f"path:{tiny_model_dir}" and not ctx.simulated
    assert len(backend._engines) == 1
    bank = SampleBank(tmp_path / "bank.sqlite")
    t = time.perf_counter()
    history, env, rounds = _search(ctx, bank)
    print(f"\n[integration] vllm backend: build with engine load {load_s:.1f} s; {len(history)} trials in {rounds} rounds, "
          f"{time.perf_counter() - t:.1f} s, {bank.generated} samples, {bank.generated_tokens} tokens, {backend.calls} generate calls")  # fmt: skip
    try:
        assert all(r.status == "ok" for r in history), [r.error for r in history]
        assert bank.generated > 0 and all(r.flops_spent > 0 for r in history)
        assert len(backend._engines) == 1  # every model from the one override path: one engine, reused
        # one batched call per stage per round (plus one for the LLM fuser when a round needs it)
        assert backend.calls <= rounds * (len(ctx.task.stages) + 1)

        # the banked token counts are the engine's own: the chat-templated prompt, token for token
        llm = backend.engine("Qwen2.5-7B")
        tok = llm.get_tokenizer()
        prompt = env.render(ctx.task.stages[0], 0, None)
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        [g] = backend.generate([Request("Qwen2.5-7B", prompt, 2, decoding=Decoding(max_tokens=4))])
        assert g.prompt_tokens == len(tok.encode(text, add_special_tokens=False)) and len(g.texts) == 2
        assert all(1 <= n <= 4 for n in g.output_tokens)
        # a stage that sends raw text, and one with its own chat template
        [r] = backend.generate([Request("Qwen2.5-7B", prompt, 1, decoding=Decoding(max_tokens=4, chat=False))])
        assert r.prompt_tokens == len(tok.encode(prompt))
        tpl = "{% for m in messages %}### {{ m['content'] }}\n{% endfor %}### reply:"
        [c] = backend.generate([Request("Qwen2.5-7B", prompt, 1, decoding=Decoding(max_tokens=4, chat_template=tpl))])
        assert c.prompt_tokens == len(tok.encode(f"### {prompt}\n### reply:", add_special_tokens=False))

        # a prompt beyond the window: a clear per-stage error, or the middle is dropped
        window = llm.llm_engine.model_config.max_model_len
        long = Request("Qwen2.5-7B", "budget " * (window + 100), 1, decoding=Decoding(max_tokens=4), stage="qa")
        [bad] = backend.generate([long])
        assert (
            bad.texts == () and f"does not fit the model window of {window} tokens" in bad.error and "'qa'" in bad.error
        )
        backend.context_policy = "truncate"
        [ok] = backend.generate([long])
        assert ok.prompt_tokens == window - 1 and len(ok.texts) == 1 and not ok.error
    finally:
        bank.close()
        backend.close()

    replayed = _replay(tmp_path, f"path:{tiny_model_dir}", [r.allocation for r in history])
    assert _same(replayed, history)


# b. the OpenAI-compatible server --------------------------------------------------------------------------
def test_openai_backend_against_vllm_server_then_replay(tmp_path, vllm_server):
    cfg = _cfg(
        tmp_path,
        "backend=openai",
        f"backend.base_url={vllm_server.url}",
        f"backend.served_model_override={vllm_server.model}",
    )
    ctx = build(cfg)  # lists the server's models
    backend = ctx.backend
    bank = SampleBank(tmp_path / "bank.sqlite")
    t = time.perf_counter()
    history, _, rounds = _search(ctx, bank)
    print(f"\n[integration] openai backend: {len(history)} trials in {rounds} rounds, {time.perf_counter() - t:.1f} s, "
          f"{bank.generated} samples in {backend.http_calls} HTTP calls, {backend.retries} retries")  # fmt: skip
    bank.close()
    assert all(r.status == "ok" for r in history), [r.error for r in history]
    assert bank.generated > 0 and all(r.flops_spent > 0 for r in history)
    assert backend._n_ok.get(vllm_server.url) is not False  # vLLM honours n=
    assert backend.http_calls < bank.generated  # several samples per call

    replayed = _replay(tmp_path, f"served:{vllm_server.model}", [r.allocation for r in history])
    assert _same(replayed, history)

    # measured lengths from the bank now price the next search of this world
    nxt = build(_cfg(tmp_path, "backend=openai", f"backend.base_url={vllm_server.url}",
                     f"backend.served_model_override={vllm_server.model}"), with_data=False)  # fmt: skip
    assert nxt.space.cost_model.lengths and all(nd <= 8 for _, nd in nxt.space.cost_model.lengths.values())


def test_vllm_weights_that_do_not_load_stop_before_any_trial(tmp_path, vllm_env):
    import json

    from components.errors import BackendError

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"model_type": "no-such-architecture", "architectures": ["Nope"]}))
    cfg = _cfg(tmp_path, "backend=vllm", f"backend.model_path_override={broken}", "backend.dtype=float32",
               "backend.enforce_eager=true", "backend.gpu_memory_utilization=0.3", "backend.preload=true")  # fmt: skip
    with pytest.raises(BackendError, match=f"model 'Qwen2.5-7B': vLLM cannot load {broken}"):
        build(cfg)
