"""Open, create and fill Feast feature repositories built from ``features/``.

``features/`` itself is a working Feast repository (``feast apply`` works there) whose data
lives in ``features/data``. Pipelines, tests and the demo create repositories elsewhere with
:func:`create_repo`: the same ``feature_store.yaml`` template pointed at another data folder,
with its own registry and online store, so runs never share state by accident.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from searchrank.components.core.errors import InputError

if TYPE_CHECKING:
    from feast import FeatureStore

REPO_TEMPLATE_DIR = Path(__file__).resolve().parent
"""The ``features/`` folder: Feast definitions and one ``feature_store.yaml`` per environment."""
ENVIRONMENTS: dict[str, str] = {
    "local": "feature_store.yaml",
    "cluster": "feature_store.cluster.yaml",
}
FEATURE_STORE_YAML = "feature_store.yaml"


def template(environment: str) -> dict[str, Any]:
    """The parsed ``feature_store.yaml`` of an environment (environment variables unexpanded)."""
    if environment not in ENVIRONMENTS:
        raise InputError("environment", environment, f"must be one of {sorted(ENVIRONMENTS)}")
    loaded: dict[str, Any] = yaml.safe_load(
        (REPO_TEMPLATE_DIR / ENVIRONMENTS[environment]).read_text()
    )
    return loaded


def create_repo(repo_dir: Path, data_dir: Path) -> Path:
    """Write an embedded-default feature repository whose sources live in ``data_dir``.

    The registry and the SQLite online store go to ``repo_dir/data/``. Existing files of a
    previous repository in ``repo_dir`` are kept (their registry remembers what was applied).

    Returns:
        ``repo_dir``, ready for :func:`open_store`.
    """
    config = template("local")
    config["offline_store"]["data_root"] = str(data_dir.resolve())
    repo_dir.mkdir(parents=True, exist_ok=True)
    (repo_dir / "data").mkdir(exist_ok=True)
    (repo_dir / FEATURE_STORE_YAML).write_text(yaml.safe_dump(config, sort_keys=False))
    return repo_dir


def open_store(repo: Path | str) -> FeatureStore:
    """Open the feature store of a repository folder holding a ``feature_store.yaml``."""
    from feast import FeatureStore

    repo_path = Path(repo)
    if not (repo_path / FEATURE_STORE_YAML).is_file():
        raise InputError(
            "feature_repo", str(repo), f"must be a folder containing {FEATURE_STORE_YAML}"
        )
    return FeatureStore(repo_path=str(repo_path))


def apply_definitions(store: FeatureStore) -> None:
    """Register searchrank's entities, views and feature services (what ``feast apply`` does)."""
    from searchrank.features import definitions

    with warnings.catch_warnings():
        # Feast warns that on-demand views scale poorly offline; ours is the text match,
        # measured in tests/benchmarks/bench_fetch.py.
        warnings.filterwarnings("ignore", "On demand feature view", RuntimeWarning)
        store.apply(definitions.ALL_OBJECTS)
