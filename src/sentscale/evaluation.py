"""Evaluate a sentence encoder on SentEval tasks (SimCSE's protocol, as PromptEOL reports it).

``encode(sentences) -> np.ndarray`` plays SentEval's ``batcher``: one row per sentence. Each
task's distinct sentences are encoded in one call (or in chunks of ``batch_size``), so an encoder
can sort and batch them itself, and every repeated sentence costs one encoding.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from sentscale import sts
from sentscale.data import (
    ALL_TASKS,
    TRANSFER_TASKS,
    TaskData,
    check_data_dir,
    load_task,
    subsample,
    task_fingerprint,
)
from sentscale.errors import ConfigError
from sentscale.io import write_json

from .options import SENTEVAL_SEED, TRANSFER_MODES

Encoder = Callable[[list[str]], np.ndarray]


class SentenceLookup:
    """Embeddings of distinct sentences, looked up row for row by sentence text."""

    def __init__(self, sentences: Sequence[str], embeddings: np.ndarray):
        self.row = {text: i for i, text in enumerate(sentences)}
        self.embeddings = embeddings

    def __call__(self, sentences: list[str]) -> np.ndarray:
        return self.embeddings[[self.row[text] for text in sentences]]


def load_scored_task(
    name: str,
    data_dir: str | os.PathLike,
    *,
    max_items: int | None = None,
    seed: int = SENTEVAL_SEED,
) -> TaskData:
    """The task as it will be scored: every item, or a seeded subsample (``max_items``)."""
    return subsample(load_task(name, data_dir), max_items, seed)


def sentences_to_encode(task: TaskData) -> list[str]:
    """Distinct sentences (first-seen order) of the splits that enter the task's score.

    All splits for transfer tasks; for STS tasks only the scored ones (STSBenchmark and
    SICKRelatedness: test; STSBenchmark-dev: dev).
    """
    splits = task.splits if task.kind != "sts" else sts.scored_splits(task)
    seen: dict[str, None] = {}
    for split in splits:
        for text in task.splits[split].texts():
            seen.setdefault(text)
    return list(seen)


def encode_checked(
    encode: Encoder, sentences: list[str], task: str, batch_size: int | None = None
) -> np.ndarray:
    """Call ``encode`` (in chunks of ``batch_size`` if given) and check what comes back."""
    if batch_size is None:
        chunks = [np.asarray(encode(sentences))]
    else:
        chunks = [
            np.asarray(encode(sentences[i : i + batch_size]))
            for i in range(0, len(sentences), batch_size)
        ]
    if any(c.ndim != 2 for c in chunks):
        shapes = sorted({c.shape for c in chunks if c.ndim != 2})
        raise ValueError(f"{task}: encoder returned arrays of shape {shapes}, expected 2-D")
    embeddings = np.concatenate(chunks, axis=0)
    if embeddings.shape[0] != len(sentences):
        raise ValueError(
            f"{task}: encoder returned {embeddings.shape[0]} rows for {len(sentences)} sentences"
        )
    if not np.issubdtype(embeddings.dtype, np.number):
        raise ValueError(f"{task}: encoder returned dtype {embeddings.dtype}, expected numbers")
    finite = np.isfinite(embeddings).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise ValueError(
            f"{task}: {len(bad)} of {len(sentences)} embeddings contain NaN or inf, "
            f"first for sentence {sentences[bad[0]]!r}"
        )
    return embeddings


def _check_request(tasks: Sequence[str], transfer_mode: str, batch_size: int | None) -> None:
    if transfer_mode not in TRANSFER_MODES:
        raise ConfigError(f"transfer_mode must be one of {TRANSFER_MODES}, got {transfer_mode!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or batch_size < 1):
        raise ConfigError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if len(set(tasks)) != len(tasks):
        raise ConfigError(f"tasks are repeated: {list(tasks)}")


def evaluate(
    encode: Encoder,
    tasks: Iterable[str],
    data_dir: str | os.PathLike,
    *,
    transfer_mode: str = "fast",
    batch_size: int | None = None,
    seed: int = SENTEVAL_SEED,
    max_items: int | None = None,
    fast_solver: str = "warm",
) -> dict[str, dict]:
    """Evaluate ``encode`` on ``tasks`` (SentEval names, see ``data.ALL_TASKS``).

    ``transfer_mode``: "fast" (sklearn logistic regression) or "paper" (SentEval's PyTorch
    linear classifier, as in the paper). ``batch_size``: most sentences per ``encode`` call
    (None: one call per task). ``seed``: the transfer classifiers' seed (SentEval's 1111).
    ``max_items``: score a seeded subsample of at most this many items per split (quick CPU
    studies; None, the default and the paper's protocol, scores every item). ``fast_solver``:
    fast mode's solver, "warm" or "sklearn" (:mod:`sentscale.transfer_fast`).

    Returns ``{task: result}``; each result has ``score`` (the ×100 figure of the paper's
    tables), ``n`` (items scored), task details, ``data_fingerprint``, ``protocol`` and
    ``timings`` (``encode_s``, ``score_s``). Data for every task is checked before any encoding.
    """
    tasks = list(tasks)
    _check_request(tasks, transfer_mode, batch_size)
    check_data_dir(data_dir, tasks)
    results = {}
    for name in tasks:
        task = load_scored_task(name, data_dir, max_items=max_items, seed=seed)
        sentences = sentences_to_encode(task)
        started = time.perf_counter()
        lookup = SentenceLookup(sentences, encode_checked(encode, sentences, name, batch_size))
        encoded = time.perf_counter()
        if name in TRANSFER_TASKS:
            # imported here: an STS job then never loads scikit-learn (~0.5 s per job)
            from sentscale import transfer

            result = transfer.score_task(
                task, lookup, mode=transfer_mode, seed=seed, fast_solver=fast_solver
            )
        else:
            result = sts.score_task(task, lookup)
            result["protocol"] = sts.protocol(name)
        scored = time.perf_counter()
        result["protocol"]["seed"] = seed
        result["protocol"]["max_items"] = max_items
        result["task"] = name
        result["n_sentences_encoded"] = len(sentences)
        result["data_fingerprint"] = task_fingerprint(name, data_dir)
        result["timings"] = {"encode_s": encoded - started, "score_s": scored - encoded}
        results[name] = result
    return results


def average_score(results: Mapping[str, Mapping], tasks: Iterable[str]) -> float:
    """Mean score over ``tasks`` as the paper's tables (SimCSE) compute it: each score rounded
    to two decimals first, then the mean rounded to two decimals."""
    tasks = list(tasks)
    missing = [t for t in tasks if t not in results]
    if not tasks or missing:
        raise ValueError(f"average_score needs results for every task; missing {missing or tasks}")
    return round(sum(round(results[t]["score"], 2) for t in tasks) / len(tasks), 2)


#: the first keys of a score file, in this order (:func:`summary_first`)
SUMMARY_KEYS = ("task", "cell", "score", "metric", "n")


def summary_first(result: Mapping) -> dict:
    """``result`` ordered for a reader of its score file: :data:`SUMMARY_KEYS`, the other
    scalars, the small mappings (correlations, protocol), then the per-item arrays (``pairs``,
    ``fold_accuracies``, ...) that would otherwise bury ``score`` under hundreds of lines.
    Within each group keys are sorted, and nested mappings are sorted throughout, so equal
    content still gives equal bytes. Values are untouched."""

    def is_array(value) -> bool:  # a list, or a mapping of lists (pairs: system, gold)
        if isinstance(value, Mapping):
            return bool(value) and all(isinstance(v, list | tuple) for v in value.values())
        return isinstance(value, list | tuple | np.ndarray)

    def rank(key: str) -> tuple:
        value = result[key]
        if key in SUMMARY_KEYS:
            return (0, SUMMARY_KEYS.index(key), key)
        if is_array(value):
            return (3, 0, key)
        return (2 if isinstance(value, Mapping) else 1, 0, key)

    def sorted_deep(value):
        if isinstance(value, Mapping):
            return {k: sorted_deep(value[k]) for k in sorted(value)}
        return value

    return {key: sorted_deep(result[key]) for key in sorted(result, key=rank)}


_SAFE_NAME = re.compile(r"^[A-Za-z0-9_@+=-][A-Za-z0-9_.@+=-]*$")  # no leading "." (hidden, "..")


def result_path(out_dir: str | os.PathLike, encoder_name: str, task: str) -> Path:
    """``out_dir/<encoder>/<task>.json``; a "/" in the encoder name (hub ids) becomes "--"."""
    folder = encoder_name.replace("/", "--")
    if not _SAFE_NAME.match(folder) or ".." in folder:
        raise ConfigError(
            f"encoder name {encoder_name!r} cannot name a folder: use letters, digits, "
            "'_', '.', '-', '@', '+', '=' (and '/' for hub ids)"
        )
    if task not in ALL_TASKS:
        raise ConfigError(f"unknown task {task!r}: expected one of {', '.join(ALL_TASKS)}")
    return Path(out_dir) / folder / f"{task}.json"


def write_results(
    results: Mapping[str, Mapping],
    out_dir: str | os.PathLike,
    encoder_name: str,
    extra_meta: Mapping | None = None,
) -> list[Path]:
    """Write one JSON per (encoder, task), atomically with sorted keys; returns the paths.

    Each file holds ``{"encoder", "task", "result", "meta"}``.
    """
    paths = [result_path(out_dir, encoder_name, task) for task in results]
    for bad in (t for t, r in results.items() if not math.isfinite(r["score"])):
        raise ValueError(f"{bad}: score {results[bad]['score']} is not finite; not writing it")
    for path, (task, result) in zip(paths, results.items(), strict=True):
        payload = {
            "encoder": encoder_name,
            "task": task,
            "result": dict(result),
            "meta": dict(extra_meta or {}),
        }
        write_json(path, payload)
    return paths
