"""Shared fixtures: composed configs, the shared real-data folder, a tiny scenario, Prefect harness."""

from __future__ import annotations

import gc
import linecache
import os
import signal
import sys
from pathlib import Path

import pytest

SHARED_DATA = Path(os.environ.get("AGENTTTS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))

# quiet, isolated Prefect for every test process (set before anything imports prefect)
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "CRITICAL")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_LOGGING_TO_API_ENABLED", "false")


def _checkcache_without_gc(filename=None, _checkcache=linecache.checkcache):
    """``linecache.checkcache`` with the garbage collector paused. SQLAlchemy 2.1 puts its generated code
    (e.g. an MLflow migration's ``SqlRun.__init__``) in linecache and removes the entry from a weakref
    finalizer; Python 3.11's checkcache indexes a key list taken before its loop, so a collection in
    the middle raised KeyError in a doctest (doctest's pdb.reset calls it; seen once in a CI
    rehearsal, components/parsers.py)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        _checkcache(filename)
    finally:
        if enabled:
            gc.enable()


linecache.checkcache = _checkcache_without_gc

TINY_SCENARIO = """
name: tiny
version: 1
description: a small 2-stage world for exhaustive tests
seed: 3
stages:
  - name: retrieval
    kind: select
    fusion: id_vote
    prompt_tokens: 2048
    output_tokens: 128
    samples: [1, 4]
    models:
      - {name: Qwen2.5-7B, params: 7.0e9, recall: 0.4, heterogeneity: 1.0, false_positives: 2.0, fp_consistency: 0.8}
      - {name: Qwen2.5-72B, params: 72.0e9, recall: 0.85, heterogeneity: 1.0, false_positives: 0.5, fp_consistency: 0.5}
  - name: qa
    kind: answer
    fusion: llm
    prompt_tokens: 256
    output_tokens: 64
    samples: [1, 12]
    models:
      - {name: Llama-3.2-3B, params: 3.0e9, skill: 0.6, spread: 1.0, upstream_weight: 3.0, wrong_concentration: 0.3, fusion_decay: 0.02}
      - {name: Llama-3.1-70B, params: 70.0e9, skill: 0.8, spread: 1.0, upstream_weight: 1.0, wrong_concentration: 0.3, fusion_decay: 0.0}
"""


def data_file(*parts: str) -> Path:
    """A file under ../shared/data, or skip the test when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared data not available: {p}")
    return p


@pytest.fixture
def compose_cfg():
    """Compose the project's config with overrides (Hydra compose API, as the CLI does)."""
    from flows.cli import compose

    return lambda *overrides: compose(list(overrides))


@pytest.fixture
def tiny_dir(tmp_path) -> Path:
    """A Hydra search-path folder holding scenario/tiny.yaml."""
    d = tmp_path / "extra"
    (d / "scenario").mkdir(parents=True)
    (d / "scenario" / "tiny.yaml").write_text(TINY_SCENARIO)
    return d


@pytest.fixture(scope="session")
def prefect_harness():
    """A temporary Prefect API for tests that run flows (about 20 s to start on 2 cores)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


class _SendsCtrlC:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(100_000):  # the handler runs here, inside __del__, where Python ignores what it raises
            pass


class StopHandlers:
    """The SIGINT / SIGTERM handlers of search and evaluate, installed; what Python swallowed."""

    def __init__(self):
        self.swallowed: list[type[BaseException]] = []

    @staticmethod
    def swallow_ctrl_c() -> None:
        """A Ctrl-C delivered inside a ``__del__`` method, as in SQLAlchemy's weakref callbacks."""
        _SendsCtrlC()  # collected at once


@pytest.fixture
def stop_handlers(monkeypatch):
    """``flows.stops`` handlers installed, restored afterwards."""
    from flows import stops

    handlers = StopHandlers()
    monkeypatch.setattr(sys, "unraisablehook", lambda u: handlers.swallowed.append(u.exc_type))
    stops.install()
    yield handlers
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
