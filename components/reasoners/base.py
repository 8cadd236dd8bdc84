"""The Reasoner protocol: what the agent asks, and one interface for LLMs and the rules reasoner.

The agent asks for two things, each as text: guidelines (prose) and trials (strict JSON). An LLM
reasoner answers the rendered prompt; the ``rules`` reasoner answers from the structured view of
the same request, so both go through the same parsing and repair path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from components.errors import AgentTTSError
from components.pipeline import TrialResult
from components.space import Allocation, SearchSpace


class ReasonerError(AgentTTSError):
    """The reasoner could not answer (endpoint down, refused, timed out); the agent falls back."""


@dataclass
class AgentView:
    """The structured request behind a prompt: everything the agent knows at this point.

    Args:
        kind: ``initial_guidelines``, ``guidelines`` or ``trials``.
        space: the search space (stages, models, budget, cost model).
        history: every evaluated trial, in order.
        k: how many trials to propose (for ``trials``).
        n_questions: train questions per trial (one question = 1/n of the score).
        probes: the Insight-1 probes (allocation → the stage it probes).
        guidelines: guideline texts written so far, oldest first.
        round: the agent's round number (1 = the round after the probes).
        seed: for the exploration moves.
        prior: stage → (model, why) settled by a warm start's prior experience (its probes skipped).
    """

    kind: str
    space: SearchSpace
    history: list[TrialResult]
    k: int = 0
    n_questions: int = 50
    probes: dict[Allocation, str] = field(default_factory=dict)
    guidelines: list[str] = field(default_factory=list)
    round: int = 1
    seed: int = 0
    prior: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """A reasoner's answer and what it cost."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Reasoner(Protocol):
    """Answers the agent's prompts. ``rules`` ignores the prompt text and reads ``view``."""

    name: str
    is_llm: bool

    def check(self) -> None:
        """Raise ReasonerError at start-up if the reasoner cannot answer (before any trial)."""
        ...

    def complete(self, system: str, prompt: str, view: AgentView) -> Reply: ...
