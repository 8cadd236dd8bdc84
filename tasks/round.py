"""Prefect tasks of one search round: generate samples → fuse (per stage) → score → propose.

Each task is coarse: one call covers all trials and questions of the round for one stage, so a
real engine gets one batched call per stage per round. Arguments are live objects in this process,
so they are passed with ``quote`` (no traversal) and tasks skip Prefect's input hashing.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from components.pipeline import Environment, Round, TrialResult
from components.searchers.base import Proposal
from components.space import SearchSpace


@task(name="generate_samples", cache_policy=NO_CACHE, task_run_name="generate_samples[{stage_name}]")
def generate_samples(env: Environment, rnd: Round, i: int, stage_name: str) -> int:
    """Inference for stage i: every sample the round needs beyond the bank, in one batch."""
    before = rnd.generated_tokens
    env.infer(rnd, i)
    return rnd.generated_tokens - before


@task(name="fuse", cache_policy=NO_CACHE, task_run_name="fuse[{stage_name}]")
def fuse(env: Environment, rnd: Round, i: int, stage_name: str) -> int:
    """Fusion for stage i (vote, id-vote merge or LLM fuser calls, batched)."""
    before = rnd.generated_tokens
    env.fuse(rnd, i)
    return rnd.generated_tokens - before


@task(name="score", cache_policy=NO_CACHE)
def score(env: Environment, rnd: Round) -> list[TrialResult]:
    """Metrics and costs of every trial of the round."""
    return env.score(rnd)


@task(name="propose", cache_policy=NO_CACHE)
def propose(searcher, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
    """The searcher's next batch (the agent's reflection and proposal step, for agent searchers)."""
    return searcher.propose(space, history, k)
