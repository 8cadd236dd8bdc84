"""Turn a composed config (a plain dict) into the domain objects; validate everything first.

This is the only place configs become objects. It imports neither Prefect nor MLflow, so bad
input fails in about a second, before any run is created or any sample generated.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.backends.base import Decoding
from components.bank import SampleBank
from components.cost import CostModel
from components.datasets import load_items, synthetic_items
from components.errors import BackendError, ConfigError, DatasetError, UnknownNameError, check_bool, check_int
from components.fusion import FUSIONS
from components.items import Item
from components.pipeline import Environment, StageSpec, TaskSpec
from components.scenario import KINDS, Scenario, load_scenario
from components.searchers import SEARCHERS
from components.space import Allocation, Budget, Model, SearchSpace, Stage
from components.spend import spend_limits

BACKENDS = ("sim", "vllm", "openai", "replay")


@dataclass
class Context:
    """Everything a search needs, built and validated."""

    cfg: dict
    task: TaskSpec
    space: SearchSpace
    scenario: Scenario | None
    train: list[Item]
    test: list[Item]
    simulated: bool
    backend: object | None = None  # a real backend, made (and checked) once by build()

    def environment(self, items: list[Item] | None = None, bank: SampleBank | None = None) -> Environment:
        return Environment(self.task, self.space, make_backend(self), bank or make_bank(self.cfg), items or self.train)


def _option(cfg: dict, key: str):
    """``cfg`` at the dotted ``key``, or None where any part is absent."""
    v = cfg
    for part in key.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    return v


def int_option(cfg: dict, key: str, minimum: int = 1, default: int | None = None) -> int:
    """``cfg[key]`` (dotted, e.g. ``searcher.batch_size``) as an integer of at least ``minimum``; null
    or absent gives ``default``."""
    v = _option(cfg, key)
    return default if v is None and default is not None else check_int(v, key, minimum)


INT_OPTIONS = (  # checked before anything is built: (key, minimum, default when null or absent)
    ("trials", 1, None),  # no default: a null trials has no meaning
    ("seed", 0, 0),
    ("searcher.batch_size", 1, 10),
    ("data.train_size", 1, None),
    ("data.test_size", 0, None),
    ("data.seed", 0, 0),
    ("warm_start_k", 1, 4),
    ("mlflow.max_child_runs", 0, 500),
    ("searcher.max_asks", 1, 3),
    ("searcher.prior_max_rows", 1, 50),
    ("bench.jobs", 1, 2),
    ("bench.oracle_max_space", 1, 200_000),
)
BOOL_OPTIONS = (  # switches checked before anything is built (absent ones keep their defaults)
    "bank.enabled",
    "bank.persist",
    "bank.replies",
    "cost.count_fusion",
    "cost.prefix_sharing",
    "searcher.probes",
    "champion.enabled",
    "bench.initial_design",
    "searcher.bypass_device_context",
    "dry_run",
)


def _decoding(d: dict | None, default_t: float, stage: dict | None = None) -> Decoding:
    d, stage = d or {}, stage or {}
    return Decoding(
        temperature=float(d.get("temperature", default_t)),
        max_tokens=int(d.get("max_tokens", 512)),
        stop=tuple(d.get("stop") or ()),
        chat=bool(stage.get("chat", True)),
        system=str(stage.get("system") or ""),
        chat_template=str(stage.get("chat_template") or ""),
    )


STAGE_KEYS = (
    "name", "kind", "parser", "fusion", "models", "prompt", "prompt_tokens", "output_tokens", "samples",
    "decoding", "fuse_decoding", "chat", "system", "chat_template",
)  # fmt: skip
DECODING_KEYS = ("temperature", "max_tokens", "stop")


def check_task(t) -> None:
    """A task config (``conf/task/*.yaml`` or the user's own on the search path), checked field by field
    before anything is built: one ConfigError naming the field, the value and what is expected."""
    if not isinstance(t, dict) or not isinstance(t.get("name"), str) or not t["name"].strip():
        raise ConfigError(f"a task file must be a mapping with a `name:` (a string), got {type(t).__name__}")

    def fail(where: str, problem: str) -> ConfigError:
        return ConfigError(f"task '{t['name']}': {where} {problem}")

    stages = t.get("stages")
    if not isinstance(stages, list) or not stages:
        raise fail("stages", f"= {stages!r}; expected a non-empty list of stages")
    names = []
    for i, s in enumerate(stages):
        at = f"stages[{i}]"
        if not isinstance(s, dict):
            raise fail(at, f"= {s!r}; expected a mapping with keys {list(STAGE_KEYS)}")
        unknown = [k for k in s if k not in STAGE_KEYS]
        if unknown:
            raise fail(f"{at}.{unknown[0]}", f"is an unknown key; allowed: {list(STAGE_KEYS)}")
        for key in ("name", "kind", "parser", "fusion", "prompt"):
            if not isinstance(s.get(key), str) or not s[key].strip():
                raise fail(f"{at}.{key}", f"= {s.get(key)!r}; expected a non-empty string")
        if s["name"] in names:
            raise fail(f"{at}.name", f"= {s['name']!r} names two stages; stage names must differ")
        names.append(s["name"])
        if s["kind"] not in KINDS:
            raise fail(f"{at}.kind", f"= {s['kind']!r}; expected one of {list(KINDS)}")
        if s["fusion"] not in FUSIONS:
            raise fail(f"{at}.fusion", f"= {s['fusion']!r}; expected one of {list(FUSIONS)}")
        if s["fusion"] == "id_vote" and s["kind"] != "select":
            raise fail(f"{at}.fusion", "= 'id_vote' merges selected ids: it needs kind: select")
        models = s.get("models")
        if not isinstance(models, list) or not models or not all(isinstance(m, str) and m for m in models):
            raise fail(f"{at}.models", f"= {models!r}; expected a non-empty list of model names")
        if len(set(models)) < len(models):
            raise fail(f"{at}.models", f"= {models!r} lists a model twice")
        for key in ("prompt_tokens", "output_tokens"):
            v = s.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise fail(f"{at}.{key}", f"= {v!r}; expected an integer >= 1 (tokens)")
        lo_hi = s.get("samples", [1, 100])
        if (
            not isinstance(lo_hi, list)
            or len(lo_hi) != 2
            or not all(isinstance(x, int) and not isinstance(x, bool) for x in lo_hi)
            or not 1 <= lo_hi[0] <= lo_hi[1]
        ):
            raise fail(f"{at}.samples", f"= {lo_hi!r}; expected [lo, hi] with 1 <= lo <= hi")
        for key in ("decoding", "fuse_decoding"):
            d = s.get(key)
            if d is None:
                continue
            if not isinstance(d, dict) or any(k not in DECODING_KEYS for k in d):
                raise fail(f"{at}.{key}", f"= {d!r}; expected a mapping with keys {list(DECODING_KEYS)}")
            temp, mt, stop = d.get("temperature", 0.0), d.get("max_tokens", 1), d.get("stop", [])
            if isinstance(temp, bool) or not isinstance(temp, int | float) or temp < 0:
                raise fail(f"{at}.{key}.temperature", f"= {temp!r}; expected a number >= 0")
            if isinstance(mt, bool) or not isinstance(mt, int) or mt < 1:
                raise fail(f"{at}.{key}.max_tokens", f"= {mt!r}; expected an integer >= 1")
            if not isinstance(stop, list | None) or not all(isinstance(x, str) for x in stop or []):
                raise fail(f"{at}.{key}.stop", f"= {stop!r}; expected a list of strings")


def task_spec(t: dict) -> TaskSpec:
    check_task(t)
    stages = tuple(
        StageSpec(
            name=s["name"],
            kind=s["kind"],
            prompt=s["prompt"],
            parser=s["parser"],
            fusion=s["fusion"],
            decoding=_decoding(s.get("decoding"), 0.9, s),
            fuse_decoding=_decoding(s.get("fuse_decoding"), 0.3, s),
        )
        for s in t["stages"]
    )
    spec = TaskSpec(t["name"], stages, t["metric"], tuple(t.get("metrics") or [t["metric"]]))
    spec.validate()
    return spec


def stages_from_scenario(sc: Scenario) -> list[Stage]:
    return [
        Stage(
            s.name,
            tuple(Model(m.name, m.params, m.price_per_mtok) for m in s.models),
            s.prompt_tokens,
            s.output_tokens,
            s.fusion,
            s.min_samples,
            s.max_samples,
        )
        for s in sc.stages
    ]


def stages_from_task(t: dict, catalog: dict) -> list[Stage]:
    if not isinstance(catalog, dict):
        raise ConfigError(
            f"the model catalog (models=) must map model names to entries, got a {type(catalog).__name__}"
        )
    out = []
    for s in t["stages"]:
        models = []
        for name in s["models"]:
            if name not in catalog:
                raise UnknownNameError(
                    f"model '{name}' of stage '{s['name']}' is not in the model catalog; known: {sorted(catalog)}"
                )
            m = catalog[name]
            params, price = (m.get("params"), m.get("price_per_mtok")) if isinstance(m, dict) else (None, None)
            if isinstance(params, bool) or not isinstance(params, int | float) or params <= 0:
                raise ConfigError(
                    f"model catalog entry '{name}': params = {params!r}; expected a number > 0 (e.g. 7.0e9)"
                )
            if price is not None and (isinstance(price, bool) or not isinstance(price, int | float) or price < 0):
                raise ConfigError(
                    f"model catalog entry '{name}': price_per_mtok = {price!r}; expected a number >= 0 or null"
                )
            models.append(Model(name, float(params), price))
        lo, hi = s.get("samples") or [1, 100]
        out.append(
            Stage(s["name"], tuple(models), int(s["prompt_tokens"]), int(s["output_tokens"]), s["fusion"], lo, hi)
        )
    return out


def default_budget_units(stages: list[Stage], cost: CostModel) -> float:
    """The paper's default: one sample of the largest model on every stage (≈929 units on 2wiki)."""
    return sum(cost.stage_cost(s.name, s.largest.name, 1).units for s in stages)


def make_budget(cfg: dict, stages: list[Stage], cost: CostModel, scenario: Scenario | None = None) -> Budget:
    """The configured budget; none given: the scenario's ``budget_units``, else the paper's default."""
    b = cfg.get("budget") or {}
    given = {k: b.get(k) for k in ("units", "flops", "usd") if b.get(k) is not None}
    if len(given) > 1:
        raise ConfigError(
            f"give the budget in one kind only, got {sorted(given)} (budget.units, budget.flops or budget.usd)"
        )
    if not given:
        if scenario is not None and scenario.budget_units is not None:
            return Budget("units", scenario.budget_units)
        units = default_budget_units(stages, cost)
        shown = round(units, 6)
        if shown < units:  # rounded down, the budget would rule out the allocation that defines it
            shown = round(shown + 1e-6, 6)
        return Budget("units", shown)
    kind, value = next(iter(given.items()))
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"budget.{kind} must be a number, got '{value}'") from None
    if value <= 0:
        raise ConfigError(f"budget.{kind} must be positive, got {value}")
    return Budget(kind, value)


def load_data(cfg: dict, seed_default: int = 0) -> tuple[list[Item], list[Item]]:
    d = cfg["data"]
    fmt = cfg["task"]["data"]["format"]
    train_n, test_n = int_option(cfg, "data.train_size"), int_option(cfg, "data.test_size", 0)
    if fmt == "synthetic" and not d.get("path"):
        items = synthetic_items(train_n + test_n, seed=int(d.get("seed", 0)))
    else:
        if not d.get("path"):
            hint = cfg["task"]["data"].get("example_path", "")
            raise DatasetError(
                f"task '{cfg['task']['name']}' reads a {fmt} file: give data.path=FILE"
                + (f" (e.g. data.path={hint})" if hint else "")
            )
        items = load_items(fmt, Path(d["path"]).expanduser())
        if len(items) < train_n:
            raise DatasetError(f"{d['path']}: {len(items)} items, fewer than data.train_size={train_n}")
    order = np.random.default_rng(int(d.get("seed", 0))).permutation(len(items))
    items = [items[i] for i in order]
    return items[:train_n], items[train_n : train_n + test_n]


def make_bank(cfg: dict) -> SampleBank:
    b = cfg.get("bank") or {}
    return SampleBank(b.get("path") if b.get("persist", True) else None, enabled=bool(b.get("enabled", True)))


def make_backend(ctx: Context):
    name = ctx.cfg["backend"]["name"]
    if name == "sim":
        from components.backends.sim import SimBackend

        return SimBackend(ctx.scenario)
    if ctx.backend is not None:
        return ctx.backend
    raise UnknownNameError(f"unknown backend '{name}'; available: {list(BACKENDS)}")


def backend_world(b: dict) -> str:
    """The bank salt of a real backend: "" unless every model is served from one override."""
    if b["name"] == "vllm" and b.get("model_path_override"):
        return f"path:{b['model_path_override']}"
    if b["name"] == "openai" and b.get("served_model_override"):
        return f"served:{b['served_model_override']}"
    if b["name"] == "replay":
        return str(b.get("world") or "")
    return ""


def make_real_backend(cfg: dict, stages: list[Stage]):
    """The vllm, openai or replay backend for the stages' models (nothing is loaded or contacted yet)."""
    b, catalog = cfg["backend"], cfg.get("models") or {}
    models = list(dict.fromkeys(m.name for s in stages for m in s.models))
    world = backend_world(b)
    if b["name"] == "replay":
        from components.backends.replay import ReplayBackend

        return ReplayBackend(world)
    if b["name"] == "vllm":
        from components.backends.vllm import VLLMBackend

        override = b.get("model_path_override")
        paths = {}
        for m in models:
            paths[m] = str(override or catalog[m].get("path") or catalog[m].get("hf") or "")
            if not paths[m]:
                raise BackendError(f"model '{m}' has no weights: give it `path` or `hf` in the model catalog")
        kwargs = {k: b[k] for k in ("dtype", "gpu_memory_utilization", "tensor_parallel_size", "enforce_eager")}
        if b.get("max_model_len"):
            kwargs["max_model_len"] = int(b["max_model_len"])
        policy, preload = str(b.get("context_policy", "error")), bool(b.get("preload", False))
        return VLLMBackend(paths, policy, world, preload, **kwargs, **(b.get("engine") or {}))
    from components.backends.openai import Endpoint, OpenAIBackend

    if b.get("context_policy", "error") != "error":
        raise ConfigError("backend 'openai' supports context_policy=error only (the server owns tokenization)")
    endpoints = {}
    for m in models:
        entry = catalog[m]
        url = entry.get("base_url") or b.get("base_url")
        if not url:
            raise ConfigError(f"model '{m}' has no server: set backend.base_url=URL or `base_url` in its catalog entry")
        served = b.get("served_model_override") or entry.get("served") or entry.get("hf") or m
        endpoints[m] = Endpoint(str(url).rstrip("/"), str(served))
    keys = ("api_key_env", "concurrency", "timeout_s", "max_retries", "backoff_s", "n_mode")
    return OpenAIBackend(endpoints, world=world, **{k: b[k] for k in keys if k in b})


def measured_lengths(cfg: dict, stages: list[Stage], world: str) -> dict:
    """Token lengths per (stage, model) measured in the persistent bank (real backends only)."""
    bank = cfg.get("bank") or {}
    path = bank.get("path")
    if not (cfg.get("cost") or {}).get("measured_lengths", True) or not bank.get("persist", True) or not path:
        return {}
    if not Path(path).exists():
        return {}
    b = SampleBank(path)
    try:
        return b.measured_lengths(world, {s.name: [m.name for m in s.models] for s in stages})
    finally:
        b.close()


LENGTHS_ARTIFACT = "cost/lengths.json"  # the token lengths a search on a real backend priced with


def lengths_table(cost: CostModel) -> list[dict]:
    """Every (stage, model)'s token lengths as the cost model prices them (logged by a search)."""
    return [
        {
            "stage": s.name,
            "model": m.name,
            **dict(zip(("prompt_tokens", "output_tokens"), cost.token_lengths(s.name, m.name))),
        }
        for s in cost.stages.values()
        for m in s.models
    ]


def lengths_from_run(cfg: dict, stages: list[Stage]) -> dict:
    """``cost.lengths_from=<search run id | last>``: the token lengths that search priced with, so a
    replay of it prices, budgets and prompts exactly as it did (the bank's measured lengths have
    moved since: that search added samples)."""
    from flows.runs import find_search

    ref = str(cfg["cost"]["lengths_from"])
    found = find_search(cfg, ref, cfg["task"]["name"])
    text = found.archive.read_text(found.run_id, LENGTHS_ARTIFACT)
    if text is None:
        raise ConfigError(
            f"cost.lengths_from={ref}: search {found.run_id} has no {LENGTHS_ARTIFACT} (a simulated search, or one "
            "logged before it was recorded); give cost.measured_lengths=false to price with the task's lengths"
        )
    got = {(r["stage"], r["model"]): (float(r["prompt_tokens"]), float(r["output_tokens"])) for r in json.loads(text)}
    missing = [f"{s.name}/{m.name}" for s in stages for m in s.models if (s.name, m.name) not in got]
    if missing:
        raise ConfigError(
            f"cost.lengths_from={ref}: search {found.run_id} priced no {missing[:3]}: not this task's stages and models"
        )
    return got


def check_scenario_fits(task: TaskSpec, sc: Scenario, origin: str = "") -> None:
    got = [(s.name, s.kind) for s in sc.stages]
    want = [(s.name, s.kind) for s in task.stages]
    if got != want:
        raise ConfigError(
            f"scenario '{sc.name}'{f' ({origin})' if origin else ''} simulates stages {got} but task '{task.name}' has {want}; "
            f"pick a scenario with the task's stages (e.g. scenario={task.name})"
        )


def scenario_origin(cfg: dict) -> str:
    """The scenario file Hydra read (for error messages), e.g. ``/my/dir/scenario/mine.yaml``."""
    name = (cfg.get("choices") or {}).get("scenario")
    for src in cfg.get("config_sources") or []:
        path = Path(src.removeprefix("file://")) / "scenario" / f"{name}.yaml"
        if path.exists():
            return str(path)
    return f"'{name}'" if name else "<config>"


MLFLOW_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")


def check_locations(cfg: dict) -> None:
    """Where things are written, checked before anything runs (each was once a traceback or a hang
    mid-search): the MLflow store and experiment, Prefect's home, the sample bank, the output files."""
    import importlib.metadata
    from urllib.parse import urlparse

    m = cfg.get("mlflow") or {}
    uri = m.get("tracking_uri")
    if not isinstance(uri, str) or not uri:
        raise ConfigError(f"mlflow.tracking_uri must be a URI such as sqlite:///mlruns/mlflow.db, got {uri!r}")
    scheme = urlparse(uri).scheme.split("+")[0]
    known = not scheme or len(scheme) == 1 or scheme in MLFLOW_SCHEMES  # "C:" is a Windows path
    # installed MLflow store plugins are read only for an unusual scheme: build() runs once per bench job
    if not known and scheme not in {e.name for e in importlib.metadata.entry_points(group="mlflow.tracking_store")}:
        raise ConfigError(
            f"mlflow.tracking_uri {uri!r}: MLflow has no store for scheme {scheme!r}; use sqlite:///PATH, "
            "a folder, or an http(s) tracking server"
        )
    if m.get("experiment") is not None and not isinstance(m["experiment"], str):
        raise ConfigError(f"mlflow.experiment must be a name, got {m['experiment']!r}")
    paths = {
        "prefect.home": ((cfg.get("prefect") or {}).get("home"), "a folder"),
        "bank.path": ((cfg.get("bank") or {}).get("path"), "a file"),
        "predictions": (cfg.get("predictions"), "a file"),
        "sweep_out": (cfg.get("sweep_out"), "a folder"),
    }
    for key, (value, want) in paths.items():
        if not value:
            continue
        path = Path(str(value)).expanduser()
        if path.exists() and path.is_dir() != (want == "a folder"):
            raise ConfigError(f"{key}={value} is {'a folder' if path.is_dir() else 'a file'}; give {want}")


def build(cfg: dict, with_data: bool = True) -> Context:
    """Validate the whole config and build the search context. Raises one AgentTTSError on bad input."""
    for key, minimum, default in INT_OPTIONS:
        int_option(cfg, key, minimum, default)
    for key in BOOL_OPTIONS:
        if (value := _option(cfg, key)) is not None:
            check_bool(value, key)
    check_locations(cfg)
    backend = cfg["backend"]["name"]
    if backend not in BACKENDS:
        raise UnknownNameError(f"unknown backend '{backend}'; available: {list(BACKENDS)}")
    task = task_spec(cfg["task"])
    scenario = real = None
    lengths: dict = {}
    if backend == "sim":
        # the simulator takes the scenario's models, but a misspelt name in the task would only
        # surface on a real backend: the task's names are checked against the catalog here too
        stages_from_task(cfg["task"], cfg.get("models") or {})
        if not isinstance(cfg["scenario"], dict):
            raise ConfigError(
                f"scenario {scenario_origin(cfg)}: the file must be a mapping (name:, stages:, ...), "
                f"got a {type(cfg['scenario']).__name__}"
            )
        scenario = load_scenario(dict(cfg["scenario"]), origin=scenario_origin(cfg))
        check_scenario_fits(task, scenario, scenario_origin(cfg))
        stages = stages_from_scenario(scenario)
        if (cfg.get("cost") or {}).get("lengths_from") not in (None, ""):
            raise ConfigError(
                "cost.lengths_from is for real backends (backend=vllm|openai|replay); the simulator's lengths are the scenario's"
            )
    else:
        stages = stages_from_task(cfg["task"], cfg.get("models") or {})
        real = make_real_backend(cfg, stages)
        if (cfg.get("cost") or {}).get("lengths_from") not in (None, ""):
            lengths = lengths_from_run(cfg, stages)
        else:
            lengths = measured_lengths(cfg, stages, real.world)
    c = cfg.get("cost") or {}
    cost = CostModel(
        stages,
        count_fusion=bool(c.get("count_fusion", False)),
        prefix_sharing=bool(c.get("prefix_sharing", True)),
        lengths=lengths,
    )
    space = SearchSpace(stages, make_budget(cfg, stages, cost, scenario), cost)
    space.check_budget()
    spend_limits(cfg, space)  # search.max_flops / max_usd are positive; dollars need prices
    name = cfg["searcher"]["name"]
    if name not in SEARCHERS:
        raise UnknownNameError.among("searcher", name, sorted(SEARCHERS))
    if with_data:  # prompts and reasoner fail here, not mid-search
        make_searcher(cfg, int(cfg["data"]["train_size"]), check=not replays_reasoner(cfg))
    train, test = load_data(cfg) if with_data else ([], [])
    if real is not None and with_data:
        real.check()  # a model that cannot load or a server that is down stops here, before any trial
    simulated = backend == "sim" or bool(getattr(real, "simulated", False))
    return Context(cfg, task, space, scenario, train, test, simulated=simulated, backend=real)


def replays_reasoner(cfg: dict) -> bool:
    """``backend=replay`` with an LLM reasoner whose replies are in the bank: the reasoner is not
    contacted at start-up, so a recorded search replays where its endpoint is out of reach (a prompt
    the bank lacks then falls back as a failed answer does)."""
    b = cfg.get("bank") or {}
    kept = all(b.get(k, True) for k in ("enabled", "persist", "replies")) and b.get("path")
    if cfg["backend"]["name"] != "replay" or not kept:
        return False
    from components.reasoners import make_reasoner
    from components.reasoners.banked import has_replies

    return has_replies(b["path"], make_reasoner(cfg["reasoner"]))


def check_replay(ctx: Context) -> None:
    """``backend=replay`` can only start where the bank holds this task's first-stage samples (checked
    before a search or an evaluation creates its run; other backends pass)."""
    if ctx.cfg["backend"]["name"] != "replay":
        return
    b = ctx.cfg.get("bank") or {}
    path = b.get("path")
    if not b.get("persist", True) or not b.get("enabled", True) or not path or not Path(path).exists():
        raise BackendError(
            f"backend=replay replays the persisted sample bank, and there is none at {path} "
            "(bank.enabled and bank.persist must be true): record a search with a real backend first, "
            "or `agenttts bank import FILE`"
        )
    bank = make_bank(ctx.cfg)
    try:
        have = ctx.environment(bank=bank).first_stage_coverage()
    finally:
        bank.close()
    if not any(have.values()):
        world = ctx.backend.world  # a replay context always has its backend
        raise BackendError(
            f"backend=replay: the sample bank at {path} holds no samples of stage '{ctx.space.stages[0].name}' "
            f"for these {len(ctx.train)} train questions (world '{world}', task '{ctx.task.name}', data.seed="
            f"{ctx.cfg['data'].get('seed')}): record them with a real backend first, or import a bank file"
        )


def parse_allocation(cfg: dict, space: SearchSpace) -> Allocation:
    """The allocation given as ``allocation.STAGE=MODEL:S`` overrides, validated against the space."""
    spec = cfg.get("allocation") or {}
    if not spec:
        names = [s.name for s in space.stages]
        raise ConfigError(
            "no allocation given; pass one override per stage, e.g. "
            + " ".join(f"allocation.{n}=MODEL:S" for n in names)
        )
    return space.validate(Allocation.parse(spec))


PROMPTS_DIR = Path(__file__).resolve().parent.parent / "conf" / "prompts"


def make_searcher(cfg: dict, n_questions: int = 50, check: bool = True):
    """The configured searcher; for agenttts and the LLM baselines their prompts are validated and their reasoner checked."""
    s = cfg["searcher"]
    seed = int(cfg.get("seed", 0))
    if s["name"] in ("llm_zs", "mlcopilot", "agenthpo"):
        return make_llm_baseline(cfg, n_questions, check)
    if s["name"] != "agenttts":
        cls = SEARCHERS[s["name"]]
        accepted = inspect.signature(cls).parameters  # other searcher.* keys are passed when accepted
        return cls(seed=seed, **{k: v for k, v in s.items() if k in accepted and k not in ("name", "seed")})
    from components.agent.prompts import PromptSet, TaskInfo
    from components.reasoners import make_reasoner
    from components.searchers.agenttts import AgentTTSSearcher

    prompts = PromptSet(s.get("prompts_dir") or PROMPTS_DIR)
    reasoner = make_reasoner(cfg["reasoner"])
    if check:
        reasoner.check()  # an unreachable endpoint stops here, before any trial
    t = cfg["task"]
    info = TaskInfo(t["name"], t.get("description", ""), tuple(t.get("metrics") or [t["metric"]]), t["metric"])
    return AgentTTSSearcher(
        reasoner, prompts, info, n_questions=n_questions, seed=seed, probes=bool(s.get("probes", True))
    )


def make_llm_baseline(cfg: dict, n_questions: int = 50, check: bool = True):
    """An LLM baseline (llm_zs, mlcopilot, agenthpo): refused without an LLM reasoner; prompts,
    mlcopilot's prior history and the reasoner are checked here, before any trial."""
    from components.agent.prompts import TaskInfo
    from components.reasoners import make_reasoner
    from components.searchers.llm_baselines import LLM_BASELINES, PriorHistory, llm_required_message

    s = cfg["searcher"]
    name, seed = s["name"], int(cfg.get("seed", 0))
    reasoner = make_reasoner(cfg["reasoner"])
    if not reasoner.is_llm:  # no rules fallback: these are LLM methods by definition
        raise ConfigError(llm_required_message(name))
    cls = LLM_BASELINES[name]
    prompts = cls.load_prompts(s.get("prompts_dir"))
    extra: dict = {}
    if name == "llm_zs":
        extra["max_asks"] = int(s.get("max_asks", 3))
    elif name == "mlcopilot":
        extra["prior"] = PriorHistory.load(s.get("prior_history"))
        extra["prior_max_rows"] = int(s.get("prior_max_rows", 50))
    if check:
        reasoner.check()  # an unreachable endpoint stops here, before any trial
    t = cfg["task"]
    info = TaskInfo(t["name"], t.get("description", ""), tuple(t.get("metrics") or [t["metric"]]), t["metric"])
    return cls(reasoner, prompts, info, n_questions=n_questions, seed=seed, **extra)
