"""The ``rules`` reasoner: the three AgentTTS insights applied deterministically, no LLM.

It answers the same two requests an LLM answers, as text, so its proposals go through the same JSON
parsing and repair path:

- guidelines: a readable analysis of the archive, item by item like the paper's prompts ask;
- trials: ``{"candidates": [{stage: {"model", "samples"}, "insight", "rationale"}, ...]}``.

How it proposes (candidates in this order, duplicates and over-budget ones skipped):

1. Insight 1 (model choice): per stage, compare the probes run at equal stage budget; keep the
   large model only if it is better by more than the noise of the train set (two questions),
   else prefer the smaller one. Right after the probes, combine the preferred models (and, when
   they differ, the best-scoring probe models too: the probes are noisy; when those do not fit
   together, another stage yields, so the best-scoring model is tried); when they fit together
   only at their fewest samples, each stage in turn also yields to its next smaller model at half
   its stage budget.
2. Insight 2 (sample count): around the best trial so far, walk each stage's sample count along a
   geometric ladder towards its plateau: step up while the score still rises, down when the best
   is the lowest count tried, then bisect between the best count and its better neighbour (counts
   next to a tried one are skipped: they share most of its samples). The stages' scans are
   interleaved, a different stage first each round.
3. Insight 3 (budget balance): move budget between stages: give one stage fewer samples (or a
   smaller model at the same cost) and spend what is freed on another stage's samples.
4. When results stall (no improvement in the last round), one slot sweeps the plateau: an untried
   count between the lowest and highest count within noise of the best, far from the tried ones
   (on a plateau the score moves by a question or two from one count to the next, at no predictable
   count). Then exploration: models not yet tried at the best trial's stage budget, crossover of
   the two best trials, neighbours of the runner-up, the moves above around the next-best trials,
   and only then seeded random feasible allocations.

The moves start from the best trial; among equal scores, the one that spends the most budget.
A candidate that reuses a stage's (model, sample count) choice which lost at other anchors (to
another count or another model of that stage, every other stage equal) goes after all the others:
the evidence of Insights 1 and 2 pooled across the archive.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from components.agent.probes import stage_probes
from components.pipeline import TrialResult, best_trial
from components.reasoners.base import AgentView, Reply
from components.space import Allocation, SearchSpace

COARSE = (1, 3, 6, 15, 40, 100)  # ×2.5 steps: ×3 (1, 3, 10, 30, 100) and ×2 both measured worse over all scenarios
TOP_TRIALS = 6  # exploration searches around the best trials up to this rank before any random allocation
RUNNER_UP_TRIES = (
    2  # trials of a runner-up model before it must come within noise of the best (4 spent too many trials on it)
)
LADDER = (1, 2, 3, 5, 7, 10, 14, 20, 30, 45, 65, 100)
NEAR_TRIED = 1.3  # the coarse scan skips counts this close (as a ratio) to a tried count


def _rotated(view: AgentView, items: Sequence) -> list:
    """``items`` starting at index ``round % len``: a round's k slots are shared between the move
    families, so a family's first candidate is often its only one, and no stage should always lead."""
    lead = view.round % len(items)
    return list(items[lead:]) + list(items[:lead])


@dataclass
class _Candidate:
    allocation: Allocation
    insight: str
    rationale: str


