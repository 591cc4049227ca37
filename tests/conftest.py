"""Shared fixtures: one small generated dataset and one applied Feast repository per session.

Feast takes about ten seconds to import and apply, so the tests share a session-scoped store
instead of building one per test. Tests that change a repository's state create their own.
"""

from __future__ import annotations

import os
import sys
import tempfile
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import pandas as pd

    from searchrank.components.train_retriever.config import TrainRetrieverConfig
    from searchrank.components.train_retriever.logic import RetrieverSummary

from searchrank.features.generator.config import GeneratorConfig

# kfp.local runs each step with the `python3` found on PATH: make it this interpreter's.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")
# The session's own BentoML model and Bento store, so tests never touch the user's ~/bentoml.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="searchrank-bentoml-")
os.environ.setdefault("FEAST_USAGE", "False")
# Served Bentos in tests answer with generous dependency budgets: the tests check what they
# answer, and two test processes on two cores can stretch a healthy lookup past the service's
# default second. The budgets themselves are tested in tests/serving/test_faults.py, which sets
# its own.
os.environ.setdefault("SEARCHRANK_ONLINE_TIMEOUT_MS", "30000")
os.environ.setdefault("SEARCHRANK_MODEL_TIMEOUT_MS", "60000")

END_DATE = date(2026, 11, 1)
SMALL = GeneratorConfig(searches=3_000, days=31, end_date=END_DATE, seed=11)
"""The session's dataset: small, yet 31 days long so time splits and TTLs are exercised."""


@pytest.fixture(scope="session")
def small_config() -> GeneratorConfig:
    return SMALL


@pytest.fixture(scope="session")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from searchrank.features.generator.generate import generate

    out = tmp_path_factory.mktemp("dataset")
    generate(SMALL, out)
    return out


@pytest.fixture(scope="session")
def feature_repo(tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path) -> Path:
    """An applied (not materialized) repository over the session's dataset; do not mutate."""
    from searchrank.features.store import apply_definitions, create_repo, open_store

    repo = create_repo(tmp_path_factory.mktemp("feature_repo"), dataset_dir)
    apply_definitions(open_store(repo))
    return repo


@pytest.fixture
def fresh_repo(tmp_path: Path, dataset_dir: Path) -> Path:
    """An applied repository with an empty online store, for tests that materialize."""
    from searchrank.features.store import apply_definitions, create_repo, open_store

    repo = create_repo(tmp_path / "repo", dataset_dir)
    apply_definitions(open_store(repo))
    return repo


@pytest.fixture(scope="session")
def window_end() -> datetime:
    """The end of the session dataset's window plus a day: after its last snapshot."""
    return SMALL.window_end + timedelta(days=1)


@pytest.fixture
def kfp_local(tmp_path: Path) -> Path:
    """kfp.local with the subprocess runner in this environment; returns the pipeline root."""
    from kfp import local

    root = tmp_path / "pipeline_root"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root))
    return root


@pytest.fixture(scope="session")
def splits(
    tmp_path_factory: pytest.TempPathFactory, dataset_dir: Path, feature_repo: Path
) -> dict[str, Path]:
    """The session dataset's ranker_v1 training set (``full``) and its feature contract
    (``contract``), the set cut by time into ``train``, ``valid`` and ``test``."""
    import pandas as pd

    from searchrank.components.fetch_features.logic import fetch_features
    from searchrank.core.contract import contract_beside
    from searchrank.core.names import RANKER_FEATURE_SERVICE
    from searchrank.core.split import split_by_time
    from searchrank.features import tables

    folder = tmp_path_factory.mktemp("splits")
    full = folder / "training_set.parquet"
    fetch_features(
        dataset_dir / tables.file_name(tables.IMPRESSIONS),
        feature_repo,
        RANKER_FEATURE_SERVICE,
        full,
    )
    paths = {"full": full, "contract": contract_beside(full)}
    for name, part in zip(
        ("train", "valid", "test"), split_by_time(pd.read_parquet(full), 0.1, 0.2), strict=True
    ):
        paths[name] = folder / f"{name}.parquet"
        part.to_parquet(paths[name], index=False)
    return paths


TINY_RANKER = {"epochs": 2, "num_workers": 1, "d_model": 32, "ff_dim": 64, "n_layers": 1}


@pytest.fixture(scope="session")
def ranker_checkpoint(tmp_path_factory: pytest.TempPathFactory, splits: dict[str, Path]) -> Path:
    """A small ranker trained by ``train_ranker`` on the session's train split."""
    from dataclasses import replace

    from searchrank.components.train_ranker.config import TrainRankerConfig
    from searchrank.components.train_ranker.logic import train_ranker
    from searchrank.core.contract import FeatureContract

    folder = tmp_path_factory.mktemp("ranker")
    train_ranker(
        splits["train"],
        splits["valid"],
        folder / "model",
        replace(TrainRankerConfig(), **TINY_RANKER),
        contract=FeatureContract.load(splits["contract"]),
        work_dir=folder / "work",
        log=lambda _: None,
    )
    return folder / "model"


