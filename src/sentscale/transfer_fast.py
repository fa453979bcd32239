"""Fast mode's solver: sklearn's L2 logistic regression, solved in a better-conditioned basis.

The problem is exactly the one ``LogisticRegression(C, solver="lbfgs")`` solves (binary:
binomial; more classes: multinomial with one weight row per class; intercept unpenalised)::

    minimise  mean_i loss(x_i . w + b, y_i)  +  ||w||^2 / (2 C n)

and so is its optimum; only the path to it differs. Why it needed a new path: on raw LLM
embeddings (a large common offset, a few "massive" dimensions, strongly correlated features)
this problem is badly conditioned, and sklearn's lbfgs, started from zero for every one of the
~600 fits of a nested CV, spends hundreds to thousands of iterations per fit. Here:

1. **Centre and rotate once per task** (:class:`Basis`): ``z = (x - mean) @ V`` with ``V`` the
   eigenvectors of the centred Gram matrix. Because ``V`` is orthogonal, ``||V w||`` = ``||w||``
   (the L2 penalty is unchanged), and because the intercept is unpenalised the mean shift moves
   into it, so the problem in ``z`` is the same problem: ``w = V w_z``, ``b = b_z - mean . w``.
   Directions with (numerically) zero variance carry weight 0 at the optimum and are dropped.
   Fold matrices are row subsets of the rotated task matrix, so this costs one eigendecomposition
   per task, not one per fit.
2. **Scale each rotated coordinate** by ``s_j = sqrt(q var_j + 1/(C n))`` inside the optimiser
   (L-BFGS runs on ``p = s * w_z``, the objective and gradient are evaluated in ``w_z``): a
   diagonal estimate of the Hessian, which in this basis is close to diagonal. Substituting a
   variable changes no optimum.
3. **Warm starts**: each fit starts from the solution of the same C on the previous fold (the
   folds share most of their rows), or of the previous C on the same fold.
4. **Stop near the optimum**: sklearn stops at gradient max-norm 1e-4, which on this problem is
   a point whose predictions still depend on where lbfgs came from. Here the stopping test is
   relative to the gradient at the start (``ftol``/``gtol`` below), tight enough that the
   predictions are those of the optimum; tests/test_transfer.py checks the scores against
   today's sklearn path, and ``benchmarks/transfer_benchmark.py`` compares both on real cells.

This module imports numpy and scipy only (no torch): scoring jobs stay light.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy.optimize import minimize
from sklearn.linear_model import LogisticRegression
from threadpoolctl import ThreadpoolController

from .options import FAST_SOLVERS

MAX_ITER = 2000  # as FAST_MAX_ITER; with the conditioning above fits need tens of iterations
GTOL = 1e-7  # projected-gradient max-norm in the scaled variables (L-BFGS-B's pgtol)
FTOL = 64 * np.finfo(float).eps  # relative decrease of the objective, as sklearn
NULL_VARIANCE = 1e-11  # drop rotated directions with variance below this share of the largest
HESSIAN_SCALE = 0.25  # the logistic loss's curvature at p = 1/2 (binomial and softmax alike)
# Below this many matrix entries a fit runs its BLAS calls on one thread: its matrix-vector
# products take microseconds, and waking threads costs more than it saves (on a loaded node,
# much more). Larger fits keep the job's BLAS threads.
SINGLE_THREAD_BELOW = 2_000_000


@cache
def _threadpools() -> ThreadpoolController:
    return ThreadpoolController()  # built once: it inspects the loaded libraries


class Basis:
    """Centring and rotation of one task's features (see the module docstring, item 1)."""

    def __init__(self, X: np.ndarray):
        X = np.asarray(X, dtype=np.float64)
        self.mean = X.mean(axis=0)
        Xc = X - self.mean
        if len(Xc) >= Xc.shape[1]:
            variances, rotation = np.linalg.eigh(Xc.T @ Xc)
        else:  # fewer rows than features: the SVD is the cheaper way to the row space
            _, singular, vt = np.linalg.svd(Xc, full_matrices=False)
            variances, rotation = singular**2, vt.T
        keep = variances > NULL_VARIANCE * max(float(variances.max()), np.finfo(float).tiny)
        self.rotation = np.ascontiguousarray(rotation[:, keep])  # [d, r], orthonormal columns
        self.Z = Xc @ self.rotation  # the task's rows in the new basis

    def transform(self, X: np.ndarray) -> np.ndarray:
        return (np.asarray(X, dtype=np.float64) - self.mean) @ self.rotation