class RulesReasoner:
    """Deterministic AgentTTS reasoning over the archive (see the module docstring).

    >>> RulesReasoner().is_llm
    False
    """

    name = "rules"
    is_llm = False

    def check(self) -> None:
        pass

    def complete(self, system: str, prompt: str, view: AgentView) -> Reply:
        if view.kind == "trials":
            return Reply(self.trials(view))
        return Reply(self.guidelines(view))

    # -- analysis ------------------------------------------------------------------------------
    @staticmethod
    def noise(view: AgentView) -> float:
        """Score differences below two questions are not significant on the train set."""
        return 2.0 / max(1, view.n_questions)

    @staticmethod
    def _probe_results(view: AgentView, stage: str) -> list[tuple[Allocation, TrialResult]]:
        """The evaluated Insight-1 probes of ``stage`` with their results, the shared one included (every
        stage's largest model once probes each stage, though it runs once)."""
        if stage not in view.probes.values():  # not probed (a warm start settled its model)
            return []
        by_alloc = {r.allocation: r for r in view.history}
        return [(a, by_alloc[a]) for a, _ in stage_probes(view.space)[stage] if a in by_alloc]

    def top_models(self, view: AgentView) -> dict[str, tuple[str, str]]:
        """Per probed stage, the model of its best-scoring probe (ties: the smaller)."""
        out = {}
        for stage in view.space.stages:
            probes = self._probe_results(view, stage.name)
            if probes:
                a, _ = max(probes, key=lambda ar: (ar[1].score, -stage.model(ar[0][stage.name][0]).params))
                out[stage.name] = (a[stage.name][0], "the best-scoring probe")
            elif stage.name in view.prior:
                out[stage.name] = view.prior[stage.name]
        return out

    def preferred_models(self, view: AgentView) -> dict[str, tuple[str, str]]:
        """Insight 1: per stage, the model to explore and why, from the probes."""
        out = {}
        for stage in view.space.stages:
            probes = self._probe_results(view, stage.name)
            if not probes:
                if stage.name in view.prior:  # a warm start settled this stage's model; no probes were run
                    out[stage.name] = view.prior[stage.name]
                continue
            top = max(r.score for _, r in probes)
            near = [(a, r) for a, r in probes if r.score >= top - self.noise(view)]
            # among results within noise of the best, the smallest model keeps more flexibility
            a, r = min(near, key=lambda ar: stage.model(ar[0][stage.name][0]).params)
            model, samples = a[stage.name]
            ranking = ", ".join(
                f"{p[stage.name][0]}×{p[stage.name][1]}: {q.score:.3f}"
                for p, q in sorted(probes, key=lambda x: -x[1].score)
            )
            why = f"at equal stage budget the probes score {ranking}; " + (
                f"{model} is within two questions of the best, so the smaller model is preferred"
                if len(near) > 1
                else f"{model} is clearly best"
            )
            out[stage.name] = (model, why)
        return out

    def ruled_out(self, view: AgentView) -> dict[str, set[str]]:
        """Insight 1: per stage, the models whose probe lost clearly (by more than two noise levels)
        at equal stage budget; moves to them "at the same stage budget" repeat a lost comparison."""
        out: dict[str, set[str]] = {}
        for stage in view.space.stages:
            probes = [(a[stage.name][0], r.score) for a, r in self._probe_results(view, stage.name)]
            if probes:
                top = max(v for _, v in probes)
                out[stage.name] = {m for m, v in probes if v < top - 2 * self.noise(view)}
        return out

    @staticmethod
    def anchor_trial(view: AgentView):
        """The trial the moves start from: the best; among equal scores the one spending the most budget
        (Insight 3: on a plateau, the costlier allocation still has the joint moves the optimum needs,
        while drifting to the cheapest tie walks away from the budget line)."""
        ok = [r for r in view.history if r.status == "ok"]
        return max(ok, key=lambda r: (r.score, r.cost.units), default=None)

    def curve(self, view: AgentView, anchor: Allocation, stage: str) -> dict[int, float]:
        """Scores of trials equal to ``anchor`` except for ``stage``'s sample count."""
        model = anchor[stage][0]
        out = {}
        for r in view.history:
            a = r.allocation
            if a[stage][0] == model and all(a[s] == anchor[s] for s, _, _ in anchor.choices if s != stage):
                out[a[stage][1]] = r.score
        return out

    @staticmethod
    def _next_smaller(stage, model: str, excluded=()) -> str | None:
        """The largest of ``stage``'s models smaller than ``model`` (``excluded`` skipped), if any."""
        smaller = [m for m in stage.models if m.params < stage.model(model).params and m.name not in excluded]
        return max(smaller, key=lambda m: m.params).name if smaller else None

    def _room(self, space: SearchSpace, a: Allocation, stage: str, model: str) -> int:
        """Most samples ``stage`` can have with ``model`` when the other stages keep their allocation."""
        others = sum(space.stage_cost(s, m, n) for s, m, n in a.choices if s != stage)
        return space.max_samples(next(s for s in space.stages if s.name == stage), model, space.budget.value - others)

    # -- candidate generators --------------------------------------------------------------------
    def _combine_preferred(
        self,
        view: AgentView,
        prefs: dict,
        why: str = "combine the preferred model of every stage (Insight 1), samples fitted to the budget",
    ) -> list[_Candidate]:
        """Right after the probes: every stage on its preferred model, samples fitted to the budget."""
        choice = []
        for stage in view.space.stages:
            if stage.name not in prefs:
                return []
            model = prefs[stage.name][0]
            probe_samples = [
                a[stage.name][1] for a, _ in self._probe_results(view, stage.name) if a[stage.name][0] == model
            ]
            if not probe_samples:  # model from prior experience: the samples of its best trial so far
                probe_samples = [
                    r.allocation[stage.name][1]
                    for r in sorted(view.history, key=lambda r: -r.score)
                    if r.allocation[stage.name][0] == model
                ]
            choice.append((stage.name, model, probe_samples[0] if probe_samples else 1))
        a = Allocation(tuple(choice))
        fitted = self._fit(view.space, a)
        if fitted:
            out = [_Candidate(fitted, "1", why)]
            if all(n_fit < n or n_fit == 1 for (_, _, n_fit), (_, _, n) in zip(fitted.choices, a.choices)):
                out += self._yield_half(view, fitted)
            return out
        # the preferred models do not fit together even at one sample each: per stage, its next smaller
        # model with the samples the rest of the budget buys (Insight 3: one stage yields to the others)
        out = []
        for stage in view.space.stages:
            m = self._next_smaller(stage, a[stage.name][0])
            if m is None:
                continue
            room = self._room(view.space, a, stage.name, m)
            if room >= stage.min_samples:
                b = self._fit(view.space, a.replace(stage.name, model=m, samples=room))
                if b:
                    out.append(
                        _Candidate(
                            b,
                            "1",
                            f"the preferred models do not fit together: {stage.name} yields to {m} with the rest of the budget",
                        )
                    )
        return out

    def _yield_half(self, view: AgentView, a: Allocation) -> list[_Candidate]:
        """The preferred models fit together only with every stage cut to its fewest samples, so no stage
        has room for Insight 2: each stage in turn yields to its next smaller model at half its stage
        budget, and the other stages spend what it frees (Insight 3 at a tight budget; the probe that
        ranked the smaller model ran it at many samples, past its peak, so it is not ruled out here)."""
        space, out = view.space, []
        for stage in space.stages:
            m = self._next_smaller(stage, a[stage.name][0])
            if m is None:
                continue
            n = space.max_samples(stage, m, space.stage_cost(stage.name, *a[stage.name]) / 2)
            if n < stage.min_samples:
                continue
            b = a.replace(stage.name, model=m, samples=n)
            for take in (t for t in space.stages if t.name != stage.name):
                room = self._room(space, b, take.name, b[take.name][0])
                if room > b[take.name][1]:
                    b = b.replace(take.name, samples=room)
            if space.is_feasible(b):
                why = f"the preferred models fit together only at their fewest samples: {stage.name} yields to {m} at half its stage budget"
                out.append(_Candidate(b, "1", why))
        return out

    def _fit(self, space: SearchSpace, a: Allocation) -> Allocation | None:
        """Shrink the most expensive stage's samples until the allocation fits (Insight 3's priority)."""
        for _ in range(64):
            if space.is_feasible(a):
                return a
            costs = [(space.stage_cost(s, m, n), s, m, n) for s, m, n in a.choices if n > 1]
            if not costs:
                return None
            _, s, m, n = max(costs)
            a = a.replace(s, samples=max(1, n // 2))
        return a if space.is_feasible(a) else None

    def _lane(self, view: AgentView, anchor: Allocation, stage, model: str) -> list[_Candidate]:
        """Insight 2 for one (stage, model) with the other stages as in ``anchor``, coarse to fine.

        First the coarse ladder (about ×2.5 steps: 1, 3, 6, 15, 40, 100, and the most the budget allows),
        nearest to the best count first; then the finer ladder between the best count's coarse
        neighbours; then bisection towards the better neighbour while the gap is over 15%.
        """
        top = self._room(view.space, anchor, stage.name, model)
        if top < stage.min_samples:
            return []
        base = anchor.replace(stage.name, model=model, samples=min(top, anchor[stage.name][1]))
        tried = self.curve(view, base, stage.name)
        if tried:
            best_s = max(tried, key=lambda s: (tried[s], -s))
        else:
            best_s = base[stage.name][1]
        dist = lambda p: abs(np.log(p / best_s))  # noqa: E731
        best_v, noise = tried.get(best_s, float("-inf")), self.noise(view)

        def beyond_a_drop(p: int) -> bool:
            # the curve is unimodal up to noise: past a clearly worse count, farther ones are worse too
            between = [t for t in tried if min(p, best_s) < t < max(p, best_s)]
            return any(tried[t] < best_v - noise for t in between)

        coarse = sorted({p for p in COARSE if stage.min_samples <= p <= top} | {top}, key=dist)
        todo = [
            (p, f"coarse scan of {stage.name} with {model}: try {p} samples (best so far {best_s})")
            for p in coarse
            # a count within NEAR_TRIED of a tried one is nearly the same measurement: the samples are
            # shared prefixes of one stream (39 tried makes 40 uninformative)
            if not any(max(p, t) / min(p, t) < NEAR_TRIED for t in tried) and not beyond_a_drop(p)
        ]
        if not todo:
            below = max((p for p in coarse if p < best_s), default=stage.min_samples)
            above = min((p for p in coarse if p > best_s), default=top)
            fine = sorted((p for p in LADDER if below < p < above and p <= top), key=dist)
            todo = [
                (p, f"{stage.name} with {model} peaks near {best_s} samples: try {p}") for p in fine if p not in tried
            ]
        if not todo:
            nbs = [
                x
                for x in (
                    max((s for s in tried if s < best_s), default=None),
                    min((s for s in tried if s > best_s), default=None),
                )
                if x
            ]
            for nb in sorted(nbs, key=lambda x: -tried[x]):
                mid = int(round((best_s * nb) ** 0.5))
                if max(nb, best_s) / min(nb, best_s) > 1.15 and mid not in tried:
                    todo.append(
                        (
                            mid,
                            f"the plateau of {stage.name} with {model} lies between {min(best_s, nb)} and {max(best_s, nb)} samples: try {mid}",
                        )
                    )
        return [_Candidate(base.replace(stage.name, samples=n), "2", why) for n, why in todo]

    def _ladder(self, view: AgentView, anchor: Allocation) -> list[_Candidate]:
        """Insight 2 on every stage's current model, interleaved across stages, a different stage first
        each round: a round's k slots are shared with the other moves, so often only the leading lane
        gets one, and a fixed order left the later stages' sample counts unscanned for many rounds."""
        lanes = _rotated(view, [self._lane(view, anchor, st, anchor[st.name][0]) for st in view.space.stages])
        return [c for group in itertools.zip_longest(*lanes) for c in group if c is not None]

    def _sweep(self, view: AgentView, anchor: Allocation) -> list[_Candidate]:
        """Insight 2 once the plateau is found: each stage's untried counts between the lowest and the
        highest count within noise of its best, the farthest (in ratio) from any tried count first.

        On a plateau the score moves by a question or two from one count to the next, so its best
        count is found by covering the plateau, not by refining around the best one so far.
        """
        space, noise, lanes = view.space, self.noise(view), []
        for st in _rotated(view, space.stages):
            tried = self.curve(view, anchor, st.name)
            if len(tried) < 2:
                continue
            top = max(tried.values())
            flat = [n for n in tried if tried[n] >= top - noise]
            hi = min(max(flat), self._room(space, anchor, st.name, anchor[st.name][0]))
            todo = [n for n in range(max(st.min_samples, min(flat)), hi + 1) if n not in tried]
            gap = {n: min(abs(np.log(n / t)) for t in tried) for n in todo}
            why = f"sweep the plateau of {st.name} ({min(flat)}-{max(flat)} samples within noise of the best)"
            lanes.append(
                [
                    _Candidate(anchor.replace(st.name, samples=n), "2", f"{why}: try {n}")
                    for n in sorted(todo, key=gap.get, reverse=True)
                ]
            )
        return [c for group in itertools.zip_longest(*lanes) for c in group if c is not None]

    def _runner_up(self, view: AgentView, anchor: Allocation) -> list[_Candidate]:
        """Insight 1 revisited: a stage's second model may win at another sample count (a small
        model peaks earlier than the probe's equal-budget count), so its sample count is scanned too,
        starting at the best trial's stage budget."""
        best, noise, lanes = best_trial(view.history).score, self.noise(view), []
        for st in view.space.stages:
            scores: dict[str, float] = {}
            for r in view.history:
                m = r.allocation[st.name][0]
                if m != anchor[st.name][0]:
                    scores[m] = max(scores.get(m, float("-inf")), r.score)
            if not scores:
                continue
            m = max(scores, key=lambda x: (scores[x], -st.model(x).params))
            tries = sum(r.allocation[st.name][0] == m for r in view.history)
            own = self.curve(view, anchor.replace(st.name, model=m, samples=1), st.name)  # others as in anchor
            # only a close runner-up is worth a scan (within two noise levels), and only until a few
            # counts of it stay clearly below the best, or a few of its own scan do (one lucky trial of
            # the model elsewhere does not keep its scan open)
            close = scores[m] >= best - 2 * noise and (tries < RUNNER_UP_TRIES or scores[m] >= best - noise)
            scanned_out = len(own) >= RUNNER_UP_TRIES and max(own.values()) < best - noise
            if close and not scanned_out:
                lanes.append(self._equal_budget_first(view, anchor, st, m, own))
        return [c for group in itertools.zip_longest(*lanes) for c in group if c is not None]

    def _equal_budget_first(
        self, view: AgentView, anchor: Allocation, stage, model: str, own: dict
    ) -> list[_Candidate]:
        """``model``'s lane on ``stage``, led by the count the anchor's stage budget buys (Insight 1's
        comparison where the anchor stands: a small model needs its many samples before a scan of it
        says anything), unless its scan ``own`` already has a count near that one."""
        lane = self._lane(view, anchor, stage, model)
        space = view.space
        n = space.max_samples(stage, model, space.stage_cost(stage.name, *anchor[stage.name]))
        n = min(n, self._room(space, anchor, stage.name, model))
        if n < stage.min_samples or any(max(n, t) / min(n, t) < NEAR_TRIED for t in own):
            return lane
        eq = anchor.replace(stage.name, model=model, samples=n)
        why = f"{model} on {stage.name} at the best trial's stage budget ({n} samples)"
        return [_Candidate(eq, "1", why)] + [c for c in lane if c.allocation != eq]

    def _rebalance(self, view: AgentView, anchor: Allocation) -> list[_Candidate]:
        """Insight 3: take budget from one stage and spend it on another's samples; the giving stage
        rotates with the round, as the ladder's lanes do (a round usually has one slot for this move)."""
        space, out = view.space, []
        lost = self.ruled_out(view)
        for give in _rotated(view, space.stages):
            g_model, g_s = anchor[give.name]
            cheaper = []
            if g_s > 1:
                cheaper.append((g_model, max(1, g_s // 2), f"halve {give.name}'s samples"))
            m = self._next_smaller(give, g_model, lost.get(give.name, ()))
            if m is not None:
                n = space.max_samples(give, m, space.stage_cost(give.name, g_model, g_s))
                if n >= give.min_samples:
                    cheaper.append((m, n, f"move {give.name} to the smaller {m} at the same stage budget"))
            for model, n, how in cheaper:
                reduced = anchor.replace(give.name, model=model, samples=n)
                for take in space.stages:
                    if take.name == give.name:
                        continue
                    t_model, t_s = reduced[take.name]
                    room = self._room(space, reduced, take.name, t_model)
                    if room > t_s:
                        out.append(
                            _Candidate(
                                reduced.replace(take.name, samples=room),
                                "3",
                                f"{how} and spend the freed budget on {take.name} ({t_s} -> {room} samples)",
                            )
                        )
        for stage in space.stages:  # unused budget goes to the stage that can use it
            model, s = anchor[stage.name]
            room = self._room(space, anchor, stage.name, model)
            if room > s:
                out.append(
                    _Candidate(
                        anchor.replace(stage.name, samples=room),
                        "3",
                        f"spend the unused budget on {stage.name} ({s} -> {room} samples)",
                    )
                )
        return out

    def _trade(self, view: AgentView, anchor: Allocation) -> list[_Candidate]:
        """Insight 3, fine-grained: one stage a step more samples, another stage as many as still fit.

        When the best trial spends the whole budget, no single stage can grow; the optimum then lies
        along the budget line, which only joint moves reach.
        """
        space, out = view.space, []
        for up in space.stages:
            model, s = anchor[up.name]
            step = min(up.max_samples, max(s + 1, int(round(s * 1.25))))
            if step <= s:
                continue
            raised = anchor.replace(up.name, samples=step)
            for down in space.stages:
                if down.name == up.name:
                    continue
                d_model, d_s = raised[down.name]
                room = self._room(space, raised, down.name, d_model)
                if down.min_samples <= room < d_s:
                    out.append(
                        _Candidate(
                            raised.replace(down.name, samples=room),
                            "3",
                            f"trade along the budget line: {up.name} {s} -> {step} samples, {down.name} {d_s} -> {room}",
                        )
                    )
        return out

    def _explore(self, view: AgentView, anchor: Allocation, rng: np.random.Generator) -> list[_Candidate]:
        space = view.space
        out = self._swap(view, anchor)
        ranked = sorted(view.history, key=lambda r: (-r.score, r.cost.units))
        if len(ranked) >= 2:
            a, b = ranked[0].allocation, ranked[1].allocation
            for st, m, n in b.choices:
                c = a.replace(st, model=m, samples=n)
                out.append(_Candidate(c, "explore", f"crossover: the best trial with {st} from the runner-up"))
            out += [_Candidate(x, "explore", "mutation: a neighbour of the runner-up") for x in space.neighbours(b)]
        # before anything random, the structured moves around the next-best trials: the score is noisy,
        # so the optimum often sits next to a trial that ranked second to fifth, not next to the best
        for r in ranked[1:TOP_TRIALS]:
            b = r.allocation
            moves = [self._trade(view, b), self._rebalance(view, b), self._swap(view, b), self._ladder(view, b)]
            out += [c for group in itertools.zip_longest(*moves) for c in group if c is not None]
            out += [_Candidate(x, "explore", "mutation: a neighbour of a top trial") for x in space.neighbours(b)]
        out += [_Candidate(x, "explore", "random feasible allocation") for x in space.sample(rng, max(4, view.k))]
        return out

    def _swap(self, view: AgentView, anchor: Allocation) -> list[_Candidate]:
        """Insight 1 revisited: each stage's other models at the anchor's stage budget (lost probes excepted)."""
        space, out = view.space, []
        lost = self.ruled_out(view)
        for stage in space.stages:
            model, s = anchor[stage.name]
            budget = space.stage_cost(stage.name, model, s)
            for m in stage.models:
                if m.name != model and m.name not in lost.get(stage.name, ()):
                    n = space.max_samples(stage, m.name, budget)
                    if n >= stage.min_samples:
                        out.append(
                            _Candidate(
                                anchor.replace(stage.name, model=m.name, samples=n),
                                "explore",
                                f"mutation: {m.name} on {stage.name} at the same stage budget",
                            )
                        )
        return out

    def _cheap_anchor(self, view: AgentView, best) -> Allocation | None:
        """The cheapest trial within noise of the best, when it is not the best itself."""
        near = [r for r in view.history if r.status == "ok" and r.score >= best.score - self.noise(view) + 1e-9]
        cheap = min(near, key=lambda r: (r.cost.units, -r.score))
        return cheap.allocation if cheap.allocation != best.allocation else None

    # -- the two answers -------------------------------------------------------------------------
    def _stalled(self, view: AgentView) -> bool:
        """No improvement by the most recent batch of trials (never right after the probes)."""
        k = max(1, view.k)
        if view.round <= 1 or len(view.history) <= k:
            return False
        before = max(r.score for r in view.history[:-k])
        return max(r.score for r in view.history[-k:]) <= before

    def candidates(self, view: AgentView) -> list[_Candidate]:
        """All candidates in priority order (the JSON answer keeps the first k new feasible ones)."""
        best = self.anchor_trial(view)
        if best is None:
            return [_Candidate(a, "1", f"probe of stage {st}") for a, st in view.probes.items()]
        anchor = best.allocation
        rng = np.random.default_rng([view.seed, len(view.history)])
        prefs = self.preferred_models(view)
        first = self._combine_preferred(view, prefs) if view.round == 1 else []
        if view.round == 1:
            # the probes' noise can hide which model a stage prefers: when the smallest model within
            # noise and the best-scoring one differ, both combinations are tried
            top = self.top_models(view)
            if {st: m for st, (m, _) in top.items()} != {st: m for st, (m, _) in prefs.items()}:
                why = "combine the best-scoring probe model of every stage (Insight 1), samples fitted to the budget"
                alts = self._combine_preferred(view, top, why)
                # when the best-scoring models do not fit together, one stage yields to a smaller model;
                # yielding the stage where they differ would land on the preferred model again
                differ = [st for st in top if st in prefs and top[st][0] != prefs[st][0]]
                fresh = [c for c in alts if all(c.allocation[st][0] != prefs[st][0] for st in differ)]
                first = first[:1] + (fresh or alts)[:1] + first[1:]
        ladder, rebalance = self._ladder(view, anchor), self._rebalance(view, anchor)
        runner_up = self._runner_up(view, anchor)
        explore = self._explore(view, anchor, rng)
        # interleave Insight 2 (current and runner-up models) and Insight 3, so one batch tests the
        # plateau, the model choice and the balance
        groups = itertools.zip_longest(ladder, runner_up, rebalance, self._trade(view, anchor))
        mixed = [c for group in groups for c in group if c is not None]
        stalled = []
        if self._stalled(view):
            # one slot covers the plateau of the best trial's stages (its best count is a question or
            # two above the rest, at no predictable count); when no stage has a scanned plateau: a best
            # trial that spends the whole budget blocks Insight 2 on its stages, but the cheapest trial
            # within noise of it still has room, so the slot goes to its ladder
            cheap = self._cheap_anchor(view, best)
            stalled = (
                self._sweep(view, anchor)[:1]
                or (self._ladder(view, cheap) if cheap is not None else [])[:1]
                or explore[:1]
            )
        return first + stalled + mixed + explore

    def lost_choices(self, view: AgentView) -> set[tuple[str, str, int]]:
        """Insights 1 and 2's evidence pooled across anchors: the (stage, model, count) choices that lose
        to the best choice of that stage (another count, or another model) with every other stage
        equal, by more than one noise level on average over at least two such comparisons, or by
        more than two in a single one."""
        noise, scans = self.noise(view), {}
        for r in view.history:
            if r.status != "ok":
                continue
            for s, m, n in r.allocation.choices:
                rest = tuple(c for c in r.allocation.choices if c[0] != s)
                scans.setdefault((s, rest), []).append(((m, n), r.score))
        gaps: dict[tuple[str, str, int], list[float]] = {}
        for (s, _), pts in scans.items():
            if len(pts) > 1:
                top = max(v for _, v in pts)
                for (m, n), v in pts:
                    gaps.setdefault((s, m, n), []).append(v - top)
        return {
            key
            for key, g in gaps.items()
            if (len(g) > 1 and sum(g) / len(g) < -noise + 1e-9) or (len(g) == 1 and g[0] < -2 * noise)
        }

    def trials(self, view: AgentView) -> str:
        seen = {r.allocation for r in view.history}
        picked: dict[Allocation, _Candidate] = {}
        # a choice that lost at other anchors keeps losing (tool selection x4 after x3 won at three
        # decomposition counts; parameter prediction on 8B after 70B won twice): candidates reusing
        # one go last, after every other move
        lost = self.lost_choices(view)
        for c in sorted(self.candidates(view), key=lambda c: any(x in lost for x in c.allocation.choices)):
            a = c.allocation
            if a in seen or a in picked or not view.space.is_feasible(a):
                continue
            picked[a] = c
            if len(picked) >= view.k:
                break
        return json.dumps(
            {
                "candidates": [
                    {**a.to_dict(), "insight": c.insight, "rationale": c.rationale} for a, c in picked.items()
                ]
            },
            indent=1,
        )

    def guidelines(self, view: AgentView) -> str:
        space, best = view.space, best_trial(view.history)
        if best is None:
            return "No trials yet: run the Insight-1 probes first."
        lines = []
        prefs = self.preferred_models(view)
        lines.append("1. Model choice (Insight 1):")
        for stage in space.stages:
            if stage.name in prefs:
                lines.append(f"   - {stage.name}: explore {prefs[stage.name][0]}; {prefs[stage.name][1]}.")
        lines.append("2. Sample count (Insight 2):")
        for stage in space.stages:
            model = best.allocation[stage.name][0]
            tried = self.curve(view, best.allocation, stage.name)
            if len(tried) > 1:
                pts = ", ".join(f"{s}: {v:.3f}" for s, v in sorted(tried.items()))
                top = max(tried, key=lambda s: (tried[s], -s))
                trend = (
                    "still rising: try more samples"
                    if top == max(tried)
                    else (
                        "gains stop early: try fewer samples"
                        if top == min(tried)
                        else f"plateau around {top} samples: refine near it"
                    )
                )
                lines.append(f"   - {stage.name} with {model}, other stages fixed: score by samples {pts}; {trend}.")
            else:
                lines.append(
                    f"   - {stage.name} with {model}: only {best.allocation[stage.name][1]} samples tried; walk the sample count up and down from there."
                )
        used = best.cost.measure(space.budget.kind)
        shares = ", ".join(f"{s}: {space.stage_cost(s, m, n):.0f}" for s, m, n in best.allocation.choices)
        lost = sorted(self.lost_choices(view))
        if lost:
            pts = ", ".join(f"{s} {m}×{n}" for s, m, n in lost)
            lines.append(
                f"   - choices that lost to another count or model of their stage, other stages equal: {pts}; avoid them."
            )
        lines.append("3. Budget balance (Insight 3):")
        lines.append(
            f"   - the best trial ({best.allocation}, score {best.score:.3f}) uses {used:.0f} of {space.budget.value:.0f} {space.budget.kind} ({shares})."
        )
        lines.append(
            "   - try moving budget between stages: fewer samples or a smaller model on one stage, more samples on another; spend any unused budget."
        )
        scores = [r.score for r in view.history]
        if view.kind != "initial_guidelines":
            lines.append("4. Exploration:")
            if self._stalled(view) or (max(scores) - min(scores) < self.noise(view)):
                lines.append(
                    "   - the last trials did not improve the best (or scores vary little): explore with mutations, crossover of the best trials and random allocations."
                )
            else:
                lines.append("   - the best score still improves: keep following the patterns above.")
        return "\n".join(lines)
