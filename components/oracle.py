"""The grid oracle, fast: every allocation of a grid scored exactly as ``Environment.evaluate`` scores it.

``Environment.evaluate`` does per-(allocation, question) work in every stage, which dominates on a full
grid (15k-83k allocations). This evaluator walks the grid as a prefix tree instead: per stage it
collects the distinct sample streams, (question, model, fused upstream text), generates each once up to
the largest sample count any allocation asks of it, fuses every needed prefix of it once (the
simulator fuses all prefixes of a stream in one pass, ``SimWorld.fuse_prefixes``), and hands each
prefix allocation its per-question fused outputs. The last stage's main metric is computed once per
(question, fused text) and summed over questions with numpy, per (upstream prefix, model), for every
sample count at once.

It reuses the Environment's prompt rendering, stream keys, fusion functions and metrics, and the cost
model; it assumes what a fresh shared bank gives (``SampleBank(None)``: one stream per key, its first S
samples). Whatever it cannot reproduce exactly falls back to ``Environment.evaluate``: a generation that
fails or returns fewer samples than asked, or two (question, upstream) pairs rendering the same stream
key (the Environment would share one stream between them). ``tests/test_oracle.py`` checks every
allocation's score against the Environment.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from components.backends.base import Request
from components.bank import stream_key
from components.cost import AllocationCost
from components.fusion import fusion_prompt, id_vote_prefixes, majority_vote
from components.parsers import PARSERS
from components.pipeline import Environment
from components.space import Allocation


class _Unsupported(Exception):
    """The fast path cannot reproduce the Environment here (it falls back to ``Environment.evaluate``)."""


def grid_scores(env: Environment, allocations: Iterable[Allocation]) -> list[tuple[Allocation, float, float]]:
    """``(allocation, score, units)`` per allocation, in order: the main metric on ``env.items`` and the
    planned budget units per question, equal to ``env.evaluate``'s ``score`` and ``cost.units`` with a
    fresh shared bank."""
    allocs = list(allocations)
    try:
        scores = _Grid(env).scores(allocs)
    except _Unsupported:
        return [(r.allocation, r.score, r.cost.units) for r in _fresh(env).evaluate(allocs)]
    units = _Units(env)
    return [(a, s, units(a)) for a, s in zip(allocs, scores, strict=True)]


def grid_best(env: Environment, allocations: Iterable[Allocation]) -> tuple[Allocation, float, float]:
    """The oracle: ``(allocation, score, units)`` of the highest score, ties to the cheaper in units, then
    the earlier (as ``max`` over ``env.evaluate``'s results with key ``(score, -units)``)."""
    allocs = list(allocations)
    if not allocs:
        raise ValueError("grid_best needs at least one allocation")
    try:
        scores = _Grid(env).scores(allocs)
    except _Unsupported:
        results = _fresh(env).evaluate(allocs)
        top = max(results, key=lambda r: (r.score, -r.cost.units))
        return top.allocation, top.score, top.cost.units
    high = max(scores)
    units = _Units(env)  # priced only where the score ties the best
    ties = [(a, units(a)) for a, s in zip(allocs, scores, strict=True) if s == high]
    a, u = max(ties, key=lambda t: -t[1])
    return a, high, u


def _fresh(env: Environment) -> Environment:
    from components.bank import SampleBank

    return Environment(env.task, env.space, env.backend, SampleBank(None), env.items)


class _Units:
    """``cost_model.cost(a).units`` with the per-stage costs memoized."""

    def __init__(self, env: Environment):
        self.cm = env.space.cost_model
        self.memo: dict[tuple[str, str, int], object] = {}

    def __call__(self, a: Allocation) -> float:
        stages = []
        for c in a.choices:
            sc = self.memo.get(c)
            if sc is None:
                sc = self.memo[c] = self.cm.stage_cost(*c)
            stages.append(sc)
        return AllocationCost(tuple(stages), self.cm.count_fusion).units


class _Grid:
    def __init__(self, env: Environment):
        self.env = env
        self.n = len(env.items)
        self.texts: list[str] = []  # fused text by id
        self.ids: dict[str, int] = {}

    def _id(self, text: str) -> int:
        i = self.ids.get(text)
        if i is None:
            i = self.ids[text] = len(self.texts)
            self.texts.append(text)
        return i

    def scores(self, allocs: list[Allocation]) -> list[float]:
        env, n = self.env, self.n
        stages = env.task.stages
        last = len(stages) - 1
        # prefix (choices of the first i stages) -> per question fused text id of stage i-1 (None: no upstream)
        upstream: dict[tuple, tuple] = {(): (None,) * n}
        for i, stage in enumerate(stages):
            # upstream prefix -> model -> sample counts asked for
            need: dict[tuple, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
            for a in allocs:
                _, m, s = a.choices[i]
                need[a.choices[:i]][m].add(s)
            # the distinct streams (question, upstream text id, model), with every count asked of them
            streams: dict[tuple[int, int | None, str], int] = {}
            sizes: list[set[int]] = []
            rows: dict[tuple[tuple, str], list[int]] = {}
            for p, by_model in need.items():
                up = upstream[p]
                for m, ss in by_model.items():
                    r = []
                    for j in range(n):
                        k = (j, up[j], m)
                        x = streams.get(k)
                        if x is None:
                            x = streams[k] = len(sizes)
                            sizes.append(set())
                        sizes[x] |= ss
                        r.append(x)
                    rows[(p, m)] = r
            fused = self._fuse_streams(stage, list(streams), sizes)  # stream -> {S: fused text id}
            if i < last:
                upstream = {
                    (*p, (stage.name, m, s)): tuple(fused[x][s] for x in r)
                    for (p, m), r in rows.items()
                    for s in need[p][m]
                }
            else:
                return self._final(i, list(streams), fused, rows, need, allocs)
        raise AssertionError("a task has at least one stage")

    def _fuse_streams(self, stage, streams: list[tuple], sizes: list[set[int]]) -> list[dict[int, int]]:
        env = self.env
        world, dec = env.world, stage.decoding
        prompts, owner = [], {}
        for j, u, m in streams:
            prompt = env.render(stage, j, None if u is None else self.texts[u])
            key = stream_key(m, prompt, dec.key(), world)
            if owner.setdefault(key, (j, u)) != (j, u):
                raise _Unsupported("two (question, upstream) pairs share a stream key")
            prompts.append(prompt)
        reqs = [
            Request(
                model=m,
                prompt=p,
                n=max(ss),
                decoding=dec,
                stage=stage.name,
                item=env.items[j],
                upstream=None if u is None else self.texts[u],
            )
            for (j, u, m), p, ss in zip(streams, prompts, sizes, strict=True)
        ]
        gens = env.backend.generate(reqs)
        for req, g in zip(reqs, gens, strict=True):
            if g.error or len(g.texts) < req.n:
                raise _Unsupported("a generation failed or came back short")
        parse = PARSERS[stage.parser]
        out: list[dict[int, int]] = []
        llm: list[tuple[int, Request, list[int]]] = []
        for x, (req, g, ss) in enumerate(zip(reqs, gens, sizes, strict=True)):
            texts = list(g.texts)
            d = {1: self._id(texts[0])} if 1 in ss else {}  # one sample is its own output, unfused
            many = sorted(s for s in ss if s > 1)
            if many and stage.fusion == "id_vote":
                d.update(zip(many, map(self._id, id_vote_prefixes(texts, many)), strict=True))
            elif many and stage.fusion == "vote":
                d.update((s, self._id(majority_vote(texts[:s], parse))) for s in many)
            elif many:  # llm: the backend fuses
                llm.append((x, req, many))
            out.append(d)
        if llm:
            self._llm_fuse(stage, llm, gens, out)
        return out

    def _llm_fuse(self, stage, llm, gens, out) -> None:
        env = self.env
        fast = getattr(env.backend, "fuse_prefixes", None)
        if fast is not None:
            for x, req, ss in llm:
                cands = tuple(gens[x].texts[: ss[-1]])
                q = Request(req.model, "", 1, 0, stage.fuse_decoding, stage.name, req.item, req.upstream, cands)
                for s, text in zip(ss, fast(q, ss), strict=True):
                    out[x][s] = self._id(text)
            return
        fkeys, reqs, where = {}, [], []
        for x, req, ss in llm:
            for s in ss:
                cands = tuple(gens[x].texts[:s])
                fprompt = fusion_prompt(req.prompt, cands)
                fk = stream_key(req.model, fprompt, stage.fuse_decoding.key(), env.world)
                if fk not in fkeys:
                    fkeys[fk] = len(reqs)
                    reqs.append(
                        Request(
                            req.model, fprompt, 1, 0, stage.fuse_decoding, stage.name, req.item, req.upstream, cands
                        )
                    )
                where.append((x, s, fkeys[fk]))
        gens_f = env.backend.generate(reqs)
        if any(g.error or not g.texts for g in gens_f):
            raise _Unsupported("a fuser call failed")
        for x, s, k in where:
            out[x][s] = self._id(gens_f[k].texts[0])

    def _final(self, i, streams, fused, rows, need, allocs) -> list[float]:
        env, n = self.env, self.n
        main = env.task.metrics.index(env.task.metric)
        smax = max(max(d) for d in fused)
        val = np.zeros((len(streams), smax + 1))
        memo: dict[tuple[int, int], float] = {}
        for x, ((j, _, _), d) in enumerate(zip(streams, fused, strict=True)):
            for s, t in d.items():
                v = memo.get((j, t))
                if v is None:
                    v = memo[(j, t)] = env._item_scores(i, j, self.texts[t])[main]
                val[x, s] = v
        exact = all(float(v).is_integer() for v in memo.values())  # sums of 0/1 are exact in any order
        stage = env.task.stages[i].name
        score: dict[tuple, float] = {}
        for (p, m), r in rows.items():
            if exact:
                tot = val[r].sum(axis=0)
                for s in need[p][m]:
                    score[(*p, (stage, m, s))] = float(tot[s]) / n
            else:  # the Environment's own summation order
                for s in need[p][m]:
                    score[(*p, (stage, m, s))] = sum(float(val[x, s]) for x in r) / n
        return [score[a.choices] for a in allocs]
