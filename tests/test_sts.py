"""STS scoring: cosine, correlations and SimCSE's ``all`` aggregate, checked against hand sums."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sentscale import sts
from sentscale.data import SentencePairs, TaskData


def lookup_from(vectors: dict[str, list[float]]):
    """A lookup over a fixed table: a sentence outside it raises KeyError."""
    return lambda sentences: np.array([vectors[s] for s in sentences], dtype=np.float32)


def test_pair_cosines_match_hand_values():
    a = np.array([[1, 0], [1, 2], [1, 0], [3, 4], [0, 0]])
    b = np.array([[1, 1], [2, 4], [0, 1], [-3, -4], [1, 1]])
    # 1/sqrt(2); parallel; orthogonal; opposite; zero vector -> 0 as SentEval's nan_to_num
    expected = [1 / math.sqrt(2), 1.0, 0.0, -1.0, 0.0]
    np.testing.assert_allclose(sts.pair_cosines(a, b), expected, atol=1e-12)


def test_pair_cosines_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal 2-D shapes"):
        sts.pair_cosines(np.ones((3, 2)), np.ones((2, 2)))


def test_correlations_match_hand_computation():
    # ranks differ by d = (0, 1, 1, 0): spearman = 1 - 6*2 / (4*15) = 0.8;
    # pearson: centred (-1.5,-.5,.5,1.5) and (-1.5,.5,-.5,1.5): 4 / 5 = 0.8
    got = sts.correlations(np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 2, 4]))
    assert got["spearman"] == pytest.approx(0.8, abs=1e-12)
    assert got["pearson"] == pytest.approx(0.8, abs=1e-12)
    assert got["n"] == 4


def test_all_pools_pairs_unlike_the_mean_of_subsets():
    # Subset A (3 pairs) is perfectly ranked, subset B (2 pairs) perfectly reversed.
    scored = {
        "A": (np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0, 3.0])),
        "B": (np.array([0.9, 0.8]), np.array([4.0, 5.0])),
    }
    got = sts.combine_subsets(scored)
    assert got["subsets"]["A"]["spearman"] == pytest.approx(1.0)
    assert got["subsets"]["B"]["spearman"] == pytest.approx(-1.0)
    spearman = got["all"]["spearman"]
    assert spearman["mean"] == pytest.approx(0.0)
    assert spearman["wmean"] == pytest.approx((3 - 2) / 5)
    # pooled ranks (1,2,3,5,4) vs (1,2,3,4,5): 1 - 6*2 / (5*24) = 0.9
    assert spearman["all"] == pytest.approx(0.9)


def test_sts_year_task_reports_all_spearman_x100():
    vectors = {"a": [1, 0], "b": [1, 0.1], "c": [1, 1], "d": [0, 1], "e": [1, 0.5], "f": [-1, 1]}
    task = TaskData(
        name="STS12",
        kind="sts",
        splits={
            # cosines: (a,b)=0.995, (a,c)=0.707, (a,d)=0  -> ranked as gold
            "first": SentencePairs(["a", "a", "a"], ["b", "c", "d"], np.array([5.0, 3.0, 1.0])),
            # cosines: (e,c)=0.949, (c,f)=0 -> reversed against gold
            "second": SentencePairs(["e", "c"], ["c", "f"], np.array([2.0, 4.0])),
        },
        files=(),
    )
    got = sts.score_task(task, lookup_from(vectors))
    # pooled system (.995,.707,0,.949,0) vs gold (5,3,1,2,4): tie at 0 -> ranks
    # (5,3,1.5,4,1.5) vs (5,3,1,2,4); spearman = pearson of ranks, computed by hand below
    r_sys = np.array([5, 3, 1.5, 4, 1.5])
    r_gold = np.array([5, 3, 1, 2, 4])
    expected = np.corrcoef(r_sys, r_gold)[0, 1]
    assert got["score"] == pytest.approx(100 * expected)
    assert got["n"] == 5
    assert got["subsets"]["first"]["spearman"] == pytest.approx(1.0)
    assert got["subsets"]["second"]["spearman"] == pytest.approx(-1.0)


def test_stsb_scores_test_only_and_never_looks_up_other_splits():
    vectors = {"t1": [1, 0], "t2": [1, 1], "t3": [0, 1], "t4": [1, 0.2]}
    pairs = SentencePairs(["t1", "t1", "t3"], ["t4", "t2", "t1"], np.array([4.5, 2.0, 0.5]))
    unseen = SentencePairs(["train only"], ["not in the table"], np.array([1.0]))
    task = TaskData("STSBenchmark", "sts", {"train": unseen, "dev": unseen, "test": pairs}, ())
    got = sts.score_task(task, lookup_from(vectors))
    assert got["score"] == pytest.approx(100.0)
    assert got["n"] == 3
    assert got["test"]["pearson"] > 0.9
    assert "train" not in got and "dev" not in got


def test_stsb_dev_task_scores_dev():
    vectors = {"a": [1, 0], "b": [0, 1], "c": [1, 1]}
    pairs = SentencePairs(["a", "a", "c"], ["b", "c", "c"], np.array([0.0, 2.0, 1.0]))
    task = TaskData("STSBenchmark-dev", "sts", {"dev": pairs}, ())
    got = sts.score_task(task, lookup_from(vectors))
    # cosines (0, .707, 1) vs gold (0, 2, 1): ranks (1,2,3) vs (1,3,2) -> 1 - 6*2/24 = 0.5
    assert got["score"] == pytest.approx(50.0)
    assert got["metric"] == "spearman_dev_x100"
