"""SentEval transfer tasks: a linear classifier on frozen (raw, unnormalised) sentence embeddings.

Two classifiers, chosen by ``mode``:

- ``"paper"``: SentEval's ``usepytorch=True`` path that PromptEOL (like SimCSE) ran: one
  ``nn.Linear`` layer, cross-entropy, Adam (lr 1e-3), L2 weight decay chosen from
  [1e-5, 1e-4, 1e-3, 1e-2], batch 64, ``epoch_size`` 4, ``tenacity`` 5, ``max_epoch`` 200,
  early stopping on a validation set (see :func:`train_linear`).
- ``"fast"``: SentEval's sklearn path, ``LogisticRegression(C, random_state=seed)`` with the
  grids 2^-2..2^3 (nested CV, SST2) and 2^-1..2^5 (TREC, MRPC). The same objective is solved by
  :mod:`sentscale.transfer_fast` (a centred, rotated and scaled basis, warm starts along the grid
  and across folds, L-BFGS to near the optimum); ``fast_solver="sklearn"`` keeps the original
  ``LogisticRegression(solver="lbfgs", max_iter=2000)`` per fit, for comparisons.

Paper mode trains on ``device`` (default: CUDA when available, else CPU; CPU results are the
reference). torch is imported only when paper mode runs, so fast-mode scoring jobs never load it.

Validation schemes (SentEval ``tools/validation.py``):

- MR, CR, SUBJ, MPQA (``InnerKFoldClassifier``): outer and inner stratified 10-fold CV; the
  regularisation is chosen per outer fold by mean inner accuracy, refit on the outer-train part.
- TREC, MRPC (``KFoldClassifier``): stratified 10-fold CV on train chooses the regularisation,
  refit on all of train, accuracy (and F1 for MRPC) on the official test set.
- SST2 (``SplitClassifier``): chosen on dev, fitted on train, accuracy on test.

Rows are put in SentEval's order (stable sort by token count, then label) before any split,
because ``StratifiedKFold(shuffle=True)`` assigns folds by row position. Accuracies are rounded
as SentEval rounds them (×100 to 2 decimals before choosing and averaging).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold

from . import transfer_fast
from .options import SENTEVAL_SEED, TRANSFER_MODES

if TYPE_CHECKING:  # torch is imported inside the paper-mode functions (see module docstring)
    import torch

MODES = TRANSFER_MODES
N_FOLDS = 10  # PromptEOL/SimCSE run SentEval with kfold=10
PAPER_GRID = tuple(10.0**t for t in range(-5, -1))  # Adam weight decay
FAST_GRID_NESTED = tuple(2.0**t for t in range(-2, 4))  # LogisticRegression C (also SST2)
FAST_GRID_KFOLD = tuple(2.0**t for t in range(-1, 6))  # LogisticRegression C, TREC/MRPC
FAST_MAX_ITER = 2000  # lbfgs on raw embeddings needs more than sklearn's default 100
FAST_SOLVERS = transfer_fast.SOLVERS  # "warm" (default), "sklearn" (the original, per fit)

NESTED_CV_TASKS = ("MR", "CR", "SUBJ", "MPQA")
KFOLD_TASKS = ("TREC", "MRPC")
SPLIT_TASKS = ("SST2",)

Lookup = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class PaperSettings:
    """SentEval's MLP defaults with nhid=0, optim 'adam' (torch.optim.Adam defaults)."""

    batch_size: int = 64
    epoch_size: int = 4  # passes over the training data between two validation checks
    tenacity: int = 5
    max_epoch: int = 200
    validation_split: float = 0.05  # used only where no validation set is given (refits)
    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8


PAPER = PaperSettings()


# ----------------------------------------------------------------------------- row order


def senteval_order(
    texts: Sequence[str] | Sequence[tuple[str, str]], labels: np.ndarray
) -> np.ndarray:
    """Indices that put rows in SentEval's order: stable sort by token count(s), then label.

    ``texts`` holds sentences, or (sentence1, sentence2) pairs for MRPC. SentEval tokenises with
    ``str.split()`` and sorts "to reduce padding"; the order then decides the CV folds.
    """

    def key(i: int):
        item = texts[i]
        if isinstance(item, tuple):
            return (len(item[0].split()), len(item[1].split()), int(labels[i]))
        return (len(item.split()), int(labels[i]))

    return np.array(sorted(range(len(labels)), key=key), dtype=np.int64)


