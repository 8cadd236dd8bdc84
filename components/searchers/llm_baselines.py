"""The paper's LLM baselines (AgentTTS §6), through the agent's reasoner interface and answer parser.

* ``llm_zs`` (LLM_ZS): each round asks for ``k`` trials given only the task description, the model
  choices with their token lengths, the sample range, the budget function and the total budget: no
  history, no guidelines. Duplicates of earlier trials are dropped by the parser and the batch is
  topped up by asking the same prompt again (independent draws), at most ``max_asks`` asks a round.
* ``mlcopilot`` (MLCopilot, adapted as in the paper): a two-phase loop, guideline generation then
  guideline-informed trial generation. The first guidelines are elicited from ANOTHER task's search
  history (``prior_history``: a ``trials.csv`` archived by an earlier search, best rows first); later
  ones revise the current guidelines from this task's results (the feedback).
* ``agenthpo`` (AgentHPO, adapted): Creator/Executor. The Executor's role (run the trials, analyse the
  log) is the flow plus one analysis prompt per round, which writes the searcher's own guidelines
  (the first ones from the task description and whatever history there is: none in a plain search,
  the shared Insight-1 probes in `agenttts bench`); the Creator proposes ``k`` trials, each with a
  rationale, given the task, the model choices, the budget, the full log and the analyses.

They are LLM methods by definition: there is no rules fallback, and ``flows.build.make_searcher``
refuses a non-LLM reasoner. A failed (``ReasonerError``) or unusable answer is retried once; after
that the round returns what is usable, possibly nothing (the flow then stops). Everything is counted
in ``counts``; prompts, answers and guidelines go to ``artifacts``; every proposal carries a trace.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from components.agent.answers import ParsedProposal, parse_trials
from components.agent.prompts import (
    COMMON,
    PromptSet,
    TaskInfo,
    budget_function,
    common_values,
    example_json,
    history_text,
    sample_range_text,
)
from components.errors import ConfigError
from components.pipeline import TrialResult, best_trial
from components.reasoners.base import AgentView, Reasoner, ReasonerError
from components.searchers.base import Proposal
from components.space import Allocation, SearchSpace

BASELINE_PROMPTS_DIR = Path(__file__).resolve().parents[2] / "conf" / "prompts" / "baselines"

_TRIALS = (*COMMON, "sample_range", "budget_function", "batch_size", "example")
BASELINE_REQUIRED: dict[str, tuple[str, ...]] = {
    "system": (),
    "preamble": (),
    "llm_zs_trials": _TRIALS,
    "mlcopilot_initial_guidelines": (*COMMON, "prior_source", "prior_history"),
    "mlcopilot_guidelines": (*COMMON, "history", "guidelines"),
    "mlcopilot_trials": (*_TRIALS, "history", "guidelines"),
    "agenthpo_analysis": (*COMMON, "history", "guidelines"),
    "agenthpo_trials": (*_TRIALS, "history", "guidelines"),
}


def llm_required_message(name: str) -> str:
    return f"{name} is an LLM method and needs an LLM reasoner: reasoner=openai reasoner.base_url=... reasoner.model=... (or reasoner=vllm)"


# -- another task's history (MLCopilot's experience) ---------------------------------------------------
_NOT_METRICS = {"trial", "status", "allocation", "rationale", "wall_s"}


@dataclass(frozen=True)
class PriorRow:
    allocation: dict  # {stage: {"model", "samples"}}
    scores: dict  # {"score": ..., other metrics}
    units: float | None


@dataclass(frozen=True)
class PriorHistory:
    """Trials of another task's search, read from an archived ``trials.csv`` (usable rows only)."""

    path: Path
    rows: tuple[PriorRow, ...]

    @classmethod
    def load(cls, path: str | Path | None) -> PriorHistory:
        """Read and check the file.

        Raises:
            ConfigError: no path given, no such file, a missing ``allocation``/``score`` column, or no usable row.
        """
        if not path:
            raise ConfigError(
                "mlcopilot initialises its guidelines from another task's search history: give "
                "searcher.prior_history=PATH/trials.csv (the trials.csv artifact of an earlier search, "
                "e.g. mlruns/artifacts/<run id>/artifacts/trials.csv)"
            )
        p = Path(str(path)).expanduser()
        if not p.is_file():
            raise ConfigError(f"searcher.prior_history: no such file {p}")
        try:
            with open(p, newline="") as fh:
                reader = csv.DictReader(fh)
                cols = list(reader.fieldnames or [])
                raw = list(reader)
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ConfigError(f"searcher.prior_history: cannot read {p} as CSV: {e}") from None
        missing = [c for c in ("allocation", "score") if c not in cols]
        if missing:
            raise ConfigError(
                f"searcher.prior_history: {p} lacks column(s) {missing} (columns: {cols[:12]}); give a trials.csv archived by a search"
            )
        stages = [
            c[: -len(".model")] for c in cols if c.endswith(".model") and f"{c[: -len('.model')]}.samples" in cols
        ]
        metrics = [
            c
            for c in cols
            if c not in _NOT_METRICS and not c.startswith("cost/") and not c.endswith((".model", ".samples"))
        ]
        rows = []
        for r in raw:
            if (r.get("status") or "ok") != "ok":
                continue
            scores = {m: _float(r.get(m)) for m in metrics}
            scores = {m: round(v, 4) for m, v in scores.items() if v is not None}
            if "score" not in scores:
                continue
            if stages:
                try:
                    alloc = {
                        st: {"model": r[f"{st}.model"], "samples": int(float(r[f"{st}.samples"]))} for st in stages
                    }
                except (TypeError, ValueError):
                    continue
            else:
                try:
                    alloc = Allocation.parse(r["allocation"]).to_dict()
                except Exception:
                    continue
            rows.append(PriorRow(alloc, {"score": scores.pop("score"), **scores}, _float(r.get("cost/units"))))
        if not rows:
            raise ConfigError(
                f"searcher.prior_history: {p} holds no usable trial (needs rows with an allocation and a numeric score)"
            )
        return cls(p, tuple(rows))

    def best(self, n: int) -> list[PriorRow]:
        return sorted(self.rows, key=lambda r: -r.scores["score"])[: max(1, n)]

    def stage_models(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for r in self.rows:
            for st, c in r.allocation.items():
                if c["model"] not in out.setdefault(st, []):
                    out[st].append(c["model"])
        return out

    def describe(self, shown: int) -> str:
        stages = "; ".join(f"{st} [{', '.join(ms)}]" for st, ms in self.stage_models().items())
        return f"{len(self.rows)} trials from {self.path.name} ({self.path}), the best {shown} shown, best first; its subtasks and models: {stages}"

    def text(self, n: int) -> str:
        lines = []
        for r in self.best(n):
            used = f", Used budget: {r.units:.6g} units" if r.units is not None else ""
            lines.append(f"Parameters: {json.dumps(r.allocation)}, Score: {json.dumps(r.scores)}{used}")
        return "\n".join(lines)


def _float(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# -- the shared machinery ---------------------------------------------------------------------------------
class _LLMBaseline:
    """Asking, retrying, parsing, counting and archiving, shared by the three baselines.

    Args:
        reasoner: an LLM reasoner (``is_llm``); a non-LLM one is refused.
        prompts: the validated prompt files (``load_prompts``).
        task: name, description and metrics for the prompts.
        n_questions: train questions per trial (for the reasoner's view only).
        seed: recorded in the reasoner's view (the LLM's own sampling is not seeded here).
    """

    name = ""
    PROMPTS: tuple[str, ...] = ()
    MAX_ASKS = 2  # an answer and one retry when it fails or is unusable

    def __init__(self, reasoner: Reasoner, prompts: PromptSet, task: TaskInfo, n_questions: int = 50, seed: int = 0):
        if not getattr(reasoner, "is_llm", False):
            raise ConfigError(llm_required_message(self.name))
        self.reasoner, self.prompts, self.task = reasoner, prompts, task
        self.n_questions, self.seed = n_questions, seed
        self.round = 0
        self.guidelines: list[str] = []
        self.counts: Counter = Counter()
        self.artifacts: list[tuple[str, str]] = []  # (path, text) to archive, drained by the flow
        self.agent_seconds = 0.0
        self.agent_tokens = 0

    @classmethod
    def load_prompts(cls, folder: str | Path | None = None) -> PromptSet:
        """This baseline's prompt files (``system``, ``preamble`` and its own), validated."""
        return PromptSet(folder or BASELINE_PROMPTS_DIR, {n: BASELINE_REQUIRED[n] for n in cls.PROMPTS})

    # -- asking -------------------------------------------------------------------------------------------
    def _view(self, kind: str, space: SearchSpace, history: list[TrialResult], k: int = 0) -> AgentView:
        return AgentView(kind, space, history, k, self.n_questions, {}, self.guidelines, self.round, self.seed)

    def _path(self, kind: str, what: str) -> str:
        return f"{self.name}/round_{self.round:02d}_{kind}_{what}"

    def _complete(self, kind: str, prompt: str, view: AgentView, ask: int) -> str | None:
        """The answer text, or None when the reasoner failed (counted, error archived)."""
        t = time.perf_counter()
        self.counts["llm_calls"] += 1
        try:
            reply = self.reasoner.complete(self.prompts.render("system").strip(), prompt, view)
            self.agent_tokens += reply.prompt_tokens + reply.completion_tokens
            text = reply.text or ""
            self.artifacts.append((self._path(kind, f"answer_{ask}.txt"), text))
            return text
        except ReasonerError as e:
            self.counts["reasoner_failed"] += 1
            self.artifacts.append((self._path(kind, f"error_{ask}.txt"), str(e)))
            return None
        finally:
            self.agent_seconds += time.perf_counter() - t

    def _ask_text(self, kind: str, prompt: str, space: SearchSpace, history: list[TrialResult]) -> str:
        """Prose (guidelines, analyses): retried once if it fails or is empty; "" if both do."""
        self.artifacts.append((self._path(kind, "prompt.txt"), prompt))
        for ask in range(1, self.MAX_ASKS + 1):
            if ask > 1:
                self.counts["retries"] += 1
            text = self._complete(kind, prompt, self._view(kind, space, history), ask)
            if text is not None and text.strip():
                return text.strip()
            if text is not None:
                self.counts["empty_guidelines"] += 1
        self.counts["guidelines_failed"] += 1
        return ""

    def _ask_trials(
        self,
        kind: str,
        prompt: str,
        space: SearchSpace,
        history: list[TrialResult],
        k: int,
        max_asks: int | None = None,
        top_up: bool = False,
        fallback: Allocation | None = None,
    ) -> list[Proposal]:
        """Up to ``k`` new feasible proposals parsed defensively from the answers.

        A failed or unusable answer (nothing new and feasible in it) is retried once; two in a row end
        the round. With ``top_up`` a usable but short batch is completed by asking again, at most
        ``max_asks`` asks in all.
        """
        max_asks = max_asks or self.MAX_ASKS
        self.artifacts.append((self._path(kind, "prompt.txt"), prompt))
        taken = {r.allocation for r in history}
        out: list[Proposal] = []
        asks = failures = 0
        while len(out) < k and asks < max_asks and failures < 2:
            if asks:
                self.counts["retries" if failures else "topup_asks"] += 1
            asks += 1
            answer = self._complete(kind, prompt, self._view(kind, space, history, k), asks)
            if answer is None:
                failures += 1
                continue
            parsed = parse_trials(answer, space, taken, k - len(out), fallback)
            self.counts.update(parsed.counts)
            if not parsed.proposals:
                self.counts["unusable_answers"] += 1
                failures += 1
                continue
            failures = 0
            for p in parsed.proposals:
                taken.add(p.allocation)
                out.append(self._proposal(p, asks))
            if not top_up:
                break
        if not out:
            self.counts["empty_rounds"] += 1
        return out

    def _proposal(self, p: ParsedProposal, ask: int) -> Proposal:
        rationale = p.rationale or f"proposed by {self.name} ({self.reasoner.name}), round {self.round}"
        trace = {
            "source": f"{self.name} ({self.reasoner.name})",
            "repairs": p.repairs,
            "rationale": p.rationale,
            "insight": p.insight,
            "round": self.round,
            "ask": ask,
        }
        return Proposal(p.allocation, rationale, trace)

    def _trial_values(self, space: SearchSpace, k: int, example: str | None = None) -> dict:
        return {
            **common_values(self.prompts, self.task, space),
            "sample_range": sample_range_text(space),
            "budget_function": budget_function(space),
            "batch_size": k,
            "example": example or example_json(space),
        }

    def _guideline(self, text: str) -> None:
        self.guidelines.append(text)
        self.artifacts.append((f"guidelines/round_{self.round:02d}.md", text))

    def observe(self, results: list[TrialResult]) -> None:
        pass


# -- the three baselines ------------------------------------------------------------------------------
class LLMZeroShotSearcher(_LLMBaseline):
    """LLM_ZS: batches of trials from the task alone, no history, no guidelines.

    Args:
        max_asks: asks per round; a short batch (duplicates of earlier trials dropped) is topped up by
            asking the same prompt again. Use a temperature above 0: a deterministic LLM repeats itself.
    """

    name = "llm_zs"
    PROMPTS = ("system", "preamble", "llm_zs_trials")

    def __init__(
        self,
        reasoner: Reasoner,
        prompts: PromptSet,
        task: TaskInfo,
        n_questions: int = 50,
        seed: int = 0,
        max_asks: int = 3,
    ):
        super().__init__(reasoner, prompts, task, n_questions, seed)
        if int(max_asks) < 1:
            raise ConfigError(f"searcher.max_asks must be >= 1, got {max_asks}")
        self.max_asks = int(max_asks)

    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        self.round += 1
        prompt = self.prompts.render("llm_zs_trials", **self._trial_values(space, k))
        # the history only reaches the parser (to drop repeats), never the prompt; no best-trial fill-in either
        return self._ask_trials("trials", prompt, space, history, k, max_asks=self.max_asks, top_up=True)


class MLCopilotSearcher(_LLMBaseline):
    """MLCopilot (adapted): guidelines from another task's history, revised from feedback, then trials.

    Args:
        prior: the other task's search history (``PriorHistory.load``).
        prior_max_rows: how many of its best trials the first guideline prompt shows.
    """

    name = "mlcopilot"
    PROMPTS = ("system", "preamble", "mlcopilot_initial_guidelines", "mlcopilot_guidelines", "mlcopilot_trials")

    def __init__(
        self,
        reasoner: Reasoner,
        prompts: PromptSet,
        task: TaskInfo,
        prior: PriorHistory,
        n_questions: int = 50,
        seed: int = 0,
        prior_max_rows: int = 50,
    ):
        super().__init__(reasoner, prompts, task, n_questions, seed)
        if int(prior_max_rows) < 1:
            raise ConfigError(f"searcher.prior_max_rows must be >= 1, got {prior_max_rows}")
        self.prior, self.prior_max_rows = prior, int(prior_max_rows)

    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        self.round += 1
        values = common_values(self.prompts, self.task, space)
        if not self.guidelines:  # phase 1 of the first round: knowledge elicited from the other task
            shown = len(self.prior.best(self.prior_max_rows))
            prompt = self.prompts.render(
                "mlcopilot_initial_guidelines",
                **values,
                prior_source=self.prior.describe(shown),
                prior_history=self.prior.text(self.prior_max_rows),
            )
            text = self._ask_text("initial_guidelines", prompt, space, history)
        else:  # phase 1 afterwards: revise the guidelines from this task's results
            prompt = self.prompts.render(
                "mlcopilot_guidelines", **values, history=history_text(space, history), guidelines=self.guidelines[-1]
            )
            text = self._ask_text("guidelines", prompt, space, history)
        if text:
            self._guideline(text)
        guidelines = self.guidelines[-1] if self.guidelines else "(none)"
        prompt = self.prompts.render(
            "mlcopilot_trials",
            **self._trial_values(space, k),
            history=history_text(space, history),
            guidelines=guidelines,
        )
        best = best_trial(history)
        return self._ask_trials("trials", prompt, space, history, k, fallback=best.allocation if best else None)


class AgentHPOSearcher(_LLMBaseline):
    """AgentHPO (adapted): the Executor's analysis of the log, then the Creator's trials with rationales."""

    name = "agenthpo"
    PROMPTS = ("system", "preamble", "agenthpo_analysis", "agenthpo_trials")

    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        self.round += 1
        values = common_values(self.prompts, self.task, space)
        prompt = self.prompts.render(
            "agenthpo_analysis", **values, history=history_text(space, history), guidelines=self._memory()
        )
        text = self._ask_text("initial_guidelines" if not history else "analysis", prompt, space, history)
        if text:
            self._guideline(text)
        one = json.loads(example_json(space))
        one["candidates"][0]["rationale"] = "why this configuration should improve the main metric"
        prompt = self.prompts.render(
            "agenthpo_trials",
            **self._trial_values(space, k, json.dumps(one)),
            history=history_text(space, history),
            guidelines=self._memory(),
        )
        best = best_trial(history)
        return self._ask_trials("trials", prompt, space, history, k, fallback=best.allocation if best else None)

    def _memory(self) -> str:
        """The analyses the prompts carry: the first and the two most recent (as AgentTTS passes its guidelines)."""
        g = self.guidelines
        chosen = g[:1] + [x for x in g[-2:] if x is not g[0]] if g else []
        return "\n\n".join(chosen) or "(none yet)"


LLM_BASELINES = {c.name: c for c in (LLMZeroShotSearcher, MLCopilotSearcher, AgentHPOSearcher)}

__all__ = [
    "BASELINE_PROMPTS_DIR",
    "BASELINE_REQUIRED",
    "LLM_BASELINES",
    "AgentHPOSearcher",
    "LLMZeroShotSearcher",
    "MLCopilotSearcher",
    "PriorHistory",
    "llm_required_message",
]
