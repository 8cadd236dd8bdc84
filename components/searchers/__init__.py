"""Searchers behind one protocol; ``SEARCHERS`` maps config names to classes."""

from components.searchers.agenttts import AgentTTSSearcher
from components.searchers.base import Proposal, Searcher
from components.searchers.grid import GridSearcher
from components.searchers.random import RandomSearcher

SEARCHERS = {"agenttts": AgentTTSSearcher, "random": RandomSearcher, "grid": GridSearcher}

__all__ = ["SEARCHERS", "AgentTTSSearcher", "GridSearcher", "Proposal", "RandomSearcher", "Searcher"]
