"""`agenttts bench`: the table, summary, plots and archive; oracle skipping; bad names."""

import csv
import os
import platform
import re
from pathlib import Path

import pytest

from components.bench import paired_bootstrap
from flows.bench import public_scenarios, summarize, task_for
from flows.cli import main


def test_public_scenarios_and_task_matching():
    names = public_scenarios()
    assert {"2wiki", "hotpotqa", "gsm8k"} <= set(names) and "synthetic" not in names
    from flows.cli import compose

    assert task_for(compose(["scenario=2wiki"])["scenario"], {}) == ("synthetic", [])
    with pytest.raises(Exception, match=r"/nonexistent.jsonl not found .*bench.data_paths.gsm8k"):
        task_for(compose(["scenario=gsm8k"])["scenario"], {"gsm8k": "/nonexistent.jsonl"})


def test_paired_bootstrap_interval_contains_the_median():
    m, lo, hi = paired_bootstrap([20, 30, 51, 40, 51], [5, 4, 6, 5, 7])
    assert lo <= m <= hi and m == 35


def test_summary_counts_misses_as_beyond_the_budget():
    rows = [
        {
            "scenario": "s",
            "searcher": "agenttts",
            "seed": 0,
            "trials_to_near": 4,
            "trials_to_opt": 9,
            "best_train": 0.8,
            "oracle_train": 0.8,
            "test_score": 0.7,
            "tokens_generated": 10,
            "wall_s": 1.0,
            "initial_trials": 5,
        },
        {
            "scenario": "s",
            "searcher": "random",
            "seed": 0,
            "trials_to_near": "",
            "trials_to_opt": "",
            "best_train": 0.7,
            "oracle_train": 0.8,
            "test_score": 0.6,
            "tokens_generated": 20,
            "wall_s": 1.0,
        },
    ]
    text = summarize(rows, 50)
    assert "| s | agenttts | 1 | 4 | 1/1 | 9 |" in text
    assert "| s | random | 1 | >50 | 0/1 | >50 |" in text
    assert "| s | random | +47 [+47, +47] | 1/1 (100%) |" in text
    # the targets table: 4 trials (<= 12), random's >50 counts as 51 -> 12.8x, final best 100% of seeds,
    # and near by trial 4 of the 5 shared initial-design trials
    assert "| s | 4 | yes | random (>50) | 12.8× | yes | 100% (random) | yes | 1/1 |" in text
    rows[0]["initial_trials"] = 3  # the agent got there after the shared design
    assert "| 12.8× | yes | 100% (random) | yes | 0/1 |" in summarize(rows, 50)
    for r in rows:  # without a test split (data.test_size=0) the reached counts stay
        r["test_score"] = ""
    text = summarize(rows, 50)
    assert "| s | agenttts | 1 | 4 | 1/1 | 9 | 0.800 | - | 10 | 1.00 |" in text
    assert "| s | random | 1 | >50 | 0/1 | >50 | 0.700 | - |" in text


def tiny_bench(tiny_dir, *extra: str) -> list[str]:
    """A bench of agenttts and random on the outside tiny scenario, two seeds."""
    return [
        "bench",
        f"hydra.searchpath=[file://{tiny_dir}]",
        "scenarios=[tiny]",
        "searchers=[agenttts,random]",
        "seeds=2",
        "data.train_size=10",
        "budget.units=900",
        *extra,
    ]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_bench_end_to_end_on_an_outside_scenario(tmp_path, tiny_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    for pinned in ("OPENBLAS_CORETYPE", "MKL_CBWR"):
        monkeypatch.delenv(pinned, raising=False)
    argv = tiny_bench(tiny_dir, "trials=8", "data.test_size=10")
    assert main(argv) == 0
    out = tmp_path / "bench-out"
    rows = list(csv.DictReader(open(out / "bench.csv")))
    assert len(rows) == 4
    assert list(rows[0])[:10] == [
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
    ]
    for r in rows:
        assert float(r["best_train"]) <= float(r["oracle_train"]) + 1e-9
        assert r["test_score"] != "" and int(r["tokens_generated"]) > 0
    # every searcher started from the same shared design: its trial count, one per distinct probe
    assert len({r["initial_trials"] for r in rows}) == 1 and int(rows[0]["initial_trials"]) >= 2
    summary = (out / "summary.md").read_text()
    assert summary.startswith("All numbers are SIMULATED")
    # what GP's numbers depend on beyond code and config is recorded with them, as a worker saw it:
    # the BLAS pins in force there, not in this process
    env = re.search(
        r"^Environment: python [\d.]+, numpy [\d.]+, optuna [\d.]+, scipy [\d.]+, torch \S+, MKL_CBWR=COMPATIBLE, .+, cpu .+\.$",
        summary,
        re.M,
    )
    assert env, summary[-400:]
    if platform.machine() == "x86_64":
        assert re.search(r"OPENBLAS_CORETYPE=Nehalem, numpy loops (?!X86_V4)\S+, openblas Nehalem,", env.group(0))
    assert "OPENBLAS_CORETYPE" not in os.environ and "MKL_CBWR" not in os.environ
    assert (out / "best_so_far_tiny.png").read_bytes()[:4] == b"\x89PNG"
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("agenttts-bench")
    runs = client.search_runs([exp.experiment_id])
    assert sum(r.data.tags.get("kind") == "bench-search" for r in runs) == 4
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "bench"]
    assert parent.data.tags["env.optuna"] and parent.data.tags["env.cpu"] in env.group(0)
    # a second run reuses the cached oracle and skips it when the space is too large
    assert main([*argv, "bench.oracle_max_space=10"]) == 0
    assert "no grid oracle" in capsys.readouterr().out
    rows = list(csv.DictReader(open(out / "bench.csv")))
    assert all(r["oracle_train"] == "" and r["trials_to_near"] == "" for r in rows)


