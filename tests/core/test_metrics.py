"""Ranking metrics: hand-computed values on a toy example, then agreement with ranx and sklearn."""

from __future__ import annotations

from math import log2

import numpy as np
import pandas as pd
import pytest

from searchrank.core.errors import InputError
from searchrank.core.metrics import mean_metrics, ndcg_at_k, per_query_metrics

# Three queries, ids deliberately not sorted so the index must follow first appearance.
#   query 7: labels [0, 2, 1], scores [0.9, 0.5, 0.5]. The tie keeps row order, so the ranking
#            is labels 0, 2, 1 (ranks 1, 2, 3); the other tie order would give 0, 1, 2.
#   query 3: labels [0, 0], no relevant item: excluded from the means and counted.
#   query 5: labels [3, 0, 0, 1], scores [0.1, 0.8, 0.4, 0.2], ranked as labels 0, 0, 1, 3.
LABELS = np.array([0, 2, 1, 0, 0, 3, 0, 0, 1])
SCORES = np.array([0.9, 0.5, 0.5, 0.1, 0.2, 0.1, 0.8, 0.4, 0.2])
GROUPS = np.array([7, 7, 7, 3, 3, 5, 5, 5, 5])
KS = (1, 2, 5)

# Query 7: gains 2^l − 1 in rank order are 0, 3, 1; ideal order 3, 1, 0.
DCG_7 = 0 / log2(2) + 3 / log2(3) + 1 / log2(4)  # = 3/log2(3) + 0.5
IDCG_7 = 3 / log2(2) + 1 / log2(3) + 0 / log2(4)  # = 3 + 1/log2(3)
# Query 5: gains in rank order 0, 0, 1, 7; ideal order 7, 1, 0, 0.
DCG_5 = 1 / log2(4) + 7 / log2(5)  # = 0.5 + 7/log2(5)
IDCG_5 = 7 / log2(2) + 1 / log2(3)  # = 7 + 1/log2(3)
EXPECTED = {
    7: {
        "ndcg@1": 0.0,  # rank 1 has gain 0
        "ndcg@2": (3 / log2(3)) / IDCG_7,
        "ndcg@5": DCG_7 / IDCG_7,  # k beyond the 3 candidates: the whole list
        "mrr": 1 / 2,  # first relevant at rank 2
        "map": (1 / 2 + 2 / 3) / 2,  # relevant at ranks 2 and 3: precisions 1/2 and 2/3
        "recall@1": 0.0,
        "recall@2": 1 / 2,
        "recall@5": 1.0,
    },
    5: {
        "ndcg@1": 0.0,
        "ndcg@2": 0.0,
        "ndcg@5": DCG_5 / IDCG_5,
        "mrr": 1 / 3,  # first relevant at rank 3
        "map": (1 / 3 + 2 / 4) / 2,  # relevant at ranks 3 and 4
        "recall@1": 0.0,
        "recall@2": 0.0,
        "recall@5": 1.0,
    },
}


def test_toy_example_per_query() -> None:
    frame = per_query_metrics(LABELS, SCORES, GROUPS, ks=KS)

    assert list(frame.index) == [7, 3, 5]
    assert list(frame.columns) == [
        "ndcg@1",
        "ndcg@2",
        "ndcg@5",
        "mrr",
        "map",
        "recall@1",
        "recall@2",
        "recall@5",
        "n_candidates",
        "n_relevant",
        "has_relevant",
    ]
    for query, expected in EXPECTED.items():
        for column, value in expected.items():
            assert frame.loc[query, column] == pytest.approx(value, abs=1e-12), (query, column)
    assert frame["n_candidates"].tolist() == [3, 2, 4]
    assert frame["n_relevant"].tolist() == [2, 0, 2]
    assert frame["has_relevant"].tolist() == [True, False, True]
    assert frame.loc[3, list(EXPECTED[7])].isna().all()


