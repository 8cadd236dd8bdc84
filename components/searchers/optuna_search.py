"""Optuna baselines (TPE and GP) behind the Searcher protocol, by ask-and-tell with a hard budget check.

One in-memory study per searcher, maximizing the score. Each stage gives two parameters,
``<stage>.model`` (categorical over the stage's models) and ``<stage>.samples`` (int over the
stage's fixed ``[min_samples, max_samples]``), so the search space never changes and GPSampler
models every parameter.

Optuna has no hard constraints, so the budget is enforced here (``stack-idioms.md`` §6):

- every asked trial gets ``trial.set_constraint("budget", cost - budget)`` (feasible ones too: GP
  needs the same constraints on every trial);
- an infeasible ask is never evaluated: it is told COMPLETE at once with a placeholder worst value
  and the searcher asks again (never FAIL or PRUNED: GPSampler ignores those and would keep
  proposing infeasible allocations);
- an ask that repeats an evaluated allocation is told its known score at once, and asked again;
- after ``random_after`` asks that repeat evaluated or pending allocations, with no new one between
  them (the sampler's optimum sits on evaluated points: GP on a small space does this), a random
  unseen feasible allocation is enqueued and asked instead, so the search neither spins nor ends
  short (infeasible asks do not count: TPE draws many of them while it still explores);
- feasible new asks stay RUNNING (pending) until ``observe`` tells their scores.

``observe`` also ingests results the searcher did not propose (a shared initial design, say) with
``study.add_trial(create_trial(..., constraints={"budget": ...}))``; Optuna 5 stores that, like
``set_constraint``, as the system attribute ``"constraints:budget"``.
"""

from __future__ import annotations

import abc
import importlib.util
import logging
import os
import platform
import sys
import time
import warnings
from collections import Counter

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import Trial, TrialState, create_trial

from components.errors import AllocationError, ConfigError, check_int
from components.pipeline import TrialResult
from components.searchers.base import Proposal
from components.space import Allocation, SearchSpace

optuna.logging.set_verbosity(logging.WARNING)  # no per-trial INFO lines
log = logging.getLogger(__name__)
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module=r"optuna(\.|$)")

CONSTRAINT = "budget"