def _blas_seen() -> tuple[str | None, str | None, str]:
    """In a worker: the pins' variables as it started, and the OpenBLAS kernels numpy loaded."""
    import numpy  # noqa: F401
    from threadpoolctl import threadpool_info

    arch = "/".join(sorted(i.get("architecture") or "?" for i in threadpool_info() if i["internal_api"] == "openblas"))
    return os.environ.get("MKL_CBWR"), os.environ.get("OPENBLAS_CORETYPE"), arch


def _numpy_loops() -> str:
    """In a worker: numpy's float64 exp loop in force."""
    from flows.bench import numpy_loops

    return numpy_loops()


def test_bench_workers_run_numpy_without_avx512_loops(monkeypatch):
    """numpy's AVX-512 exp and log differ from its AVX2 ones in the last bit, and that moved GP's cwq
    median (49 on AVX-512 CPUs, >50 on an AVX2 one): pinned workers never run numpy's AVX-512 loops."""
    from flows.bench import _vector_isa, numpy_loops, worker_pool

    monkeypatch.delenv("NPY_DISABLE_CPU_FEATURES", raising=False)
    monkeypatch.setenv("NPY_ENABLE_CPU_FEATURES", "")
    with worker_pool(1) as pool:
        loops = pool.submit(_numpy_loops).result()
    assert loops != "X86_V4" and "AVX512" not in loops, loops
    assert "NPY_DISABLE_CPU_FEATURES" not in os.environ  # restored
    monkeypatch.setenv("NPY_DISABLE_CPU_FEATURES", "")  # set (to nothing), so a kept environment wins
    with worker_pool(1, keep_environment=True) as pool:
        kept = pool.submit(_numpy_loops).result()
    assert kept == numpy_loops()  # this process's own loops (unpinned)
    if _vector_isa() != ", AVX-512":
        pytest.skip("no AVX-512 on this CPU: what the pin changes cannot be observed (the checks above passed)")
    assert kept == "X86_V4" and loops == "X86_V3"  # an AVX-512 CPU: the pin changed the loop


def test_kept_environment_choice_of_numpy_loops_wins_whole(monkeypatch):
    """NPY_ENABLE_CPU_FEATURES and NPY_DISABLE_CPU_FEATURES both set stop numpy from starting: a kept
    environment's ENABLE comes without the pin's DISABLE."""
    from components.searchers.optuna_search import pinned_blas

    monkeypatch.delenv("NPY_DISABLE_CPU_FEATURES", raising=False)
    monkeypatch.setenv("NPY_ENABLE_CPU_FEATURES", "X86_V3")
    kept = pinned_blas(keep_environment=True)
    assert kept["NPY_ENABLE_CPU_FEATURES"] == "X86_V3" and not kept.get("NPY_DISABLE_CPU_FEATURES")
    pins = pinned_blas()
    assert not pins.get("NPY_ENABLE_CPU_FEATURES") and "NPY_DISABLE_CPU_FEATURES" in pins


def test_environment_names_the_cpu_vendor_and_model():
    """Under the same pins an Intel Xeon gave GP rows that AMD EPYCs did not, and a VM's model name can
    be generic ("Intel(R) Xeon(R) Processor"): the environment line names vendor, family and model."""
    from flows.bench import environment

    info = Path("/proc/cpuinfo")
    vendor = re.search(r"^vendor_id\s*:\s*(\S+)", info.read_text(), re.M) if info.exists() else None
    if vendor is None:
        pytest.skip("no vendor_id in /proc/cpuinfo")
    cpu = environment()["cpu"]
    assert re.search(rf"\({re.escape(vendor.group(1))} \d+/\d+, \d+ cores", cpu), cpu


