"""``train_intent``: the intent model from the train split's searches, its validation report,
and the splits written again with its class probabilities as features."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from searchrank.components.train_intent.logic import train_intent
from searchrank.core import schema as S
from searchrank.core.contract import FeatureContract
from searchrank.core.errors import InputError
from searchrank.core.features import infer_roles
from searchrank.core.intent import IntentModel, intent_column, labelled_searches
from searchrank.features import tables as T


def test_the_splits_gain_the_intent_probabilities_and_keep_their_rows(
    intent_splits: dict[str, Path], splits: dict[str, Path]
) -> None:
    model = IntentModel.load(intent_splits["model"])
    columns = [intent_column(c) for c in model.classes]
    assert len(columns) == 5
    for name in ("train", "valid", "test"):
        before, after = pd.read_parquet(splits[name]), pd.read_parquet(intent_splits[name])
        assert list(after.columns) == list(before.columns) + columns
        pd.testing.assert_frame_equal(after[list(before.columns)], before)
        probabilities = after[columns].to_numpy()
        assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
        one = after.iloc[[0]]
        assert np.allclose(
            probabilities[0], model.probabilities([str(one[S.QUERY].iloc[0])])[0], atol=1e-6
        )
    roles = infer_roles(
        list(pd.read_parquet(intent_splits["train"]).columns),
        FeatureContract.load(splits["contract"]),
    )
    numeric = {r.column for r in roles if r.kind == "numeric"}
    assert set(columns) <= numeric, "the ranker reads the intent probabilities"


def test_with_the_catalogue_the_splits_gain_the_rewriters_features_as_the_service_computes(
    splits: dict[str, Path], dataset_dir: Path, tmp_path: Path
) -> None:
    from searchrank.core.candidates import CandidateGenerator
    from searchrank.core.query_rewrite import REWRITE_COLUMNS, rewrite_features
    from searchrank.core.retrieval import item_streams

    parts = {name: splits[name] for name in ("train", "valid")}
    outputs = {name: tmp_path / f"{name}.parquet" for name in parts}
    catalogue = dataset_dir / T.file_name(T.CATALOGUE)
    searches = dataset_dir / T.file_name(T.SEARCHES)
    train_intent(parts, searches, tmp_path / "model", outputs, catalogue_path=catalogue)
    train = pd.read_parquet(outputs["train"])
    assert set(REWRITE_COLUMNS) <= set(train.columns)
    # The service's generator, built as package_service builds it, gives the same features.
    served = CandidateGenerator.from_catalogue(
        pd.read_parquet(catalogue), streams=item_streams(pd.read_parquet(splits["train"]))
    )
    sample = train.drop_duplicates(S.QUERY).head(300)
    expected = [list(rewrite_features(served.rewrite(q)).values()) for q in sample[S.QUERY]]
    np.testing.assert_allclose(sample[list(REWRITE_COLUMNS)].to_numpy(), expected, rtol=1e-6)
    assert sample[REWRITE_COLUMNS[0]].min() < 1.0, "some logged queries were rewritten"
    roles = infer_roles(list(train.columns), FeatureContract.load(splits["contract"]))
    assert set(REWRITE_COLUMNS) <= {r.column for r in roles if r.kind == "numeric"}


def test_the_validation_report_beats_the_majority_class(
    splits: dict[str, Path], dataset_dir: Path, tmp_path: Path
) -> None:
    parts = {name: splits[name] for name in ("train", "valid")}
    outputs = {name: tmp_path / f"{name}.parquet" for name in parts}
    summary = train_intent(parts, dataset_dir / T.file_name(T.SEARCHES), tmp_path / "m", outputs)
    v = summary.validation
    assert v["accuracy"] > v["majority_accuracy"]
    assert summary.majority in summary.classes
    assert "| genre_mood |" in summary.markdown()
    assert summary.metrics()["valid_accuracy"] == v["accuracy"]


def test_a_search_without_an_intent_is_refused(splits: dict[str, Path], dataset_dir: Path) -> None:
    rows = pd.read_parquet(splits["valid"])
    searches = pd.read_parquet(dataset_dir / T.file_name(T.SEARCHES))
    kept = searches[searches[S.SEARCH_ID] != rows[S.SEARCH_ID].iloc[0]]
    with pytest.raises(InputError, match="valid search_id"):
        labelled_searches(rows, kept, "valid")
    with pytest.raises(InputError, match="searches columns"):
        labelled_searches(rows, searches.drop(columns="intent"), "valid")
