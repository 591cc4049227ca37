"""Tests of the tuned LambdaMART baseline on LightGBM's real sample and on synthetic sets.

The fits run single-threaded: these sets are small enough that OpenMP threads only add overhead,
and a shared test machine's other jobs then cannot slow them down by oversubscription.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from shared_data import SHARED_DATASETS

from searchrank.core.errors import InputError
from searchrank.core.lambdamart import (
    LambdaMartConfig,
    TunedLambdaMart,
    tune_lambdamart,
)
from searchrank.core.metrics import ndcg_at_k

LAMBDARANK = SHARED_DATASETS / "lightgbm-lambdarank"

SMALL = LambdaMartConfig(
    num_leaves=(15, 31),
    min_data_in_leaf=(20, 50),
    feature_fraction=(0.7,),
    max_rounds=500,
    num_threads=1,
)
"""A 4-point grid: the test checks the mechanics, the default grid is for real use."""

Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]


def _read(name: str) -> Arrays:
    if not (LAMBDARANK / name).is_file():
        pytest.skip(f"{LAMBDARANK} is not available")
    from searchrank.features.adapters.letor import read_letor

    table = read_letor(LAMBDARANK / name)
    names = [c for c in table.column_names if c.startswith("f")]
    x = np.column_stack([table[c].to_numpy() for c in names])
    return x, table["label"].to_numpy(), table["search_id"].to_numpy(), names


@pytest.fixture(scope="module")
def rank_train() -> Arrays:
    return _read("rank.train")


@pytest.fixture(scope="module")
def rank_test() -> Arrays:
    return _read("rank.test")


@pytest.fixture(scope="module")
def tuned(rank_train: Arrays) -> TunedLambdaMart:
    x, y, groups, names = rank_train
    return tune_lambdamart(x, y, groups, feature_names=names, config=SMALL)


def _ndcg_at(scores: np.ndarray, labels: np.ndarray, groups: np.ndarray, k: int = 10) -> float:
    """Mean NDCG@k with exponential gains, written per query as the textbook states it; queries
    without a relevant row are left out, as in every figure searchrank reports."""
    values = []
    for g in np.unique(groups):
        rows = groups == g
        gains = 2.0 ** labels[rows] - 1.0
        discounts = 1.0 / np.log2(np.arange(2, k + 2))
        ranked = gains[np.argsort(-scores[rows], kind="stable")][:k]
        ideal = np.sort(gains)[::-1][:k]
        best = float(ideal @ discounts[: len(ideal)])
        if best > 0:
            values.append(float(ranked @ discounts[: len(ranked)]) / best)
    return float(np.mean(values))


def test_beats_random_on_the_lightgbm_example(tuned: TunedLambdaMart, rank_test: Arrays) -> None:
    x, y, groups, _ = rank_test
    model_ndcg = _ndcg_at(tuned.predict(x), y, groups)
    rng = np.random.default_rng(0)
    random_ndcg = np.mean([_ndcg_at(rng.random(len(y)), y, groups) for _ in range(20)])
    assert model_ndcg > random_ndcg + 0.1
    assert 0.5 < model_ndcg < 0.95


def test_cv_table_and_early_stopped_rounds(tuned: TunedLambdaMart) -> None:
    assert len(tuned.cv_results) == len(SMALL.grid()) == 4
    assert [r.point for r in tuned.cv_results] == SMALL.grid()
    best = tuned.chosen
    assert best.ndcg_mean == max(r.ndcg_mean for r in tuned.cv_results)
    assert {k: tuned.params[k] for k in ("num_leaves", "min_data_in_leaf")} == {
        "num_leaves": best.point.num_leaves,
        "min_data_in_leaf": best.point.min_data_in_leaf,
    }
    for row in tuned.cv_results:
        assert len(row.fold_best_iterations) == SMALL.folds
        # Patience ran out before max_rounds: every fold stopped early.
        assert all(
            1 <= i <= SMALL.max_rounds - SMALL.early_stopping_rounds
            for i in row.fold_best_iterations
        )
        assert 0.0 <= row.ndcg_std < 0.2
    # Early stopping set the rounds, scaled to the full data's size.
    assert tuned.num_rounds == round(best.best_iteration_mean * 3 / 2)
    assert tuned.num_rounds < SMALL.max_rounds
    assert tuned.booster.current_iteration() == tuned.num_rounds
    assert tuned.params["label_gain"] == [0.0, 1.0, 3.0, 7.0, 15.0]
    assert tuned.params["objective"] == "lambdarank"


@pytest.mark.slow  # tunes the grid twice on the real example
def test_selection_is_deterministic_and_ignores_valid(rank_train: Arrays) -> None:
    x, y, groups, names = rank_train
    # Hold out the last 40 queries as a validation set, as a caller would.
    cut = int(np.flatnonzero(groups == np.unique(groups)[-40])[0])
    train = (x[:cut], y[:cut], groups[:cut])
    valid = (x[cut:], y[cut:], groups[cut:])
    first = tune_lambdamart(*train, feature_names=names, config=SMALL)
    second = tune_lambdamart(*train, feature_names=names, valid=valid, config=SMALL)
    assert first.cv_results == second.cv_results
    assert first.num_rounds == second.num_rounds
    np.testing.assert_array_equal(first.predict(valid[0]), second.predict(valid[0]))
    assert first.valid_ndcg is None
    assert second.valid_ndcg == pytest.approx(_ndcg_at(second.predict(valid[0]), *valid[1:]))


def test_save_load_round_trip(tuned: TunedLambdaMart, rank_test: Arrays, tmp_path: Path) -> None:
    tuned.save(tmp_path / "model")
    assert {p.name for p in (tmp_path / "model").iterdir()} == {"model.txt", "lambdamart.json"}
    loaded = TunedLambdaMart.load(tmp_path / "model")
    x = rank_test[0]
    np.testing.assert_array_equal(loaded.predict(x), tuned.predict(x))
    assert loaded.cv_results == tuned.cv_results
    assert loaded.params == tuned.params
    assert loaded.feature_names == tuned.feature_names
    assert loaded.num_rounds == tuned.num_rounds
    assert loaded.importance() == pytest.approx(tuned.importance())
    with pytest.raises(InputError, match="folder"):
        TunedLambdaMart.load(tmp_path / "missing")


def test_importance_is_gain_by_feature_name(tuned: TunedLambdaMart) -> None:
    importance = tuned.importance()
    assert list(importance) == [f"f{i}" for i in range(1, 301)]
    assert all(v >= 0 for v in importance.values())
    assert sum(v > 0 for v in importance.values()) >= 5


def _coded(n_queries: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relevance set by the parity of a 200-code column: thresholds on codes cannot split it."""
    rng = np.random.default_rng(seed)
    n = n_queries * 20
    codes = rng.integers(0, 200, size=n)
    y = (2 * (codes % 2 == 0) + (rng.random(n) < 0.1)).astype(np.int32)
    x = np.column_stack([codes.astype(np.float64), rng.normal(size=(n, 3))])
    return x, y, np.repeat(np.arange(n_queries), 20)


