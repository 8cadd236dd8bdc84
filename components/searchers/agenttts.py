"""AgentTTS (Algorithm 1): Insight-1 probes, then rounds of guidelines → batched trial proposals.

Per round the agent asks its reasoner for guidelines (the initial-guideline prompt after the probes,
the non-initial one afterwards), then for ``k`` trials as strict JSON given the full history, the
budget function and the guidelines. Answers are parsed defensively (``components.agent.answers``);
a round whose answer is unusable, or whose reasoner fails, falls back to the ``rules`` reasoner,
which also fills a batch the answer left short. Every proposal carries a decision-trace record.
"""

from __future__ import annotations

import re
import time
from collections import Counter

import numpy as np

from components.agent.answers import parse_trials
from components.agent.probes import insight1_probes
from components.agent.prompts import PromptSet, TaskInfo, render_guidelines, render_trials
from components.pipeline import TrialResult, best_trial
from components.reasoners.base import AgentView, Reasoner, ReasonerError
from components.reasoners.rules import RulesReasoner
from components.searchers.base import Proposal
from components.space import SearchSpace


def guideline_rounds(paths: list[str]) -> list[str]:
    """The ``guidelines/round_NN.md`` artifact paths in round order (by number: round_100 after
    round_99), without ``prior.md`` (a warm start's input, not a round).

    >>> guideline_rounds(["guidelines/round_100.md", "guidelines/prior.md", "guidelines/round_99.md"])
    ['guidelines/round_99.md', 'guidelines/round_100.md']
    """
    rounds = [p for p in paths if re.fullmatch(r"round_\d+\.md", p.rsplit("/", 1)[-1])]
    return sorted(rounds, key=lambda p: int(p.rsplit("_", 1)[-1][:-3]))