class OptunaSearcher(abc.ABC):
    """Shared ask-and-tell machinery; subclasses choose the sampler.

    Args:
        seed: the sampler's seed (same seed and same results give the same proposals).
        n_startup_trials: random trials before the sampler's model is used (Optuna's default 10).
        max_asks_per_proposal: at most this many asks per requested proposal (infeasible and
            duplicate asks count); when exhausted, ``propose`` returns fewer proposals.
        random_after: after this many asks repeating known allocations (no new one between them),
            propose a random unseen feasible one instead (0: never). After a fallback, half as many
            repeats trigger the next one, until the sampler proposes a new allocation itself: a
            model stuck on evaluated allocations stays stuck, and every repeated ask costs a model
            fit (a 47-allocation space at 50 trials took GP 239 asks).
    """

    name = "optuna"
    label = "Optuna"

    def __init__(
        self, seed: int = 0, n_startup_trials: int = 10, max_asks_per_proposal: int = 50, random_after: int = 10
    ):
        self.seed = check_int(seed, "seed", 0)
        self.n_startup_trials = check_int(n_startup_trials, f"{self.name}: n_startup_trials", 0)
        self.max_asks_per_proposal = check_int(max_asks_per_proposal, f"{self.name}: max_asks_per_proposal", 1)
        self.random_after = check_int(random_after, f"{self.name}: random_after", 0)
        self._patience = self.random_after  # repeats before the next random fallback
        self.study: optuna.Study | None = None
        self.space: SearchSpace | None = None
        self.counts: Counter = Counter()
        self.ask_seconds: list[float] = []  # wall time of every study.ask (suggestions included)
        self._dists: dict[str, BaseDistribution] = {}
        self._known: dict[Allocation, float | None] = {}  # evaluated allocation -> score (None: failed)
        self._pending: dict[Allocation, list[Trial]] = {}  # proposed, not yet observed
        self._backlog: list[TrialResult] = []  # observed before the study existed

    # -- the sampler -----------------------------------------------------------------------------
    @abc.abstractmethod
    def make_sampler(self) -> optuna.samplers.BaseSampler:
        """The Optuna sampler of this searcher (TPE or GP)."""

    # -- study and parameters --------------------------------------------------------------------
    def _setup(self, space: SearchSpace) -> None:
        if self.study is not None:
            if space is not self.space and [s.name for s in space.stages] != [s.name for s in self.space.stages]:
                raise ConfigError(f"{self.name}: the search space changed between rounds")
            self.space = space
            return
        self.space = space
        for s in space.stages:
            self._dists[f"{s.name}.model"] = CategoricalDistribution(tuple(m.name for m in s.models))
            self._dists[f"{s.name}.samples"] = IntDistribution(s.min_samples, s.max_samples)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self.study = optuna.create_study(direction="maximize", sampler=self.make_sampler())
        backlog, self._backlog = self._backlog, []
        for r in backlog:
            self._ingest(r)

    def _allocation(self, params: dict) -> Allocation:
        return Allocation(
            tuple((s.name, params[f"{s.name}.model"], int(params[f"{s.name}.samples"])) for s in self.space.stages)
        )

    def _params(self, a: Allocation) -> dict:
        out = {}
        for s in self.space.stages:
            model, samples = a[s.name]
            out[f"{s.name}.model"] = model
            out[f"{s.name}.samples"] = samples
        return out

    def _violation(self, a: Allocation) -> float:
        """cost − budget; ≤ 0 exactly when the space calls the allocation feasible (tolerance included)."""
        v = float(self.space.cost(a) - self.space.budget.value)
        return min(v, 0.0) if self.space.is_feasible(a) else max(v, 1e-12)

    def _placeholder(self) -> float:
        """The worst value told for infeasible asks: 0.0, or the lowest score seen if below it."""
        return min([0.0, *(v for v in self._known.values() if v is not None)])

    # -- telling ---------------------------------------------------------------------------------
    def _ingest(self, r: TrialResult) -> None:
        """Tell a result: to its pending trial(s) if proposed here, else as a new (foreign) trial."""
        if self.study is None:
            self._backlog.append(r)
            return
        a = r.allocation
        score = float(r.score) if r.status == "ok" else None
        trials = self._pending.pop(a, [])
        if trials:
            for t in trials:
                self._tell(t, score)
            self._known[a] = score
            return
        if a in self._known:
            return
        try:
            a = self.space.validate(a)
        except AllocationError:
            self.counts["foreign_skipped"] += 1
            return
        self._known[a] = score
        if score is None:
            self.counts["foreign_failed"] += 1
            return  # a failed trial teaches neither sampler anything
        self.study.add_trial(
            create_trial(
                params=self._params(a),
                distributions=dict(self._dists),
                value=score,
                constraints={CONSTRAINT: self._violation(a)},
                user_attrs={"source": "observed", "allocation": a.key},
            )
        )
        self.counts["foreign_ingested"] += 1

    def _tell(self, t: Trial, score: float | None) -> None:
        if score is None:
            self.study.tell(t, state=TrialState.FAIL)
        else:
            self.study.tell(t, score)

    # -- Searcher protocol -----------------------------------------------------------------------
    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        self._setup(space)
        for r in history:  # results the caller evaluated but did not pass to observe
            if r.allocation not in self._known:
                self._ingest(r)
        for trials in self._pending.values():  # proposed earlier, never evaluated
            for t in trials:
                self.study.tell(t, state=TrialState.FAIL)
                self.counts["pending_dropped"] += 1
        self._pending.clear()
        out: list[Proposal] = []
        asks = stale = 0  # stale: duplicate asks since the last new allocation (infeasible ones not counted)
        rng = np.random.default_rng([self.seed, len(self._known)])
        while len(out) < k and asks < self.max_asks_per_proposal * k:
            if len(self._known) + len(out) >= space.size:
                break  # every feasible allocation is evaluated or proposed
            asks += 1
            fallback = None
            if self.random_after and stale >= self._patience:
                fallback = self._random_unseen(space, rng)
                if fallback is not None:  # the next ask returns these parameters
                    self.study.enqueue_trial(self._params(fallback))
            n_before = len(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
            t0 = time.perf_counter()
            trial = self.study.ask(self._dists)
            self.ask_seconds.append(time.perf_counter() - t0)
            self.counts["asked"] += 1
            a = self._allocation(trial.params)
            viol = self._violation(a)
            trial.set_constraint(CONSTRAINT, viol)
            if viol > 0:
                self.counts["infeasible_asked"] += 1
                self.study.tell(trial, self._placeholder())
            elif a in self._known:
                self.counts["duplicate_asked"] += 1
                stale += 1
                self._tell(trial, self._known[a])
            elif a in self._pending:  # asked again within this batch: told with the same score later
                self.counts["duplicate_asked"] += 1
                stale += 1
                self._pending[a].append(trial)
            else:
                self._pending[a] = [trial]
                stale = 0
                if fallback is not None:
                    self.counts["random_fallback"] += 1
                    phase = f"random fallback after {self._patience} repeated allocations"
                    self._patience = max(1, self._patience // 2)
                else:
                    self._patience = self.random_after
                    phase = "random startup" if n_before < self.n_startup_trials else "model-based"
                out.append(
                    Proposal(
                        a,
                        f"{self.label} {phase} proposal (Optuna trial {trial.number}, "
                        f"{space.cost(a):.0f}/{space.budget.value:.0f} {space.budget.kind})",
                        trace={"source": self.name, "optuna_trial": trial.number, "phase": phase, "asks": asks},
                    )
                )
        if len(out) < k:
            self.counts["short_batches"] += 1
        return out

    def _random_unseen(self, space: SearchSpace, rng: np.random.Generator) -> Allocation | None:
        """A uniformly drawn feasible allocation neither evaluated nor pending, if any is left."""
        taken = self._known.keys() | self._pending.keys()
        for a in space.sample(rng, 64):
            if a not in taken:
                return a
        rest = [a for a in space.enumerate() if a not in taken]  # nearly exhausted: draw from what is left
        return rest[int(rng.integers(len(rest)))] if rest else None

    def observe(self, results: list[TrialResult]) -> None:
        for r in results:
            self._ingest(r)


class TPESearcher(OptunaSearcher):
    """Optuna's TPESampler (v5 defaults: multivariate, constant liar), budget as a constraint.

    >>> from components.space import Budget, Model, SearchSpace, Stage
    >>> sp = SearchSpace([Stage("qa", (Model("m", 3e9),), 256, 64)], Budget("units", 10))
    >>> [sp.is_feasible(p.allocation) for p in TPESearcher(seed=0).propose(sp, [], 3)]
    [True, True, True]
    """

    name = "optuna_tpe"
    label = "TPE"

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.n_startup_trials)


# GP's numbers depend in the last bits on which code paths the CPU gets, enough to change proposals:
# - Intel MKL's BLAS (inside the torch CPU wheel) when the GP is fitted: an AVX-512 Xeon moved
#   chatdev's GP median trials to near from 39 (AMD EPYC) to >50 until MKL_CBWR=COMPATIBLE;
# - OpenBLAS's kernels (numpy's and scipy's) in the kernel fit's optimizer: on one EPYC
#   OPENBLAS_CORETYPE=Haswell instead of its own SkylakeX moved taskbench's from 41.5 to 43.5;
# - numpy's SIMD loops: the AVX-512 exp, log, log1p, expm1 and power differ from the AVX2 ones in the
#   last bit, and cwq's GP median was 49 on AVX-512 EPYCs, >50 on an AVX2 one (numpy_avx512_targets).
# Each library reads its variable when it loads, so only a process started with them set is pinned
# (the bench's workers are).
MKL_CBWR = "COMPATIBLE"
OPENBLAS_CORETYPE = "Nehalem"  # SSE4.2 kernels, the oldest this OpenBLAS names: any x86-64 CPU of 2009 on


def numpy_avx512_targets() -> str:
    """The AVX-512 SIMD targets this numpy dispatches to at run time (x86-64, numpy 2.4: ``X86_V4
    AVX512_ICL AVX512_SPR``). Disabled, numpy runs its AVX2 loops where the CPU has AVX2, AVX-512 or
    not: the widest loops the machines measured share. Not its baseline loops: those changed TPE's
    numbers, which the AVX2 and AVX-512 loops leave equal."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__
    return " ".join(t for t in __cpu_dispatch__ if t.startswith("AVX512") or t == "X86_V4")


def pinned_blas(keep_environment: bool = False) -> dict[str, str]:
    """The environment that pins GP's code paths (BLAS kernels and numpy's SIMD loops); with
    ``keep_environment``, values already set in this process's environment win over the pins."""
    pins = {"MKL_CBWR": MKL_CBWR}
    if platform.machine().lower() in ("x86_64", "amd64"):  # the coretype names are per architecture
        pins["OPENBLAS_CORETYPE"] = OPENBLAS_CORETYPE
    if targets := numpy_avx512_targets():
        pins["NPY_DISABLE_CPU_FEATURES"] = targets
        pins["NPY_ENABLE_CPU_FEATURES"] = ""  # numpy refuses to start with both set; empty counts as unset
    if not keep_environment:
        return pins
    kept = {k: os.environ.get(k, v) for k, v in pins.items()}
    if os.environ.get("NPY_ENABLE_CPU_FEATURES") and "NPY_DISABLE_CPU_FEATURES" not in os.environ:
        kept["NPY_DISABLE_CPU_FEATURES"] = ""  # the environment's choice of numpy's loops wins whole
    return kept