def test_categorical_features_are_honoured() -> None:
    train, test = _coded(500, 0), _coded(200, 1)
    # The same small budget of 10 shallow trees for both treatments of column 0.
    config = LambdaMartConfig(
        num_leaves=(7,),
        min_data_in_leaf=(20,),
        feature_fraction=(1.0,),
        max_rounds=10,
        num_threads=1,
    )
    as_category = tune_lambdamart(*train, categorical=[0], config=config)
    as_number = tune_lambdamart(*train, config=config)
    assert as_category.categorical == (0,)

    def decisions(model: TunedLambdaMart) -> set[str]:
        found: set[str] = set()

        def walk(node: dict[str, object]) -> None:
            if "split_feature" in node and node["split_feature"] == 0:
                found.add(str(node["decision_type"]))
            for child in ("left_child", "right_child"):
                if child in node:
                    walk(node[child])  # type: ignore[arg-type]

        for tree in model.booster.dump_model()["tree_info"]:
            walk(tree["tree_structure"])
        return found

    assert decisions(as_category) == {"=="}
    assert decisions(as_number) == {"<="}
    x, y, groups = test
    category_ndcg = _ndcg_at(as_category.predict(x), y, groups)
    number_ndcg = _ndcg_at(as_number.predict(x), y, groups)
    assert category_ndcg > number_ndcg + 0.05


