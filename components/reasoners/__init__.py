"""Reasoners behind one protocol; ``REASONERS`` maps config names to classes.

``make_reasoner`` turns the ``reasoner`` config group (``name`` plus constructor arguments) into a
reasoner. Nothing here imports vLLM or contacts an endpoint: call ``check()`` at start-up for that.
"""

from __future__ import annotations

import inspect

from components.errors import ConfigError, UnknownNameError
from components.reasoners.base import AgentView, Reasoner, ReasonerError, Reply
from components.reasoners.openai_chat import OpenAIReasoner
from components.reasoners.rules import RulesReasoner
from components.reasoners.vllm_chat import VLLMReasoner

REASONERS: dict[str, type] = {"rules": RulesReasoner, "openai": OpenAIReasoner, "vllm": VLLMReasoner}


def make_reasoner(cfg: dict) -> Reasoner:
    """The reasoner the config names.

    Args:
        cfg: the ``reasoner`` config group: ``name`` and the class's keyword arguments.

    Raises:
        UnknownNameError: the name is not in ``REASONERS``.
        ConfigError: an argument is unknown or missing (only names are reported, never values).

    >>> make_reasoner({"name": "rules"}).name
    'rules'
    >>> make_reasoner({"name": "gpt"})
    Traceback (most recent call last):
    ...
    components.errors.UnknownNameError: unknown reasoner 'gpt'; available: ['openai', 'rules', 'vllm']
    """
    cfg = dict(cfg or {})
    name = cfg.pop("name", None)
    if name not in REASONERS:
        raise UnknownNameError(f"unknown reasoner '{name}'; available: {sorted(REASONERS)}")
    cls = REASONERS[name]
    params = inspect.signature(cls).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        unknown = sorted(set(cfg) - set(params))
        if unknown:
            hint = ""
            if any("key" in k.lower() and k != "api_key_env" for k in unknown):
                hint = "; put the API key in an environment variable and name it with reasoner.api_key_env"
            raise ConfigError(f"reasoner '{name}' does not take {unknown}; it takes {sorted(params)}{hint}")
    missing = sorted(
        k
        for k, p in params.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)
        and cfg.get(k) is None
    )
    if missing:
        raise ConfigError(f"reasoner '{name}' needs {['reasoner.' + k for k in missing]}")
    return cls(**cfg)


__all__ = [
    "REASONERS",
    "AgentView",
    "OpenAIReasoner",
    "Reasoner",
    "ReasonerError",
    "Reply",
    "RulesReasoner",
    "VLLMReasoner",
    "make_reasoner",
]
