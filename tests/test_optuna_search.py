"""Optuna TPE and GP searchers: ask-and-tell with the budget as a hard check, on the real simulator."""

import importlib.util

import numpy as np
import pytest
from optuna.trial import TrialState

import components.bank
from components.errors import ConfigError
from components.searchers import SEARCHERS
from components.searchers import optuna_search as mod
from components.searchers.optuna_search import GPSearcher, TPESearcher
from flows.build import build, make_searcher
from flows.cli import compose, main

CLASSES = [TPESearcher, GPSearcher]
# GP asks take ~0.1-0.3 s each on the 2wiki space (2 busy cores, our fast settings), TPE asks ~3 ms
TRIALS = {TPESearcher: 24, GPSearcher: 12}


@pytest.fixture(scope="module")
def ctx():
    return build(compose(["data.train_size=10"]))


@pytest.fixture(scope="module")
def env(ctx):
    return ctx.environment(bank=components.bank.SampleBank(None))


def run(cls, ctx, env, trials, seed=0, **kw):
    """The search loop's contract: propose k, check, evaluate, observe; returns searcher, history, batches."""
    s, history, batches = cls(seed=seed, **kw), [], []
    phases = []
    while len(history) < trials:
        k = min(4, trials - len(history))
        props = s.propose(ctx.space, history, k)
        allocs = [p.allocation for p in props]
        assert 0 < len(allocs) <= k
        assert all(ctx.space.is_feasible(a) for a in allocs)
        assert len(set(allocs)) == len(allocs)
        assert not set(allocs) & {r.allocation for r in history}
        assert all(p.trace["source"] == cls.name and p.rationale for p in props)
        phases += [p.trace["phase"] for p in props]
        running = s.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        assert sorted(s._allocation(t.params) for t in running) == sorted(allocs)  # pending until observed
        results = env.evaluate(allocs)
        s.observe(results)
        history += results
        batches.append(allocs)
    assert "model-based" in phases  # the sampler's model was used, not only its random startup
    return s, history, batches


_runs: dict = {}


def cached_run(cls, ctx, env):
    if cls not in _runs:
        _runs[cls] = run(cls, ctx, env, TRIALS[cls])
    return _runs[cls]


