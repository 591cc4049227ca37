"""Serving fixtures: a trained ranker, an online store that holds what training saw for a day of
logged searches, and the models in this session's BentoML store."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

if TYPE_CHECKING:
    from searchrank.serving.engine import SearchEngine

from searchrank.core import schema as S
from searchrank.core.names import RANKER_FEATURE_SERVICE
from searchrank.serving.settings import RANKER_MODEL_ENV, RETRIEVER_MODEL_ENV


@dataclass(frozen=True)
class LoggedDay:
    """Logged searches between two daily snapshots, and a store materialized right after them."""

    rows: pd.DataFrame
    """Their training-set rows as ``fetch_features`` produced them."""
    repo: Path


@pytest.fixture(scope="session")
def logged_day(
    tmp_path_factory: pytest.TempPathFactory, feature_repo: Path, splits: dict[str, Path]
) -> LoggedDay:
    """Every feature of these searches' point-in-time join is the latest value at the end of
    their day, so the online store, materialized until then, must serve the same values (the
    staging store of ``package_service``'s infra validation)."""
    from searchrank.components.package_service.logic import last_snapshot_day, staging_repo

    rows = last_snapshot_day(pd.read_parquet(splits["test"]))
    folder = tmp_path_factory.mktemp("online_repo")
    return LoggedDay(rows, staging_repo(feature_repo, folder, rows[S.EVENT_TIMESTAMP].max()))


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
    # For the service class imported in this process (test_service); a Bento pins its own.
    os.environ[RANKER_MODEL_ENV] = models.ranker
    os.environ[RETRIEVER_MODEL_ENV] = models.retriever
    return models


@pytest.fixture(scope="session")
def engine(logged_day: LoggedDay, ranker_checkpoint: Path, catalogue: pd.DataFrame) -> SearchEngine:
    """The service's logic without BentoML: the model called directly."""
    from searchrank.core.candidates import CandidateGenerator
    from searchrank.features.store import open_store
    from searchrank.serving.engine import RankerBundle, SearchEngine

    bundle = RankerBundle.load(ranker_checkpoint)
    retriever = CandidateGenerator.from_catalogue(catalogue)
    return SearchEngine.open(open_store(logged_day.repo), bundle, retriever)


@pytest.fixture(scope="session")
def bento(stored_models: StoredModels) -> str:
    """A Bento of the stored models (built once per test process)."""
    from searchrank.serving.bento import build_bento

    return build_bento(stored_models.ranker, stored_models.retriever, {"kfp_run": "test"})