def blas_in_force() -> dict[str, str | None]:
    """The pins' variables as this process's environment has them (a bench worker: as it started)."""
    return {k: os.environ.get(k) for k in pinned_blas()}


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries the Optuna searchers' proposals depend on (None: not installed):
    cached results (``bench.resume``, ``scripts/tune_agent.py``) are keyed by them, so an upgrade
    measures afresh instead of mixing results of two versions."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for lib in ("numpy", "optuna", "scipy", "torch"):
        try:
            out[lib] = version(lib)
        except PackageNotFoundError:
            out[lib] = None
    return out


def pin_mkl_branch() -> str | None:
    """Set ``MKL_CBWR=COMPATIBLE`` (unless already set) so GP's torch part is the same on every CPU.

    MKL reads the variable when torch loads it, so this must run before ``import torch``. Returns
    the value torch's MKL uses, or None when torch was imported before with it unset (too late:
    results may then differ from another CPU's). OpenBLAS is loaded with numpy, before any
    searcher exists: only a new process started with ``pinned_blas()`` pins it.
    """
    if "torch" in sys.modules and "MKL_CBWR" not in os.environ:
        return None
    return os.environ.setdefault("MKL_CBWR", MKL_CBWR)


def _lone_cpu_device_context() -> bool:
    """True when torch's function-mode stack is exactly one ``torch.device("cpu")`` context entered
    with no default device set before it: popping it then leaves torch's default (CPU) in force."""
    from torch.overrides import _get_current_function_mode_stack
    from torch.utils._device import DeviceContext

    stack = _get_current_function_mode_stack()
    return (
        len(stack) == 1
        and isinstance(stack[0], DeviceContext)
        and stack[0].device.type == "cpu"
        and stack[0].prev_mode is None
    )