def test_toy_example_means_exclude_and_count_queries_without_relevant() -> None:
    means = mean_metrics(per_query_metrics(LABELS, SCORES, GROUPS, ks=KS))

    assert means["queries"] == 3
    assert means["queries_without_relevant"] == 1
    assert means["mrr"] == pytest.approx((1 / 2 + 1 / 3) / 2, abs=1e-12)  # 5/12
    assert means["map"] == pytest.approx((7 / 12 + 5 / 12) / 2, abs=1e-12)  # 1/2
    assert means["ndcg@5"] == pytest.approx((DCG_7 / IDCG_7 + DCG_5 / IDCG_5) / 2, abs=1e-12)
    assert ndcg_at_k(LABELS, SCORES, GROUPS, 5) == pytest.approx(means["ndcg@5"], abs=1e-15)


def test_ties_follow_row_order() -> None:
    # Query 7 with its tied rows swapped: the label-1 row now ranks before the label-2 row.
    frame = per_query_metrics(np.array([0, 1, 2]), np.array([0.9, 0.5, 0.5]), np.zeros(3), ks=(5,))
    dcg = 0 + 1 / log2(3) + 3 / log2(4)
    assert frame["ndcg@5"].iloc[0] == pytest.approx(dcg / IDCG_7, abs=1e-12)
    assert frame["ndcg@5"].iloc[0] < DCG_7 / IDCG_7


def test_relevance_threshold_sets_the_exclusion_for_every_metric() -> None:
    # Threshold 2: query 7 keeps only its label-2 row (rank 2), query 5 its label-3 row (rank 4);
    # a new query 9 with labels [1, 0] has no relevant row and is excluded, NDCG included,
    # although its ideal DCG is positive.
    labels = np.append(LABELS, [1, 0])
    scores = np.append(SCORES, [0.3, 0.6])
    groups = np.append(GROUPS, [9, 9])
    frame = per_query_metrics(labels, scores, groups, ks=KS, relevance_threshold=2)

    assert frame.loc[7, "mrr"] == pytest.approx(1 / 2)
    assert frame.loc[7, "map"] == pytest.approx(1 / 2)
    assert frame.loc[5, "mrr"] == pytest.approx(1 / 4)
    assert frame.loc[5, "map"] == pytest.approx(1 / 4)
    assert frame.loc[5, "recall@2"] == 0.0
    # NDCG still uses every label's gain.
    assert frame.loc[7, "ndcg@5"] == pytest.approx(DCG_7 / IDCG_7, abs=1e-12)
    assert frame.loc[9, ["ndcg@5", "mrr"]].isna().all()
    means = mean_metrics(frame)
    assert means["queries"] == 4
    assert means["queries_without_relevant"] == 2


def test_string_query_ids_and_float_labels() -> None:
    frame = per_query_metrics(LABELS.astype(float), SCORES, GROUPS.astype(str), ks=KS)
    assert list(frame.index) == ["7", "3", "5"]
    assert frame.loc["5", "mrr"] == pytest.approx(1 / 3)


