"""``agenttts bench``: scenarios × searchers × seeds × trials → bench.csv, summary.md, plots, MLflow.

Searches run in-process (no per-trial Prefect tasks or MLflow child runs, so orchestration does not
dominate), in parallel worker processes over (scenario, seed) jobs; each search is one MLflow run
with its trials table as an artifact. The grid oracle is computed by ``components.oracle.grid_best``
(every allocation scored exactly as the Environment scores it, stage prefixes shared) and cached on
disk; a scenario whose space is larger than ``bench.oracle_max_space`` gets no oracle columns.
Everything here runs on the simulator: every number is SIMULATED.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import yaml

from components.errors import ConfigError, UnknownNameError, check_bool
from components.simulator import SIM_VERSION
from flows.cli import CONF_DIR, compose

LLM_FREE = ("agenttts", "random", "optuna_tpe", "optuna_gp")
# bench.csv's leading columns (the interface); the numeric ones are also each run's MLflow metrics
CSV_FIRST = (
    "scenario",
    "searcher",
    "seed",
    "trials_to_near",
    "trials_to_opt",
    "best_train",
    "oracle_train",
    "test_score",
    "tokens_generated",
    "wall_s",
)
# keys the bench sets per job; every other command-line override applies to all jobs
OWN_KEYS = {
    "scenarios",
    "searchers",
    "seeds",
    "trials",
    "task",
    "scenario",
    "scenario.seed",
    "seed",
    "searcher",
    "data.seed",
    "data.path",
}


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def passthrough(overrides: list[str]) -> list[str]:
    """The command-line overrides every job inherits (not the bench's own keys, not ``bench.*``)."""
    return [o for o in overrides if _key(o) not in OWN_KEYS and not _key(o).startswith("bench.")]


def job_overrides(extra: list[str], scenario: str, task: str, data: list[str], seed: int) -> list[str]:
    """One (scenario, seed) job's overrides: world and data seed are both ``seed``."""
    return [*extra, f"task={task}", f"scenario={scenario}", f"scenario.seed={seed}", f"data.seed={seed}", *data]


def public_scenarios() -> list[str]:
    """Scenario files shipped in conf/scenario (pure aliases such as synthetic.yaml excluded)."""
    out = []
    for p in sorted((CONF_DIR / "scenario").glob("*.yaml")):
        raw = yaml.safe_load(p.read_text()) or {}
        if "name" in raw:
            out.append(p.stem)
    return out


def task_for(scenario: dict, data_paths: dict) -> tuple[str, list[str]]:
    """The shipped task whose stages match the scenario's (synthetic data preferred), and its data override."""
    want = [(s["name"], s["kind"]) for s in scenario["stages"]]
    found = []
    for p in sorted((CONF_DIR / "task").glob("*.yaml")):
        t = yaml.safe_load(p.read_text())
        if [(s["name"], s["kind"]) for s in t["stages"]] == want:
            # synthetic data first (no file needed), then the task named like the scenario, then the default
            rank = (t["data"]["format"] != "synthetic", p.stem != scenario["name"], p.stem != "synthetic")
            found.append((rank, p.stem, t["data"]["format"]))
    if not found:
        raise ConfigError(
            f"no task in conf/task has the stages {want} of scenario '{scenario['name']}'; add one (see README)"
        )
    _, name, fmt = min(found)
    if fmt == "synthetic":
        return name, []
    path = data_paths.get(name)
    if not path or not Path(path).exists():
        missing = f" ({path} not found from {Path.cwd()})" if path else ""
        raise ConfigError(
            f"scenario '{scenario['name']}' needs task '{name}', which reads a {fmt} file{missing}: "
            f"set bench.data_paths.{name}=FILE, or leave the scenario out"
        )
    return name, [f"data.path={path}"]


def _job(job: dict) -> list[dict]:
    """One (scenario, seed): oracle, then every searcher. Runs in a worker process."""
    from components.agent.probes import insight1_probes
    from components.bank import SampleBank
    from components.bench import SearchRun, run_search, timed
    from components.oracle import grid_best
    from flows.build import build, make_searcher

    ov = job["overrides"]
    ctx = build(compose(ov))
    n = len(ctx.train)
    oracle, oracle_alloc, oracle_s = None, None, None
    if ctx.space.size <= job["oracle_max_space"]:
        cache = Path(job["cache"]) / f"{job['key']}.json"
        if cache.exists():
            hit = json.loads(cache.read_text())
            oracle, oracle_alloc, oracle_s = hit["oracle"], hit["allocation"], hit["seconds"]
        else:
            # the grid evaluator scores every allocation as the Environment does (tests/test_oracle.py)
            top, oracle_s = timed(grid_best, ctx.environment(bank=SampleBank(None)), ctx.space.enumerate())
            oracle, oracle_alloc = top[1], str(top[0])
            cache.parent.mkdir(parents=True, exist_ok=True)
            cache.write_text(json.dumps({"oracle": oracle, "allocation": oracle_alloc, "seconds": oracle_s}))
    # trials of the shared initial design: a searcher near the oracle by then ties with every other one
    shared = min(len(insight1_probes(ctx.space)), job["trials"]) if job["initial_design"] else 0
    out = []
    for name in job["searchers"]:
        cfg = compose([*ov, f"searcher={name}", f"seed={job['seed']}"])
        searcher = make_searcher(cfg, n)
        env = ctx.environment(bank=SampleBank(None))
        history, wall = timed(
            run_search,
            ctx.space,
            env,
            searcher,
            job["trials"],
            int(cfg["searcher"].get("batch_size") or 10),
            job["initial_design"],
        )
        run = SearchRun(
            job["scenario"],
            name,
            job["seed"],
            history,
            n,
            oracle,
            wall,
            env.bank.generated_tokens,
            getattr(searcher, "agent_tokens", 0),
            counts=dict(getattr(searcher, "counts", {})),
        )
        if ctx.test:
            run.test_score = (
                ctx.environment(items=ctx.test, bank=SampleBank(None)).evaluate([run.best.allocation])[0].score
            )
        row = run.row()
        row.update(
            oracle_allocation=oracle_alloc or "",
            oracle_s=oracle_s if oracle_s is not None else "",
            space=ctx.space.size,
            n_questions=n,
            initial_trials=shared,
        )
        out.append(
            {
                "row": row,
                "curve": run.curve,
                "trials": [
                    {
                        "trial": i + 1,
                        "allocation": str(r.allocation),
                        "score": r.score,
                        "units": r.cost.units,
                        "flops_spent": r.flops_spent,
                    }
                    for i, r in enumerate(history)
                ],
            }
        )
    return out


def _finished_jobs(folder: Path, jobs: list[dict], resume: bool) -> dict[int, list[dict]]:
    """Job index -> its results, read from ``folder`` when resuming; otherwise the folder is emptied
    (a plain run measures everything afresh)."""
    if not resume:
        for f in folder.glob("*.json"):
            f.unlink()
        return {}
    out = {}
    for i, j in enumerate(jobs):
        f = folder / f"{j['job_key']}.json"
        if f.exists():
            out[i] = json.loads(f.read_text())
    return out


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)  # a kill mid-write leaves no half file that resume would read


