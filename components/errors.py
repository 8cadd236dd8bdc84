"""Error tree for bad input: each error is one clear message, raised before any compute is spent.

The CLI prints these without a traceback (set ``AGENTTTS_TRACEBACK=1`` to see one).
"""

from __future__ import annotations


class AgentTTSError(Exception):
    """Base class of every user-facing error."""


class ConfigError(AgentTTSError):
    """A configuration value is missing, malformed or inconsistent."""


class UnknownNameError(ConfigError):
    """A task, stage, model, searcher or scenario name is not known."""

    @classmethod
    def among(cls, kind: str, name: str, options: list[str]) -> UnknownNameError:
        """``unknown KIND 'NAME' (did you mean '...'?); available: A, B`` (the hint for a near miss only)."""
        import difflib

        close = difflib.get_close_matches(name, options, n=1, cutoff=0.75)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return cls(f"unknown {kind} '{name}'{hint}; available: {', '.join(options)}")


class InfeasibleBudgetError(ConfigError):
    """The budget admits no allocation at all, or an allocation exceeds it."""


class AllocationError(ConfigError):
    """An allocation string does not parse or does not fit the task."""


class DatasetError(AgentTTSError):
    """A dataset file is missing or malformed (the message names the file and the record)."""


class ScenarioError(ConfigError):
    """A simulator scenario file is missing fields or has out-of-range values."""


class BackendError(ConfigError):
    """A real backend's model cannot be loaded, or its server cannot be reached, at start-up."""


class SearchError(AgentTTSError):
    """A search ended without a result: its searcher proposed no trial (an LLM that never answered usably)."""


class MissingSampleError(AgentTTSError):
    """The replay backend was asked for a sample the sample bank does not hold."""


def check_int(value, what: str, minimum: int, optional: bool = False) -> int | None:
    """``value`` as an integer of at least ``minimum`` (``None`` passes when ``optional``), else one
    ConfigError naming ``what``: ``seeds=0`` or ``trials=abc`` stop here, not in a traceback mid-run."""
    if value is None and optional:
        return None
    try:
        n = int(value)
        ok = n >= minimum and not isinstance(value, bool) and float(value) == n
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{what} must be an integer >= {minimum}{' or null' if optional else ''}, got {value!r}")
    return n


def check_bool(value, what: str) -> bool:
    """``value`` if it is ``true`` or ``false``, else one ConfigError naming ``what`` (``bool("no")`` is
    True: a mistyped switch must not silently mean on)."""
    if not isinstance(value, bool):
        raise ConfigError(f"{what} must be true or false, got {value!r}")
    return value


def check_number(value, what: str) -> float:
    """``value`` as a float, else one ConfigError naming ``what`` (``champion.alpha=abc``)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{what} must be a number, got {value!r}") from None


def user_error(exc: BaseException) -> bool:
    """Whether ``exc`` is bad input to report as one line: ours, or Hydra's/OmegaConf's on an override."""
    return isinstance(exc, AgentTTSError) or type(exc).__module__.startswith(("hydra", "omegaconf"))
