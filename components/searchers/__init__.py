"""Searchers behind one protocol; ``SEARCHERS`` maps config names to classes."""

from components.searchers.agenttts import AgentTTSSearcher
from components.searchers.base import Proposal, Searcher
from components.searchers.grid import GridSearcher
from components.searchers.llm_baselines import AgentHPOSearcher, LLMZeroShotSearcher, MLCopilotSearcher
from components.searchers.optuna_search import GPSearcher, TPESearcher
from components.searchers.random import RandomSearcher

SEARCHERS = {
    "agenttts": AgentTTSSearcher,
    "random": RandomSearcher,
    "grid": GridSearcher,
    "optuna_tpe": TPESearcher,
    "optuna_gp": GPSearcher,
    "llm_zs": LLMZeroShotSearcher,
    "mlcopilot": MLCopilotSearcher,
    "agenthpo": AgentHPOSearcher,
}

__all__ = [
    "SEARCHERS",
    "AgentHPOSearcher",
    "AgentTTSSearcher",
    "GPSearcher",
    "GridSearcher",
    "LLMZeroShotSearcher",
    "MLCopilotSearcher",
    "Proposal",
    "RandomSearcher",
    "Searcher",
    "TPESearcher",
]
