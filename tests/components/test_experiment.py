"""``experiment``: champion against challenger on the simulator's traffic."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from searchrank.components.experiment.config import ExperimentConfig
from searchrank.components.experiment.logic import (
    prepare_traffic,
    ranked_lists,
    run_experiment,
)
from searchrank.core import schema as S
from searchrank.core.content import visible
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.features.generator.environment import load_ground_truth

QUICK = ExperimentConfig(minimum_detectable_effect=0.5, latency_searches=20)
"""The session's test split holds a few hundred listeners: enough for a large effect only."""


def test_an_experiment_of_a_model_against_itself_finds_nothing_and_does_not_ship(
    splits: dict[str, Path], dataset_dir: Path, lightgbm_baseline: Path
) -> None:
    report = run_experiment(
        splits["test"],
        dataset_dir,
        lightgbm_baseline,
        lightgbm_baseline,
        QUICK,
        pre_period_path=splits["train"],
    )
    # The same ranking on both sides: which team gets a click is a coin flip.
    assert report.interleaving["preference_low"] <= 0 <= report.interleaving["preference_high"]
    assert not report.decision["ship"]
    assert any("success metric" in reason for reason in report.decision["reasons"])
    assert not report.srm["mismatch"]
    json.dumps(report.as_dict())


def test_experiment_finds_a_real_difference_and_interleaving_needs_fewer_sessions(
    splits: dict[str, Path], dataset_dir: Path, experiment_pair: tuple[Path, Path]
) -> None:
    champion, challenger = experiment_pair
    report = run_experiment(
        splits["test"], dataset_dir, champion, challenger, QUICK, pre_period_path=splits["train"]
    )
    assert report.interleaving["preference_low"] > 0
    assert report.ab["difference"] > 0
    # The model trained on the true grades ranks these searches better by them, too.
    assert report.true_ndcg["challenger"]["low"] > report.true_ndcg["champion"]["high"]
    assert report.sensitivity["true_success_difference"] > 0
    assert report.sensitivity["sessions_interleaving"] < report.sensitivity["sessions_ab"]


def test_bad_inputs_are_refused_before_anything_runs(
    tmp_path: Path, splits: dict[str, Path], dataset_dir: Path, lightgbm_baseline: Path
) -> None:
    with pytest.raises(InputError, match="sessions"):
        run_experiment(
            splits["test"], dataset_dir, lightgbm_baseline, lightgbm_baseline, ExperimentConfig()
        )
    other = tmp_path / "other"
    shutil.copytree(lightgbm_baseline, other)
    contract = FeatureContract.load(other)
    replace(contract, columns=contract.columns[:-1]).save(other)
    with pytest.raises(InputError, match="other features than the champion"):
        run_experiment(splits["test"], dataset_dir, lightgbm_baseline, other, QUICK)
    truth = load_ground_truth(dataset_dir)
    foreign = tmp_path / "ground_truth.parquet"
    truth.assign(**{S.SEARCH_ID: truth[S.SEARCH_ID] + 10**9}).to_parquet(foreign)
    with pytest.raises(InputError, match="no ground truth"):
        run_experiment(splits["test"], foreign, lightgbm_baseline, lightgbm_baseline, QUICK)


def test_listeners_with_the_filter_on_never_see_explicit_items(
    splits: dict[str, Path], dataset_dir: Path
) -> None:
    traffic = prepare_traffic(pd.read_parquet(splits["test"]), load_ground_truth(dataset_dir))
    assert traffic.applies.any()
    explicit = np.array([flag is True for flag in traffic.explicit])
    shown = ranked_lists(traffic, explicit.astype(float), cutoff=10)  # explicit items first
    for q in np.flatnonzero(traffic.applies):
        assert not explicit[shown.lists[q]].any()


def test_ranked_lists_follow_the_serving_policy_search_by_search(
    splits: dict[str, Path], dataset_dir: Path
) -> None:
    traffic = prepare_traffic(pd.read_parquet(splits["test"]), load_ground_truth(dataset_dir))
    scores = np.random.default_rng(0).integers(0, 4, len(traffic.rows)).astype(float)  # ties
    shown = ranked_lists(traffic, scores, cutoff=10)
    assert len(shown.lists) == traffic.searches
    for q in range(traffic.searches):
        begin, end = traffic.starts[q], traffic.starts[q + 1]
        order = np.argsort(-scores[begin:end], kind="stable")
        expected = visible(order, traffic.explicit[begin:end], bool(traffic.applies[q]))[:10]
        np.testing.assert_array_equal(shown.lists[q], begin + expected)
    position = shown.positions(len(traffic.rows))
    assert (position >= 0).sum() == sum(len(rows) for rows in shown.lists)
    assert all((position[rows] == np.arange(len(rows))).all() for rows in shown.lists)