def _fmt(v) -> str:
    return "-" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))


def _trials_or_cap(v, trials: int) -> float:
    """A trials-to column as a number; not reached counts as trials+1, so medians stay conservative for
    the searcher that missed."""
    return trials + 1 if v in ("", None) else float(v)


def _show_trials(v: float | None, trials: int) -> str:
    return "-" if v is None else (f">{trials}" if v > trials else f"{v:g}")


def summarize(rows: list[dict], trials: int) -> str:
    """The markdown summary: medians per scenario and searcher, paired bootstrap CIs against agenttts."""
    from components.bench import paired_bootstrap

    num = lambda v: _trials_or_cap(v, trials)  # noqa: E731
    show = lambda v: _show_trials(v, trials)  # noqa: E731
    lines = [
        "All numbers are SIMULATED (backend=sim). trials_to_near: first trial within one question of the grid "
        f"oracle; not reached within {trials} trials counts as >{trials}.",
        "",
        "| scenario | searcher | seeds | median trials to near | reached | median trials to oracle | median best train | median test | median tokens generated | median wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    scen = list(dict.fromkeys(r["scenario"] for r in rows))
    names = list(dict.fromkeys(r["searcher"] for r in rows))
    for s in scen:
        for n in names:
            rs = [r for r in rows if r["scenario"] == s and r["searcher"] == n]
            if not rs:
                continue
            med = lambda k, rs=rs: statistics.median(num(r[k]) for r in rs)  # noqa: E731
            has_oracle = rs[0]["oracle_train"] != ""
            near = med("trials_to_near") if has_oracle else None
            opt = med("trials_to_opt") if has_oracle else None
            tests = [float(r["test_score"]) for r in rs if r["test_score"] != ""]
            reached = f"{sum(r['trials_to_near'] != '' for r in rs)}/{len(rs)}" if has_oracle else "-"
            cells = [
                s,
                n,
                str(len(rs)),
                show(near),
                reached,
                show(opt),
                f"{statistics.median(float(r['best_train']) for r in rs):.3f}",
                f"{statistics.median(tests):.3f}" if tests else "-",
                f"{statistics.median(int(r['tokens_generated']) for r in rs):,.0f}",
                f"{statistics.median(float(r['wall_s']) for r in rs):.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if "agenttts" in names and len(names) > 1:
        lines += [
            "",
            "Paired over seeds, agenttts against each other searcher (bootstrap 95% CI of the median difference):",
            "",
            "| scenario | other | trials to near: other − agent | final best: agent ≥ other |",
            "|---|---|---|---|",
        ]
        for s in scen:
            for n, ag, ot, seeds in _pairs(rows, s, names):
                if ag[seeds[0]]["oracle_train"] != "":
                    m, lo, hi = paired_bootstrap(
                        [num(ot[x]["trials_to_near"]) for x in seeds], [num(ag[x]["trials_to_near"]) for x in seeds]
                    )
                    diff = f"{m:+g} [{lo:+g}, {hi:+g}]"
                else:
                    diff = "- (no oracle)"
                ge = _agent_ge(ag, ot, seeds)
                lines.append(f"| {s} | {n} | {diff} | {ge}/{len(seeds)} ({100 * ge / len(seeds):.0f}%) |")
        lines += targets(rows, trials, scen, names)
    return "\n".join(lines) + "\n"


def _pairs(rows: list[dict], scenario: str, names: list[str]):
    """Per other searcher on ``scenario``: (name, agent rows by seed, its rows by seed, common seeds)."""
    ag = {r["seed"]: r for r in rows if r["scenario"] == scenario and r["searcher"] == "agenttts"}
    for n in names:
        if n == "agenttts":
            continue
        ot = {r["seed"]: r for r in rows if r["scenario"] == scenario and r["searcher"] == n}
        seeds = sorted(set(ag) & set(ot))
        if seeds:
            yield n, ag, ot, seeds


def _agent_ge(ag: dict, ot: dict, seeds: list) -> int:
    """Seeds in which the agent's final best train score is at least the other's."""
    return sum(float(ag[x]["best_train"]) >= float(ot[x]["best_train"]) - 1e-9 for x in seeds)


def targets(rows: list[dict], trials: int, scen: list[str], names: list[str]) -> list[str]:
    """The performance targets per scenario: the agent's median trials to near (<= 12?), how many times sooner
    than the best other searcher (>= 3x?), and the lowest share of seeds, over the other searchers, in
    which the agent's final best is at least theirs (>= 90%?)."""
    cap = trials + 1
    num = lambda v: _trials_or_cap(v, trials)  # noqa: E731
    show = lambda v: _show_trials(v, trials)  # noqa: E731
    out = [
        "",
        "The performance targets (agenttts against the best of the others; a median of >"
        f"{trials} counts as {cap}, so a ratio against it is a lower bound):",
        "",
        "| scenario | agent: median trials to near | ≤ 12 | best other (median) | other ÷ agent | ≥ 3× | agent ≥ other's final best, worst case | ≥ 90% | seeds near within the shared initial design |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in scen:
        ag = {r["seed"]: r for r in rows if r["scenario"] == s and r["searcher"] == "agenttts"}
        if not ag or next(iter(ag.values()))["oracle_train"] == "":
            continue
        a = statistics.median(num(r["trials_to_near"]) for r in ag.values())
        others, shares = [], []
        for n, _, ot, seeds in _pairs(rows, s, names):
            others.append((statistics.median(num(ot[x]["trials_to_near"]) for x in seeds), n))
            shares.append((_agent_ge(ag, ot, seeds) / len(seeds), n))
        if not others:
            continue
        best_m, best_n = min(others)
        ratio = best_m / a
        worst, worst_n = min(shares)
        # where the shared design already reaches near, every searcher ties there (ratio 1 in that seed)
        tied = sum(
            r["trials_to_near"] != "" and num(r["trials_to_near"]) <= int(r.get("initial_trials") or 0)
            for r in ag.values()
        )
        yes = lambda ok: "yes" if ok else "no"  # noqa: E731
        out.append(
            f"| {s} | {show(a)} | {yes(a <= 12)} | {best_n} ({show(best_m)}) | {ratio:.1f}× | {yes(ratio >= 3)} "
            f"| {100 * worst:.0f}% ({worst_n}) | {yes(worst >= 0.9)} | {tied}/{len(ag)} |"
        )
    return out


def plot(results: list[dict], out: Path) -> list[Path]:
    """Per scenario: median gap of the best-so-far to the oracle, in questions, vs trials (Figure 3 style)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    for old in out.glob("best_so_far_*.png"):  # an earlier bench's scenarios must not sit beside this table
        old.unlink()
    files = []
    for s in dict.fromkeys(r["row"]["scenario"] for r in results):
        rs = [r for r in results if r["row"]["scenario"] == s]
        fig, ax = plt.subplots(figsize=(6, 3.6))
        has_oracle = rs[0]["row"]["oracle_train"] != ""
        for name in dict.fromkeys(r["row"]["searcher"] for r in rs):
            curves = [r for r in rs if r["row"]["searcher"] == name]
            length = max(len(c["curve"]) for c in curves)
            pad = lambda c, n=length: c + [c[-1]] * (n - len(c))  # noqa: E731
            if has_oracle:
                ys = [
                    (np.array(pad(c["curve"])) - float(c["row"]["oracle_train"])) * c["row"]["n_questions"]
                    for c in curves
                ]
            else:
                ys = [np.array(pad(c["curve"])) for c in curves]
            x = range(1, length + 1)
            (line,) = ax.plot(x, np.median(ys, axis=0), label=name)
            if len(ys) >= 4:  # the spread over seeds: a median alone hides how often a searcher is unlucky
                lo, hi = np.percentile(ys, [25, 75], axis=0)
                ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.12, lw=0)
        if has_oracle:
            ax.axhline(0, ls="--", c="k", label="oracle")
            ax.axhline(-1, ls=":", c="grey", label="one question")
        ax.set(
            xlabel="trial",
            ylabel="best so far − oracle (questions)" if has_oracle else "best train score so far",
            title=f"{s} (simulated; median over seeds, band 25-75%)",
        )
        ax.legend(loc="lower right", fontsize=8)
        f = out / f"best_so_far_{s}.png"
        fig.savefig(f, dpi=110, bbox_inches="tight")
        plt.close(fig)
        files.append(f)
    return files


def code_digest(oracle_only: bool = False) -> str:
    """A digest of the code and configs a bench job's result depends on (components/, flows/, conf/):
    finished jobs are reused on ``bench.resume=true`` only while this is unchanged. ``oracle_only``: the
    code a grid oracle's result depends on (the searchers, reasoners and agent left out, so that
    tuning a searcher keeps the cached oracles; its config is keyed separately, see ``oracle_key``)."""
    root = Path(__file__).resolve().parent.parent
    files = [*root.glob("components/**/*.py"), *root.glob("flows/**/*.py"), *root.glob("conf/**/*.yaml")]
    if oracle_only:
        searching = ("components/searchers/", "components/reasoners/", "components/agent/")
        files = [f for f in root.glob("components/**/*.py") if not str(f.relative_to(root)).startswith(searching)] + [
            root / "flows" / "build.py"
        ]
    h = hashlib.sha1()
    for f in sorted(files):
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


def oracle_key(composed: dict, seed: int, data_files: list[str], code: str) -> str:
    """The identity of a (scenario, seed)'s grid oracle: every config section that shapes the space or
    the scores (task, backend, scenario, models, budget, cost, data), the seed, the data files' stamps
    and the oracle's code. (Keyed once on the scenario and budget alone, a cached oracle outlived a
    ``cost.count_fusion=true`` that made it infeasible.)"""
    sections = {k: composed.get(k) for k in ("task", "backend", "scenario", "models", "budget", "cost", "data")}
    files = [(p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in data_files if Path(p).exists()]
    blob = json.dumps([sections, seed, files, code, SIM_VERSION], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _job_key(job: dict, scenario: dict, code: str) -> str:
    """The identity of a job's result: its config, its scenario's content, its data files, the code."""
    files = [(p, Path(p).stat().st_size, Path(p).stat().st_mtime_ns) for p in _data_files(job) if Path(p).exists()]
    blob = json.dumps([job, scenario, files, code, SIM_VERSION], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _data_files(job: dict) -> list[str]:
    return [o.split("=", 1)[1] for o in job["overrides"] if _key(o) == "data.path"]


@contextlib.contextmanager
def worker_pool(workers: int, keep_environment: bool = False, progress=print):
    """A process pool whose workers start afresh with GP's code paths pinned (``pinned_blas``: the BLAS
    kernels and numpy's SIMD loops), so GP's numbers do not depend on the CPU's vector extensions
    (measured: AVX2 and AVX-512 EPYCs agree; an Intel Xeon still gave a few different GP rows, see
    "GP's numbers and the CPU" in scripts/README.md). The pins replace values set in the environment
    (a machine image may set ``OPENBLAS_CORETYPE``), unless ``keep_environment``. They stay in this
    process's environment while the pool lives (workers start on demand; this process's own libraries
    are loaded already)."""
    from components.searchers.optuna_search import pinned_blas

    pins = pinned_blas(keep_environment)
    saved = {k: os.environ.get(k) for k in pins}
    for k, v in pins.items():
        if saved[k] not in (None, v):
            progress(
                f"  {k}={saved[k]} in the environment replaced by {v or '(unset)'} in the workers, so GP's numbers "
                "match other machines' (bench.blas_pins=false keeps it)"
            )
    os.environ.update(pins)
    try:
        # spawn, not fork: the libraries read the variables when they load, and a forked worker
        # would inherit this process's, loaded long before
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def environment() -> dict[str, str]:
    """What the bench's numbers may depend on beyond code and config: versions, code-path pins, CPU.

    GP's numbers depend on the BLAS code paths and numpy's SIMD loops, pinned in the workers
    (``worker_pool``), so the bench asks a worker; the other searchers' numbers are exact on any CPU.
    """
    import platform

    from components.searchers.optuna_search import blas_in_force, library_versions

    env = {"python": platform.python_version()}
    env |= {k: v or "absent" for k, v in library_versions().items()}
    pins = blas_in_force()
    for k in ("NPY_DISABLE_CPU_FEATURES", "NPY_ENABLE_CPU_FEATURES"):  # their effect is shown instead
        pins.pop(k, None)
    env |= {k: v or "unset" for k, v in pins.items()}
    env["numpy loops"] = numpy_loops()
    try:  # the kernels OpenBLAS actually loaded (numpy's, and scipy's once GP has run)
        import numpy  # noqa: F401
        from threadpoolctl import threadpool_info

        arch = sorted({i.get("architecture") or "?" for i in threadpool_info() if i["internal_api"] == "openblas"})
        env["openblas"] = "/".join(arch) or "none loaded"
    except ImportError:
        pass
    info = _cpuinfo()
    cpu = info.get("model name") or platform.processor() or platform.machine()
    # a VM's model name may be generic ("Intel(R) Xeon(R) Processor"); vendor, family and model tell
    # the CPUs apart, and GP's rows differed between an Intel Xeon and AMD EPYCs under the same pins
    ident = (
        f"{info['vendor_id']} {info.get('cpu family', '?')}/{info.get('model', '?')}, " if "vendor_id" in info else ""
    )
    env["cpu"] = f"{cpu} ({ident}{os.cpu_count()} cores{_vector_isa(info)})"
    return env


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    out: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").open():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            out[key.strip()] = value.strip()
    except OSError:
        pass
    return out


def numpy_loops() -> str:
    """The SIMD target of numpy's float64 ``exp`` loop in this process (``X86_V3``, AVX2, when pinned on
    an AVX2 or AVX-512 CPU; ``X86_V4`` on an AVX-512 CPU unpinned), or ``unknown`` before numpy 2.0."""
    try:
        from numpy.lib.introspect import opt_func_info

        return opt_func_info(func_name="^exp$", signature="float64")["exp"]["dd"]["current"]
    except (ImportError, KeyError):
        return "unknown"


def _vector_isa(info: dict[str, str] | None = None) -> str:
    """The widest vector extension in the CPU flags (AVX-512, AVX2 or none), as a suffix: two CPUs of
    one model name may differ in it, and libraries that pick kernels by it (numpy, torch) may too."""
    flags = (_cpuinfo() if info is None else info).get("flags", "").split()
    return ", AVX-512" if "avx512f" in flags else ", AVX2" if "avx2" in flags else ""


def _names(v) -> list[str]:
    """``searchers=optuna_tpe`` as well as ``searchers=[optuna_tpe,random]`` (a bare string is one name,
    not its letters)."""
    return [v] if isinstance(v, str) else list(v or [])


def run_bench(cfg: dict, progress=print) -> Path:
    """Run the benchmark described by ``cfg`` (``scenarios``, ``searchers``, ``seeds``, ``trials``, ``bench.*``)."""
    from components.archive import Archive
    from flows.build import int_option

    b = cfg.get("bench") or {}
    for key in ("scenarios", "searchers"):
        names = _names(cfg.get(key))
        if cfg.get(key) is not None and not names:
            raise ConfigError(f"{key}=[] names none; leave {key} out for the default")
        if len(set(names)) < len(names):
            twice = sorted({n for n in names if names.count(n) > 1})
            raise ConfigError(f"{key} lists {twice} more than once (a repeat would count as more seeds)")
    scenarios = _names(cfg.get("scenarios")) or public_scenarios()
    searchers = _names(cfg.get("searchers")) or list(LLM_FREE)
    fixed = [o for o in cfg.get("cli_overrides", []) if _key(o) in ("task", "scenario", "scenario.seed", "data.seed")]
    if fixed:
        raise ConfigError(
            f"{fixed[0]}: the bench sets each job's task, scenario and seeds itself; use scenarios=[...] and seeds=N"
        )
    out = Path(b.get("out", "bench-out"))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"bench.out={out} is a file; give a folder")
    seeds, trials = int_option(cfg, "seeds", 1, 10), int_option(cfg, "trials")
    workers = int_option(cfg, "bench.jobs", 1, 2)
    from components.searchers import SEARCHERS

    for n in searchers:
        if n not in SEARCHERS:
            raise UnknownNameError.among("searcher", n, sorted(SEARCHERS))
    extra = passthrough(cfg.get("cli_overrides", []))
    resume = check_bool(b.get("resume", False), "bench.resume")
    keep_blas_env = not check_bool(b.get("blas_pins", True), "bench.blas_pins")
    from components.searchers.optuna_search import library_versions, pinned_blas

    code, oracle_code, libraries = code_digest(), code_digest(oracle_only=True), library_versions()
    jobs = []
    for s in scenarios:
        sc = compose([*extra, f"scenario={s}"])["scenario"]  # an unknown name: one line with the options
        task, data = task_for(sc, b.get("data_paths") or {})
        for seed in range(seeds):
            ov = job_overrides(extra, s, task, data, seed)
            if seed == 0:
                composed = compose(ov)  # the seed enters the oracle's key by itself
            key = oracle_key(composed, seed, [p for p in [(composed.get("data") or {}).get("path")] if p], oracle_code)
            jobs.append(
                {
                    "scenario": s,
                    "seed": seed,
                    "overrides": ov,
                    "searchers": searchers,
                    "trials": trials,
                    "initial_design": bool(b.get("initial_design", True)),
                    # GP's numbers depend on the code-path pins and the library versions: part of the job's key
                    "blas": pinned_blas(keep_blas_env),
                    "libraries": libraries,
                    "oracle_max_space": int(b.get("oracle_max_space", 200_000)),
                    "cache": str(Path(b.get("out", "bench-out")) / ".oracle-cache"),
                    "key": key,
                }
            )
            jobs[-1]["job_key"] = _job_key(jobs[-1], sc, code)
    # validate every job's config (and searcher start-up) before spending compute
    from flows.build import build, make_searcher

    for j in {j["scenario"]: j for j in jobs}.values():
        ctx = build(compose(j["overrides"]), with_data=True)
        for n in searchers:
            make_searcher(compose([*j["overrides"], f"searcher={n}"]), len(ctx.train))
        if ctx.space.size > j["oracle_max_space"]:
            progress(
                f"{j['scenario']}: {ctx.space.size} feasible allocations > bench.oracle_max_space={j['oracle_max_space']}: no grid oracle, oracle columns left empty"
            )
    out.mkdir(parents=True, exist_ok=True)
    progress(
        f"bench: {len(scenarios)} scenarios x {len(searchers)} searchers x {seeds} seeds x {trials} trials "
        f"({len(jobs)} jobs on {workers} processes; SIMULATED)"
    )
    t = time.perf_counter()
    done = _finished_jobs(out / ".jobs", jobs, resume)
    if resume:
        progress(f"  resume: {len(done)} of {len(jobs)} jobs finished earlier with this code and config, reused")
    try:
        with worker_pool(workers, keep_environment=keep_blas_env, progress=progress) as pool:
            futures = {pool.submit(_job, j): i for i, j in enumerate(jobs) if i not in done}
            for n, f in enumerate(as_completed(futures), len(done) + 1):
                done[futures[f]] = chunk = f.result()
                # written as each job ends: an interrupted bench keeps its finished jobs for bench.resume=true
                _write_atomic(out / ".jobs" / f"{jobs[futures[f]]['job_key']}.json", json.dumps(chunk))
                if n % max(1, len(jobs) // 10) == 0 or n == len(jobs):
                    progress(f"  {n}/{len(jobs)} jobs done, {time.perf_counter() - t:.0f} s")
            env = pool.submit(environment).result()
    except KeyboardInterrupt:
        progress(
            f"  {len(done)} of {len(jobs)} jobs kept in {out / '.jobs'}; "
            "run the same command with bench.resume=true to continue"
        )
        raise
    results = [r for i in range(len(jobs)) for r in done[i]]
    wall = time.perf_counter() - t
    rows = [r["row"] for r in results]
    cols = [*CSV_FIRST, *(c for c in rows[0] if c not in CSV_FIRST)]
    with open(out / "bench.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    summary = (
        summarize(rows, trials)
        + f"\nWall time: {wall:.0f} s for {len(rows)} searches on {workers} processes (`{cfg.get('command_line', 'agenttts bench')}`).\n"
        + "\nEnvironment: "
        + ", ".join(f"{k}={v}" if k.isupper() else f"{k} {v}" for k, v in env.items())
        + ".\n"
    )
    (out / "summary.md").write_text(summary)
    pngs = plot(results, out)
    # the archive: one run per search (trials table as artifact), under one bench run
    archive = Archive(cfg["mlflow"]["tracking_uri"], "agenttts-bench")
    archive.start_search(
        f"bench {len(scenarios)} scenarios x {len(searchers)} searchers x {seeds} seeds (simulated)",
        {"scenarios": ",".join(scenarios), "searchers": ",".join(searchers), "seeds": seeds, "trials": trials},
        {"kind": "bench", "simulated": "true", "status": "running", **{f"env.{k}": v for k, v in env.items()}},
    )
    parent = archive.parent_id
    for r in results:
        row = r["row"]
        run = archive.client.create_run(
            archive.experiment_id,
            run_name=f"{row['searcher']} {row['scenario']} seed={row['seed']} (simulated)",
            tags={
                "mlflow.parentRunId": parent,
                "kind": "bench-search",
                "searcher": row["searcher"],
                "scenario": row["scenario"],
                "simulated": "true",
            },
        )
        rid = run.info.run_id
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(row[k]), now, 0) for k in (*CSV_FIRST[3:], "flops_spent", "agent_tokens") if row[k] != ""
        ]
        archive.client.log_batch(
            rid, metrics=metrics, params=[Param("seed", str(row["seed"])), Param("trials", str(trials))]
        )
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(r["trials"][0]))
        w.writeheader()
        w.writerows(r["trials"])
        archive.client.log_text(rid, buf.getvalue(), "trials.csv")
        archive.client.set_terminated(rid, "FINISHED")
    archive.log_text(summary, "summary.md")
    archive.log_text((out / "bench.csv").read_text(), "bench.csv")
    for p in pngs:
        archive.log_bytes(p.read_bytes(), f"plots/{p.name}")
    archive.finish({"wall_s": wall, "searches": len(rows)}, {"status": "finished"})
    progress(
        f"bench: {len(rows)} searches in {wall:.0f} s -> {out / 'bench.csv'}, {out / 'summary.md'}, {len(pngs)} plots; "
        f"MLflow experiment 'agenttts-bench', run {parent}"
    )
    return out


__all__ = ["LLM_FREE", "environment", "public_scenarios", "run_bench", "summarize", "task_for"]