@pytest.fixture(scope="session")
def catalogue(dataset_dir: Path) -> pd.DataFrame:
    import pandas as pd

    from searchrank.features import tables as T

    return pd.read_parquet(dataset_dir / T.file_name(T.CATALOGUE))


@pytest.fixture(scope="session")
def tiny_retriever_config() -> TrainRetrieverConfig:
    """The tests' small two-tower: three epochs on one worker, narrow towers."""
    from searchrank.components.train_retriever.config import TrainRetrieverConfig

    return TrainRetrieverConfig(
        epochs=3, num_workers=1, batch_size=256, text_dim=64, hidden=32, out_dim=64
    )


@pytest.fixture(scope="session")
def retriever_model(
    tmp_path_factory: pytest.TempPathFactory,
    splits: dict[str, Path],
    dataset_dir: Path,
    tiny_retriever_config: TrainRetrieverConfig,
) -> RetrieverSummary:
    """A small retriever trained by ``train_retriever`` on the session's train split: its
    summary (``model_dir`` is the checkpoint) and the item embeddings beside it."""
    from searchrank.components.train_retriever.logic import train_retriever
    from searchrank.features import tables as T

    folder = tmp_path_factory.mktemp("retriever")
    return train_retriever(
        splits["train"],
        splits["valid"],
        dataset_dir / T.file_name(T.CATALOGUE),
        folder / "model",
        folder / "embeddings.parquet",
        tiny_retriever_config,
        work_dir=folder / "work",
        log=lambda _: None,
    )


@pytest.fixture(scope="session")
def intent_splits(
    tmp_path_factory: pytest.TempPathFactory, splits: dict[str, Path], dataset_dir: Path
) -> dict[str, Path]:
    """``train_intent`` on the session's splits: ``model`` (the intent model's folder) and the
    train, valid and test splits with the intent features."""
    from searchrank.components.train_intent.logic import train_intent
    from searchrank.features import tables as T

    folder = tmp_path_factory.mktemp("intent")
    parts = {name: splits[name] for name in ("train", "valid", "test")}
    outputs = {name: folder / f"{name}.parquet" for name in parts}
    train_intent(parts, dataset_dir / T.file_name(T.SEARCHES), folder / "model", outputs)
    return {"model": folder / "model", **outputs}


def _tiny_lightgbm(folder: Path, train: pd.DataFrame, contract: Path) -> Path:
    """A LambdaMART baseline with a one-point grid, for tests that need a model folder."""
    from searchrank.components.train_lightgbm.logic import train_lightgbm
    from searchrank.core.contract import FeatureContract
    from searchrank.core.lambdamart import LambdaMartConfig

    config = LambdaMartConfig(
        num_leaves=(15,),
        min_data_in_leaf=(20,),
        feature_fraction=(1.0,),
        folds=2,
        max_rounds=100,
        num_threads=1,
    )
    train_lightgbm(train, None, folder, config, contract=FeatureContract.load(contract))
    return folder


@pytest.fixture(scope="session")
def lightgbm_baseline(tmp_path_factory: pytest.TempPathFactory, splits: dict[str, Path]) -> Path:
    """A small LambdaMART baseline trained on the session's train split."""
    import pandas as pd

    folder = tmp_path_factory.mktemp("lightgbm") / "model"
    return _tiny_lightgbm(folder, pd.read_parquet(splits["train"]), splits["contract"])


@pytest.fixture(scope="session")
def experiment_pair(
    tmp_path_factory: pytest.TempPathFactory, splits: dict[str, Path], dataset_dir: Path
) -> tuple[Path, Path]:
    """(champion, challenger): a baseline that learned nothing (labels shuffled) and one that
    learned from the simulator's true grades: a difference any online test must find."""
    import numpy as np
    import pandas as pd

    from searchrank.core import schema as S
    from searchrank.features.generator.environment import attach_true_grades, load_ground_truth

    train = attach_true_grades(pd.read_parquet(splits["train"]), load_ground_truth(dataset_dir))
    shuffled = np.random.default_rng(0).permutation(train[S.LABEL].to_numpy())
    graded = np.rint(train[S.TRUE_GRADE].to_numpy()).astype(np.int32)
    root = tmp_path_factory.mktemp("experiment_pair")
    return (
        _tiny_lightgbm(root / "noise", train.assign(**{S.LABEL: shuffled}), splits["contract"]),
        _tiny_lightgbm(root / "truth", train.assign(**{S.LABEL: graded}), splits["contract"]),
    )