def _loss_gradient(Z, Y, n_classes, lam):
    """Objective and gradient of the problem in (W [k, r], b [k]) packed as one vector.

    Binary problems use one weight row and the binomial loss (as sklearn does), more classes a
    softmax over ``n_classes`` rows. ``Y`` is 0/1 ``[n]`` (binary) or one-hot ``[n, k]``."""
    n, r = Z.shape
    k = 1 if n_classes == 2 else n_classes

    def f(theta):
        W = theta[: k * r].reshape(k, r)
        b = theta[k * r :]
        logits = Z @ W.T + b  # [n, k]
        if k == 1:
            eta = logits[:, 0]
            # log(1 + e^eta) - y eta, stably; d/d eta = sigmoid(eta) - y
            loss = np.logaddexp(0.0, eta) - Y * eta
            residual = (0.5 * (1.0 + np.tanh(0.5 * eta)) - Y)[:, None]
        else:
            top = logits.max(axis=1, keepdims=True)
            shifted = logits - top
            log_norm = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            loss = log_norm[:, 0] - (shifted * Y).sum(axis=1)
            residual = np.exp(shifted - log_norm) - Y
        value = loss.mean() + 0.5 * lam * float(np.vdot(W, W))
        grad_W = residual.T @ Z / n + lam * W
        grad_b = residual.mean(axis=0)
        return value, np.concatenate([grad_W.ravel(), grad_b])

    return f


class LinearModel:
    """A fitted model in the task's rotated basis; ``predict`` takes rotated features."""

    def __init__(self, classes: np.ndarray, W: np.ndarray, b: np.ndarray):
        self.classes, self.W, self.b = classes, W, b

    def decision(self, Z: np.ndarray) -> np.ndarray:
        return Z @ self.W.T + self.b

    def predict(self, Z: np.ndarray) -> np.ndarray:
        scores = self.decision(Z)
        if scores.shape[1] == 1:  # binomial: sklearn's rule, decision > 0 means classes[1]
            return self.classes[(scores[:, 0] > 0).astype(np.int64)]
        return self.classes[scores.argmax(axis=1)]

    def score(self, Z: np.ndarray, y: np.ndarray) -> float:
        return float(np.mean(self.predict(Z) == y))


def fit(
    Z: np.ndarray,
    y: np.ndarray,
    C: float,
    start: LinearModel | None = None,
    max_iter: int = MAX_ITER,
) -> tuple[LinearModel, int]:
    """The L2 logistic regression of ``y`` on rotated features ``Z`` for one ``C``.

    ``start``: a model to warm-start from (same basis and classes). Returns the model and the
    number of L-BFGS iterations (``max_iter`` means it stopped without converging)."""
    classes = np.unique(y)
    n_classes = len(classes)
    n, r = Z.shape
    k = 1 if n_classes == 2 else n_classes
    codes = np.searchsorted(classes, y)
    Y = codes.astype(np.float64) if k == 1 else np.eye(n_classes)[codes]
    lam = 1.0 / (C * n)
    # Diagonal preconditioner (item 2): curvature of loss + penalty per coordinate.
    scale_W = np.sqrt(HESSIAN_SCALE * np.einsum("ij,ij->j", Z, Z) / n + lam)
    scale = np.concatenate([np.tile(scale_W, k), np.full(k, np.sqrt(HESSIAN_SCALE))])
    objective = _loss_gradient(Z, Y, n_classes, lam)

    def scaled(p):
        value, grad = objective(p / scale)
        return value, grad / scale

    theta0 = np.zeros(k * r + k) if start is None else np.concatenate([start.W.ravel(), start.b])
    threads = 1 if Z.size < SINGLE_THREAD_BELOW else None
    with _threadpools().limit(limits=threads, user_api="blas"):
        result = minimize(
            scaled,
            theta0 * scale,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": max_iter, "gtol": GTOL, "ftol": FTOL, "maxls": 50},
        )
    theta = result.x / scale
    model = LinearModel(classes, theta[: k * r].reshape(k, r), theta[k * r :])
    return model, int(result.nit)