def test_registered_and_configured():
    assert SEARCHERS["optuna_tpe"] is TPESearcher and SEARCHERS["optuna_gp"] is GPSearcher
    s = make_searcher(compose(["searcher=optuna_gp", "searcher.n_startup_trials=3", "seed=5"]))
    assert isinstance(s, GPSearcher) and s.n_startup_trials == 3 and s.seed == 5
    assert make_searcher(compose(["searcher=optuna_tpe"])).n_startup_trials == 10
    assert make_searcher(compose(["searcher=random"])).name == "random"  # batch_size is not passed on


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_loop_proposes_feasible_new_allocations_and_tells_infeasible_asks(cls, ctx, env):
    s, history, _ = cached_run(cls, ctx, env)
    n = TRIALS[cls]
    assert len(history) == n and len({r.allocation for r in history}) == n
    trials = s.study.get_trials(deepcopy=False)
    assert all(t.state == TrialState.COMPLETE for t in trials)  # nothing left pending
    assert all(set(t.constraints) == {"budget"} for t in trials)  # on every trial, as GP requires
    infeasible = [t for t in trials if t.constraints["budget"] > 0]
    assert infeasible and s.counts["infeasible_asked"] == len(infeasible)
    evaluated = {r.allocation for r in history}
    assert not {s._allocation(t.params) for t in infeasible} & evaluated  # never evaluated
    assert all(t.value <= min(r.score for r in history) for t in infeasible)  # placeholder worst value
    scores = {r.allocation: r.score for r in history}
    for t in trials:  # evaluated trials carry their score (duplicate asks included)
        a = s._allocation(t.params)
        if a in scores:
            assert t.value == pytest.approx(scores[a])
            assert t.constraints["budget"] == pytest.approx(min(ctx.space.cost(a) - ctx.space.budget.value, 0.0))
    assert s.counts["asked"] == len(trials) == len(s.ask_seconds)
    assert len(trials) == n + s.counts["infeasible_asked"] + s.counts["duplicate_asked"]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_same_seed_same_proposals(cls, ctx, env):
    _, _, first = cached_run(cls, ctx, env)
    n = 8 if cls is GPSearcher else TRIALS[cls]  # a prefix: the loop is deterministic round by round
    _, _, again = run(cls, ctx, env, n)
    assert again == first[: n // 4]


def test_gp_speed_settings_reach_the_sampler():
    optuna_default = mod.optuna.samplers.GPSampler()
    sampler = make_searcher(compose(["searcher=optuna_gp"])).make_sampler()  # conf/searcher/optuna_gp.yaml
    assert (sampler._n_local_search, sampler._n_preliminary_samples) == (3, 512)
    assert sampler._n_qmc_samples_qei == optuna_default._n_qmc_samples_qei  # null: Optuna's own
    s = make_searcher(
        compose(
            [
                "searcher=optuna_gp",
                "searcher.n_local_search=5",
                "searcher.n_preliminary_samples=64",
                "searcher.n_qmc_samples=32",
                "searcher.bypass_device_context=false",
            ]
        )
    )
    sampler = s.make_sampler()
    assert (sampler._n_local_search, sampler._n_preliminary_samples, sampler._n_qmc_samples_qei) == (5, 64, 32)
    assert s.bypass_device_context is False and isinstance(sampler, mod.optuna.samplers.GPSampler)
    nulls = ["searcher.n_local_search=null", "searcher.n_preliminary_samples=null"]
    sampler = make_searcher(compose(["searcher=optuna_gp", *nulls])).make_sampler()
    assert (sampler._n_local_search, sampler._n_preliminary_samples) == (
        optuna_default._n_local_search,
        optuna_default._n_preliminary_samples,
    )
    with pytest.raises(ConfigError, match="n_local_search must be an integer >= 1 or null, got 0"):
        GPSearcher(n_local_search=0)
    with pytest.raises(ConfigError, match="torch_threads must be an integer >= 0, got 'abc'"):  # not a ValueError
        GPSearcher(torch_threads="abc")


@pytest.fixture
def device_modes(monkeypatch):
    """Torch function modes in force while Optuna's GP runs (one entry per model-based ask)."""
    import torch.overrides

    seen, real = [], mod.optuna.samplers.GPSampler._sample_relative_impl

    def spy(self, *args, **kwargs):
        seen.append([type(m).__name__ for m in torch.overrides._get_current_function_mode_stack()])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(mod.optuna.samplers.GPSampler, "_sample_relative_impl", spy)
    return seen


def test_gp_device_context_bypass_gives_optunas_proposals(ctx, env, device_modes):
    _, _, bypassed = cached_run(GPSearcher, ctx, env)  # bypass_device_context=True by default
    device_modes.clear()
    _, _, guarded = run(GPSearcher, ctx, env, 8, bypass_device_context=False)
    assert guarded == bypassed[:2]  # same seed: the same proposals with and without Optuna's guard
    assert device_modes and all(m == ["DeviceContext"] for m in device_modes)  # Optuna's guard, kept
    device_modes.clear()
    run(GPSearcher, ctx, env, 8)
    assert device_modes and all(m == [] for m in device_modes)  # bypassed: no per-op interception


def test_gp_keeps_optunas_guard_when_a_default_device_is_set(ctx, env, device_modes):
    import torch

    with torch.device("cpu"):  # a default device set outside: Optuna's guard stays
        run(GPSearcher, ctx, env, 8)
    assert device_modes and all(m and set(m) == {"DeviceContext"} for m in device_modes)  # not popped


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.name)
def test_observe_ingests_foreign_results(cls, ctx, env):
    rng = np.random.default_rng(7)
    foreign = env.evaluate(ctx.space.sample(rng, 5))  # e.g. a shared initial design
    s = cls(seed=1, n_startup_trials=3)  # the model is used at once: GP sees the foreign constraints
    s.observe(foreign)
    props = s.propose(ctx.space, foreign, 3)
    trials = s.study.get_trials(deepcopy=False)
    first = trials[:5]
    assert [s._allocation(t.params) for t in first] == [r.allocation for r in foreign]
    assert [t.value for t in first] == pytest.approx([r.score for r in foreign])
    assert all(t.state == TrialState.COMPLETE and t.constraints["budget"] <= 0 for t in first)
    assert all(t.system_attrs["constraints:budget"] <= 0 for t in first)  # Optuna 5's storage key
    assert s.counts["foreign_ingested"] == 5 and len(props) == 3
    assert not {p.allocation for p in props} & {r.allocation for r in foreign}
    # foreign results arriving mid-search, together with the searcher's own ones
    more = [a for a in ctx.space.sample(rng, 3) if a not in {p.allocation for p in props}]
    results = env.evaluate([p.allocation for p in props] + more)
    s.observe(results)
    assert s.counts["foreign_ingested"] == 5 + len(more)
    assert not s.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    nxt = s.propose(ctx.space, foreign + results, 1)
    assert len(nxt) == 1 and not {p.allocation for p in nxt} & {r.allocation for r in foreign + results}