def pair_features(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """SentEval's MRPC features: ``np.c_[|u - v|, u * v]``."""
    return np.c_[np.abs(emb1 - emb2), emb1 * emb2]


# ----------------------------------------------------------------------------- paper classifier


def default_device() -> str:
    """Where paper mode trains by default: "cuda" when the job has a GPU, else "cpu"."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def initial_linear(n_features: int, n_classes: int, seed: int) -> torch.Tensor:
    """``nn.Linear`` initialisation right after ``torch.manual_seed(seed)``, as SentEval builds it.

    Returned as one [n_classes, n_features + 1] matrix, bias in the last column, on the CPU (the
    same numbers whatever the training device). The global torch RNG is left as it was.
    """
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layer = torch.nn.Linear(n_features, n_classes)
    return torch.cat([layer.weight.detach(), layer.bias.detach()[:, None]], dim=1)


def _with_bias_column(X: np.ndarray | torch.Tensor, device="cpu") -> torch.Tensor:
    import torch

    X = torch.as_tensor(X, dtype=torch.float32).to(device)
    return torch.cat([X, torch.ones(len(X), 1, dtype=torch.float32, device=device)], dim=1)


def _accuracies(weights: torch.Tensor, X1: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Accuracy of each of the R models ``weights`` [R, C, d+1] on bias-augmented ``X1``."""
    import torch

    with torch.no_grad():
        predictions = torch.matmul(X1, weights.transpose(1, 2)).argmax(dim=2)  # [R, n]
        return (predictions == y).double().mean(dim=1).cpu().numpy()


@dataclass
class LinearFit:
    """Models trained by :func:`train_linear`: the best snapshot per weight decay."""

    weights: torch.Tensor  # [R, n_classes, n_features + 1], bias last, on the training device
    best_validation_accuracy: np.ndarray  # [R]
    epochs: np.ndarray  # [R] epochs run when each model stopped

    def predict(self, X: np.ndarray, model: int = 0) -> np.ndarray:
        import torch

        weights = self.weights[model]
        with torch.no_grad():
            X1 = _with_bias_column(X, weights.device)
            return (X1 @ weights.T).argmax(dim=1).cpu().numpy()


def train_linear(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    weight_decays: Sequence[float],
    seed: int,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
    settings: PaperSettings = PAPER,
    device: str | None = None,
) -> LinearFit:
    """SentEval ``MLP(nhid=0).fit``, for several weight decays at once.

    (One long function on purpose: it mirrors SentEval's ``fit``/``trainepoch`` loop step by
    step, in its order of random draws, so the paper's numbers are reproduced exactly; split
    into pieces it would no longer read side by side with the original.)

    Per weight decay this computes what SentEval computes with a fresh classifier: seeds
    ``np.random`` and torch with ``seed``; initialises ``nn.Linear``; if ``validation`` is None,
    holds out a random ``validation_split`` of the rows (first permutation of the seeded RNG);
    then repeats ``epoch_size`` epochs (a fresh permutation each, minibatches of 64, mean
    cross-entropy, Adam with coupled L2 weight decay on weight and bias) followed by a validation
    check, keeping the best model. The counter of checks without improvement is never reset (as
    in SentEval), and training stops at the check after it reaches ``tenacity``, or once more
    than ``max_epoch`` epochs have run.

    Why several models at once: with a given validation set, SentEval's runs for different weight
    decays see identical initialisation and minibatch order, so they are trained side by side in
    one [R*C, d+1] tensor (R times fewer Python-level steps; each model's numbers are unchanged).
    The gradient and Adam update are written out (softmax minus one-hot, torch's Adam formula)
    because that is faster than autograd for a single linear layer; tests check both against
    torch.nn/torch.optim.

    Note: SentEval sets ``loss_fn.size_average = False`` after construction, which PyTorch >= 1.0
    ignores, so the loss it actually optimised is the mean over the batch, as here.

    ``device``: where the tensors live (None: :func:`default_device`). The random draws stay on
    the CPU (numpy permutations, ``initial_linear``), so a GPU run sees the same initialisation
    and minibatches; only the floating-point rounding of its kernels differs.
    """
    import torch

    s = settings
    device = torch.device(device or default_device())
    rng = np.random.RandomState(seed)
    X1 = _with_bias_column(X, device)
    y_t = torch.as_tensor(np.asarray(y), dtype=torch.int64).to(device)
    if validation is None:
        permutation = rng.permutation(len(X1))
        n_dev = int(s.validation_split * len(X1))
        dev_idx = torch.from_numpy(permutation[:n_dev]).to(device)
        train_idx = torch.from_numpy(permutation[n_dev:]).to(device)
        X_dev, y_dev = X1[dev_idx], y_t[dev_idx]
        X1, y_t = X1[train_idx], y_t[train_idx]
    else:
        X_dev = _with_bias_column(validation[0], device)
        y_dev = torch.as_tensor(np.asarray(validation[1]), dtype=torch.int64).to(device)

    n_models = len(weight_decays)
    n_train, width = X1.shape
    one_hot = torch.nn.functional.one_hot(y_t, n_classes).to(torch.float32)
    # The R models' weights stacked as rows [R*C, d+1]: each step is then two plain matrix
    # products, which beat batched ones for these thin shapes.
    weights = initial_linear(width - 1, n_classes, seed).to(device).repeat(n_models, 1)
    decay = torch.tensor(weight_decays, dtype=torch.float32, device=device)
    decay = decay.repeat_interleave(n_classes)[:, None]
    per_model = weights.view(n_models, n_classes, width)  # same storage, one [C, d+1] per model
    exp_avg = torch.zeros_like(weights)
    exp_avg_sq = torch.zeros_like(weights)

    best_weights = per_model.clone()
    best = np.full(n_models, -1.0)
    misses = np.zeros(n_models, dtype=int)
    stopped = np.zeros(n_models, dtype=bool)
    epochs = np.zeros(n_models, dtype=int)
    n_epoch, step = 0, 0
    while not stopped.all() and n_epoch <= s.max_epoch:
        for _ in range(s.epoch_size):
            order = torch.from_numpy(rng.permutation(n_train)).to(device)
            # Gathering each minibatch beats permuting X once per epoch: at d=4096 that copy
            # costs more than all the epoch's steps together.
            for start in range(0, n_train, s.batch_size):
                idx = order[start : start + s.batch_size]
                xb, yb = X1.index_select(0, idx), one_hot.index_select(0, idx)
                logits = (xb @ weights.T).view(len(xb), n_models, n_classes)
                # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / batch
                grad_logits = torch.softmax(logits, dim=2).sub_(yb[:, None, :]).div_(len(xb))
                grad = grad_logits.view(len(xb), -1).T @ xb  # [R*C, d+1]
                grad.add_(weights * decay)  # torch Adam's coupled weight_decay
                step += 1
                exp_avg.lerp_(grad, 1 - s.beta1)
                exp_avg_sq.mul_(s.beta2).addcmul_(grad, grad, value=1 - s.beta2)
                step_size = s.lr / (1 - s.beta1**step)
                denom = (exp_avg_sq.sqrt() / math.sqrt(1 - s.beta2**step)).add_(s.eps)
                weights.addcdiv_(exp_avg, denom, value=-step_size)
        n_epoch += s.epoch_size
        accuracy = _accuracies(per_model, X_dev, y_dev)
        for r in np.flatnonzero(~stopped):
            if accuracy[r] > best[r]:
                best[r] = accuracy[r]
                best_weights[r] = per_model[r]
            elif misses[r] >= s.tenacity:
                stopped[r] = True
            else:
                misses[r] += 1
            epochs[r] = n_epoch
    return LinearFit(best_weights, best, epochs)


# ----------------------------------------------------------------------------- one classifier API


class Classifier:
    """Fits one classifier per regularisation value in the grid of the chosen ``mode``.

    The schemes pass features through :meth:`prepare` (the matrix whose row subsets are fitted)
    and :meth:`transform` (dev/test matrices): the default fast solver works in a rotated basis
    of the task's features (an exact reparametrisation, see transfer_fast); otherwise both
    return their input.
    """

    def __init__(self, mode, n_classes, seed, kfold_grid=False, *, device=None, fast_solver="warm"):
        if mode not in MODES:
            raise ValueError(f"transfer mode must be one of {MODES}, got {mode!r}")
        self.mode, self.n_classes, self.seed, self.device = mode, n_classes, seed, device
        if mode == "paper":
            self.grid = PAPER_GRID
        else:
            self.grid = FAST_GRID_KFOLD if kfold_grid else FAST_GRID_NESTED
        self.fast = transfer_fast.fitter(fast_solver, self.grid, FAST_MAX_ITER, seed)

    @property
    def not_converged(self) -> int:
        """Fast mode: fits that stopped at the iteration limit without converging."""
        return self.fast.not_converged

    @property
    def reg_name(self) -> str:
        return "weight_decay" if self.mode == "paper" else "C"

    def prepare(self, X: np.ndarray) -> np.ndarray:
        return self.fast.prepare(X) if self.mode == "fast" else X

    def transform(self, X: np.ndarray) -> np.ndarray:
        return self.fast.transform(X) if self.mode == "fast" else X

    def _paper_device(self) -> str:
        self.device = self.device or default_device()
        return self.device

    def fit_grid(self, X, y, X_val, y_val) -> tuple[list[float], list[Callable]]:
        """One fit per grid value: validation accuracies (fractions) and predict functions.

        In paper mode each fit is early-stopped on ``(X_val, y_val)``, as SentEval's CV and split
        classifiers do, so its accuracy is the best validation accuracy seen."""
        if self.mode == "paper":
            device = self._paper_device()
            fit = train_linear(
                X, y, self.n_classes, self.grid, self.seed, (X_val, y_val), device=device
            )
            predictors = [partial(fit.predict, model=r) for r in range(len(self.grid))]
            return [float(a) for a in fit.best_validation_accuracy], predictors
        models = self.fast.fit_grid(X, y)
        return [m.score(X_val, y_val) for m in models], [m.predict for m in models]

    def refit(self, reg: float, X, y) -> Callable[[np.ndarray], np.ndarray]:
        """Final fit with the chosen value on all of ``X``; returns a predict function. In paper
        mode 5% of the rows are held out for early stopping (SentEval's ``validation_split``)."""
        if self.mode == "paper":
            device = self._paper_device()
            return train_linear(X, y, self.n_classes, [reg], self.seed, device=device).predict
        return self.fast.fit(reg, X, y).predict

    def settings(self) -> dict:
        out = {"mode": self.mode, "reg_name": self.reg_name, "grid": list(self.grid)}
        if self.mode == "paper":
            out["classifier"] = {"nhid": 0, "optim": "adam", **asdict(PAPER)}
            out["device"] = str(self._paper_device())
        else:
            out["classifier"] = self.fast.settings()
        return out


def _pct(fraction: float) -> float:
    """SentEval's accuracy figure: ×100, rounded to 2 decimals."""
    return round(100 * float(fraction), 2)


def _folds(X: np.ndarray, y: np.ndarray, seed: int):
    return StratifiedKFold(n_splits=N_FOLDS, shuffle=True, random_state=seed).split(X, y)


# ----------------------------------------------------------------------------- the three schemes


def nested_cv(X: np.ndarray, y: np.ndarray, clf: Classifier) -> dict:
    """SentEval ``InnerKFoldClassifier`` (MR, CR, SUBJ, MPQA). Its folds use random_state=1111
    whatever the seed, as SentEval's do."""
    X = clf.prepare(X)
    dev_scores, test_scores, chosen = [], [], []
    for train_idx, test_idx in _folds(X, y, SENTEVAL_SEED):
        X_train, y_train = X[train_idx], y[train_idx]
        per_fold = [
            clf.fit_grid(X_train[a], y_train[a], X_train[b], y_train[b])[0]
            for a, b in _folds(X_train, y_train, SENTEVAL_SEED)
        ]
        scores = [_pct(np.mean(col)) for col in zip(*per_fold, strict=True)]
        best = int(np.argmax(scores))
        chosen.append(clf.grid[best])
        dev_scores.append(scores[best])
        predict = clf.refit(clf.grid[best], X_train, y_train)
        test_scores.append(_pct(np.mean(predict(X[test_idx]) == y[test_idx])))
    return {
        "score": round(float(np.mean(test_scores)), 2),
        "dev_accuracy": round(float(np.mean(dev_scores)), 2),
        "fold_accuracies": test_scores,
        "chosen_reg": chosen,
        "n": int(len(y)),
    }


def kfold_then_test(X, y, X_test, y_test, clf: Classifier) -> dict:
    """SentEval ``KFoldClassifier`` (TREC, MRPC): CV on train chooses, refit, test once."""
    folds = list(_folds(X, y, clf.seed))
    X = clf.prepare(X)
    X_test = clf.transform(X_test)
    per_fold = [clf.fit_grid(X[a], y[a], X[b], y[b])[0] for a, b in folds]
    scores = [_pct(np.mean(col)) for col in zip(*per_fold, strict=True)]
    best = int(np.argmax(scores))
    predictions = clf.refit(clf.grid[best], X, y)(X_test)
    return {
        "score": _pct(np.mean(predictions == y_test)),
        "dev_accuracy": scores[best],
        "cv_scores": scores,
        "fold_accuracies": [_pct(fold[best]) for fold in per_fold],
        "chosen_reg": clf.grid[best],
        "n": int(len(y_test)),
        "predictions": predictions,
    }


def split_then_test(X, y, X_dev, y_dev, X_test, y_test, clf: Classifier) -> dict:
    """SentEval ``SplitClassifier`` (SST2): choose on dev, report test.

    SentEval then refits the chosen value with the same seed, data and dev-set early stopping,
    which reproduces a model it already trained during the search; that model is reused here.
    """
    X = clf.prepare(X)
    X_dev, X_test = clf.transform(X_dev), clf.transform(X_test)
    accuracies, predictors = clf.fit_grid(X, y, X_dev, y_dev)
    scores = [_pct(a) for a in accuracies]
    best = int(np.argmax(scores))
    predict = predictors[best]
    return {
        "score": _pct(np.mean(predict(X_test) == y_test)),
        "dev_accuracy": scores[best],
        "dev_scores": scores,
        "chosen_reg": clf.grid[best],
        "n": int(len(y_test)),
    }


# ----------------------------------------------------------------------------- tasks


def _sentences_in_order(split, lookup: Lookup):
    """Features and labels of a LabelledSentences/LabelledPairs split, rows in SentEval order."""
    labels = np.asarray(split.labels, dtype=np.int64)
    if hasattr(split, "sentences"):
        order = senteval_order(list(split.sentences), labels)
        X = lookup([split.sentences[i] for i in order])
    else:
        order = senteval_order(list(zip(split.sent1, split.sent2, strict=True)), labels)
        X = pair_features(
            lookup([split.sent1[i] for i in order]), lookup([split.sent2[i] for i in order])
        )
    return X, labels[order]


def score_task(
    task,
    lookup: Lookup,
    mode: str = "fast",
    seed: int = SENTEVAL_SEED,
    *,
    device: str | None = None,
    fast_solver: str = "warm",
) -> dict:
    """Score one transfer task (a ``data.TaskData``); ``lookup(sentences)`` gives embeddings.

    ``device``: paper mode's torch device (None: CUDA when available, else CPU).
    ``fast_solver``: "warm" (:mod:`sentscale.transfer_fast`) or "sklearn" (one
    ``LogisticRegression`` per fit, the original path; for comparisons).

    Returns ``score`` (test accuracy ×100), ``n`` (test items), ``dev_accuracy``, ``chosen_reg``,
    fold accuracies for CV schemes, ``f1`` for MRPC, and ``protocol`` (the settings used).
    """
    name = task.name
    data = {split: _sentences_in_order(task.splits[split], lookup) for split in task.splits}
    n_classes = 1 + max(int(labels.max()) for _, labels in data.values())
    clf = Classifier(
        mode, n_classes, seed, name in KFOLD_TASKS, device=device, fast_solver=fast_solver
    )

    if name in NESTED_CV_TASKS:
        result = nested_cv(*data["all"], clf)
        scheme = "nested stratified 10-fold CV (InnerKFoldClassifier)"
    elif name in KFOLD_TASKS:
        result = kfold_then_test(*data["train"], *data["test"], clf)
        predictions = result.pop("predictions")
        if name == "MRPC":
            result["f1"] = _pct(f1_score(data["test"][1], predictions))
        scheme = "stratified 10-fold CV on train, refit, test (KFoldClassifier)"
    elif name in SPLIT_TASKS:
        result = split_then_test(*data["train"], *data["dev"], *data["test"], clf)
        scheme = "choose on dev, test (SplitClassifier)"
    else:
        raise ValueError(f"{name!r} is not a transfer task")

    result.update(
        accuracy=result["score"],
        metric="accuracy_x100",
        mode=mode,
        reg_name=clf.reg_name,
        protocol={
            **clf.settings(),
            "scheme": scheme,
            "folds": N_FOLDS,
            "seed": seed,
            "n_classes": n_classes,
            "row_order": "SentEval (tokens, label)",
        },
    )
    if mode == "fast":
        result["not_converged_fits"] = clf.not_converged
    return result
