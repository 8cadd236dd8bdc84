"""Compose the config: Hydra's compose API over ``conf/``, with its errors as one line each.

``compose(overrides)`` is what every command (and every test and script) uses: the composed,
resolved config as a plain dict, plus ``choices`` (the option picked in each group) and
``config_sources`` (``conf/`` and any ``hydra.searchpath`` folder). ``@hydra.main`` cannot sit under
subcommands, so nothing changes directory and no ``outputs/`` folder appears.

What composition alone can tell is checked here, before anything is built: unknown group options
and keys (with a "did you mean"), overrides that do not parse, config files that are not YAML,
``hydra.searchpath`` folders that do not exist, a section given a value (``budget=500``) and a
missing scenario where the simulator needs one.
"""

from __future__ import annotations

import functools
import itertools
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def _rewrite(overrides: list[str]) -> list[str]:
    # allocation.STAGE=... adds keys to an empty mapping; Hydra wants a '+' for that
    out = [f"+{o}" if o.startswith("allocation.") else o for o in overrides]
    return [_quote_run_id(o) for o in out]


def _quote_run_id(o: str) -> str:
    # a run id is text: unquoted, Hydra reads an all-digit or 1e5-like id as a number
    key, _, value = o.partition("=")
    if key in ("run", "warm_start") and value not in ("", "null") and value[0] not in "'\"" and "," not in value:
        return f"{key}='{value}'"
    return o


def compose(overrides: list[str]) -> dict:
    """The composed, resolved config as a plain dict. Hydra's and YAML's errors become one ConfigError line."""
    import yaml
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    _check_searchpath(overrides)
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = hydra_compose(config_name="config", overrides=_rewrite(overrides), return_hydra_config=True)
    except HydraException as exc:
        raise _hydra_error(exc) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc) from None
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    sources = [
        s.path for s in cfg.hydra.runtime.config_sources if s.provider in ("main", "hydra.searchpath in command-line")
    ]
    out = OmegaConf.to_container(cfg, resolve=False)
    out.pop("hydra")
    out = OmegaConf.to_container(OmegaConf.create(out), resolve=True)
    # which option of each group was chosen, and where it lives (for messages and run names)
    out["choices"] = {k: v for k, v in choices.items() if not k.startswith("hydra")}
    out["config_sources"] = sources
    _check_sections(out)
    _check_scenario(out, overrides)
    return out


def _group_options(cfg: dict, group: str) -> list[str]:
    """The options of a config group in every config source (conf/ and hydra.searchpath folders)."""
    names = set()
    for src in cfg.get("config_sources") or []:
        folder = Path(src.removeprefix("file://")) / group
        names |= {p.stem for p in folder.glob("*.yaml")} if folder.is_dir() else set()
    return sorted(names)


def _check_scenario(cfg: dict, overrides: list[str]) -> None:
    """The scenario group is optional (``scenario: ${task}`` finds none for a task of your own, which a
    real backend does not need); a scenario named on the command line, or one backend=sim needs, must exist."""
    from components.errors import ConfigError, UnknownNameError

    if "scenario" in cfg:
        return
    name = (cfg.get("choices") or {}).get("scenario")
    available = ", ".join(_group_options(cfg, "scenario"))
    if any(o.lstrip("+~").partition("=")[0] == "scenario" for o in overrides):
        raise UnknownNameError(f"unknown scenario '{name}'; available: {available}")
    if (cfg.get("backend") or {}).get("name") == "sim":
        raise ConfigError(
            f"backend=sim needs a scenario, and there is none named like task '{name}': pass scenario=NAME "
            f"(available: {available}) or a real backend (backend=vllm|openai|replay)"
        )


@functools.cache  # compose runs many times per command (a bench composes each job several times)
def _base_config() -> dict:
    import yaml

    return yaml.safe_load((CONF_DIR / "config.yaml").read_text())


def _check_sections(cfg: dict) -> None:
    """``budget=500`` replaces the whole ``budget:`` section with a number; say which keys it holds."""
    from components.errors import ConfigError

    for key, default in _base_config().items():
        # an empty default (``allocation: {}``) is open: it also takes words, e.g. allocation=best
        if isinstance(default, dict) and default and key in cfg and not isinstance(cfg[key], dict):
            keys = ", ".join(f"{key}.{k}" for k in default)
            raise ConfigError(f"'{key}' is a section, not a value (got {key}={cfg[key]!r}); set its keys: {keys}")


def _check_searchpath(overrides: list[str]) -> None:
    """A ``hydra.searchpath`` folder that does not exist: Hydra only warns and then reports the scenario
    or task it would have found there as unknown."""
    from components.errors import ConfigError

    for o in overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+") != "hydra.searchpath":
            continue
        for entry in value.strip("[]").split(","):
            entry = entry.strip().strip("'\"")
            if entry.startswith("pkg://") or not entry:
                continue
            path = Path(entry.removeprefix("file://"))
            if not path.is_dir():
                raise ConfigError(
                    f"hydra.searchpath: {path} is not a folder (expected e.g. file:///my/dir holding scenario/NAME.yaml)"
                )


def _hydra_error(exc: Exception):
    """One line for Hydra's multi-line errors (unknown option of a group, unknown key, unparsable override)."""
    import difflib

    from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

    from components.errors import ConfigError, UnknownNameError

    text = str(exc).strip()
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file and exc.options is not None:
        group, _, name = exc.missing_cfg_file.rpartition("/")
        return UnknownNameError.among(group or "config", name, list(exc.options))
    if isinstance(exc, ConfigCompositionException) and text.startswith("Could not override '"):
        key = text.split("'")[1]
        known = _known_keys()
        close = difflib.get_close_matches(key, known, n=1, cutoff=0.75)
        hint = f"; did you mean '{close[0]}'?" if close else "; `agenttts config` prints every key"
        return ConfigError(f"unknown setting '{key}'{hint}")
    if isinstance(exc, OverrideParseException):
        first = text.splitlines()[0]
        return ConfigError(f"cannot parse the override: {first} (write KEY=VALUE; quote values with spaces or <>)")
    return ConfigError(" ".join(line.strip() for line in text.splitlines() if line.strip()))


def _known_keys() -> list[str]:
    """Dotted keys of the default config (for "did you mean")."""
    out = []

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            out.append(prefix + str(k))
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")

    walk(compose([]), "")
    return out


def _yaml_error(exc: Exception):
    from components.errors import ConfigError

    mark = getattr(exc, "problem_mark", None)
    where = f"{mark.name}, line {mark.line + 1}" if mark is not None else "a config file"
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    return ConfigError(f"{where}: not valid YAML: {problem}")


def expand_sweeps(overrides: list[str]) -> list[list[str]]:
    """Hydra-style ``-m`` sweep expansion: ``a=1,2 b=x,y`` → 4 jobs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    axes = []
    for o in OverridesParser.create().parse_overrides(_rewrite(overrides)):
        if o.is_sweep_override():
            vals = list(o.sweep_string_iterator())
        else:
            vals = [o.get_value_element_as_str()]
        axes.append([f"{o.get_key_element()}={v}" for v in vals])
    return [list(c) for c in itertools.product(*axes)]
