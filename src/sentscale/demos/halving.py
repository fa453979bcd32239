"""``selection: halving``: successive halving over nested dev subsets (our addition; the paper
scores every candidate on all of STS-B dev, which stays the default ``exhaustive``).

One seeded permutation of the dev pairs (``select.seed``) fixes every round's subset: round r
takes its first ``halving.pairs[r]`` pairs, kept in file order, so each subset holds the
previous round's and a candidate promoted twice is judged on more of the same pairs, never on
a fresh draw. Round 1 scores every candidate; each round promotes its best
``ceil(keep x candidates)`` (at least ``min_keep``; ties and NaN as :func:`ranking.rank`) to
the next. The final round (``pairs`` ends with null) scores the survivors on the full dev set
with the very function the exhaustive search uses, so a finalist's ``dev_spearman`` is the
number exhaustive would give it, and the pick is the best finalist by that number.

Subset rounds read nothing but the dev pairs already loaded (the selection data guard holds)
and score them as :func:`sentscale.evaluation.evaluate` scores STS-B dev: distinct sentences
encoded in one call, Spearman x100 of the pair cosines.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .. import data, evaluation, prompts, sts
from ..errors import ConfigError
from .candidates import Candidate
from .options import Halving
from .ranking import _sort_key

log = logging.getLogger(__package__)

#: (demonstrations) -> (STS-B dev Spearman x100 on the full dev set, seconds)
FullScorer = Callable[[tuple[prompts.Demo, ...]], tuple[float, float]]
#: (demonstrations) -> the encoder of that demonstration list
EncoderFactory = Callable[[tuple[prompts.Demo, ...]], Callable[[list[str]], np.ndarray]]


def nested_subsets(n_pairs: int, sizes: Sequence[int], seed: int) -> list[np.ndarray]:
    """Row indices of each subset round: the first ``size`` of one seeded permutation of
    ``range(n_pairs)``, sorted (file order); each holds the one before."""
    too_big = [n for n in sizes if n >= n_pairs]
    if too_big:
        raise ConfigError(
            f"select.halving.pairs: subset rounds of {too_big} pairs, but the dev set scored has "
            f"{n_pairs}; each subset round must be smaller than the full dev set"
        )
    order = np.random.default_rng(seed).permutation(n_pairs)
    return [np.sort(order[:n]) for n in sizes]


def promoted(n: int, halving: Halving) -> int:
    """How many of ``n`` candidates go on to the next round."""
    return min(n, max(halving.min_keep, math.ceil(halving.keep * n)))


def subset_task(dev: data.TaskData, rows: Sequence[int]) -> data.TaskData:
    """STS-B dev restricted to ``rows`` of its dev split (file order)."""
    return dataclasses.replace(dev, splits={"dev": data.take_rows(dev.splits["dev"], rows)})


def score_subset(encode: Callable[[list[str]], np.ndarray], task: data.TaskData) -> float:
    """Spearman x100 of ``encode`` on ``task`` (a dev subset), as ``evaluate`` scores STS."""
    sentences = evaluation.sentences_to_encode(task)
    embeddings = evaluation.encode_checked(encode, sentences, task.name)
    result = sts.score_task(task, evaluation.SentenceLookup(sentences, embeddings))
    return float(result["score"])


def halving_search(
    encoder_for: EncoderFactory,
    candidates: Sequence[Candidate],
    *,
    dev: data.TaskData,
    halving: Halving,
    seed: int,
    score_full: FullScorer,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Rows (one per candidate, pool order) and a summary per round.

    A row has the exhaustive columns (``dev_spearman``: the full-dev score, NaN unless the
    candidate reached the final round; ``n_pairs``: pairs of the last round it was scored on;
    ``encode_s``: its seconds over all rounds) plus ``round`` (1-based, the last it reached),
    ``round_pairs`` and ``round_spearman`` (its score on that round's subset).
    """
    n_full = len(dev.splits["dev"])
    sizes = list(halving.pairs[:-1])
    tasks = [subset_task(dev, rows) for rows in nested_subsets(n_full, sizes, seed)]
    rows = [
        {
            "candidate": i,
            "sentence": c.sentence,
            "word": c.word,
            "source": c.source,
            "dev_spearman": math.nan,
            "n_pairs": 0,
            "encode_s": 0.0,
        }
        for i, c in enumerate(candidates)
    ]
    alive = list(range(len(candidates)))
    rounds = []
    for r, size in enumerate([*sizes, None], start=1):
        final = size is None
        pairs = n_full if final else size
        task = None if final else tasks[r - 1]
        n_sentences = len(evaluation.sentences_to_encode(dev if final else task))
        for i in alive:
            demos = (candidates[i].demo,)
            started = time.perf_counter()
            if final:
                value, _ = score_full(demos)
            else:
                value = score_subset(encoder_for(demos), task)
            seconds = time.perf_counter() - started
            row = rows[i]
            row.update(round=r, round_pairs=pairs, round_spearman=value, n_pairs=pairs)
            row["encode_s"] = round(row["encode_s"] + seconds, 3)
            if final:
                row["dev_spearman"] = value
            log.info(
                "round %d (%d pairs), candidate %d %r -> %r: %.2f (%.1f s)",
                r, pairs, i, candidates[i].sentence, candidates[i].word, value, seconds,
            )  # fmt: skip
        ordered = sorted(
            alive,
            key=lambda i: _sort_key({"dev_spearman": rows[i]["round_spearman"], "candidate": i}),
        )
        keep = len(alive) if final else promoted(len(alive), halving)
        rounds.append(
            {
                "round": r,
                "pairs": pairs,
                "sentences": n_sentences,
                "candidates": len(alive),
                "promoted": 0 if final else keep,
            }
        )
        alive = sorted(ordered[:keep])
    return rows, rounds