def make_gp_sampler(
    seed: int,
    n_startup_trials: int = 10,
    n_preliminary_samples: int | None = None,
    n_local_search: int | None = None,
    n_qmc_samples: int | None = None,
    bypass_device_context: bool = False,
) -> optuna.samplers.GPSampler:
    """Optuna's GPSampler with its acquisition-optimizer settings set (None keeps Optuna's default).

    The settings are GPSampler's own instance attributes (``_n_preliminary_samples``: QMC points
    scored before the local searches, default 2048; ``_n_local_search``: local searches started from
    the best of them, default 10; ``_n_qmc_samples_qei``: QMC samples of qLogEI/qLogCEI, used while
    trials are pending, default 128), set after ``__init__`` as Optuna's source invites. With
    ``bypass_device_context``, ``_sample_relative_impl`` runs outside Optuna's ``with
    torch.device("cpu")`` guard (a TorchFunctionMode that intercepts every torch op) when that guard
    is the only mode and no default device was set before it, i.e. when CPU is torch's default
    anyway: the same computation on the same device, without the per-op interception.
    """
    import torch  # noqa: F401  (GPSearcher checked that it is installed)

    class _GPSampler(optuna.samplers.GPSampler):
        def _sample_relative_impl(self, *args, **kwargs):
            if bypass_device_context and _lone_cpu_device_context():
                from torch.overrides import _pop_mode_temporarily

                with _pop_mode_temporarily():
                    return super()._sample_relative_impl(*args, **kwargs)
            return super()._sample_relative_impl(*args, **kwargs)

    sampler = _GPSampler(seed=seed, n_startup_trials=n_startup_trials)
    for attr, value in (
        ("_n_preliminary_samples", n_preliminary_samples),
        ("_n_local_search", n_local_search),
        ("_n_qmc_samples_qei", n_qmc_samples),
    ):
        if value is not None:
            if not hasattr(sampler, attr):  # a newer Optuna renamed it: fail loudly, not silently slow
                raise ConfigError(f"optuna_gp: this Optuna's GPSampler has no {attr}")
            setattr(sampler, attr, int(value))
    return sampler


