"""Serving fixtures: a trained ranker, an online store that holds what training saw for a day of
logged searches, and the models in this session's BentoML store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

if TYPE_CHECKING:
    from searchrank.serving.engine import SearchEngine

from searchrank.components.core import schema as S
from searchrank.components.core.names import RANKER_FEATURE_SERVICE


@dataclass(frozen=True)
class LoggedDay:
    """Logged searches between two daily snapshots, and a store materialized right after them."""

    rows: pd.DataFrame
    """Their training-set rows as ``fetch_features`` produced them."""
    repo: Path


@pytest.fixture(scope="session")
def logged_day(
    tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path, splits: dict[str, Path]
) -> LoggedDay:
    """Every feature of these searches' point-in-time join is the latest value at the end of
    their day, so the online store, materialized until then, must serve the same values."""
    from searchrank.components.materialize_features.logic import materialize_features
    from searchrank.features import tables as T
    from searchrank.features.store import apply_definitions, create_repo, open_store

    rows = pd.read_parquet(splits["test"])
    times = rows[S.EVENT_TIMESTAMP]
    day_start = (times.max() - T.SNAPSHOT_DELAY).floor("D") + T.SNAPSHOT_DELAY
    rows = rows[times >= day_start].reset_index(drop=True)
    repo = create_repo(tmp_path_factory.mktemp("online_repo"), dataset_dir)
    apply_definitions(open_store(repo))
    end = rows[S.EVENT_TIMESTAMP].max().to_pydatetime() + timedelta(seconds=1)
    materialize_features(repo, end)
    return LoggedDay(rows, repo)


@dataclass(frozen=True)
class StoredModels:
    ranker: str
    retriever: str


@pytest.fixture(scope="session")
def stored_models(ranker_checkpoint: Path, catalogue: pd.DataFrame) -> StoredModels:
    """The ranker and retriever in this session's BentoML store (see the root conftest)."""
    from searchrank.serving.bento import save_ranker, save_retriever

    models = StoredModels(
        save_ranker(ranker_checkpoint, {"feature_service": RANKER_FEATURE_SERVICE}, {}),
        save_retriever(catalogue, {}),
    )
    os.environ["SEARCHRANK_RANKER_MODEL"] = models.ranker
    os.environ["SEARCHRANK_RETRIEVER_MODEL"] = models.retriever
    return models


@pytest.fixture(scope="session")
def engine(logged_day: LoggedDay, ranker_checkpoint: Path, catalogue: pd.DataFrame) -> SearchEngine:
    """The service's logic without BentoML: the model called directly."""
    from searchrank.features.store import open_store
    from searchrank.serving.engine import RankerBundle, SearchEngine, lexical_retriever
    from searchrank.serving.online import OnlineFeatures

    bundle = RankerBundle.load(ranker_checkpoint)
    retriever = lexical_retriever(catalogue)
    features = OnlineFeatures(
        open_store(logged_day.repo), bundle.feature_service, retriever.item_ids.tolist()
    )
    return SearchEngine(features, bundle, retriever)
