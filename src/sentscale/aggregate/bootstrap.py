"""Percentile bootstrap over scored STS pairs: CIs and paired comparisons.

The resample indices depend only on (seed, task, number of pairs), so every cell scored on the
same pairs sees the *same* resamples: a difference between two cells is a paired bootstrap.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata

from .. import data
from ..options import SENTEVAL_SEED, AggregateOptions

log = logging.getLogger(__package__)

#: Resamples per bootstrap chunk (fixed, so results do not depend on memory settings).
_CHUNK = 250


@dataclass(frozen=True)
class Bootstrap:
    """Percentile bootstrap settings (config block ``aggregate``)."""

    resamples: int = 1000
    confidence: float = 0.95
    seed: int = SENTEVAL_SEED

    def __post_init__(self) -> None:
        if self.resamples < 1000:
            raise ValueError(f"bootstrap needs >= 1000 resamples, got {self.resamples}")
        if not 0 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | AggregateOptions | None) -> Bootstrap:
        """From the config's ``aggregate`` block (a mapping, e.g. a rule's params, or the
        study's typed options)."""
        if not isinstance(block, AggregateOptions):
            block = AggregateOptions.from_mapping(block, "aggregate")
        return cls(block.bootstrap_resamples, block.confidence, block.seed)


#: The default settings (frozen, so one shared instance is safe as a default argument).
DEFAULT_BOOTSTRAP = Bootstrap()


def _spearman_rows(system: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """Spearman correlation of each row pair (ties: average ranks, as scipy's spearmanr)."""
    rs = rankdata(system, axis=1)
    rg = rankdata(gold, axis=1)
    rs -= rs.mean(axis=1, keepdims=True)
    rg -= rg.mean(axis=1, keepdims=True)
    denom = np.sqrt((rs * rs).sum(axis=1) * (rg * rg).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (rs * rg).sum(axis=1) / denom  # a constant resample gives NaN


def resample_indices(n: int, boot: Bootstrap, key: str) -> Iterable[np.ndarray]:
    """Chunks of resample index rows, a pure function of (seed, key, n)."""
    rng = np.random.default_rng([boot.seed, zlib.crc32(key.encode("utf-8")), n])
    done = 0
    while done < boot.resamples:
        size = min(_CHUNK, boot.resamples - done)
        yield rng.integers(0, n, size=(size, n))
        done += size


def bootstrap_spearman(
    system: Sequence[float], gold: Sequence[float], boot: Bootstrap, key: str
) -> np.ndarray:
    """Spearman ×100 of each of ``boot.resamples`` resamples of the pairs (seeded by ``key``,
    usually the task name, so equal pair sets share their resamples)."""
    system = np.asarray(system, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    if system.shape != gold.shape or system.ndim != 1 or len(system) < 3:
        raise ValueError(f"need two equal 1-D arrays of >= 3 scores, got {system.shape}")
    chunks = [
        100.0 * _spearman_rows(system[idx], gold[idx])
        for idx in resample_indices(len(system), boot, key)
    ]
    return np.concatenate(chunks)


def percentile_ci(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap ``samples`` (NaN resamples ignored)."""
    samples = np.asarray(samples, dtype=np.float64)
    samples = samples[np.isfinite(samples)]
    if not len(samples):
        return (math.nan, math.nan)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return (float(low), float(high))


def compare_samples(delta: np.ndarray, confidence: float) -> dict[str, float]:
    """Paired-bootstrap summary of ``delta`` samples (B - A): CI and two-sided p-value."""
    delta = np.asarray(delta, dtype=np.float64)
    delta = delta[np.isfinite(delta)]
    low, high = percentile_ci(delta, confidence)
    b = len(delta)
    if not b:
        return {"delta_lo": math.nan, "delta_hi": math.nan, "p_value": math.nan}
    le = (np.count_nonzero(delta <= 0) + 1) / (b + 1)
    ge = (np.count_nonzero(delta >= 0) + 1) / (b + 1)
    return {"delta_lo": low, "delta_hi": high, "p_value": float(min(1.0, 2 * min(le, ge)))}


def paired_bootstrap(
    system_a: Sequence[float],
    system_b: Sequence[float],
    gold: Sequence[float],
    boot: Bootstrap,
    key: str = "paired",
) -> dict[str, float]:
    """Is system B's Spearman on these pairs different from A's? Both are scored on the same
    resamples; returns ``delta`` (B - A, ×100), its percentile CI and a two-sided p-value."""
    a = bootstrap_spearman(system_a, gold, boot, key)
    b = bootstrap_spearman(system_b, gold, boot, key)
    point = 100.0 * (
        _spearman_rows(np.asarray([system_b], float), np.asarray([gold], float))[0]
        - _spearman_rows(np.asarray([system_a], float), np.asarray([gold], float))[0]
    )
    return {"delta": float(point), **compare_samples(b - a, boot.confidence)}


def verdict(lo: float, hi: float) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return "n/a"
    if lo > 0:
        return "larger is better"
    if hi < 0:
        return "smaller is better"
    return "no clear difference"


@dataclass
class CellBootstrap:
    """Bootstrap samples of one cell: per STS task, plus the gold scores they were drawn on."""

    samples: dict[str, np.ndarray]
    gold: dict[str, np.ndarray]
    scores: dict[str, float]

    def average_samples(self, tasks: Sequence[str]) -> np.ndarray | None:
        if not tasks or any(t not in self.samples for t in tasks):
            return None
        return np.mean([self.samples[t] for t in tasks], axis=0)


def bootstrap_cell(results: Mapping[str, Mapping], boot: Bootstrap) -> CellBootstrap:
    """Bootstrap every STS result of one cell that stored its pairs (older files did not)."""
    samples, gold, scores = {}, {}, {}
    for task, result in results.items():
        if task not in data.STS_TASKS:
            continue
        scores[task] = float(result["score"])
        pairs = result.get("pairs")
        if not pairs:
            continue
        system = np.asarray(pairs["system"], dtype=np.float64)
        gold[task] = np.asarray(pairs["gold"], dtype=np.float64)
        check = 100.0 * _spearman_rows(system[None, :], gold[task][None, :])[0]
        if not math.isclose(check, scores[task], abs_tol=1e-6):
            log.warning(
                "%s: stored pairs give %.6f, score file says %.6f", task, check, scores[task]
            )
        samples[task] = bootstrap_spearman(system, gold[task], boot, task)
    return CellBootstrap(samples, gold, scores)


def bootstrap_all(
    results: Mapping[tuple[str, str, str], Mapping[str, Mapping]], boot: Bootstrap
) -> dict[tuple[str, str, str], CellBootstrap]:
    return {cell: bootstrap_cell(tasks, boot) for cell, tasks in results.items()}