class GPSearcher(OptunaSearcher):
    """Optuna's GPSampler (constrained log-EI; qLogCEI while trials are pending). Needs torch.

    The GP, its kernel fit and the acquisition functions are Optuna's; only how hard the
    acquisition function is optimized per ask is set here (``make_gp_sampler``). Our spaces are
    small (per stage one categorical and one int), so fewer starting points than Optuna's defaults
    suffice: the defaults here (as in conf/searcher/optuna_gp.yaml) made 50-trial searches about
    4.5x faster with comparable trials-to-near and best score (``scripts/bench_gp.py``). ``None``
    (``null`` in the config) keeps Optuna's default.

    Args:
        random_after: as in ``OptunaSearcher``: GP's acquisition optimum often sits on evaluated
            allocations of a small space, and 10 repeats then mean a stuck model, not bad luck.
        torch_threads: torch intra-op threads while asking (restored afterwards); 0 keeps torch's
            setting. The GP's tensors are tiny, so extra threads only add overhead: on 2 busy cores
            one thread made asks about 4x faster, with the same proposals.
        n_preliminary_samples: QMC points scored before the local searches (Optuna: 2048; here 512).
        n_local_search: local searches of the acquisition function per ask (Optuna: 10; here 3);
            about 90% of ask time with Optuna's 10 on our spaces.
        n_qmc_samples: QMC samples of qLogEI/qLogCEI while trials are pending (Optuna: 128).
        bypass_device_context: run the GP outside Optuna's ``torch.device("cpu")`` guard when CPU is
            torch's default device anyway (same proposals, no per-op interception: ~1.4x alone).
    """

    name = "optuna_gp"
    label = "GP"

    def __init__(
        self,
        seed: int = 0,
        n_startup_trials: int = 10,
        max_asks_per_proposal: int = 50,
        random_after: int = 10,
        torch_threads: int = 1,
        n_preliminary_samples: int | None = 512,
        n_local_search: int | None = 3,
        n_qmc_samples: int | None = None,
        bypass_device_context: bool = True,
    ):
        if importlib.util.find_spec("torch") is None:
            raise ConfigError("optuna_gp needs torch: pip install '.[gp]'")
        super().__init__(seed, n_startup_trials, max_asks_per_proposal, random_after)
        self.mkl_cbwr = pin_mkl_branch()
        if self.mkl_cbwr is None:
            log.warning(
                "optuna_gp: torch was imported before MKL_CBWR was set: GP's numbers may differ on another CPU "
                "(set MKL_CBWR=COMPATIBLE in the environment to pin them)"
            )
        self.torch_threads = check_int(torch_threads, f"{self.name}: torch_threads", 0)
        self.n_preliminary_samples = check_int(n_preliminary_samples, f"{self.name}: n_preliminary_samples", 1, True)
        self.n_local_search = check_int(n_local_search, f"{self.name}: n_local_search", 1, True)
        self.n_qmc_samples = check_int(n_qmc_samples, f"{self.name}: n_qmc_samples", 1, True)
        self.bypass_device_context = bool(bypass_device_context)

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return make_gp_sampler(
            self.seed,
            self.n_startup_trials,
            self.n_preliminary_samples,
            self.n_local_search,
            self.n_qmc_samples,
            self.bypass_device_context,
        )

    def propose(self, space: SearchSpace, history: list[TrialResult], k: int) -> list[Proposal]:
        if self.torch_threads <= 0:
            return super().propose(space, history, k)
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(self.torch_threads)
        try:
            return super().propose(space, history, k)
        finally:
            torch.set_num_threads(before)
