"""The fast grid oracle (components/oracle.py) equals the Environment on every allocation of small grids."""

from __future__ import annotations

import dataclasses

import pytest

from components.backends.base import Generation, Request
from components.bank import SampleBank
from components.datasets import synthetic_items
from components.fusion import id_vote_merge, id_vote_prefixes
from components.oracle import grid_best, grid_scores
from components.pipeline import Environment
from components.simulator import SimWorld
from flows.build import build


def _ctx(compose_cfg, *overrides, seed=1):
    return build(compose_cfg("data.train_size=10", f"scenario.seed={seed}", f"data.seed={seed}", *overrides))


def _env(ctx, backend=None, task=None):
    return Environment(task or ctx.task, ctx.space, backend or ctx.environment().backend, SampleBank(None), ctx.train)


def _same(ctx, env=None):
    """Every allocation: fast (score, units) == Environment's; the oracles agree too."""
    grid = ctx.space.enumerate()
    env = env or _env(ctx)
    slow = _env(ctx, env.backend, env.task).evaluate(grid)
    fast = grid_scores(env, grid)
    assert [(r.allocation, r.score, r.cost.units) for r in slow] == fast
    top = max(slow, key=lambda r: (r.score, -r.cost.units))
    assert grid_best(env, grid) == (top.allocation, top.score, top.cost.units)
    return grid, slow


@pytest.mark.parametrize(
    ("seed", "overrides"),
    [
        (1, ("task=synthetic", "scenario=2wiki", "budget.units=330")),  # select (id_vote) -> answer (llm)
        (1, ("task=cwq", "scenario=cwq", "budget.units=300")),
        (2, ("task=chatdev", "scenario=chatdev", "budget.units=400")),  # three answer stages, llm fusion
        (1, ("task=taskbench", "scenario=taskbench", "budget.units=900")),
    ],
)
def test_every_allocation_scores_as_in_the_environment(compose_cfg, seed, overrides):
    ctx = _ctx(compose_cfg, *overrides, seed=seed)
    grid, slow = _same(ctx)
    assert len(grid) > 500
    assert len({r.score for r in slow}) > 3  # the grid is not trivially flat


class _Plain:
    """The simulator behind the plain Backend protocol (no ``fuse_prefixes``): the generic fuser path."""

    def __init__(self, sim):
        self.sim, self.world = sim, sim.world

    def generate(self, requests):
        return self.sim.generate(requests)


def test_generic_backend_path_and_vote_fusion(compose_cfg):
    ctx = _ctx(compose_cfg, "task=synthetic", "scenario=2wiki", "budget.units=260")
    _same(ctx, _env(ctx, _Plain(ctx.environment().backend)))
    qa = dataclasses.replace(ctx.task.stages[1], fusion="vote")
    voted = dataclasses.replace(ctx.task, stages=(ctx.task.stages[0], qa))
    _same(ctx, _env(ctx, task=voted))


class _Flaky(_Plain):
    """Fails every sampling request of one question on the last stage."""

    def generate(self, requests):
        return [
            Generation((), 0, (), error="boom") if r.stage == "qa" and r.item.id == self.bad else g
            for r, g in zip(requests, self.sim.generate(requests), strict=True)
        ]


def test_failed_generations_fall_back_to_the_environment(compose_cfg):
    ctx = _ctx(compose_cfg, "task=synthetic", "scenario=2wiki", "budget.units=300")
    flaky = _Flaky(ctx.environment().backend)
    flaky.bad = ctx.train[3].id
    grid, slow = _same(ctx, _env(ctx, flaky))
    assert all(r.status == "failed" for r in slow)


def test_fuse_prefixes_equals_one_fusion_per_prefix():
    sim = SimWorld("chatdev")
    for it in synthetic_items(6, seed=2):
        for m in ("Llama-3.2-3B", "Llama-3.1-70B"):
            texts = sim.generate_one(Request(m, "", n=40, stage="static_test", item=it, upstream="Answer: x")).texts
            req = Request(m, "", n=1, stage="static_test", item=it, upstream="Answer: x", candidates=texts)
            sizes = [1, 2, 3, 7, 20, 39, 40]
            one = [sim.generate_one(dataclasses.replace(req, candidates=texts[:n])).texts[0] for n in sizes]
            assert sim.fuse_prefixes(req, sizes) == one


def test_id_vote_prefixes_equals_id_vote_merge():
    sim = SimWorld("2wiki")
    for it in synthetic_items(6, seed=3):
        texts = sim.generate_one(Request("Qwen2.5-7B", "", n=60, stage="retrieval", item=it)).texts
        texts = (*texts[:5], "no ids here", *texts[5:])
        sizes = list(range(1, len(texts) + 1))
        assert id_vote_prefixes(texts, sizes) == [id_vote_merge(texts[:n]) for n in sizes]
    assert id_vote_prefixes(["none", "[2] [1]"], [1, 2]) == [
        id_vote_merge(["none"]),
        id_vote_merge(["none", "[2] [1]"]),
    ]
