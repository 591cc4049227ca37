"""The query-intent model on the session's synthetic logs, split by time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from searchrank.core.errors import InputError
from searchrank.core.intent import (
    IntentModel,
    IntentParams,
    intent_report,
    top_intent,
)
from searchrank.core.text import normalize_text
from searchrank.features import tables as T


def test_intent_beats_the_majority_class_and_survives_a_round_trip(
    dataset_dir: Path, tmp_path: Path
) -> None:
    searches = pd.read_parquet(dataset_dir / T.file_name(T.SEARCHES)).sort_values("event_timestamp")
    cut = int(len(searches) * 0.8)
    train, test = searches.iloc[:cut], searches.iloc[cut:]
    model = IntentModel.fit(train["raw_query"].tolist(), train["intent"].tolist())
    predicted = model.predict(test["raw_query"].tolist())
    majority = train["intent"].value_counts().idxmax()
    report = intent_report(test["intent"].tolist(), predicted.tolist(), majority)
    assert report["accuracy"] > report["majority_accuracy"] + 0.2
    assert report["macro_f1"] > 0.5 > report["majority_macro_f1"]
    assert set(report["per_class"]) == set(searches["intent"])
    probabilities = model.probabilities(["chill pop", "true crime podcast"])
    assert probabilities.shape == (2, len(model.classes))
    assert abs(probabilities.sum(axis=1) - 1).max() < 1e-6
    for query in test["raw_query"].head(20):  # the service's one-query path, as training's
        by_column, top = model.understand(query)
        assert by_column == model.features([query]).iloc[0].to_dict()
        assert top == top_intent(model.features([query]))
    queries = [*test["raw_query"].head(300), "zzqx", "ωψ"]  # the last two: unseen terms
    one_by_one = np.stack([model.one_query.probabilities(normalize_text(q)) for q in queries])
    np.testing.assert_allclose(one_by_one, model.probabilities(queries), rtol=0, atol=1e-12)
    model.save(tmp_path)
    again = IntentModel.load(tmp_path)
    assert (again.predict(test["raw_query"].tolist()) == predicted).all()


def test_the_one_query_scorer_handles_two_classes() -> None:
    queries = ["chill pop", "true crime podcast", "pop hits", "crime stories podcast"] * 3
    model = IntentModel.fit(queries, ["music", "podcast"] * 6, IntentParams(min_df=1))
    probabilities = np.stack([model.one_query.probabilities(q) for q in ["pop", "crime"]])
    np.testing.assert_allclose(probabilities, model.probabilities(["pop", "crime"]), atol=1e-12)


def test_intent_needs_two_classes_and_aligned_inputs() -> None:
    with pytest.raises(InputError, match="intents"):
        IntentModel.fit(["a", "b"], ["track", "track"])
    with pytest.raises(InputError, match="queries"):
        IntentModel.fit(["a"], ["track", "artist"])
