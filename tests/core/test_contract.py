"""The feature contract: its file round-trips, refuses hand edits, and catches a store that no
longer serves what a model reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from searchrank.core.contract import (
    CONTRACT_FILE,
    ContractColumn,
    ContractMismatchError,
    FeatureContract,
    Role,
    contract_beside,
    feature_column,
)
from searchrank.core.domain import Domain, count, one_of
from searchrank.core.errors import InputError

CONTRACT = FeatureContract(
    "ranker_v1",
    (
        ContractColumn("stats__plays", "stats", "plays", "Int64", count(), Role.FEATURE, ("item",)),
        ContractColumn(
            "stats__genre", "stats", "genre", "String", one_of(["pop"]), Role.FEATURE, ("item",)
        ),
        ContractColumn(
            "stats__feature_timestamp",
            "stats",
            "feature_timestamp",
            "UnixTimestamp",
            Domain(audit=True),
            Role.AUDIT,
            ("item",),
        ),
        ContractColumn("match__exact", "match", "exact", "Float32", Domain(), Role.REQUEST_TIME),
    ),
)


def test_the_file_round_trips_in_a_folder_and_beside_a_training_set(tmp_path: Path) -> None:
    CONTRACT.save(tmp_path)
    assert (tmp_path / CONTRACT_FILE).is_file()
    assert FeatureContract.load(tmp_path) == CONTRACT
    beside = contract_beside(tmp_path / "train.parquet")
    assert beside.name == f"train.{CONTRACT_FILE}"
    CONTRACT.save(beside)
    assert FeatureContract.load(beside) == CONTRACT
    assert feature_column("stats", "plays") == CONTRACT.names[0]


def test_the_schema_hash_changes_with_any_column_and_a_hand_edit_is_refused(
    tmp_path: Path,
) -> None:
    retyped = replace(CONTRACT, columns=(replace(CONTRACT.columns[0], dtype="Float32"),))
    assert retyped.schema_hash != CONTRACT.schema_hash
    assert replace(CONTRACT, feature_service="ranker_v2").schema_hash == CONTRACT.schema_hash
    path = tmp_path / CONTRACT_FILE
    path.write_text(CONTRACT.to_json().replace('"Int64"', '"Float64"'))
    with pytest.raises(InputError, match="schema_hash"):
        FeatureContract.load(path)
    path.write_text("{}")
    with pytest.raises(InputError, match="feature contract"):
        FeatureContract.load(path)
    with pytest.raises(InputError, match="must exist"):
        FeatureContract.load(tmp_path / "nowhere")


def test_a_store_that_lost_or_retyped_a_needed_column_breaks_the_contract() -> None:
    CONTRACT.check_served(CONTRACT)
    served = replace(
        CONTRACT,
        columns=(replace(CONTRACT.columns[1], dtype="Int64"), *CONTRACT.columns[2:]),
    )
    with pytest.raises(ContractMismatchError) as caught:
        CONTRACT.check_served(served)
    assert dict(caught.value.problems) == {
        "stats__plays": "the model reads it, the feature service lacks it",
        "stats__genre": "must be String as in training, the service has Int64",
    }
    assert caught.value.field == "stats__plays"
    # Only the columns the model reads matter.
    CONTRACT.check_served(served, needed=["stats__feature_timestamp"])
    with pytest.raises(ContractMismatchError, match="feature_service"):
        CONTRACT.check_served(replace(CONTRACT, feature_service="ranker_v2"))
