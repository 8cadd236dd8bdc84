"""Paired per-question tests: is a challenger allocation better than the champion beyond noise?

Both allocations are scored on the same questions (``TrialResult.item_scores``), so the test works on
the per-question differences: a one-sided paired bootstrap of their mean, or an exact sign test.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from components.errors import ConfigError

TESTS = ("bootstrap", "sign")


@dataclass(frozen=True)
class PairedTest:
    """The evidence for one challenger-vs-champion decision."""

    test: str
    n: int
    mean_diff: float  # challenger - champion, mean over questions
    ci_low: float  # 95% paired-bootstrap interval of mean_diff
    ci_high: float
    wins: int  # questions where the challenger scores higher
    losses: int
    ties: int
    p_value: float  # one-sided: H0 "the challenger is not better"
    alpha: float
    min_delta: float
    better: bool  # p_value < alpha and mean_diff > min_delta

    def to_dict(self) -> dict:
        return asdict(self)


def sign_test_p(wins: int, losses: int) -> float:
    """One-sided exact sign test, ties dropped: P(X >= wins), X ~ Binomial(wins + losses, 1/2).

    >>> round(sign_test_p(8, 1), 4)
    0.0195
    >>> sign_test_p(0, 0)
    1.0
    """
    n = wins + losses
    if n == 0:
        return 1.0
    return sum(math.comb(n, k) for k in range(wins, n + 1)) / 2**n


def paired_test(
    challenger: tuple[float, ...] | list[float],
    champion: tuple[float, ...] | list[float],
    test: str = "bootstrap",
    alpha: float = 0.05,
    min_delta: float = 0.0,
    resamples: int = 2000,
    seed: int = 0,
) -> PairedTest:
    """Compare per-question scores of two allocations on the same questions (same order).

    >>> t = paired_test([1, 1, 1, 1, 1, 1, 1, 1, 0, 1], [0, 0, 0, 0, 0, 0, 0, 0, 0, 1], test="sign")
    >>> (t.wins, t.losses, t.ties, t.better)
    (8, 0, 2, True)
    >>> paired_test([1, 0, 1], [1, 0, 1]).better
    False
    """
    if test not in TESTS:
        raise ConfigError(f"champion.test must be one of {list(TESTS)}, got {test!r}")
    a, b = np.asarray(challenger, dtype=float), np.asarray(champion, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"paired scores must have the same non-zero length, got {a.size} and {b.size}")
    d = a - b
    n = d.size
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, n, size=(int(resamples), n))].mean(axis=1)
    wins, losses = int((d > 0).sum()), int((d < 0).sum())
    if test == "bootstrap":
        # share of resampled mean differences that are not above zero (+1 smoothing: never exactly 0)
        p = (1 + int((means <= 0).sum())) / (1 + means.size)
    else:
        p = sign_test_p(wins, losses)
    mean = float(d.mean())
    lo, hi = (float(x) for x in np.quantile(means, [0.025, 0.975]))
    return PairedTest(
        test, n, mean, lo, hi, wins, losses, n - wins - losses, float(p), alpha, min_delta,
        bool(p < alpha and mean > min_delta),
    )  # fmt: skip


__all__ = ["TESTS", "PairedTest", "paired_test", "sign_test_p"]