@pytest.mark.skipif(platform.machine() != "x86_64", reason="OpenBLAS core names are per architecture")
def test_bench_workers_pin_blas_over_the_environment(monkeypatch, capsys):
    """A machine image that sets OPENBLAS_CORETYPE=Haswell changed GP's chatdev median from >50 to 39:
    the bench's workers run with the pins unless bench.blas_pins=false."""
    from flows.bench import worker_pool

    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("MKL_CBWR", "AVX2")
    with worker_pool(1) as pool:
        assert pool.submit(_blas_seen).result() == ("COMPATIBLE", "Nehalem", "Nehalem")
    out = capsys.readouterr().out
    assert "OPENBLAS_CORETYPE=Haswell in the environment replaced by Nehalem" in out and "MKL_CBWR=AVX2" in out
    assert os.environ["OPENBLAS_CORETYPE"] == "Haswell" and os.environ["MKL_CBWR"] == "AVX2"  # restored
    with worker_pool(1, keep_environment=True) as pool:
        assert pool.submit(_blas_seen).result() == ("AVX2", "Haswell", "Haswell")
    assert "replaced" not in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["bench", "searchers=[nope]"], "unknown searcher 'nope'; available: agenthpo, agenttts,"),
        (["bench", "searchers=[randm]"], "unknown searcher 'randm' (did you mean 'random'?)"),
        (["bench", "scenarios=[nope]"], "unknown scenario 'nope'"),
        (["bench", "searchers=nope"], "unknown searcher 'nope'"),  # a bare name, once read letter by letter
        # a zero count once fell back to the default 10 seeds and ran the whole bench
        (["bench", "seeds=0"], "seeds must be an integer >= 1, got 0"),
        (["bench", "trials=abc"], "trials must be an integer >= 1, got 'abc'"),
        (["bench", "bench.blas_pins=maybe"], "bench.blas_pins must be true or false, got 'maybe'"),
        # each once ran: [] as the defaults, a repeat as more seeds, task= ignored, a file as the output folder
        (["bench", "searchers=[]"], "searchers=[] names none; leave searchers out for the default"),
        (["bench", "scenarios=[2wiki,2wiki]"], "scenarios lists ['2wiki'] more than once"),
        (["bench", "task=gsm8k"], "task=gsm8k: the bench sets each job's task, scenario and seeds itself"),
        (["bench", "bench.out=/etc/passwd"], "bench.out=/etc/passwd is a file; give a folder"),
    ],
)
def test_bench_bad_input(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.slow  # no Prefect harness: the bench runs its searches in plain worker processes
def test_an_interrupted_bench_resumes_its_finished_jobs(tmp_path, tiny_dir, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = tiny_bench(tiny_dir, "trials=6", "data.test_size=5")
    assert main(argv) == 0
    jobs = tmp_path / "bench-out" / ".jobs"
    first = list(csv.DictReader(open(tmp_path / "bench-out" / "bench.csv")))
    kept = sorted(jobs.glob("*.json"))
    assert len(kept) == 2  # one file per (scenario, seed), written as each job ends
    kept[0].unlink()  # as if the bench had been killed before that job finished
    capsys.readouterr()
    assert main([*argv, "bench.resume=true"]) == 0
    assert "resume: 1 of 2 jobs finished earlier" in capsys.readouterr().out
    again = list(csv.DictReader(open(tmp_path / "bench-out" / "bench.csv")))
    timing = ("wall_s", "oracle_s")
    assert [{k: v for k, v in r.items() if k not in timing} for r in again] == [
        {k: v for k, v in r.items() if k not in timing} for r in first
    ]
    # other code (or config) reuses nothing, and a plain run measures everything afresh
    monkeypatch.setattr("flows.bench.code_digest", lambda oracle_only=False: "edited")
    assert main([*argv, "bench.resume=true"]) == 0
    assert "resume: 0 of 2 jobs" in capsys.readouterr().out
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    # nor another version of a library the searchers depend on (an upgraded Optuna, say)
    from components.searchers.optuna_search import library_versions

    monkeypatch.setattr(
        "components.searchers.optuna_search.library_versions", lambda: {**library_versions(), "optuna": "0.0"}
    )
    assert main([*argv, "bench.resume=true"]) == 0
    assert "resume: 0 of 2 jobs" in capsys.readouterr().out
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "searchers=[random]"]) == 0 and len(list(jobs.glob("*.json"))) == 2
    if platform.machine() == "x86_64":  # the BLAS pins GP runs under are part of a job's identity
        monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
        capsys.readouterr()
        assert main([*argv, "searchers=[random]", "bench.resume=true"]) == 0  # pinned as before
        assert "resume: 2 of 2 jobs" in capsys.readouterr().out
        assert main([*argv, "searchers=[random]", "bench.resume=true", "bench.blas_pins=false"]) == 0
        assert "resume: 0 of 2 jobs" in capsys.readouterr().out


def test_a_cached_oracle_is_keyed_on_every_setting_that_moves_it():
    """Keyed once on scenario, seed, train size and budget alone, an oracle cached by a default run was
    reused under cost.count_fusion=true, where that allocation is infeasible."""
    from flows.bench import code_digest, oracle_key
    from flows.cli import compose

    code = code_digest(oracle_only=True)
    base = ["task=webqsp", "scenario=webqsp", "scenario.seed=0", "data.seed=0"]

    def key(*extra, seed=0):
        return oracle_key(compose([*base, *extra]), seed, [], code)

    assert key() == key("searcher=optuna_tpe", "trials=7")  # the searcher is not the oracle's business
    assert len({key(), key(seed=1), key("cost.count_fusion=true"), key("cost.prefix_sharing=false")}) == 4
    assert len({key(), key("budget.units=400"), key("data.train_size=20")}) == 3
    assert key() != oracle_key(compose(base), 0, [], "other-code")
