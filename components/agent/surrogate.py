"""A surrogate of the score shaped by the three insights, fitted to the archive.

The score is modelled as additive over stages (Insight 3: stages share one budget and each adds its
own gain), each stage as an intercept per model (Insight 1) plus a quadratic in log samples, shared by
the stage's models, with a per-model slope on top (Insight 2: gains rise with samples, then level off
or fall). A Bayesian linear regression with a Gaussian prior on every weight keeps the fit sensible
with few trials: with only the probes it says little beyond "this model scored higher here".

It pools every trial, where the rules read one curve at a time: a stage's sample count that won with
one setting of the other stages informs every other setting. It only ranks allocations whose every
stage choice is close to one already tried (``TRUST``): a quadratic in log samples fitted to a few
points says nothing reliable far from them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from components.space import Allocation, SearchSpace

# prior standard deviations of the weights, in score units (the score is a fraction of questions)
PRIOR_MODEL = 0.2  # a model's intercept on its stage: models differ by up to tens of points
PRIOR_SLOPE = 0.05  # the stage's gain per e-fold of samples
PRIOR_CURVE = 0.02  # its curvature in log samples (the level-off)
PRIOR_MODEL_SLOPE = 0.03  # one model's slope apart from the stage's
NOISE = 0.03  # a trial's score noise (about 1.5 questions of 50)
TRUST = 2.5  # ranks only allocations whose every stage count is within this factor of a tried one of its model


class Surrogate:
    """Bayesian linear model of the score over a search space's feasible allocations.

    Args:
        space: the search space; its feasible grid is enumerated once (as index rows, not objects).
    """

    def __init__(self, space: SearchSpace):
        self.space = space
        self._rows = space._feasible_index()
        self._feats, self._index, prior = [], [], []
        for stage, opts in zip(space.stages, space._options):
            names = [m.name for m in stage.models]
            self._feats.append(np.array([self._features(names, m, n) for m, n, _ in opts]))
            self._index.append({(m, n): j for j, (m, n, _) in enumerate(opts)})
            k = len(names)
            prior += [PRIOR_MODEL] * k + [PRIOR_SLOPE, PRIOR_CURVE] + [PRIOR_MODEL_SLOPE] * k
        self._prior_var = np.array(prior) ** 2
        self._w = np.zeros(len(prior))
        self._tried: list[dict[str, list[float]]] = [{} for _ in space.stages]

    @staticmethod
    def _features(names: Sequence[str], model: str, samples: int) -> list[float]:
        x = float(np.log(samples))
        onehot = [1.0 if model == m else 0.0 for m in names]
        return onehot + [x, x * x] + [o * x for o in onehot]

    def _x(self, a: Allocation) -> np.ndarray:
        return np.concatenate([f[ix[a[st.name]]] for f, ix, st in zip(self._feats, self._index, self.space.stages)])

    def fit(self, allocations: Sequence[Allocation], scores: Sequence[float]) -> None:
        """Posterior mean of the weights given the evaluated allocations (scores centred on their mean)."""
        X = np.array([self._x(a) for a in allocations])
        y = np.asarray(scores, dtype=float)
        A = X.T @ X / NOISE**2 + np.diag(1 / self._prior_var)
        self._w = np.linalg.solve(A, X.T @ (y - y.mean()) / NOISE**2)
        self._tried = [{} for _ in self.space.stages]
        for a in allocations:
            for tried, st in zip(self._tried, self.space.stages):
                m, n = a[st.name]
                tried.setdefault(m, []).append(float(np.log(n)))

    def predict(self, allocations: Sequence[Allocation]) -> np.ndarray:
        """Predicted score, relative to the mean of the fitted trials."""
        return np.array([self._x(a) @ self._w for a in allocations])

    def ranked(self, limit: int = 40) -> list[Allocation]:
        """The feasible allocations with the highest predicted score, best first, within the trust region."""
        pred = np.zeros(len(self._rows))
        trusted = np.ones(len(self._rows), dtype=bool)
        off = 0
        for i, (f, opts, tried) in enumerate(zip(self._feats, self.space._options, self._tried)):
            pred += (f @ self._w[off : off + f.shape[1]])[self._rows[:, i]]
            off += f.shape[1]
            near = np.array(
                [m in tried and min(abs(np.log(n) - t) for t in tried[m]) <= np.log(TRUST) + 1e-9 for m, n, _ in opts]
            )
            trusted &= near[self._rows[:, i]]
        pred = np.where(trusted, pred, -np.inf)
        top = np.argsort(-pred, kind="stable")[:limit]
        return [self.space._alloc(self._rows[t]) for t in top if np.isfinite(pred[t])]