class AgentTTSSearcher:
    """The AgentTTS agent over a pluggable reasoner.

    Args:
        reasoner: answers the prompts (an LLM, or ``RulesReasoner``).
        prompts: the validated prompt files.
        task: name, description and metrics for the prompts.
        n_questions: train questions per trial (for the noise threshold).
        seed: seeds the exploration moves.
        probes: run the Insight-1 probes first (off: the ablation "w/o Insight 1").
    """

    name = "agenttts"

    def __init__(
        self,
        reasoner: Reasoner,
        prompts: PromptSet,
        task: TaskInfo,
        n_questions: int = 50,
        seed: int = 0,
        probes: bool = True,
    ):
        self.reasoner, self.prompts, self.task = reasoner, prompts, task
        self.rules = reasoner if isinstance(reasoner, RulesReasoner) else RulesReasoner()
        self.n_questions, self.seed, self.use_probes = n_questions, seed, probes
        self.probes: dict = {}
        self._queue: list[Proposal] = []
        self._started = False
        self.round = 0
        self.guidelines: list[str] = []
        self.counts: Counter = Counter()
        self.artifacts: list[tuple[str, str]] = []  # (path, text) to archive, drained by the flow
        self.agent_seconds = 0.0
        self.agent_tokens = 0
        self.prior = None  # a WarmStart: earlier guidelines and best trials
        self.prior_models: dict[str, tuple[str, str]] = {}

    def set_prior(self, warm) -> None:
        """Start from an earlier search (``components.warm.WarmStart``): its latest guidelines become the
        first guideline (so every trials prompt carries them and every guidelines prompt gets them as a
        prior-experience section), and stages whose model the prior settles skip their Insight-1 probes."""
        self.prior = warm
        self.guidelines = [warm.prior_text()]
        self.artifacts.append(("guidelines/prior.md", self.guidelines[0]))

    def _view(self, kind: str, space: SearchSpace, history: list[TrialResult], k: int = 0) -> AgentView:
        return AgentView(
            kind, space, history, k, self.n_questions, self.probes, self.guidelines, self.round, self.seed,
            self.prior_models,
        )  # fmt: skip

    def _ask(self, system: str, prompt: str, view: AgentView) -> tuple[str, str]:
        """The reasoner's answer and ``""``; on failure the rules reasoner's answer and why (counted), so
        that what the rules proposed is never recorded as the reasoner's."""
        t = time.perf_counter()
        try:
            reply = self.reasoner.complete(system, prompt, view)
            self.agent_tokens += reply.prompt_tokens + reply.completion_tokens
            return reply.text, ""
        except ReasonerError as e:
            self.counts["reasoner_failed"] += 1
            self.artifacts.append((f"agent/round_{self.round:02d}_{view.kind}_error.txt", str(e)))
            return self.rules.complete(system, prompt, view).text, f"{self.reasoner.name} failed: {e}"
        finally:
            self.agent_seconds += time.perf_counter() - t

    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        if not self._started:
            self._started = True
            if self.prior is not None:
                self.prior_models = self.prior.settled(space)
            if self.use_probes:
                probes = insight1_probes(space)
                if self.prior_models:  # the prior already says which model these stages prefer
                    kept = [p for p in probes if p[1] not in self.prior_models]
                    self.counts["probes_skipped"] += len(probes) - len(kept)
                    probes = kept
                self.probes = {a: stage for a, stage, _ in probes}
                self._queue = [
                    Proposal(a, why, {"insight": "1", "source": "probe", "repairs": []}) for a, _, why in probes
                ]
        seen = {r.allocation for r in history}
        self._queue = [p for p in self._queue if p.allocation not in seen]
        if self._queue:
            out, self._queue = self._queue[:k], self._queue[k:]
            return out
        if not history:  # no probes: one random feasible start (the paper's ablation: a random model and count)
            (a,) = space.sample(np.random.default_rng(self.seed), 1)
            return [
                Proposal(a, "random initial trial (probes off)", {"insight": "", "source": "random", "repairs": []})
            ]
        return self._round(space, history, k)

    def _round(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        self.round += 1
        system = self.prompts.render("system").strip()
        initial = self.round == 1
        kind = "initial_guidelines" if initial else "guidelines"
        recent = max(1, min(k, len(history)))
        gprompt = render_guidelines(self.prompts, self.task, space, history, recent, initial, self.use_probes)
        if self.prior is not None:
            gprompt += "\n\n" + self.guidelines[0]
        guideline, failed = self._ask(system, gprompt, self._view(kind, space, history, k))
        guideline = guideline.strip()
        if not guideline:
            self.counts["empty_guidelines"] += 1
            guideline = self.rules.guidelines(self._view(kind, space, history, k))
        self.guidelines.append(guideline)
        note = f"<!-- written by the rules reasoner: {failed} -->\n" if failed else ""
        self.artifacts.append((f"guidelines/round_{self.round:02d}.md", note + guideline))

        tprompt = render_trials(self.prompts, self.task, space, history, self.guidelines, k)
        view = self._view("trials", space, history, k)
        answer, failed = self._ask(system, tprompt, view)
        if self.reasoner.is_llm:
            self.artifacts.append((f"agent/round_{self.round:02d}_prompt.txt", tprompt))
            if not failed:  # the error is in round_NN_trials_error.txt; the rules' answer is not the model's
                self.artifacts.append((f"agent/round_{self.round:02d}_answer.txt", answer or ""))
        seen = {r.allocation for r in history}
        best = best_trial(history)
        source = self.reasoner.name
        if failed:
            parsed = None
        else:
            parsed = parse_trials(answer, space, seen, k, best.allocation if best else None)
            self.counts.update(parsed.counts)
        if parsed is None or not parsed.proposals:
            self.counts["fallback_rounds"] += 1
            source = f"rules (fallback: {failed or parsed.error})"
            parsed = parse_trials(self.rules.trials(view), space, seen, k)
        out = [
            Proposal(
                p.allocation,
                p.rationale or f"proposed by {source} following the round-{self.round} guidelines",
                {"insight": p.insight, "source": source, "repairs": p.repairs, "round": self.round},
            )
            for p in parsed.proposals
        ]
        if len(out) < k:  # top up a short batch with the rules reasoner's proposals
            taken = seen | {p.allocation for p in out}
            extra = parse_trials(
                self.rules.trials(self._view("trials", space, history, k + len(out))), space, taken, k - len(out)
            )
            if extra.proposals and source == self.reasoner.name and self.reasoner.is_llm:
                self.counts["filled_by_rules"] += len(extra.proposals)
            out += [
                Proposal(
                    p.allocation,
                    p.rationale,
                    {"insight": p.insight, "source": "rules (top-up)", "repairs": p.repairs, "round": self.round},
                )
                for p in extra.proposals
            ]
        return out

    def observe(self, results: list[TrialResult]) -> None:
        pass
