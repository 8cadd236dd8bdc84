"""Plots of a search for the archive: best-so-far vs trials, and score vs cost with the Pareto front."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402

from components.pipeline import TrialResult, best_so_far  # noqa: E402


def pareto_front(history: list[TrialResult]) -> list[TrialResult]:
    """Trials no other trial beats on both score (higher) and planned cost (lower)."""
    front, best = [], float("-inf")
    for r in sorted(history, key=lambda r: (r.cost.units, -r.score)):
        if r.score > best:
            front.append(r)
            best = r.score
    return front


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def best_so_far_png(history: list[TrialResult], title: str, oracle: float | None = None) -> bytes:
    ys = best_so_far(history)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(range(1, len(ys) + 1), ys, marker=".", label="best so far")
    ax.scatter(range(1, len(ys) + 1), [r.score for r in history], s=8, alpha=0.4, label="trial")
    if oracle is not None:
        ax.axhline(oracle, ls="--", c="k", label="oracle")
    ax.set(xlabel="trial", ylabel="train score", title=title)
    ax.legend(loc="lower right")
    return _png(fig)


def score_vs_cost_png(history: list[TrialResult], title: str, budget_units: float | None = None) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter([r.cost.units for r in history], [r.score for r in history], s=10, alpha=0.5, label="trials")
    front = pareto_front(history)
    ax.step([r.cost.units for r in front], [r.score for r in front], where="post", c="C3", label="Pareto front")
    if budget_units is not None:
        ax.axvline(budget_units, ls="--", c="k", label="budget")
    ax.set(xlabel="budget units per question (planned)", ylabel="train score", title=title)
    ax.legend(loc="lower right")
    return _png(fig)
