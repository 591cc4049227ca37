"""The simulator as an environment: ground truth beside the logs, and reactions to new rankings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.features import infer_roles
from searchrank.features import tables as T
from searchrank.features.generator.environment import (
    attach_true_grades,
    load_ground_truth,
    respond,
)


@pytest.fixture(scope="module")
def logs(dataset_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    impressions = pd.read_parquet(dataset_dir / T.file_name(T.IMPRESSIONS))
    return impressions, load_ground_truth(dataset_dir)


def _rank_by(truth: pd.DataFrame, score: np.ndarray) -> np.ndarray:
    """Positions (0 = top) that order each search's rows by descending score."""
    frame = pd.DataFrame({"search": truth[S.SEARCH_ID].to_numpy(), "score": -score})
    ranks = frame.groupby("search", sort=False)["score"].rank(method="first")
    return ranks.to_numpy(dtype=np.int64) - 1


def test_ground_truth_lies_beside_every_impression(
    logs: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    impressions, truth = logs
    for key in (S.SEARCH_ID, S.ITEM_ID):
        assert np.array_equal(truth[key].to_numpy(), impressions[key].to_numpy())
    # At the top every listener looks and nobody has abandoned yet, so the logged label there
    # is a draw of the true grade itself: the means agree within sampling error.
    top = impressions[S.POSITION].to_numpy() == 0
    labels = impressions.loc[top, S.LABEL].to_numpy(dtype=float)
    error = labels.std() / np.sqrt(top.sum())
    assert abs(labels.mean() - truth.loc[top, S.TRUE_GRADE].mean()) < 4 * error


def test_replaying_the_logged_rankings_reproduces_the_logged_labels(
    logs: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    impressions, truth = logs
    logged = impressions[S.LABEL].to_numpy()
    position = impressions[S.POSITION].to_numpy()
    replayed = respond(truth, position, seed=5)
    buckets = np.minimum(position, 3)
    # Each (position bucket, grade) share is a proportion: the logged and replayed shares are
    # two independent samples of it, so their difference is within a few standard errors.
    for bucket in range(4):
        rows = buckets == bucket
        for grade in S.GRADES:
            p_logged = np.mean(logged[rows] == grade)
            p_replayed = np.mean(replayed[rows] == grade)
            pooled = (p_logged + p_replayed) / 2
            error = np.sqrt(2 * pooled * (1 - pooled) / rows.sum()) + 1e-12
            assert abs(p_logged - p_replayed) < 4.5 * error, (bucket, grade)


def test_respond_is_deterministic_for_a_seed_and_rewards_better_rankings(
    logs: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    _, truth = logs
    grades = truth[S.TRUE_GRADE].to_numpy()
    best, worst = _rank_by(truth, grades), _rank_by(truth, -grades)
    assert np.array_equal(respond(truth, best, seed=1), respond(truth, best, seed=1))
    assert not np.array_equal(respond(truth, best, seed=1), respond(truth, best, seed=2))
    streams_best = (respond(truth, best, seed=1) >= 2).sum()
    streams_worst = (respond(truth, worst, seed=1) >= 2).sum()
    assert streams_best > 1.5 * streams_worst


def test_candidates_not_shown_get_no_reaction(logs: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, truth = logs
    position = _rank_by(truth, truth[S.TRUE_GRADE].to_numpy())
    top3 = np.where(position < 3, position, -1)
    labels = respond(truth, top3, seed=3)
    assert (labels[top3 < 0] == 0).all() and (labels[top3 >= 0] > 0).any()


def test_respond_rejects_bad_rankings(logs: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    _, truth = logs
    rows = truth.iloc[:40]
    with pytest.raises(InputError, match="two candidates at this position"):
        respond(rows, np.zeros(40, dtype=int), seed=0)
    with pytest.raises(InputError, match="one position per row"):
        respond(rows, np.zeros(3, dtype=int), seed=0)
    with pytest.raises(InputError, match="relevance"):
        respond(rows.drop(columns="relevance"), np.arange(40), seed=0)


def test_true_grades_attach_by_key_and_refuse_foreign_rows(
    logs: tuple[pd.DataFrame, pd.DataFrame],
) -> None:
    impressions, truth = logs
    shuffled = impressions.sample(frac=0.2, random_state=0)
    with_truth = attach_true_grades(shuffled, truth)
    expected = truth.set_index([S.SEARCH_ID, S.ITEM_ID]).loc[
        list(zip(shuffled[S.SEARCH_ID], shuffled[S.ITEM_ID], strict=True)), S.TRUE_GRADE
    ]
    assert np.allclose(with_truth[S.TRUE_GRADE].to_numpy(), expected.to_numpy())
    foreign = shuffled.assign(**{S.SEARCH_ID: shuffled[S.SEARCH_ID] + 10**9})
    with pytest.raises(InputError, match="no ground truth"):
        attach_true_grades(foreign, truth)
    with pytest.raises(InputError, match="real data has no ground truth"):
        load_ground_truth(Path("/nonexistent-data-folder"))


def test_no_model_input_carries_the_ground_truth(
    splits: dict[str, Path], dataset_dir: Path
) -> None:
    full = pq.read_schema(splits["full"])
    assert S.TRUE_GRADE not in full.names, "fetch_features must not join the ground truth"
    train = pd.read_parquet(splits["train"])
    with_truth = attach_true_grades(train, load_ground_truth(dataset_dir))
    contract = FeatureContract.load(splits["contract"])
    for roles in (
        infer_roles(list(with_truth.columns), contract),
        infer_roles(list(with_truth.columns), None),
    ):
        assert roles and S.TRUE_GRADE not in {role.source for role in roles}
