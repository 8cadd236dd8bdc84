"""Scenario files of the simulated backend: the stages, their models and how each model behaves.

A scenario (YAML under ``conf/scenario/``, or a dict) is self-contained and versioned. It declares
the pipeline's stages and, per stage and model, the *simulated* behaviour that
:class:`components.simulator.SimWorld` turns into outputs. No real model is involved.

Schema (every field is required unless a default is given; unknown keys are errors)::

    name: str                  # scenario name, non-empty
    version: int               # >= 1; bump it when behaviour changes (it is part of archive tags)
    description: str           # free text
    seed: int                  # >= 0, the world seed: same seed, same simulated world
    budget_units: float        # optional, > 0 (at most 1e9): the scenario's default budget per question
                               # in the paper's units; default none = the paper's default, one sample
                               # of the largest model per stage (budget.units etc. still override it)
    stages:                    # non-empty list, in pipeline order; stage names unique
      - name: str              # non-empty
        kind: select | answer  # select: picks candidate ids; answer: writes an answer string
        fusion: id_vote | vote | llm   # select stages: id_vote; answer stages: vote or llm
        prompt_tokens: int     # declared average prompt length, tokens, 1 .. 1_000_000
        output_tokens: int     # declared average output length per sample, tokens, 1 .. 1_000_000
        samples: [min, max]    # allowed sample counts, 1 <= min <= max <= 10_000; default [1, 100]
        models:                # non-empty list; model names unique within the stage
          - name: str          # non-empty
            params: float      # parameter count, e.g. 7.0e9; 1e6 .. 1e13
            price_per_mtok: float   # optional, $ per 1M tokens, 0 .. 1000; default none
            # behaviour of a model in a `select` stage (all required):
            recall: float          # per-sample probability of selecting a gold fact of an average
                                   # item, (0, 1)
            heterogeneity: float   # std-dev, logit scale, of per-(item, fact) difficulty, 0 .. 5;
                                   # high: misses repeat across samples, so voting recovers little;
                                   # also spreads the false-positive rate across items
            false_positives: float # mean number of distractor ids per sample (Poisson), 0 .. 20
            fp_consistency: float  # share of false positives drawn from the item's 3 most confusable
                                   # distractors (else uniform), 0 .. 1; high: voting keeps them
            # behaviour of a model in an `answer` stage (all required):
            skill: float           # per-sample probability of a correct answer on an average item
                                   # with perfect upstream quality, (0, 1)
            spread: float          # std-dev, logit scale, of per-item difficulty, 0 .. 5
            upstream_weight: float # logit penalty per unit of missing upstream quality, 0 .. 20
            wrong_concentration: float  # share of wrong samples on the item's most plausible wrong
                                   # answer at upstream quality 1 (scaled by quality²), 0 .. 1;
                                   # high: voting plateaus or falls
            fusion_decay: float    # LLM fuser: P(fuses correctly) = 1 / (1 + decay·(n − 1)) for n
                                   # candidates, else it picks one distinct answer at random, 0 .. 1

The behaviour's meaning is specified in full in :mod:`components.simulator`.
:func:`load_scenario` validates all of it and raises :class:`ScenarioError` with one message naming
the file, the field path (``stages[1].models[0].skill``), the bad value and the allowed range.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from components.errors import ScenarioError, UnknownNameError

#: Where the public scenarios live (``load_scenario("2wiki")`` looks here).
SCENARIO_DIR = Path(__file__).resolve().parent.parent / "conf" / "scenario"

_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")
KINDS = ("select", "answer")
FUSION_BY_KIND = {"select": ("id_vote",), "answer": ("vote", "llm")}


@dataclass(frozen=True)
class SelectBehaviour:
    """Simulated behaviour of a model in a ``select`` stage (see the module docstring)."""

    recall: float
    heterogeneity: float
    false_positives: float
    fp_consistency: float


@dataclass(frozen=True)
class AnswerBehaviour:
    """Simulated behaviour of a model in an ``answer`` stage (see the module docstring)."""

    skill: float
    spread: float
    upstream_weight: float
    wrong_concentration: float
    fusion_decay: float


# (low, high, low inclusive, high inclusive) per behaviour field.
_RANGES: dict[str, tuple[float, float, bool, bool]] = {
    "recall": (0.0, 1.0, False, False),
    "heterogeneity": (0.0, 5.0, True, True),
    "false_positives": (0.0, 20.0, True, True),
    "fp_consistency": (0.0, 1.0, True, True),
    "skill": (0.0, 1.0, False, False),
    "spread": (0.0, 5.0, True, True),
    "upstream_weight": (0.0, 20.0, True, True),
    "wrong_concentration": (0.0, 1.0, True, True),
    "fusion_decay": (0.0, 1.0, True, True),
}
_BEHAVIOUR = {"select": SelectBehaviour, "answer": AnswerBehaviour}


@dataclass(frozen=True)
class SimModel:
    """A simulated model: name, parameter count, optional price, and its stage-kind behaviour."""

    name: str
    params: float
    price_per_mtok: float | None
    behaviour: SelectBehaviour | AnswerBehaviour


@dataclass(frozen=True)
class ScenarioStage:
    """One stage of a scenario, in pipeline order."""

    name: str
    kind: str
    fusion: str
    prompt_tokens: int
    output_tokens: int
    min_samples: int
    max_samples: int
    models: tuple[SimModel, ...]

    def model(self, name: str) -> SimModel:
        for m in self.models:
            if m.name == name:
                return m
        raise UnknownNameError(
            f"unknown model '{name}' for simulated stage '{self.name}'; available: {[m.name for m in self.models]}"
        )


@dataclass(frozen=True)
class Scenario:
    """A validated scenario: world seed and stages (see the module docstring for the schema)."""

    name: str
    version: int
    description: str
    seed: int
    stages: tuple[ScenarioStage, ...]
    budget_units: float | None = None  # the default budget in units; None: the paper's default

    def stage(self, name: str) -> ScenarioStage:
        for s in self.stages:
            if s.name == name:
                return s
        raise UnknownNameError(
            f"unknown stage '{name}' in simulated scenario '{self.name}'; stages: {[s.name for s in self.stages]}"
        )

    def previous(self, name: str) -> ScenarioStage | None:
        """The stage before ``name`` in pipeline order, or None for the first stage."""
        idx = [s.name for s in self.stages].index(self.stage(name).name)
        return self.stages[idx - 1] if idx else None


def _is_list(value: Any) -> bool:
    # Hydra/OmegaConf hand over ListConfig, not list.
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


class _Checker:
    """Field access with one clear error per problem: file, field path, value, allowed range."""

    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, path: str, problem: str) -> ScenarioError:
        return ScenarioError(f"scenario {self.origin}: {path or 'top level'} {problem}")

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], what: str = "") -> dict:
        if not isinstance(value, Mapping):
            raise self.fail(path, f"= {value!r}; expected a mapping with keys {list(allowed)}")
        for key in value:
            if key not in allowed:
                raise self.fail(self.join(path, str(key)), f"is an unknown key; allowed keys{what}: {list(allowed)}")
        return value

    def get(self, obj: dict, key: str, path: str, expected: str) -> Any:
        if key not in obj:
            raise self.fail(self.join(path, key), f"is missing; expected {expected}")
        return obj[key]

    @staticmethod
    def join(path: str, key: str) -> str:
        return f"{path}.{key}" if path else key

    def string(self, obj: dict, key: str, path: str, allow_empty: bool = False) -> str:
        value = self.get(obj, key, path, "a string")
        if not isinstance(value, str) or (not allow_empty and not value.strip()):
            raise self.fail(self.join(path, key), f"= {value!r}; expected a non-empty string")
        return value

    def integer(self, obj: dict, key: str, path: str, low: int, high: int) -> int:
        value = self.get(obj, key, path, f"an integer in [{low}, {high}]")
        return self.check_int(value, self.join(path, key), low, high)

    def check_int(self, value: Any, where: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"= {value!r} has the wrong type; expected an integer in [{low}, {high}]")
        if not low <= value <= high:
            raise self.fail(where, f"= {value!r} is out of range; allowed: an integer in [{low}, {high}]")
        return value

    def number(self, obj: dict, key: str, path: str, rng: tuple[float, float, bool, bool]) -> float:
        low, high, low_inc, high_inc = rng
        allowed = f"{'[' if low_inc else '('}{low:g}, {high:g}{']' if high_inc else ')'}"
        value = self.get(obj, key, path, f"a number in {allowed}")
        where = self.join(path, key)
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            value = float(value)  # PyYAML reads 7.0e9 (no sign in the exponent) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(where, f"= {value!r} has the wrong type; expected a number in {allowed}")
        value = float(value)
        ok = (
            math.isfinite(value)
            and (value >= low if low_inc else value > low)
            and (value <= high if high_inc else value < high)
        )
        if not ok:
            raise self.fail(where, f"= {value!r} is out of range; allowed: a number in {allowed}")
        return value

    def choice(self, obj: dict, key: str, path: str, options: tuple[str, ...]) -> str:
        value = self.get(obj, key, path, f"one of {list(options)}")
        if value not in options:
            raise self.fail(self.join(path, key), f"= {value!r} is not allowed; allowed: one of {list(options)}")
        return value

    def items(self, obj: dict, key: str, path: str) -> list:
        value = self.get(obj, key, path, "a non-empty list")
        if not _is_list(value) or not value:
            raise self.fail(self.join(path, key), f"= {value!r}; expected a non-empty list")
        return value


_TOP = ("name", "version", "description", "seed", "budget_units", "stages")
_STAGE = ("name", "kind", "fusion", "prompt_tokens", "output_tokens", "samples", "models")
_MODEL = ("name", "params", "price_per_mtok")


def _model(c: _Checker, raw: Any, path: str, kind: str) -> SimModel:
    behaviour_cls = _BEHAVIOUR[kind]
    names = tuple(f.name for f in fields(behaviour_cls))
    m = c.mapping(raw, path, _MODEL + names, f" of a model in a '{kind}' stage")
    price = None
    if m.get("price_per_mtok") is not None:
        price = c.number(m, "price_per_mtok", path, (0.0, 1000.0, True, True))
    return SimModel(
        name=c.string(m, "name", path),
        params=c.number(m, "params", path, (1e6, 1e13, True, True)),
        price_per_mtok=price,
        behaviour=behaviour_cls(**{n: c.number(m, n, path, _RANGES[n]) for n in names}),
    )


def _stage(c: _Checker, raw: Any, path: str) -> ScenarioStage:
    s = c.mapping(raw, path, _STAGE)
    kind = c.choice(s, "kind", path, KINDS)
    fusion = c.choice(s, "fusion", path, FUSION_BY_KIND[kind])
    lo, hi = 1, 100
    if "samples" in s:
        value = s["samples"]
        where = f"{path}.samples"
        if not _is_list(value) or len(value) != 2:
            raise c.fail(where, f"= {value!r}; expected [min, max] with 1 <= min <= max <= 10000")
        lo = c.check_int(value[0], f"{where}[0]", 1, 10_000)
        hi = c.check_int(value[1], f"{where}[1]", lo, 10_000)
    models = [_model(c, m, f"{path}.models[{i}]", kind) for i, m in enumerate(c.items(s, "models", path))]
    _unique(c, [m.name for m in models], f"{path}.models", "model")
    return ScenarioStage(
        name=c.string(s, "name", path),
        kind=kind,
        fusion=fusion,
        prompt_tokens=c.integer(s, "prompt_tokens", path, 1, 1_000_000),
        output_tokens=c.integer(s, "output_tokens", path, 1, 1_000_000),
        min_samples=lo,
        max_samples=hi,
        models=tuple(models),
    )


def _unique(c: _Checker, names: list[str], path: str, what: str) -> None:
    for i, name in enumerate(names):
        if name in names[:i]:
            raise c.fail(f"{path}[{i}].name", f"= {name!r} is a duplicate {what} name; names must be unique")


def _read(source: str | Path, seen: tuple[Path, ...] = ()) -> tuple[Any, str]:
    path = Path(source)
    if not path.exists() and path.suffix == "" and "/" not in str(source):
        named = SCENARIO_DIR / f"{source}.yaml"
        if not named.exists():
            known = sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))
            raise ScenarioError(f"scenario '{source}': no such file or public scenario; public scenarios: {known}")
        path = named
    if not path.is_file():
        raise ScenarioError(f"scenario {path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ScenarioError(f"scenario {path}: not valid YAML: {exc}") from None
    if isinstance(raw, dict) and "defaults" in raw:
        raw = _compose(raw, path, seen + (path.resolve(),))
    return raw, str(path)


def _compose(raw: dict, path: Path, seen: tuple[Path, ...]) -> dict:
    """Hydra-style ``defaults: [parent, _self_]``: the parents' keys, then this file's (shallow merge)."""
    parents = raw["defaults"]
    if not isinstance(parents, list) or not all(isinstance(p, str) for p in parents):
        raise ScenarioError(f"scenario {path}: defaults = {parents!r}; expected a list of scenario names")
    merged: dict = {}
    own = {k: v for k, v in raw.items() if k != "defaults"}
    for parent in parents:
        if parent == "_self_":
            merged.update(own)
            continue
        target = (path.parent / f"{parent}.yaml").resolve()
        if target in seen:
            raise ScenarioError(f"scenario {path}: defaults entry {parent!r} includes itself")
        merged.update(_read(target, seen)[0])
    if "_self_" not in parents:
        merged.update(own)
    return merged


def load_scenario(source: str | Path | Mapping, origin: str | None = None) -> Scenario:
    """Load and validate a simulated scenario from a YAML path, a public scenario name, or a mapping.

    A file may start from other scenario files of its folder with Hydra's ``defaults: [parent, _self_]``.

    Args:
        source: a path, a public scenario name, or an already-read mapping.
        origin: how to name a mapping's source in errors (e.g. the file Hydra read it from).

    Raises:
        ScenarioError: one message naming the file, the field path, the bad value and the allowed range.
    """
    if isinstance(source, Mapping):
        raw, origin = source, origin or "<dict>"
    else:
        raw, origin = _read(source)
    c = _Checker(origin)
    top = c.mapping(raw, "", _TOP)
    stages = [_stage(c, s, f"stages[{i}]") for i, s in enumerate(c.items(top, "stages", ""))]
    _unique(c, [s.name for s in stages], "stages", "stage")
    return Scenario(
        name=c.string(top, "name", ""),
        version=c.integer(top, "version", "", 1, 1_000_000),
        description=c.string(top, "description", "", allow_empty=True),
        seed=c.integer(top, "seed", "", 0, 2**63 - 1),
        stages=tuple(stages),
        budget_units=_budget_units(c, top),
    )


def _budget_units(c: _Checker, top: dict) -> float | None:
    if top.get("budget_units") is None:
        return None
    return c.number(top, "budget_units", "", (0.0, 1e9, False, True))
