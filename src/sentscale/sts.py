"""Unsupervised semantic textual similarity, as in SimCSE's modified SentEval.

The system score of a sentence pair is the cosine of the two embeddings; it is compared with the
gold scores by Pearson and Spearman correlation. No regressor is trained, not even for
STSBenchmark and SICKRelatedness (SimCSE's ``STSBenchmarkEval``/``SICKRelatednessEval``).

Reported figures (what PromptEOL's tables show, ×100):
- STS12–STS16: Spearman over the concatenation of every subset's pairs (``all``), SimCSE's
  replacement for SentEval's mean over subsets. ``mean`` and ``wmean`` are kept as details.
- STSBenchmark, SICKRelatedness: Spearman on the test split.
- STSBenchmark-dev: Spearman on the dev split (used to choose demonstrations; never sees test).

Every result also keeps ``pairs``: the system score (cosine) and gold score of each scored pair,
in the order the reported figure concatenates them, so confidence intervals and paired
comparisons can be bootstrapped later from the score file alone (``sentscale.aggregate``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

# Which splits each STS task scores. Only these are encoded: encoding is the expensive part, and
# the train/dev splits of STSBenchmark/SICKRelatedness do not enter the reported figure.
SCORED_SPLITS: dict[str, tuple[str, ...] | None] = {
    "STS12": None,  # None: every subset, in SentEval order
    "STS13": None,
    "STS14": None,
    "STS15": None,
    "STS16": None,
    "STSBenchmark": ("test",),
    "SICKRelatedness": ("test",),
    "STSBenchmark-dev": ("dev",),
}

Lookup = Callable[[list[str]], np.ndarray]


def scored_splits(task) -> tuple[str, ...]:
    """Names of the splits of ``task`` (a ``data.TaskData``) that enter its STS figures."""
    wanted = SCORED_SPLITS[task.name]
    return tuple(task.splits) if wanted is None else wanted


def pair_cosines(emb1: np.ndarray, emb2: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, in float64.

    A zero vector gives 0, as SentEval's ``nan_to_num(cosine(...))`` does.
    """
    a = np.asarray(emb1, dtype=np.float64)
    b = np.asarray(emb2, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"pair_cosines needs two equal 2-D shapes, got {a.shape} and {b.shape}")
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.einsum("ij,ij->i", a, b) / norms
    return np.nan_to_num(cos, nan=0.0, posinf=0.0, neginf=0.0)


def correlations(system: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Pearson and Spearman correlation (raw, in [-1, 1]) and the number of pairs."""
    system = np.asarray(system, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.float64)
    if system.shape != gold.shape or system.ndim != 1 or len(system) < 2:
        raise ValueError(
            f"need two equal 1-D arrays of >= 2 scores, got {system.shape} and {gold.shape}"
        )
    # imported here: scipy.stats takes ~0.8 s, and jobs that import this module only to list
    # splits (demonstration reports, embed jobs) never correlate anything
    from scipy.stats import pearsonr, spearmanr

    return {
        "pearson": float(pearsonr(system, gold)[0]),
        "spearman": float(spearmanr(system, gold)[0]),
        "n": int(len(system)),
    }


def combine_subsets(scored: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Per-subset correlations plus SimCSE's ``all`` entry over (system, gold) pairs by subset.

    ``all`` holds, for pearson and spearman: ``all`` (correlation over the concatenated pairs),
    ``mean`` (plain mean of the subset correlations) and ``wmean`` (mean weighted by subset size).
    """
    subsets = {name: correlations(system, gold) for name, (system, gold) in scored.items()}
    sizes = [s["n"] for s in subsets.values()]
    everything = correlations(
        np.concatenate([np.asarray(system) for system, _ in scored.values()]),
        np.concatenate([np.asarray(gold) for _, gold in scored.values()]),
    )
    combined = {}
    for measure in ("pearson", "spearman"):
        values = np.array([s[measure] for s in subsets.values()])
        combined[measure] = {
            "all": everything[measure],
            "mean": float(np.mean(values)),
            "wmean": float(np.average(values, weights=sizes)),
        }
    return {"subsets": subsets, "all": combined}


def score_task(task, lookup: Lookup) -> dict:
    """Score one STS task; ``lookup(sentences)`` returns their embeddings, row for row.

    Returns ``score`` (Spearman ×100 as reported in the paper), ``n`` (pairs scored), ``metric``
    and the correlations behind it.
    """
    splits = scored_splits(task)
    scored = {}
    for split in splits:
        pairs = task.splits[split]
        system = pair_cosines(lookup(list(pairs.sent1)), lookup(list(pairs.sent2)))
        scored[split] = (system, np.asarray(pairs.scores, dtype=np.float64))

    pairs = scored_pairs(scored)
    if SCORED_SPLITS[task.name] is None:
        details = combine_subsets(scored)
        return {
            "score": 100.0 * details["all"]["spearman"]["all"],
            "n": sum(s["n"] for s in details["subsets"].values()),
            "metric": "spearman_all_x100",
            "pairs": pairs,
            **details,
        }
    (split,) = splits
    figures = correlations(*scored[split])
    return {
        "score": 100.0 * figures["spearman"],
        "n": figures["n"],
        "metric": f"spearman_{split}_x100",
        "pairs": pairs,
        split: figures,
    }


def scored_pairs(scored: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, list[float]]:
    """``{"system": [...], "gold": [...]}``: every scored pair, subsets concatenated in order
    (the pairs behind the reported Spearman; what a bootstrap resamples)."""
    return {
        "system": [float(x) for system, _ in scored.values() for x in np.asarray(system)],
        "gold": [float(x) for _, gold in scored.values() for x in np.asarray(gold)],
    }


def protocol(task_name: str) -> dict:
    """The settings behind an STS figure, recorded with each result."""
    return {
        "similarity": "cosine",
        "regressor": None,
        "splits": SCORED_SPLITS[task_name] or "all subsets",
        "aggregate": "spearman over concatenated subsets (SimCSE 'all')"
        if SCORED_SPLITS[task_name] is None
        else "spearman",
    }
