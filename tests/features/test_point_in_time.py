"""Point-in-time correctness of searchrank's Feast offline store, property-based.

Random feature rows (several per key, ties on timestamp broken by created time) and random
entity rows (shared keys and timestamps, unknown keys) go through the real Feast API, and the
result must equal a brute-force reference: the latest feature row at or before the event within
the TTL, ties broken by the latest created time; nulls otherwise; every entity row exactly once.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from feast import FeatureStore
from hypothesis import HealthCheck, given, settings
from pit_cases import (
    FEATURES,
    Case,
    check_against_reference,
    check_tie_and_expiry,
    scenario,
    views,
    write_case,
    write_tie_and_expiry_case,
)

from searchrank.features.store import create_repo, open_store


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[FeatureStore, Path]:
    root = tmp_path_factory.mktemp("pit")
    data = root / "data"
    data.mkdir()
    fs = open_store(create_repo(root / "repo", data))
    fs.apply(views())
    return fs, data


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenario())
def test_point_in_time_join_matches_brute_force(
    store: tuple[FeatureStore, Path], case: Case
) -> None:
    fs, data = store
    entity = write_case(case, data)
    got = fs.get_historical_features(
        entity_df=entity, features=FEATURES, full_feature_names=True
    ).to_df()
    check_against_reference(got, case)


def test_a_value_stamped_after_the_event_is_never_joined(store: tuple[FeatureStore, Path]) -> None:
    fs, data = store
    entity = write_tie_and_expiry_case(data)
    got = fs.get_historical_features(
        entity_df=entity, features=FEATURES, full_feature_names=True
    ).to_df()
    check_tie_and_expiry(got)
