"""Plots of a search for the archive: best-so-far vs trials, and score vs cost with the Pareto front."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # no display on servers and in tests
import matplotlib.pyplot as plt  # noqa: E402

from components.pipeline import TrialResult, best_so_far  # noqa: E402


def pareto_front(history: list[TrialResult], cost=lambda r: r.cost.units) -> list[TrialResult]:
    """Trials no other trial beats on both score (higher) and ``cost`` (lower; default planned units).
    Failed trials are left out: their score 0 at no spent cost is no point of the front."""
    front, best = [], float("-inf")
    for r in sorted(ok_trials(history), key=lambda r: (cost(r), -r.score)):
        if r.score > best:
            front.append(r)
            best = r.score
    return front


def ok_trials(history: list[TrialResult]) -> list[TrialResult]:
    """The trials that ran (a failed one is recorded with score 0 and no FLOPs spent)."""
    return [r for r in history if r.status == "ok"]


def flops_per_question(r: TrialResult) -> float:
    """Spent FLOPs per question (samples and fuser calls, from actual token counts)."""
    return r.flops_spent / max(1, len(r.item_scores))


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
    history = ok_trials(history)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter([r.cost.units for r in history], [r.score for r in history], s=10, alpha=0.5, label="trials")
    front = pareto_front(history)
    ax.step([r.cost.units for r in front], [r.score for r in front], where="post", c="C3", label="Pareto front")
    if budget_units is not None:
        ax.axvline(budget_units, ls="--", c="k", label="budget")
    ax.set(xlabel="budget units per question (planned)", ylabel="train score", title=title)
    ax.legend(loc="lower right")
    return _png(fig)


def score_vs_flops_png(history: list[TrialResult], title: str) -> bytes:
    """Accuracy vs spent FLOPs per question of every trial that ran, with the Pareto front."""
    history = ok_trials(history)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.scatter([flops_per_question(r) for r in history], [r.score for r in history], s=10, alpha=0.5, label="trials")
    front = pareto_front(history, flops_per_question)
    ax.step([flops_per_question(r) for r in front], [r.score for r in front], where="post", c="C3", marker="o", ms=3)
    ax.plot([], [], c="C3", label=f"Pareto front ({len(front)} trials)")
    ax.set_xscale("log")
    ax.set(xlabel="FLOPs per question (spent)", ylabel="train score", title=title)
    ax.legend(loc="lower right")
    return _png(fig)


def pareto_points(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    """The Pareto front (lower x, higher y) of points, in x order."""
    fx, fy, best = [], [], float("-inf")
    for x, y in sorted(zip(xs, ys), key=lambda p: (p[0], -p[1])):
        if y > best:
            fx.append(x)
            fy.append(y)
            best = y
    return fx, fy


def sweep_frontier_png(searches: list[tuple[str, list[float], list[float]]], title: str) -> bytes:
    """Several searches (e.g. one per budget) as ``(label, FLOPs per question, scores)`` of their trials:
    each search's trials and front, and the combined Pareto front over all of them."""
    fig, ax = plt.subplots(figsize=(7, 4))
    all_x, all_y = [], []
    for i, (label, xs, ys) in enumerate(searches):
        all_x += xs
        all_y += ys
        ax.scatter(xs, ys, s=8, alpha=0.35, c=f"C{i}")
        fx, fy = pareto_points(xs, ys)
        ax.step(fx, fy, where="post", c=f"C{i}", label=label)
    fx, fy = pareto_points(all_x, all_y)
    ax.step(fx, fy, where="post", c="k", lw=2, ls="--", label="combined Pareto front")
    ax.set_xscale("log")
    ax.set(xlabel="FLOPs per question (spent)", ylabel="train score", title=title)
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)