def _random_slates(seed: int, queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Queries of 1–29 candidates, sparse graded labels and tie-free scores."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 30, queries)
    groups = np.repeat(np.arange(queries), sizes)
    labels = rng.integers(0, 4, len(groups)) * (rng.random(len(groups)) < 0.3)
    scores = rng.normal(size=len(groups))
    return labels, scores, groups


@pytest.mark.slow  # ranx compiles its metrics with numba on first use: seconds
@pytest.mark.parametrize("threshold", [1, 2])
def test_agrees_with_ranx(threshold: int) -> None:
    from ranx import Qrels, Run, evaluate

    labels, scores, groups = _random_slates(seed=1, queries=400)
    ks = (1, 3, 10, 50)
    frame = per_query_metrics(labels, scores, groups, ks=ks, relevance_threshold=threshold)

    # ranx counts every judged document with relevance > 0 as relevant, so the qrels hold only
    # the rows at or above the threshold; NDCG is compared at threshold 1 only, where the qrels
    # keep every positive label and so the same ideal DCG.
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for query in np.unique(groups):
        rows = np.flatnonzero(groups == query)
        judged = {f"d{r}": int(labels[r]) for r in rows if labels[r] >= threshold}
        if judged:
            qrels[f"q{query:04d}"] = judged
            run[f"q{query:04d}"] = {f"d{r}": float(scores[r]) for r in rows}
    names = ["mrr", "map"] + [f"recall@{k}" for k in ks]
    if threshold == 1:
        names += [f"ndcg_burges@{k}" for k in ks]
    theirs = evaluate(Qrels(qrels), Run(run), names, return_mean=False)

    ours = frame[frame["has_relevant"]].sort_index()
    assert len(ours) == len(qrels)
    for name in names:
        column = name.replace("ndcg_burges", "ndcg")
        np.testing.assert_allclose(ours[column].to_numpy(), theirs[name], rtol=0, atol=1e-9)


def test_ndcg_agrees_with_sklearn_on_exponential_gains() -> None:
    from sklearn.metrics import ndcg_score

    rng = np.random.default_rng(2)
    queries, length = 300, 12
    labels = rng.integers(0, 5, (queries, length)) * (rng.random((queries, length)) < 0.4)
    labels = labels[labels.max(axis=1) > 0]
    scores = rng.normal(size=labels.shape)
    groups = np.repeat(np.arange(len(labels)), length)

    for k in (1, 5, 12, 20):
        ours = ndcg_at_k(labels.ravel(), scores.ravel(), groups, k)
        # sklearn uses linear gains: handing it 2^label − 1 makes them our exponential gains.
        theirs = ndcg_score(2.0**labels - 1.0, scores, k=k)
        assert ours == pytest.approx(theirs, abs=1e-9)


@pytest.mark.parametrize(
    ("labels", "scores", "groups", "field"),
    [
        ([1, 0, 1], [0.1, 0.2], [1, 1, 1], "scores"),
        ([1, 0, 1], [0.1, 0.2, 0.3], [1, 1], "groups"),
        ([1, -1, 0], [0.1, 0.2, 0.3], [1, 1, 1], "labels"),
        ([1, 0.5, 0], [0.1, 0.2, 0.3], [1, 1, 1], "labels"),
        ([1, 0, 1], [0.1, np.nan, 0.3], [1, 1, 1], "scores"),
        ([1, 0, 1, 0], [0.1, 0.2, 0.3, 0.4], [1, 2, 1, 1], "groups"),
        ([1, 0, 1], [0.1, 0.2, 0.3], [1.0, np.nan, 1.0], "groups"),
        ([], [], [], "labels"),
        ([[1, 0]], [[0.1, 0.2]], [[1, 1]], "labels"),
        (["a", "b"], [0.1, 0.2], [1, 1], "labels"),
    ],
)
def test_bad_rows_name_the_field(labels: list, scores: list, groups: list, field: str) -> None:
    with pytest.raises(InputError) as caught:
        per_query_metrics(np.array(labels), np.array(scores), np.array(groups))
    assert caught.value.field == field


def test_non_contiguous_groups_name_the_query() -> None:
    with pytest.raises(InputError, match="contiguous") as caught:
        per_query_metrics(np.array([1, 0, 1]), np.array([0.1, 0.2, 0.3]), np.array([4, 8, 4]))
    assert caught.value.value == 4


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"ks": (0,)}, "ks"),
        ({"ks": (5, 5)}, "ks"),
        ({"ks": (2.5,)}, "ks"),
        ({"relevance_threshold": 0}, "relevance_threshold"),
        ({"relevance_threshold": True}, "relevance_threshold"),
    ],
)
def test_bad_parameters_name_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(InputError) as caught:
        per_query_metrics(LABELS, SCORES, GROUPS, **kwargs)
    assert caught.value.field == field


def test_mean_metrics_needs_a_per_query_frame() -> None:
    with pytest.raises(InputError, match="has_relevant"):
        mean_metrics(pd.DataFrame({"ndcg@5": [0.5]}))


def test_mean_metrics_without_any_relevant_query_is_nan_and_counted() -> None:
    means = mean_metrics(per_query_metrics(np.zeros(4), np.arange(4.0), np.array([1, 1, 2, 2])))
    assert np.isnan(means["ndcg@5"])
    assert means["queries"] == 2
    assert means["queries_without_relevant"] == 2