def _toy(n_queries: int = 12, per: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    n = n_queries * per
    return rng.random((n, 3)), rng.integers(0, 3, size=n), np.repeat(np.arange(n_queries), per)


@pytest.mark.parametrize(
    ("change", "kwargs", "field"),
    [
        (lambda x, y, g: (x, y[:-1], g), {}, "y, groups"),
        (lambda x, y, g: (x, y, g[:-1]), {}, "y, groups"),
        (lambda x, y, g: (x[:, 0], y, g), {}, "X"),
        (lambda x, y, g: (x, y, g[[*range(4), 5, 4, *range(6, len(g))]]), {}, "groups"),
        (lambda x, y, g: (x, y - 1, g), {}, "y"),
        (lambda x, y, g: (x, y + 0.5, g), {}, "y"),
        (lambda x, y, g: (np.where(x > 0.9, np.inf, x), y, g), {}, "X"),
        (lambda x, y, g: (x, y, g), {"feature_names": ["a", "b"]}, "feature_names"),
        (lambda x, y, g: (x, y, g), {"feature_names": ["a", "a", "c"]}, "feature_names"),
        (lambda x, y, g: (x, y, g), {"feature_names": ["a b", "c", "d"]}, "feature_names"),
        (lambda x, y, g: (x, y, g), {"categorical": [3]}, "categorical"),
        (lambda x, y, g: (x, y, g), {"categorical": [0]}, "X column 0"),
        (lambda x, y, g: (x, y, g), {"config": LambdaMartConfig(folds=13)}, "groups"),
        (
            lambda x, y, g: (x, y, g),
            {"valid": (np.zeros((5, 2)), np.zeros(5, int), np.zeros(5))},
            "valid X",
        ),
    ],
)
def test_bad_input_is_rejected(change: object, kwargs: dict[str, object], field: str) -> None:
    x, y, groups = change(*_toy())  # type: ignore[operator]
    with pytest.raises(InputError) as err:
        tune_lambdamart(x, y, groups, **kwargs)  # type: ignore[arg-type]
    assert err.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"num_leaves": (1,)}, "num_leaves"),
        ({"num_leaves": ()}, "num_leaves"),
        ({"num_leaves": (15.5,)}, "num_leaves"),
        ({"learning_rate": (0.0,)}, "learning_rate"),
        ({"min_data_in_leaf": (0,)}, "min_data_in_leaf"),
        ({"feature_fraction": (1.5,)}, "feature_fraction"),
        ({"lambda_l2": (-1.0,)}, "lambda_l2"),
        ({"folds": 1}, "folds"),
        ({"max_rounds": 0}, "max_rounds"),
        ({"early_stopping_rounds": 0}, "early_stopping_rounds"),
        ({"eval_at": 0}, "eval_at"),
        ({"num_threads": -1}, "num_threads"),
    ],
)
def test_bad_config_is_rejected(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InputError) as err:
        replace(LambdaMartConfig(), **changes)  # type: ignore[arg-type]
    assert err.value.field == field


def test_default_grid_size() -> None:
    assert 12 <= len(LambdaMartConfig().grid()) <= 24


def _position_biased_clicks(
    seed: int, queries: int = 1500, length: int = 10
) -> tuple[np.ndarray, ...]:
    """Clicks from an old ranker that sorted mostly by popularity: examination falls as
    1/(1 + position) and a click needs relevance, which the first feature shows with noise.

    Returns:
        (X, clicks, groups, logged positions, true grades ``round(3 relevance²)``).
    """
    rng = np.random.default_rng(seed)
    n = queries * length
    relevance, popularity = rng.random(n), rng.random(n)
    signal = relevance + rng.normal(0, 0.3, n)
    shown_by = (popularity + 0.3 * relevance).reshape(queries, length)
    position = np.argsort(np.argsort(-shown_by, axis=1), axis=1).ravel()
    clicks = (rng.random(n) < relevance**2 / (1.0 + position)).astype(int)
    truth = np.rint(3 * relevance**2).astype(int)
    groups = np.repeat(np.arange(queries), length)
    return np.c_[signal, popularity], clicks, groups, position, truth


def test_position_bias_correction_learns_relevance_not_the_old_rankers_placement() -> None:
    features, clicks, groups, position, _ = _position_biased_clicks(seed=2)
    features_test, _, groups_test, _, truth = _position_biased_clicks(seed=3)
    results: dict[float | None, tuple[float, float]] = {}
    for regularization in (None, 0.0):
        config = replace(SMALL, position_bias_regularization=regularization, folds=2)
        logged = position if regularization is not None else None
        model = tune_lambdamart(features, clicks, groups, config=config, positions=logged)
        importance = model.importance()
        results[regularization] = (
            ndcg_at_k(truth, model.predict(features_test), groups_test, 10),
            importance["feature_1"] / sum(importance.values()),
        )
    (biased_ndcg, biased_share), (debiased_ndcg, debiased_share) = results.values()
    # Clicks follow where the old ranker put items, and it put popular items high: a biased
    # model leans on popularity, the corrected one on the relevance signal.
    assert debiased_share < biased_share - 0.05
    assert debiased_ndcg > biased_ndcg


def test_position_bias_correction_needs_positions() -> None:
    features, clicks, groups, _, _ = _position_biased_clicks(seed=2, queries=20)
    config = replace(SMALL, position_bias_regularization=0.0)
    with pytest.raises(InputError, match="positions"):
        tune_lambdamart(features, clicks, groups, config=config)
    with pytest.raises(InputError, match="position_bias_regularization"):
        replace(SMALL, position_bias_regularization=-1.0)