class GridFitter:
    """Fits the C grid fold after fold with warm starts (module docstring, item 3), in the basis
    of the last :meth:`prepare`."""

    def __init__(self, grid, max_iter: int = MAX_ITER):
        self.grid, self.max_iter = tuple(grid), max_iter
        self.previous: dict[float, LinearModel] = {}  # the last solution per C
        self.basis: Basis | None = None
        self.not_converged = 0
        self.iterations = 0

    def prepare(self, X: np.ndarray) -> np.ndarray:
        """The task's training matrix, rotated; the schemes then fit on its row subsets."""
        self.basis, self.previous = Basis(X), {}
        return self.basis.Z

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.basis.transform(X)

    def fit(self, C: float, Z: np.ndarray, y: np.ndarray, start=None) -> LinearModel:
        start = self.previous.get(C, start)
        if start is not None and not np.array_equal(start.classes, np.unique(y)):
            start = None
        model, n_iter = fit(Z, y, C, start, self.max_iter)
        self.previous[C] = model
        self.iterations += n_iter
        self.not_converged += int(n_iter >= self.max_iter)
        return model

    def fit_grid(self, Z, y) -> list[LinearModel]:
        models, start = [], None
        for C in self.grid:
            start = self.fit(C, Z, y, start)
            models.append(start)
        return models

    def settings(self) -> dict:
        return {
            "type": "LogisticRegression objective (L2, intercept unpenalised)",
            "solver": "L-BFGS in a centred, rotated, scaled basis, warm starts (transfer_fast)",
            "max_iter": self.max_iter,
            "gtol": GTOL,
        }


class SklearnFitter:
    """The original fast path, kept for comparisons: one ``LogisticRegression(C, lbfgs)`` per
    fit, on the raw features, from zero, with sklearn's stopping rule (gradient 1e-4)."""

    def __init__(self, grid, max_iter: int, seed: int):
        self.grid, self.max_iter, self.seed = tuple(grid), max_iter, seed
        self.not_converged = 0  # fits that hit max_iter

    def prepare(self, X: np.ndarray) -> np.ndarray:
        return X

    transform = prepare

    def fit(self, C: float, X: np.ndarray, y: np.ndarray) -> LogisticRegression:
        clf = LogisticRegression(
            C=C, solver="lbfgs", max_iter=self.max_iter, random_state=self.seed
        )
        clf.fit(X, y)
        self.not_converged += int(np.max(clf.n_iter_) >= self.max_iter)
        return clf

    def fit_grid(self, X, y) -> list[LogisticRegression]:
        return [self.fit(C, X, y) for C in self.grid]

    def settings(self) -> dict:
        return {"type": "LogisticRegression", "solver": "lbfgs", "max_iter": self.max_iter}


SOLVERS = FAST_SOLVERS


def fitter(solver: str, grid, max_iter: int, seed: int) -> GridFitter | SklearnFitter:
    """The fast-mode fitter named ``solver`` (one of :data:`SOLVERS`)."""
    if solver == "warm":
        return GridFitter(grid, max_iter)
    if solver == "sklearn":
        return SklearnFitter(grid, max_iter, seed)
    raise ValueError(f"fast_solver must be one of {SOLVERS}, got {solver!r}")