def test_unobserved_proposals_are_dropped_as_failed(ctx):
    s = TPESearcher(seed=0)
    first = s.propose(ctx.space, [], 4)
    s.propose(ctx.space, [], 4)  # the first batch was never evaluated
    failed = s.study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    assert len(failed) == len(first) == s.counts["pending_dropped"]


def test_gp_without_torch_is_a_config_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(mod.importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(ConfigError, match=r"optuna_gp needs torch: pip install '\.\[gp\]'"):
        GPSearcher(seed=0)


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_cli_search_with_optuna_tpe(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["search", "searcher=optuna_tpe", "trials=12", "data.train_size=20"]) == 0
    out = capsys.readouterr().out
    assert "searcher=optuna_tpe" in out and "best allocation: retrieval=" in out
    assert "12/12 trials" in out


def test_a_sampler_stuck_on_known_allocations_falls_back_to_random_unseen_ones():
    """90 units leave 18 feasible allocations: TPE's asks soon only repeat evaluated ones. Without the
    fallback its search ends short; with it (the default, after 10 repeats, then half as many) it
    covers the space."""
    from components.bench import run_search

    ctx = build(compose(["data.train_size=10", "budget.units=90"]))
    env = ctx.environment(bank=components.bank.SampleBank(None))
    assert ctx.space.size == 18
    stuck = TPESearcher(seed=0, random_after=0)
    assert len(run_search(ctx.space, env, stuck, 50, 4, False)) < 18 and "random_fallback" not in stuck.counts
    s = TPESearcher(seed=0)
    history = run_search(ctx.space, env, s, 50, 4, False)
    assert sorted(r.allocation for r in history) == sorted(ctx.space.enumerate())  # each once, all of them
    assert s.counts["random_fallback"] >= 1 and s.random_after == 10
    # each fallback waits for half the repeats of the one before: the old fixed wait (10 repeated asks,
    # each a model fit, before every fallback) made this 10 x the fallbacks at least
    assert s.counts["duplicate_asked"] < 10 * s.counts["random_fallback"], s.counts
    with pytest.raises(ConfigError, match="random_after must be an integer >= 0, got -1"):
        TPESearcher(random_after=-1)


def _fresh_python(code: str, stderr: list | None = None, **env) -> str:
    """Run ``code`` in a fresh interpreter (torch not yet loaded) with MKL_CBWR taken from ``env`` only;
    returns its stdout (and appends its stderr to ``stderr``)."""
    import os
    import subprocess
    import sys

    environ = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"} | env
    done = subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True)
    if stderr is not None:
        stderr.append(done.stderr)
    return done.stdout.strip()


# the MKL branch torch's MKL actually uses (1 = automatic, per CPU), via MKL's exported service call
MKL_BRANCH = """
import ctypes, os, torch
lib = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so"))
get = getattr(lib, "mkl_serv_cbwr_get", None)
print("branch", "n/a" if get is None else get(-1))
"""


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="optuna_gp needs torch")
def test_gp_pins_mkl_to_one_code_path_before_torch_loads():
    """GP's numbers differed between an AVX-512 Xeon and an AMD EPYC until MKL_CBWR=COMPATIBLE."""
    build_then_load = "from components.searchers.optuna_search import GPSearcher\ns = GPSearcher(seed=0)\n"
    out = _fresh_python(build_then_load + "print(s.mkl_cbwr, __import__('os').environ['MKL_CBWR'])" + MKL_BRANCH)
    pinned, branch = out.splitlines()
    assert pinned == "COMPATIBLE COMPATIBLE"
    unpinned = _fresh_python(MKL_BRANCH)
    if "n/a" not in branch + unpinned:  # the wheel exports MKL's service call: the pin reached MKL
        assert unpinned == "branch 1" and branch != "branch 1"
    # a user's own choice wins
    assert _fresh_python(build_then_load + "print(s.mkl_cbwr)", MKL_CBWR="AVX2") == "AVX2"
    # torch loaded first: too late to pin, so it says so instead of claiming it
    err = []
    late = _fresh_python("import logging, torch\nlogging.basicConfig()\n" + build_then_load + "print(s.mkl_cbwr)", err)
    assert late == "None" and "torch was imported before MKL_CBWR was set" in err[0]
