"""Resolving a registered feature service into the contract a training set carries."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from searchrank.core.contract import FeatureContract, Role
from searchrank.core.errors import InputError
from searchrank.core.names import RANKER_FEATURE_SERVICE
from searchrank.features.contract import resolve_contract
from searchrank.features.store import open_store


def test_the_contract_fetch_writes_is_the_registry_s_and_names_the_set_s_columns(
    feature_repo: Path, splits: dict[str, Path]
) -> None:
    contract = resolve_contract(open_store(feature_repo), RANKER_FEATURE_SERVICE)
    assert FeatureContract.load(splits["contract"]) == contract
    columns = pq.read_schema(splits["full"]).names
    assert columns[-len(contract.names) :] == contract.names
    roles = {c.column: c.role for c in contract.columns}
    assert roles["item_stats__feature_timestamp"] is Role.AUDIT
    assert roles["query_item_match__name_exact"] is Role.REQUEST_TIME
    assert roles["item_stats__popularity"] is Role.FEATURE
    entities = {c.view: c.entities for c in contract.columns}
    assert entities["user_item_stats"] == ("user", "item")
    assert entities["query_item_match"] == ()


def test_an_unregistered_service_is_bad_input_listing_the_registered_ones(
    feature_repo: Path,
) -> None:
    with pytest.raises(InputError, match=r"ranker_v9.*ranker_v1"):
        resolve_contract(open_store(feature_repo), "ranker_v9")
